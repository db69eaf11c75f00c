"""FastAGI start and stop: flags checked before anything starts, and a drain that honours --grace."""
from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess

BAD_FLAGS = [
    (["--listen", "127.0.0.1:65536"], "--listen"),
    (["--listen", "127.0.0.1:http"], "--listen"),
    (["--listen", "[::1"], "--listen"),
    (["--listen", "[::1]4573"], "--listen"),
    (["--listen", "host name:4573"], "--listen"),
    (["--max-connections", "0"], "--max-connections"),
    (["--max-connections", "-5"], "--max-connections"),
    (["--max-connections", "many"], "--max-connections"),
    (["--read-timeout", "0"], "--read-timeout"),
    (["--read-timeout", "nan"], "--read-timeout"),
    (["--grace", "-1"], "--grace"),
    (["--grace", "inf"], "--grace"),
    (["--summary-interval", "0"], "--summary-interval"),
]


def run_cli(args, env, timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run ``synthflow-agi fastagi ARGS`` to its end and keep its output as text."""
    return subprocess.run([sys.executable, "-m", "synthflow_agi", "fastagi"] + args, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)


def one_error_line(args, env) -> str:
    """Run ``synthflow-agi fastagi ARGS``, which must exit 2 with exactly one stderr line and nothing on stdout; that line."""
    done = run_cli(args, env)
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == ""
    return lines[0]


@contextlib.contextmanager
def held_port():
    """A loopback TCP port another socket listens on, for as long as the block lasts."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


@pytest.mark.parametrize("args,flag", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_a_bad_flag_is_one_line_and_exit_2_before_anything_starts(env, args, flag):
    """Each bad value gives exactly one error line naming the flag, exit 2, and no listener."""
    line = one_error_line(args, env)
    assert line.startswith("synthflow-agi: CONFIG_ERROR: " + flag), line


def test_a_port_in_use_is_one_line_and_exit_2(env):
    """Listening on a port another socket holds fails with one line and exit 2, no traceback."""
    with held_port() as port:
        line = one_error_line(["--listen", "127.0.0.1:%d" % port], env)
    assert "cannot listen on 127.0.0.1:%d" % port in line, line


def hold_a_call(port: int) -> socket.socket:
    """Start a call and never answer its first command: the call stays in flight until the socket closes."""
    peer = FastAgiPeer(port)
    sock = peer.connect(10)
    sock.sendall(peer.env_block().encode())
    sock.settimeout(10)
    assert sock.recv(4096).startswith(b"GET FULL VARIABLE")
    return sock


@pytest.mark.parametrize("grace", [1.0, 3.0])
def test_sigterm_waits_exactly_the_grace_for_a_stuck_call(model, env, grace):
    """With a call stuck for longer than --grace, SIGTERM exits 0 after the grace, neither sooner nor much later."""
    with FastAgiServerProcess(env, ["--read-timeout", "30", "--grace", str(grace)]) as server:
        held = hold_a_call(server.port)
        try:
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = server.proc.wait(grace + 10)
            elapsed = time.monotonic() - started
        finally:
            held.close()
        assert code == 0
        assert grace - 0.05 < elapsed < grace + 1.0, elapsed
        assert re.search(r"in_flight=1 .*\(grace of %gs ran out\)" % grace, server.log), server.log


def test_new_connections_are_refused_at_once_while_draining(model, env):
    """Once SIGTERM starts the drain, a new connection is refused at once, and the call in flight may still finish."""
    with FastAgiServerProcess(env, ["--read-timeout", "30", "--grace", "10"]) as server:
        held = hold_a_call(server.port)
        try:
            server.send_signal(signal.SIGTERM)
            server.wait_for_log(re.compile(r"draining: refusing new connections, waiting up to 10s for 1 call"))
            started = time.monotonic()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
            assert time.monotonic() - started < 0.5
            assert server.proc.poll() is None  # still draining: the held call is in flight
        finally:
            held.close()
        assert server.proc.wait(10) == 0
        assert re.search(r"summary calls=1 .*in_flight=0", server.log), server.log
