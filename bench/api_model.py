"""The benchmark's Synthflow stand-in: the tests' API model plus TLS, a modelled WAN and a delay.

It reuses tests/support/synthflow_model.py (keep-alive, no Nagle, the same answers) and adds
only what the benchmark needs, all on loopback:

- **TLS** with a certificate from a CA made at run time (bench/tls.py);
- **WAN**: a round-trip time ``rtt`` charged inside the server, never on the machine's
  network: 2 RTT when a connection opens (TCP + TLS handshakes) and 1 RTT per request;
- **delay**: every answer waits this long (the concurrency run's "1 s API");
- **connection accounting**: for each request, which variant sent it (its
  ``custom_variables.bench_variant``), whether it opened its connection, and whether it
  was the JSON prepare_inbound expects, typed application/json (checks the dialplan peer).

The server must not be the bottleneck: one thread per connection (ThreadingHTTPServer),
handshakes and sleeps in that thread, a listen backlog of 1024.
"""
from __future__ import annotations

import collections
import json
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from tests.support.synthflow_model import SynthflowModel  # noqa: E402

BODY_KEYS = ("from_number", "to_number", "model_id", "workspace_id", "custom_variables")


def body_is_sound(raw: bytes) -> bool:
    """True when raw is a prepare_inbound JSON object with every documented key.

    >>> body_is_sound(b'{"from_number": "+1", "to_number": "+2", "model_id": "m", "workspace_id": "w", "custom_variables": {}}')
    True
    >>> body_is_sound(b'{from_number:+1}')
    False
    """
    try:
        body = json.loads(raw.decode("utf-8"))
    except ValueError:
        return False
    return isinstance(body, dict) and all(key in body for key in BODY_KEYS)


def variant_of(raw: bytes) -> str:
    """The bench_variant custom variable of a request body, or "?".

    >>> variant_of(b'{"custom_variables": {"bench_variant": "curl"}}'), variant_of(b'junk')
    ('curl', '?')
    """
    try:
        return str(json.loads(raw.decode("utf-8"))["custom_variables"]["bench_variant"])
    except (ValueError, KeyError, TypeError):
        return "?"


class BenchModel(SynthflowModel):
    """SynthflowModel with TLS, a charged RTT, a fixed delay and per-variant connection counts."""

    def __init__(self, token: str, rtt: float = 0.0, tls: Optional[ssl.SSLContext] = None, delay: float = 0.0):
        self.rtt = rtt
        self.tls = tls
        self.delay = delay
        self._stats_lock = threading.Lock()
        # variant -> Counter(requests=, new_connections=, bad_bodies=)
        self.by_variant = collections.defaultdict(collections.Counter)
        self.handshake_failures = 0
        self.bad_samples = []  # the first few unsound bodies, verbatim, for the report
        super().__init__(token=token)
        # A new FastAGI pool or a burst of dialplan CURL()s opens many connections at once.
        self._server.socket.listen(1024)
        self._server.handle_error = self._quiet_error

    @property
    def base_url(self) -> str:
        return "%s://127.0.0.1:%d/v2" % ("https" if self.tls else "http", self.port)

    def _next(self):
        # The benchmark's answer is always the same: ok, after the configured delay.
        return {"kind": "delay", "seconds": self.delay} if self.delay > 0 else {"kind": "ok"}

    def _record(self, rec) -> None:
        # Keep the counts, not the requests: a load run would hold thousands of them.
        pass

    def _quiet_error(self, request, client_address) -> None:
        # A client that went away mid-handshake or mid-request is not the server's error.
        with self._stats_lock:
            self.handshake_failures += 1

    def count(self, variant: str, new_connection: bool, sound: bool, raw: bytes = b"") -> None:
        with self._stats_lock:
            if not sound and len(self.bad_samples) < 3:
                self.bad_samples.append(raw[:300].decode("utf-8", "replace"))
            counts = self.by_variant[variant]
            counts["requests"] += 1
            counts["new_connections"] += int(new_connection)
            counts["bad_bodies"] += int(not sound)

    def snapshot(self):
        """{variant: {"requests", "new_connections", "bad_bodies"}} so far."""
        with self._stats_lock:
            return {key: dict(value) for key, value in self.by_variant.items()}

    def reset_counts(self) -> None:
        with self._stats_lock:
            self.by_variant.clear()
            self.handshake_failures = 0

    def _handler_class(self) -> type:
        base = super()._handler_class()
        model = self

        class BenchHandler(base):
            def setup(self) -> None:
                self.bench_requests = 0
                self.bench_raw = b""
                if model.rtt:
                    time.sleep(2 * model.rtt)  # the TCP and TLS handshakes' round trips
                if model.tls is not None:
                    self.request = model.tls.wrap_socket(self.request, server_side=True)
                super().setup()  # sets TCP_NODELAY (disable_nagle_algorithm) on this socket

            def _read(self) -> bytes:
                self.bench_raw = super()._read()
                return self.bench_raw

            def _api(self, method: str) -> None:
                if model.rtt:
                    time.sleep(model.rtt)  # the request's round trip
                first = self.bench_requests == 0
                self.bench_requests += 1
                super()._api(method)
                json_type = (self.headers.get("Content-Type") or "").startswith("application/json")
                model.count(variant_of(self.bench_raw), first, json_type and body_is_sound(self.bench_raw),
                            self.bench_raw)

        return BenchHandler
