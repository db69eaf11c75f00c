"""FastAGI --allow: peers outside the list are closed at once, counted, and logged once per address (loopback only).

All of 127.0.0.0/8 is loopback on Linux, so a client socket bound to 127.0.0.2 or
127.0.0.3 is a second and third peer address without leaving the machine.
"""
from __future__ import annotations

import re
import socket
import time

import pytest

from tests.contract._helpers import assert_basics, posts
from tests.contract.test_fastagi_lifecycle import one_error_line
from tests.contract.test_fastagi_metrics import scrape, value
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess

REFUSED_LINE = re.compile(r"refused a connection from (\S+): not in --allow", re.M)


class PeerFrom(FastAgiPeer):
    """A FastAGI peer whose connection comes from a chosen loopback address."""

    def __init__(self, port: int, source: str, **channel):
        super().__init__(port, **channel)
        self.source = source

    def connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=timeout, source_address=(self.source, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def refused_within(port: int, source: str) -> float:
    """Connect from ``source``, send an environment line, and return the seconds until the server closes."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as sock:
        try:
            sock.sendall(b"agi_network: yes\n")
            assert sock.recv(4096) == b""  # not one AGI command comes back
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed before the line arrived: the kernel answers it with a reset
    return time.monotonic() - started


def test_peers_outside_the_list_are_refused_counted_and_logged_once_per_address(model, env):
    """40 connections from 127.0.0.1 and 20 from 127.0.0.3 are closed at once, counted 60 times, logged twice."""
    server = FastAgiServerProcess(env, ["--allow", "127.0.0.2/32", "--metrics-listen", "127.0.0.1:0"]).start()
    try:
        metrics_port = int(server.wait_for_log(re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/")).group(1))
        slowest = max(refused_within(server.port, source) for source in ["127.0.0.1"] * 40 + ["127.0.0.3"] * 20)
        allowed = PeerFrom(server.port, "127.0.0.2").run(timeout=15)
        assert_basics(allowed)
        assert allowed.status == "SUCCESS"
        samples = scrape(metrics_port)
    finally:
        code = server.stop()
    assert code == 0, server.log
    assert slowest < 0.5, slowest
    assert len(posts(model)) == 1  # only the allowed peer's call reached Synthflow
    assert value(samples, "synthflow_agi_connections_refused_total", reason="peer") == 60
    assert value(samples, "synthflow_agi_connections_refused_total", reason="capacity") == 0
    assert value(samples, "synthflow_agi_broken_connections_total") == 0
    assert sorted(REFUSED_LINE.findall(server.log)) == ["127.0.0.1", "127.0.0.3"], server.log
    assert re.search(r"summary calls=1 success=1 .*broken_connections=0 probes=0 refused_peers=60", server.log), \
        server.log


def test_without_allow_on_loopback_every_loopback_peer_is_served(model, env):
    """Listening on 127.0.0.1 with no --allow serves a peer from 127.0.0.3 and logs no refusal."""
    with FastAgiServerProcess(env) as server:
        result = PeerFrom(server.port, "127.0.0.3").run(timeout=15)
        assert_basics(result)
        assert result.status == "SUCCESS"
        server.stop()
    assert not REFUSED_LINE.search(server.log), server.log


@pytest.mark.parametrize("args,text", [
    (["--listen", "0.0.0.0:0"], "--allow is required when listening on 0.0.0.0, which is not loopback"),
    (["--listen", "[::]:0"], "--allow is required when listening on ::, which is not loopback"),
    (["--allow", "10.0.0.1/8"], "--allow '10.0.0.1/8' is not a network (host bits set? write 10.0.0.0/8)"),
    (["--allow", "banana"], "--allow 'banana' is not a network"),
    (["--allow", ""], "--allow names no network"),
    (["--allow", ",".join(["10.0.0.%d" % i for i in range(65)])], "--allow names more than 64 networks"),
])
def test_a_missing_or_bad_allow_is_one_line_and_exit_2_before_listening(env, args, text):
    """A non-loopback --listen without --allow, or a malformed --allow, gives one error line and exit 2."""
    line = one_error_line(args, env)
    assert line.startswith("synthflow-agi: CONFIG_ERROR: " + text), line
