"""FastAGI dial mode: a call waiting inside Dial is parked (no thread of its own) and finishes exactly as one that waited in place."""
from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

from tests.contract._helpers import assert_basics
from tests.contract.test_fastagi_metrics import scrape, start, stopped_cleanly, value
from tests.support.fastagi_peer import FastAgiPeer

HELD = 30


class DialHolder(FastAgiPeer):
    """A FastAGI peer that answers EXEC Dial only once ``release`` is set (the conversation lasts until then)."""

    def __init__(self, port, release, arrived, hangup_first=False, drop=False, **channel):
        super().__init__(port, variables={"SYNTHFLOW_MODE": "dial"}, **channel)
        self.release, self.arrived, self.hangup_first, self.drop = release, arrived, hangup_first, drop

    def take_command(self, index, line, result):
        if line.startswith(b"EXEC Dial"):
            self.arrived.release()
            self.release.wait(60)
            if self.drop:
                self._sock.close()
                return ""
            if self.hangup_first:  # the caller left during the conversation: HANGUP, then Dial's reply
                self._write("HANGUP\n", result)
        return super().take_command(index, line, result)


def threads_of(pid: int) -> int:
    return int(re.search(r"^Threads:\s+(\d+)$", Path("/proc/%d/status" % pid).read_text(), re.M).group(1))


def hold(port, count, **options):
    """Start ``count`` calls that wait inside Dial; returns (release event, threads, results)."""
    release, arrived, results = threading.Event(), threading.Semaphore(0), []
    peers = [DialHolder(port, release, arrived, uniqueid="1700000100.%d" % i, **options) for i in range(count)]
    threads = [threading.Thread(target=lambda p=p: results.append(p.run(timeout=60)), daemon=True) for p in peers]
    for thread in threads:
        thread.start()
    for _ in range(count):
        assert arrived.acquire(timeout=30)
    return release, threads, results


def test_thirty_calls_inside_dial_hold_no_thread_and_all_succeed(model, env):
    """With 30 calls inside Dial the server runs no more threads than when idle, and each call then ends SUCCESS."""
    server, port = start(env, ["--max-connections", "40"])
    try:
        time.sleep(0.3)
        idle = threads_of(server.proc.pid)
        release, threads, results = hold(server.port, HELD)
        time.sleep(0.3)  # the serving threads return once their call is parked
        samples = scrape(port)
        assert value(samples, "synthflow_agi_calls_in_flight") == HELD
        assert value(samples, "synthflow_agi_calls_in_dial") == HELD
        assert threads_of(server.proc.pid) <= idle + 2, (idle, threads_of(server.proc.pid))
        release.set()
        for thread in threads:
            thread.join(30)
        assert sorted(r.status for r in results) == ["SUCCESS"] * HELD
        for result in results:
            assert_basics(result)
            assert [e[0] for e in result.execs] == ["Dial"]
        deadline = time.monotonic() + 10  # a call's log line follows its last AGI reply
        while server.log.count("status=SUCCESS mode=dial") < HELD and time.monotonic() < deadline:
            time.sleep(0.05)
        samples = scrape(port)
        assert value(samples, "synthflow_agi_calls_in_flight") == 0
        assert value(samples, "synthflow_agi_calls_in_dial") == 0
        assert value(samples, "synthflow_agi_handoffs_total", mode="dial", status="SUCCESS") == HELD
        # Each call's API duration is still observed, though its thread changed in Dial.
        assert value(samples, "synthflow_agi_api_request_duration_seconds_count") == HELD
    finally:
        stopped_cleanly(server)


def test_a_hangup_notice_during_a_parked_dial_is_read_with_the_reply(model, env):
    """A HANGUP line before Dial's reply ends the parked call as the waiting one did: DIALSTATUS=ANSWER is SUCCESS."""
    server, port = start(env)
    try:
        release, threads, results = hold(server.port, 2, hangup_first=True)
        release.set()
        for thread in threads:
            thread.join(30)
        assert [r.status for r in results] == ["SUCCESS", "SUCCESS"]
        assert value(scrape(port), "synthflow_agi_calls_in_flight") == 0
    finally:
        stopped_cleanly(server)


def test_a_connection_lost_while_parked_frees_the_slot_without_a_traceback(model, env):
    """Asterisk closing the socket of a parked call ends it as a hangup, frees its slot and logs no traceback."""
    server, port = start(env, ["--max-connections", "1"])
    try:
        release, threads, _ = hold(server.port, 1, drop=True)
        release.set()
        threads[0].join(30)
        server.wait_for_log(re.compile(r'status=HANGUP mode=dial .*error="caller hung up during Dial \(DIALSTATUS=unset\)"'))
        assert value(scrape(port), "synthflow_agi_calls_in_flight") == 0
        # The only slot is free again: the next call is served, not refused.
        assert FastAgiPeer(server.port).run(timeout=15).status == "SUCCESS"
    finally:
        stopped_cleanly(server)


def test_sigterm_waits_for_parked_calls_and_exits_0(model, env):
    """SIGTERM with two calls parked in Dial drains: both finish SUCCESS after the release and the server exits 0."""
    server, port = start(env, ["--grace", "20"])
    release, threads, results = hold(server.port, 2)
    try:
        server.send_signal(signal.SIGTERM)
        server.wait_for_log(re.compile(r"draining: refusing new connections, waiting up to 20s for 2 call"))
        assert server.proc.poll() is None
    finally:
        release.set()
    for thread in threads:
        thread.join(30)
    assert [r.status for r in results] == ["SUCCESS", "SUCCESS"]
    assert server.proc.wait(15) == 0
    assert re.search(r"summary calls=2 success=2 in_flight=0 ", server.log), server.log
    stopped_cleanly(server)
