"""SYNTHFLOW_TIMEOUT bounds the whole API step by the wall clock, for the classic AGI and FastAGI.

How the step is timed, from outside the program: it starts no later than the model's first
``accept`` of the call's connection (the program connects a millisecond or two after its
deadline starts), and it has ended when the peer reads the next AGI command.  So
``next command - first accept`` is an upper bound of the step; the program's own ``api_ms``
(logged per call, started before the client is even looked up) is its lower bound.
"""
from __future__ import annotations

import re
import signal
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tests.contract._helpers import assert_basics, assert_no_handoff, posts
from tests.support.agi_peer import AgiPeer, AgiResult
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess, serving

TIMEOUT = 1.0
# The deadline may be overrun by this much (watchdog wake-up, the process's reaction).
OVERSHOOT = 0.3
SLOW_CASES = {
    "dripping_body": [{"kind": "drip", "interval": 0.4}],
    "slow_headers": [{"kind": "slow_headers", "interval": 0.3}],
    "accepts_never_answers": [{"kind": "hang"}],
    # The first 503 comes after 0.5 s and is retried at once (urllib3's first backoff is 0);
    # the retry is never answered.  A per-attempt read timeout would end at 1.5 s.
    "retried_503": [{"kind": "delay", "seconds": 0.5, "then": {"kind": "status", "code": 503}},
                    {"kind": "hang"}],
}
SLOW_CASE_POSTS = {"retried_503": 2}


class _Timed:
    """Notes when each AGI command arrived, on the same monotonic clock as the model."""

    def take_command(self, index: int, line: bytes, result: AgiResult) -> str:
        self.arrivals.append(time.monotonic())
        return super().take_command(index, line, result)  # type: ignore[misc]

    def first_command_after(self, moment: float) -> float:
        return min(t for t in self.arrivals if t > moment)


