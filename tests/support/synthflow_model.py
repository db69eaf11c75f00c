"""A local stand-in for Synthflow's ``POST /v2/prepare_inbound``, for contract and E2E tests.

Why a real HTTP server and not a mocked ``requests``: the program's retry, timeout and
error mapping live in urllib3 and the socket layer, and only real bytes on a real socket
exercise them.  Standard library only, so it also runs inside the lab image.

In-process::

    with SynthflowModel(token="T") as model:
        model.script({"kind": "status", "code": 503}, {"kind": "ok"})
        ... run the program with SYNTHFLOW_API_URL=model.base_url ...
        assert len(model.requests) == 2

Standalone (E2E)::

    python tests/support/synthflow_model.py --listen 127.0.0.1:0 --token T --port-file F

with control endpoints on the same port: ``POST /_model/script`` (a JSON list of
behaviours), ``GET /_model/requests`` (a JSON list), ``POST /_model/reset``.

Behaviours (consumed one per authorised API request; when the queue is empty: ``ok``)::

    {"kind": "ok"} / {"kind": "ok", "call_id": "..."}     200, registered
    {"kind": "status", "code": 503, "retry_after": 1}     that status, JSON error body
    {"kind": "delay", "seconds": 3, "then": {...}}        wait, then ``then`` (default ok)
    {"kind": "not_json"}                                  200 with an HTML body
    {"kind": "missing_id"}                                200 without synthflow_call_id
    {"kind": "call_status", "value": "failed"}            200 with that call_status
    {"kind": "drop"}                                      close the socket, no reply at all
    {"kind": "raw", "code": 200, "body": "[]"}            this body verbatim (odd JSON shapes)
    {"kind": "drip", "interval": 0.5}                     200 headers at once, then the ok body
                                                          one byte per interval
    {"kind": "slow_headers", "interval": 0.3}             the whole ok reply, status line and
                                                          headers included, one byte per interval
    {"kind": "hang"}                                      read the request, never answer
    {"kind": "reset"}                                     read the request, then a TCP RST
    {"kind": "wire", "data": "HTTP/1.1 200 x\r\n..."}      these bytes verbatim, then close

``accepted`` holds the monotonic time of every TCP connection the server accepted
(``time.monotonic`` is system-wide on Linux, so a test compares it with its own clock).

A wrong or missing bearer token gets a bare 401 whatever the script says, and does not
consume a behaviour: that is how the real API answers before any business logic runs.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

KINDS = ("ok", "status", "delay", "not_json", "missing_id", "call_status", "drop", "raw",
         "drip", "slow_headers", "hang", "reset", "wire")
API_PATH = "/v2/prepare_inbound"


def check_behaviour(b: Any) -> Dict[str, Any]:
    """Reject a malformed behaviour when it is scripted, not when a request finally meets it."""
    if not isinstance(b, dict) or b.get("kind") not in KINDS:
        raise ValueError("bad behaviour %r (kinds: %s)" % (b, ", ".join(KINDS)))
    if b["kind"] == "status" and not isinstance(b.get("code"), int):
        raise ValueError("status behaviour needs an integer code: %r" % (b,))
    if b["kind"] == "delay":
        float(b.get("seconds", 0))
        check_behaviour(b.get("then", {"kind": "ok"}))
    return b


class Recorded:
    """One request as it arrived: enough to assert on the exact wire, headers and body."""

    def __init__(self, method: str, path: str, headers: Dict[str, str], raw: bytes, at: float):
        self.method, self.path, self.headers, self.raw, self.time = method, path, headers, raw, at
        try:
            self.body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            self.body = None
        self.behaviour: Optional[Dict[str, Any]] = None
        self.client_port = 0  # the client's TCP port: equal ports mean a reused connection

    def header(self, name: str) -> Optional[str]:
        """Case-insensitive header lookup (HTTP header names are case-insensitive)."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def to_json(self) -> Dict[str, Any]:
        return {"method": self.method, "path": self.path, "headers": self.headers,
                "body": self.body, "raw": self.raw.decode("utf-8", "replace"),
                "time": self.time, "behaviour": self.behaviour, "client_port": self.client_port}

    def __repr__(self) -> str:
        return "Recorded(%s %s %r)" % (self.method, self.path, self.raw[:200])


