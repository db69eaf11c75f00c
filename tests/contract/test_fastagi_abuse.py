"""FastAGI under abuse: health checks, garbage, oversized lines, slow peers and a connection flood (loopback only)."""
from __future__ import annotations

import concurrent.futures
import re
import socket
import threading
import time

import pytest

from tests.contract._helpers import assert_basics, posts
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess, serving

CALL_ID = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> float:
    """Seconds until the server closes the connection (EOF or reset); fails if it does not within ``timeout``."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def rss_kib(pid: int) -> int:
    """The process's resident set size in KiB, from /proc."""
    with open("/proc/%d/status" % pid) as status:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status.read(), re.M).group(1))


@pytest.fixture
def server(env):
    """A FastAGI server with a long read timeout, so only the environment deadline can close a slow peer."""
    with serving(env, ["--read-timeout", "30", "--max-connections", "50"]) as proc:
        yield proc


def test_health_checks_are_probes_not_calls(model, server):
    """Connections closed without a byte are counted as probes: no call, no HANGUP, no warning."""
    for _ in range(3):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    result = FastAgiPeer(server.port).run(timeout=15)
    assert_basics(result)
    server.stop()
    assert re.search(r"summary calls=1 success=1 .*broken_connections=0 probes=3", server.log), server.log
    assert "HANGUP" not in server.log and "WARNING" not in server.log, server.log


@pytest.mark.parametrize("first_bytes", [
    b"agi_network: yes\nagi_arg_1: " + b"x" * 9000,
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"agi_network: yes\n" + b"agi_arg_1: a\n" * 300,
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\n",
], ids=["line_over_8_KiB", "http_request", "block_over_256_lines", "tls_hello"])
def test_garbage_or_oversized_environment_is_closed_at_once(model, server, first_bytes):
    """A line over 8 KiB, a block over the cap or bytes that are not AGI close the connection at once, with no API call."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(first_bytes)
        assert closed_by_server(sock) < 1.0
    server.wait_for_log(re.compile(r"AGI environment was refused"))
    assert posts(model) == []
    assert FastAgiPeer(server.port).run(timeout=15).status == "SUCCESS"


def test_slow_peers_cannot_hold_the_slots(model, env):
    """Peers that send a byte a second are closed at the 5 s environment deadline, freeing the slots for calls."""
    with FastAgiServerProcess(env, ["--read-timeout", "30", "--max-connections", "2"]) as server:
        closed_after = []

        def trickle():
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                started = time.monotonic()
                sock.settimeout(1.0)
                for byte in b"agi_network: yes\n" * 20:  # a byte a second, watching for the close
                    try:
                        sock.sendall(bytes([byte]))
                        if not sock.recv(100):
                            break
                    except socket.timeout:
                        continue
                    except OSError:
                        break
                closed_after.append(time.monotonic() - started)

        threads = [threading.Thread(target=trickle, daemon=True) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(25)
        assert len(closed_after) == 2 and all(4.8 < s < 5.8 for s in closed_after), closed_after
        assert FastAgiPeer(server.port).run(timeout=15).status == "SUCCESS"
        server.stop()
        assert re.search(r"summary calls=1 success=1 .*broken_connections=2", server.log), server.log


def _abuse_once(port: int, kind: int) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            if kind == 0:
                return  # a probe
            if kind == 1:  # a 256 KiB line: an unbounded readline would hold all of it
                sock.sendall(b"agi_network: yes\nagi_arg_1: " + b"z" * 256 * 1024)
            elif kind == 2:
                sock.sendall(b"\xff\xfe garbage \x00\x01\n" * 4)
            else:
                sock.sendall(b"agi_network: yes\n" + b"agi_x: " + b"q" * 200 + b"\n" * 1)
                sock.sendall(b"agi_y: " + b"w" * 8000 + b"\n")
                return  # gone mid-block
            closed_by_server(sock, 5)
    except OSError:
        pass  # refused at capacity or reset: both are the server protecting itself


def test_memory_returns_to_its_level_after_garbage_oversized_lines_and_a_flood(model, env):
    """After 2,000 abusive connections (50 at a time, under 60 s) the server's RSS is within 3 MiB of before."""
    model.script(*[{"kind": "ok", "call_id": CALL_ID}] * 3)
    with FastAgiServerProcess(env, ["--read-timeout", "30", "--max-connections", "60"]) as server:
        for _ in range(2):
            assert FastAgiPeer(server.port).run(timeout=15).status == "SUCCESS"  # warm: pool, imports
        time.sleep(0.5)
        before = rss_kib(server.proc.pid)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            list(pool.map(lambda i: _abuse_once(server.port, i % 4), range(2000)))
        elapsed = time.monotonic() - started
        assert elapsed < 60, elapsed
        peak = rss_kib(server.proc.pid)
        assert FastAgiPeer(server.port).run(timeout=15).status == "SUCCESS"
        time.sleep(1.0)
        after = rss_kib(server.proc.pid)
        print("\nFastAGI RSS: before %d KiB, right after the abuse %d KiB, settled %d KiB (%.1f s of abuse)"
              % (before, peak, after, elapsed))
        assert after - before < 3 * 1024, (before, peak, after)
        assert server.proc.poll() is None