class TimedAgiPeer(_Timed, AgiPeer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: List[float] = []


class TimedFastAgiPeer(_Timed, FastAgiPeer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: List[float] = []


def _api_ms_line(uniqueid: str) -> "re.Pattern[str]":
    return re.compile(r"uniqueid=%s .*?api_ms=([0-9.]+)" % re.escape(uniqueid))


def api_ms(log: str, uniqueid: str) -> float:
    """The program's own measure of its API step, from its one log line for this call."""
    found = _api_ms_line(uniqueid).search(log)
    assert found, log[-2000:]
    return float(found.group(1)) / 1000.0


def server_api_ms(server: FastAgiServerProcess, uniqueid: str) -> float:
    """As ``api_ms``, waiting for the server to write the line (it logs after the call's last reply)."""
    return float(server.wait_for_log(_api_ms_line(uniqueid), 10).group(1)) / 1000.0


def step_seconds(model: Any, peer: _Timed) -> float:
    first_accept = model.accepted[0]
    return peer.first_command_after(first_accept) - first_accept


@pytest.fixture
def server(env):
    """The FastAGI server with the contract settings (default timeout 4 s); stopped by PID after the test."""
    with serving(env, ["--read-timeout", "5", "--grace", "10"]) as proc:
        yield proc


def run_classic(env: Dict[str, str], **channel: Any) -> Tuple[AgiResult, TimedAgiPeer]:
    peer = TimedAgiPeer(**channel)
    result = peer.run(env=env, timeout=15)
    assert_basics(result)
    return result, peer


def run_fastagi(server: FastAgiServerProcess, **channel: Any) -> Tuple[AgiResult, TimedFastAgiPeer]:
    peer = TimedFastAgiPeer(server.port, **channel)
    result = peer.run(timeout=15)
    assert_basics(result)
    return result, peer


@pytest.mark.parametrize("case", sorted(SLOW_CASES))
def test_classic_step_ends_at_the_deadline(model, env, case):
    """A slow API in any way gives API_TIMEOUT with the step inside [timeout, timeout + 0.3 s]."""
    model.script(*SLOW_CASES[case])
    result, peer = run_classic(env, variables={"SYNTHFLOW_TIMEOUT": "1"})
    elapsed = step_seconds(model, peer)
    print("classic %s: step %.3f s, api_ms %.3f s" % (case, elapsed, api_ms(result.stderr, peer.uniqueid)))
    assert result.status == "API_TIMEOUT", result
    assert api_ms(result.stderr, peer.uniqueid) >= TIMEOUT
    assert elapsed <= TIMEOUT + OVERSHOOT, elapsed
    assert len(posts(model)) == SLOW_CASE_POSTS.get(case, 1)
    assert_no_handoff(result)


@pytest.mark.parametrize("case", sorted(SLOW_CASES))
def test_fastagi_step_ends_at_the_deadline(model, server, case):
    """Through FastAGI's shared client too, a slow API ends API_TIMEOUT within the same window."""
    model.script(*SLOW_CASES[case])
    result, peer = run_fastagi(server, variables={"SYNTHFLOW_TIMEOUT": "1"}, uniqueid="1700000000.%d" % len(case))
    elapsed = step_seconds(model, peer)
    print("fastagi %s: step %.3f s, api_ms %.3f s" % (case, elapsed, server_api_ms(server, peer.uniqueid)))
    assert result.status == "API_TIMEOUT", result
    assert server_api_ms(server, peer.uniqueid) >= TIMEOUT
    assert elapsed <= TIMEOUT + OVERSHOOT, elapsed
    assert len(posts(model)) == SLOW_CASE_POSTS.get(case, 1)
    assert_no_handoff(result)


def test_fastagi_deadlines_do_not_leak_between_concurrent_calls(model, server):
    """A 1 s call that times out and a 3 s call sharing the client each keep their own deadline."""
    model.script({"kind": "drip", "interval": 0.4},
                 {"kind": "delay", "seconds": 1.8, "then": {"kind": "ok", "call_id": "long-deadline-0001"}})
    short_peer = TimedFastAgiPeer(server.port, variables={"SYNTHFLOW_TIMEOUT": "1"}, uniqueid="1700000000.1")
    long_peer = TimedFastAgiPeer(server.port, variables={"SYNTHFLOW_TIMEOUT": "3"}, uniqueid="1700000000.2")
    results: Dict[str, AgiResult] = {}
    short = threading.Thread(target=lambda: results.update(short=short_peer.run(timeout=15)), daemon=True)
    short.start()
    model.wait_for_request(10)
    results["long"] = long_peer.run(timeout=15)
    short.join(15)
    assert_basics(results["short"])
    assert_basics(results["long"])
    assert results["short"].status == "API_TIMEOUT"
    assert results["long"].status == "SUCCESS"
    assert results["long"].variables["SYNTHFLOW_CALL_ID"] == "long-deadline-0001"
    short_step = short_peer.first_command_after(model.accepted[0]) - model.accepted[0]
    assert TIMEOUT - 0.05 <= short_step <= TIMEOUT + OVERSHOOT, short_step
    assert 1.8 <= server_api_ms(server, long_peer.uniqueid) < 3.0
    assert len(posts(model)) == 2


def test_a_503_loop_stops_when_no_retry_fits(model, env):
    """Slow 503s stop, with the last 503 as API_ERROR, as soon as the next backoff would pass the deadline."""
    model.script(*[{"kind": "delay", "seconds": 0.3, "then": {"kind": "status", "code": 503}}] * 5)
    env["SYNTHFLOW_RETRIES"] = "5"
    result, peer = run_classic(env, variables={"SYNTHFLOW_TIMEOUT": "1"})
    assert result.status == "API_ERROR", result
    assert "HTTP 503" in result.variables["SYNTHFLOW_ERROR"]
    # 0.3 s, an immediate retry, 0.3 s; the next backoff (0.4 s) would end past 1 s.
    assert len(posts(model)) == 2
    assert 0.55 <= step_seconds(model, peer) <= 0.8
    assert_no_handoff(result)


def test_an_answer_complete_only_after_the_deadline_is_not_used(model, env):
    """A process frozen past its deadline while the answer arrives ends API_TIMEOUT, with no hand-off."""
    model.script({"kind": "delay", "seconds": 0.2, "then": {"kind": "ok", "call_id": "too-late-00001"}})
    peer = TimedAgiPeer(variables={"SYNTHFLOW_TIMEOUT": "1"})
    frozen: List[Optional[int]] = []

    def freeze_until_past_the_deadline() -> bool:
        model.wait_for_request(10)
        proc = peer._proc
        proc.send_signal(signal.SIGSTOP)
        frozen.append(proc.pid)
        time.sleep(TIMEOUT + 0.3)  # the answer arrives meanwhile, at 0.2 s
        proc.send_signal(signal.SIGCONT)
        return False  # no hangup

    peer.sighup_on = freeze_until_past_the_deadline
    result = peer.run(env=env, timeout=15)
    assert_basics(result)
    assert frozen
    assert result.status == "API_TIMEOUT", result
    assert len(posts(model)) == 1
    assert_no_handoff(result)