class _AcceptRecordingServer(ThreadingHTTPServer):
    """Notes when each connection is accepted, before any byte is read from it.

    With a TLS context the accepted socket is wrapped here and its handshake is left to
    the connection's own thread (``Handler.setup``), so a stalled client holds only that.
    """

    def __init__(self, address: Any, handler: type, model: "SynthflowModel",
                 tls: Optional[ssl.SSLContext] = None):
        self._model = model
        self._tls = tls
        super().__init__(address, handler)

    def get_request(self) -> Any:
        sock, address = super().get_request()
        with self._model._lock:
            self._model.accepted.append(time.monotonic())
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that refuses our certificate or gives up mid-handshake is a test case.
        if self._model._log:
            self._model._log("connection from %s ended with %s" % (client_address, sys.exc_info()[1]))


class SynthflowModel:
    """The model server.  A context manager; see the module docstring."""

    def __init__(self, token: str = "test-token", host: str = "127.0.0.1", port: int = 0,
                 log: Optional[Callable[[str], None]] = None, tls: Optional[ssl.SSLContext] = None):
        self.token = token
        self._lock = threading.Condition()
        self._queue: List[Dict[str, Any]] = []
        self._requests: List[Recorded] = []
        self._stopping = threading.Event()
        self._log = log
        self.accepted: List[float] = []
        self.scheme = "https" if tls is not None else "http"
        self._server = _AcceptRecordingServer((host, port), self._handler_class(), self, tls)
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    # lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return "%s://127.0.0.1:%d/v2" % (self.scheme, self.port)

    def start(self) -> "SynthflowModel":
        self._thread = threading.Thread(target=self._server.serve_forever, name="synthflow-model",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a request still in a ``delay`` is woken and closed, not waited for."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> "SynthflowModel":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # test API ----------------------------------------------------------------------------
    def script(self, *behaviours: Dict[str, Any]) -> None:
        """Replace the queue, so a leftover from an earlier scenario never leaks into the next."""
        checked = [check_behaviour(b) for b in behaviours]
        with self._lock:
            self._queue = checked

    def reset(self) -> None:
        with self._lock:
            self._queue = []
            self._requests = []
            self.accepted = []

    @property
    def requests(self) -> List[Recorded]:
        """Every request so far (API ones and wrong-path/unauthorised ones alike), oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_request(self, timeout: float = 10.0, count: int = 1) -> Recorded:
        """Block until ``count`` requests have arrived and return the last of them.

        Returns as soon as the request is read, before any ``delay`` runs, so a test can act
        (send SIGHUP, say) while the program is still waiting for the reply.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("model saw %d of %d requests within %ss"
                                       % (len(self._requests), count, timeout))
                self._lock.wait(left)
            return self._requests[count - 1]

    # server side ----------------------------------------------------------------------------
    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)
            self._lock.notify_all()

    def _next(self) -> Dict[str, Any]:
        with self._lock:
            return self._queue.pop(0) if self._queue else {"kind": "ok"}

    def _handler_class(self) -> type:
        model = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "SynthflowModel/1"
            # Keep-alive as the real API does, so a pooled client's connection reuse shows
            # (client_port); no Nagle, or each warm reply waits ~40 ms for a delayed ACK.
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.settimeout(30)
                    self.request.do_handshake()
                    self.request.settimeout(None)
                super().setup()

            def log_message(self, fmt: str, *args: Any) -> None:
                if model._log:
                    model._log("%s %s" % (self.address_string(), fmt % args))

            def _reply(self, code: int, body: Any = None, ctype: str = "application/json",
                       headers: Optional[Dict[str, str]] = None) -> None:
                data = b"" if body is None else (
                    body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8"))
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if data:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _read(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length > 0 else b""

            def do_GET(self) -> None:
                if self.path == "/_model/requests":
                    self._reply(200, [r.to_json() for r in model.requests])
                else:
                    self._api("GET")

            def do_POST(self) -> None:
                if self.path == "/_model/script":
                    try:
                        items = json.loads(self._read().decode("utf-8") or "[]")
                        model.script(*(items if isinstance(items, list) else [items]))
                    except ValueError as exc:
                        self._reply(400, {"error": str(exc)})
                        return
                    self._reply(200, {"queued": len(items) if isinstance(items, list) else 1})
                elif self.path == "/_model/reset":
                    self._read()
                    model.reset()
                    self._reply(200, {"reset": True})
                else:
                    self._api("POST")

            def _api(self, method: str) -> None:
                raw = self._read()
                rec = Recorded(method, self.path, dict(self.headers.items()), raw, time.monotonic())
                rec.client_port = self.client_address[1]
                model._record(rec)
                if rec.header("Authorization") != "Bearer %s" % model.token:
                    rec.behaviour = {"kind": "unauthorized"}
                    self._reply(401)
                    return
                if method != "POST" or self.path.split("?")[0] != API_PATH:
                    rec.behaviour = {"kind": "not_found"}
                    self._reply(404, {"error": "no route %s %s" % (method, self.path)})
                    return
                rec.behaviour = model._next()
                self._behave(rec.behaviour, rec.body if isinstance(rec.body, dict) else {})

            def _behave(self, b: Dict[str, Any], req: Dict[str, Any]) -> None:
                kind = b["kind"]
                if kind == "delay":
                    if model._stopping.wait(float(b.get("seconds", 0))):
                        return
                    self._behave(b.get("then", {"kind": "ok"}), req)
                elif kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif kind == "hang":
                    self.close_connection = True
                    model._stopping.wait(3600)
                elif kind == "reset":
                    self.close_connection = True
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                elif kind == "wire":
                    self.close_connection = True
                    self.wfile.write(str(b["data"]).encode("utf-8", "surrogateescape"))
                    self.wfile.flush()
                elif kind in ("drip", "slow_headers"):
                    self.close_connection = True
                    self._trickle(b, self._ok_body({"kind": "ok"}, req))
                elif kind == "status":
                    extra = {"Retry-After": str(b["retry_after"])} if "retry_after" in b else {}
                    self._reply(b["code"], {"error": "model status %d" % b["code"]}, headers=extra)
                elif kind == "raw":
                    self._reply(int(b.get("code", 200)), str(b.get("body", "")),
                                ctype=b.get("content_type", "application/json"))
                elif kind == "not_json":
                    self._reply(200, "<html><body>Bad Gateway</body></html>", ctype="text/html")
                else:
                    self._reply(200, self._ok_body(b, req))

            @staticmethod
            def _ok_body(b: Dict[str, Any], req: Dict[str, Any]) -> Dict[str, Any]:
                body = {"call_status": "registered",
                        "synthflow_call_id": b["call_id"] if "call_id" in b else str(uuid.uuid4()),
                        "direction": "inbound", "model_id": req.get("model_id"),
                        "workspace_id": req.get("workspace_id"),
                        "custom_variables": req.get("custom_variables")}
                if b["kind"] == "missing_id":
                    del body["synthflow_call_id"]
                elif b["kind"] == "call_status":
                    body["call_status"] = b.get("value", "failed")
                return body

            def _trickle(self, b: Dict[str, Any], body: Dict[str, Any]) -> None:
                """A valid 200, sent one byte per interval (from the body on, or from the start)."""
                data = json.dumps(body).encode("utf-8")
                head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(data)).encode("ascii")
                interval = float(b.get("interval", 0.5))
                slow = head + data if b["kind"] == "slow_headers" else data
                if b["kind"] == "drip":
                    self.wfile.write(head)
                    self.wfile.flush()
                for i in range(len(slow)):
                    if model._stopping.wait(interval):
                        return
                    self.wfile.write(slow[i:i + 1])
                    self.wfile.flush()

            def handle_one_request(self) -> None:
                # A client that gives up (timeout, SIGHUP) mid-reply is expected, not an error.
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True

        return Handler


def main(argv: Optional[List[str]] = None) -> int:
    """The standalone server for E2E; the port file is written atomically once bound."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0 picks one)")
    ap.add_argument("--token", required=True)
    ap.add_argument("--port-file", help="write the bound port here")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    model = SynthflowModel(token=args.token, host=host or "127.0.0.1", port=int(port),
                           log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write("%d\n" % model.port)
        os.replace(tmp, args.port_file)
    print("synthflow model on %s" % model.base_url, flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    model.start()
    while not done.wait(0.5):
        pass
    model.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
