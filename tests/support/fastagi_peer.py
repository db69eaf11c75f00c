"""Asterisk's side of FastAGI: the real ``synthflow-agi fastagi`` server and peers that call it.

``FastAgiServerProcess`` runs the server as a child process on an ephemeral loopback port
and keeps its log.  ``FastAgiPeer`` is the scripted channel of ``agi_peer`` speaking over a
TCP connection instead of a child's stdin/stdout: the same environment block (plus the
``agi_network`` lines res_agi adds), the same replies, and a hangup announced the FastAGI
way, as a bare ``HANGUP`` line among the replies (docs/asterisk-notes.md#hangup-and-dead-channels).

Usage::

    with FastAgiServerProcess(env) as server:
        result = FastAgiPeer(server.port, variables={"SYNTHFLOW_MODE": "dial"}).run()
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence

from tests.support.agi_peer import AgiPeer, AgiResult

LISTENING = re.compile(r"FastAGI listening on agi://[^:]+:(\d+)/synthflow")


class FastAgiServerProcess:
    """``python -m synthflow_agi fastagi`` on 127.0.0.1, its stderr kept line by line."""

    def __init__(self, env: Dict[str, str], options: Sequence[str] = (), listen: str = "127.0.0.1:0"):
        self.command = [sys.executable, "-m", "synthflow_agi", "fastagi", "--listen", listen] + list(options)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHFLOW_")}
        self.env.update(env)
        self.port = 0
        self.proc: Any = None
        self._lines: List[str] = []
        self._changed = threading.Condition()
        self._pumps: List[threading.Thread] = []
        self.stdout = b""

    def start(self, timeout: float = 15.0) -> "FastAgiServerProcess":
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env)
        self._pumps = [threading.Thread(target=self._pump_stderr, daemon=True),
                       threading.Thread(target=self._pump_stdout, daemon=True)]
        for pump in self._pumps:
            pump.start()
        found = self.wait_for_log(LISTENING, timeout)
        self.port = int(found.group(1))
        return self

    def _pump_stderr(self) -> None:
        for raw in iter(self.proc.stderr.readline, b""):
            with self._changed:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _pump_stdout(self) -> None:
        self.stdout = self.proc.stdout.read()  # stays empty: the server has no AGI stdout

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self._lines)

    def wait_for_log(self, pattern: "re.Pattern[str]", timeout: float = 10.0) -> "re.Match[str]":
        """The first log match of ``pattern``; AssertionError with the log if none comes."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = pattern.search("\n".join(self._lines))
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._pumps[0].is_alive()):
                    raise AssertionError("no %r in the server log within %ss:\n%s"
                                         % (pattern.pattern, timeout, "\n".join(self._lines)[-3000:]))
                self._changed.wait(min(left, 0.2))

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code (None if killed)."""
        if self.proc is None:
            return None
        code: Optional[int] = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for pump in self._pumps:
            pump.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        return code

    def __enter__(self) -> "FastAgiServerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@contextlib.contextmanager
def serving(env: Dict[str, str], options: Sequence[str] = (), secret: str = "") -> Iterator[FastAgiServerProcess]:
    """A started server for one test; afterwards it must have exited 0, written nothing to
    stdout, logged no traceback and (when given) never the secret."""
    proc = FastAgiServerProcess(env, options).start()
    try:
        yield proc
    finally:
        code = proc.stop()
    assert code == 0, proc.log
    assert proc.stdout == b"", "the server wrote to stdout: %r" % proc.stdout[:200]
    assert "Traceback" not in proc.log, proc.log
    assert not secret or secret not in proc.log


class FastAgiPeer(AgiPeer):
    """The scripted channel of ``AgiPeer``, connected to a FastAGI server as Asterisk would be."""

    def __init__(self, port: int, script: str = "synthflow", host: str = "127.0.0.1", **channel: Any):
        super().__init__(**channel)
        self.address = (host, port)
        self.script = script
        self._sock: Optional[socket.socket] = None
        self._send_lock = threading.Lock()

    def env_block(self) -> str:
        """res_agi's FastAGI preamble, then the usual block with an ``agi://`` request."""
        request = "agi://%s:%d/%s" % (self.address[0], self.address[1], self.script)
        block = super().env_block().replace("agi_request: synthflow.agi\n", "agi_request: %s\n" % request, 1)
        return "agi_network: yes\nagi_network_script: %s\n" % self.script + block

    def _signal(self, result: AgiResult) -> None:
        # FastAGI has no process to signal: res_agi writes a bare HANGUP line instead.
        if self._sock is not None:
            self._write("HANGUP\n", result)
            result.sighup_sent = True

    def connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def run(self, env: Optional[Dict[str, str]] = None, timeout: float = 15.0,
            cwd: Optional[str] = None) -> AgiResult:
        """One call over one connection, to its end; no read waits longer than ``timeout``.

        ``env`` and ``cwd`` exist for signature compatibility and must be empty: a
        FastAGI server's settings belong to the server process, not to the call.
        """
        if env or cwd:
            raise ValueError("a FastAGI call cannot carry process environment; start the server with it")
        result = AgiResult()
        started = time.monotonic()
        watcher = None
        self._sock = self.connect(timeout)
        raw_in: List[bytes] = []
        try:
            if self.sighup_on is not None:
                watcher = threading.Thread(target=self._watch, args=(result,), daemon=True)
                watcher.start()
            self._write(self.env_block(), result)
            reader = self._sock.makefile("rb")
            index = 0
            while index < 10000:
                try:
                    line = reader.readline()
                except socket.timeout:
                    result.timed_out = True
                    break
                except OSError:
                    break
                if not line:
                    break
                raw_in.append(line)
                reply = self.take_command(index, line, result)
                index += 1
                if self.hangup_due():
                    # One write, so the notice is already on the socket when the reply is read.
                    self._write(reply + "\nHANGUP\n", result)
                    result.sighup_sent = True
                else:
                    self._write(reply + "\n", result)
            result.returncode = 0 if not result.timed_out else None
        finally:
            sock, self._sock = self._sock, None
            sock.close()
            if watcher is not None:
                watcher.join(0.1)
        result.stdout = b"".join(raw_in)
        result.variables = dict(self.variables)
        result.seconds = time.monotonic() - started
        return result

    def _write(self, text: str, result: AgiResult) -> None:
        with self._send_lock:
            for line in text.split("\n")[:-1]:
                result.wire.append((">", line))
            sock = self._sock
            if sock is None:
                return
            try:
                sock.sendall(text.encode("utf-8", "surrogateescape"))
            except OSError:
                pass
