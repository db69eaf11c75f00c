"""The circuit breaker end to end: classic AGI processes sharing a state file, and the FastAGI server."""
from __future__ import annotations

import re
import threading
import time

import pytest

from tests.contract._helpers import AGENT, TOKEN, assert_basics, call, posts, sets_of
from tests.support.agi_peer import AgiPeer
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess

CALL_ID = "c1rcu17-0000-4000-8000-000000000001"
LINKEDID = "1700000000.42"
FAILURES = 3
REFUSAL = re.compile(r"^circuit open since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ after (\d+) failures on Synthflow's side; "
                     r"no request sent$")
FAIL = {"kind": "status", "code": 503}
HANG = {"kind": "hang"}


class StatusTimedPeer(AgiPeer):
    """An AgiPeer that notes when it sent the environment and when SYNTHFLOW_STATUS was set."""

    sent_at = status_at = 0.0

    def env_block(self) -> str:
        self.sent_at = time.monotonic()
        return super().env_block()

    def take_command(self, index, line, result):
        if re.match(rb'SET VARIABLE "?SYNTHFLOW_STATUS"? ', line):
            self.status_at = time.monotonic()
        return super().take_command(index, line, result)

    @property
    def seconds_to_status(self) -> float:
        return self.status_at - self.sent_at


class StatusTimedFastPeer(StatusTimedPeer, FastAgiPeer):
    """The same, over FastAGI."""


@pytest.fixture
def state_dir(tmp_path):
    """An empty state directory of the test's own."""
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def breaker_env(env, state_dir):
    """The contract settings with a 3-failure breaker, no retries (one POST per call) and a tmp state dir."""
    return {**env, "SYNTHFLOW_BREAKER_FAILURES": str(FAILURES), "SYNTHFLOW_RETRIES": "0",
            "SYNTHFLOW_STATE_DIR": str(state_dir)}


def call_line(log: str, uniqueid: str) -> "re.Match[str]":
    found = re.search(r"uniqueid=%s .*?api_ms=([0-9.]+) total_ms=([0-9.]+)" % re.escape(uniqueid), log)
    assert found, log[-2000:]
    return found


def classic(env, uniqueid="1700000000.42", **channel):
    """One classic call; returns the result and its (api_ms, total_ms) in seconds."""
    r = call(env, uniqueid=uniqueid, **channel)
    found = call_line(r.stderr, uniqueid)
    return r, float(found.group(1)) / 1000.0, float(found.group(2)) / 1000.0


def assert_refused(r, failures=FAILURES):
    assert r.status == "API_ERROR", r
    found = REFUSAL.match(r.variables["SYNTHFLOW_ERROR"])
    assert found and int(found.group(1)) == failures, r.variables["SYNTHFLOW_ERROR"]
    assert r.execs == [] and r.variables["SYNTHFLOW_CALL_ID"] == ""


def open_classic(model, env, behaviour=FAIL, expected="API_ERROR"):
    """Three failing classic calls, each its own process: the circuit opens in the state file."""
    model.script(*[behaviour] * FAILURES)
    for n in range(1, FAILURES + 1):
        r = call(env)
        assert r.status == expected and "circuit open since" not in r.stderr, r
        assert len(posts(model)) == n
    return r


# --- classic AGI: a process per call, the state in a file ---------------------------------------


def test_classic_after_three_503s_the_fourth_call_fails_fast_with_no_post(model, breaker_env, state_dir):
    """Calls 1-3 POST and get 503; call 4 (another process) gets API_ERROR in a few ms with no POST."""
    last = open_classic(model, breaker_env)
    assert "circuit open: 3 consecutive failures on Synthflow's side (last: prepare_inbound answered HTTP 503)" \
        in last.stderr
    assert [p.name.startswith("circuit-") for p in state_dir.iterdir()] == [True]
    r, api_s, total_s = classic(breaker_env)
    assert_refused(r)
    assert len(posts(model)) == FAILURES
    assert api_s < 0.01 and total_s < 0.1, (api_s, total_s)
    assert "circuit" not in r.stderr.replace(r.variables["SYNTHFLOW_ERROR"], "")  # the change was logged once, before


def test_classic_retries_within_a_call_count_as_one_failure(model, breaker_env):
    """With retries = 2 each failing call POSTs 3 times but counts once: 9 POSTs open it, then none."""
    model.script(*[FAIL] * 3 * FAILURES)
    for n in range(1, FAILURES + 1):
        assert call({**breaker_env, "SYNTHFLOW_RETRIES": "2"}).status == "API_ERROR"
        assert len(posts(model)) == 3 * n
    assert_refused(call({**breaker_env, "SYNTHFLOW_RETRIES": "2"}))
    assert len(posts(model)) == 9


def test_classic_a_silent_api_opens_it_and_then_the_wait_is_gone(model, breaker_env):
    """Three calls each wait out a 1 s timeout; the fourth gets its status in milliseconds."""
    env = {**breaker_env, "SYNTHFLOW_TIMEOUT": "1"}
    model.script(*[HANG] * FAILURES)
    for n in range(FAILURES):
        r, api_s, _ = classic(env)
        assert r.status == "API_TIMEOUT" and 1.0 <= api_s < 1.3, api_s
    r, api_s, total_s = classic(env)
    assert_refused(r)
    assert len(posts(model)) == FAILURES and api_s < 0.01 and total_s < 0.1, (api_s, total_s)


@pytest.mark.parametrize("behaviour, status", [
    ({"kind": "status", "code": 401}, "API_AUTH_FAILED"),
    ({"kind": "status", "code": 400}, "API_ERROR"),
    ({"kind": "not_json"}, "API_ERROR"),
])
def test_classic_refusals_and_wrong_answers_never_open_it(model, breaker_env, behaviour, status):
    """Five 401s (or 400s, or non-JSON answers) in a row: every call POSTs, and the sixth still succeeds."""
    model.script(*[behaviour] * 5, {"kind": "ok", "call_id": CALL_ID})
    for n in range(1, 6):
        assert call(breaker_env).status == status
        assert len(posts(model)) == n
    assert call(breaker_env).status == "SUCCESS" and len(posts(model)) == 6


def test_classic_a_success_resets_the_count(model, breaker_env):
    """503, 503, success, 503, 503: never three in a row, so the sixth call still POSTs."""
    model.script(FAIL, FAIL, {"kind": "ok", "call_id": CALL_ID}, FAIL, FAIL, {"kind": "ok", "call_id": CALL_ID})
    statuses = [call(breaker_env).status for _ in range(6)]
    assert statuses == ["API_ERROR", "API_ERROR", "SUCCESS", "API_ERROR", "API_ERROR", "SUCCESS"]
    assert len(posts(model)) == 6


def test_classic_after_the_cooldown_one_probe_closes_it(model, breaker_env):
    """Cooldown 1 s: refused at once, then one probe POST succeeds, and the next call POSTs as usual."""
    env = {**breaker_env, "SYNTHFLOW_BREAKER_COOLDOWN": "1"}
    open_classic(model, env)
    opened = time.monotonic()
    assert_refused(call(env))
    assert len(posts(model)) == FAILURES
    time.sleep(max(0.0, opened + 1.05 - time.monotonic()))
    model.script({"kind": "ok", "call_id": CALL_ID}, {"kind": "ok", "call_id": CALL_ID})
    probe = call(env)
    assert probe.status == "SUCCESS" and len(posts(model)) == FAILURES + 1
    assert "circuit half-open" in probe.stderr and "circuit closed: prepare_inbound succeeded" in probe.stderr
    after = call(env)
    assert after.status == "SUCCESS" and len(posts(model)) == FAILURES + 2
    assert "circuit" not in after.stderr


def test_classic_a_failed_probe_reopens_it(model, breaker_env):
    """The probe gets a 503: one POST, and the call right after it is refused again (4 failures now)."""
    env = {**breaker_env, "SYNTHFLOW_BREAKER_COOLDOWN": "1"}
    open_classic(model, env)
    time.sleep(1.05)
    model.script(FAIL)
    probe = call(env)
    assert probe.variables["SYNTHFLOW_ERROR"] == "prepare_inbound answered HTTP 503"
    assert "circuit open again: the probe failed" in probe.stderr
    # A longer cooldown for the next process, so a slow machine cannot let it probe again.
    assert_refused(call({**env, "SYNTHFLOW_BREAKER_COOLDOWN": "30"}), failures=FAILURES + 1)
    assert len(posts(model)) == FAILURES + 1


def test_classic_calls_during_the_probe_stay_fast_failed(model, breaker_env):
    """While the probe's POST waits 1.5 s, another process is refused in milliseconds; 1 probe POST in all."""
    env = {**breaker_env, "SYNTHFLOW_BREAKER_COOLDOWN": "1"}
    open_classic(model, env)
    time.sleep(1.05)
    model.script({"kind": "delay", "seconds": 1.5, "then": {"kind": "ok", "call_id": CALL_ID}})
    results = []
    prober = threading.Thread(target=lambda: results.append(call(env, uniqueid="1700000000.50")))
    prober.start()
    try:
        model.wait_for_request(10, count=FAILURES + 1)
        r, api_s, _ = classic(env, uniqueid="1700000000.51")
    finally:
        prober.join(15)
    assert_refused(r)
    assert api_s < 0.01
    assert results[0].status == "SUCCESS" and len(posts(model)) == FAILURES + 1


@pytest.mark.parametrize("content", [b"\x00garbage{", b"{" * 100000])
def test_classic_a_corrupt_state_file_is_harmless(model, breaker_env, state_dir, content):
    """An open circuit's file overwritten with garbage: the next call POSTs and succeeds, one warning, no traceback."""
    open_classic(model, breaker_env)
    (state_file,) = state_dir.iterdir()
    state_file.write_bytes(content)
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(breaker_env)
    assert r.status == "SUCCESS" and len(posts(model)) == FAILURES + 1
    assert r.stderr.count("circuit breaker: ignoring") == 1


@pytest.mark.parametrize("where", ["a file", "/sys"])
def test_classic_an_unwritable_state_dir_never_opens_and_warns_once_per_process(model, breaker_env, tmp_path, where):
    """A state_dir that is a file (ENOTDIR) or read-only sysfs (EACCES): five 503 calls all POST, one warning each."""
    if where == "a file":
        (tmp_path / "not-a-dir").write_text("")
        where = str(tmp_path / "not-a-dir")
    env = {**breaker_env, "SYNTHFLOW_STATE_DIR": where}
    model.script(*[FAIL] * 5)
    for n in range(1, 6):
        r = call(env)
        assert r.variables["SYNTHFLOW_ERROR"] == "prepare_inbound answered HTTP 503"
        assert len(posts(model)) == n
        assert len(re.findall(r"WARNING circuit breaker: cannot", r.stderr)) == 1, r.stderr


def test_classic_breaker_failures_zero_turns_it_off(model, breaker_env, state_dir):
    """breaker_failures = 0: five 503 calls all POST and no state file is written."""
    env = {**breaker_env, "SYNTHFLOW_BREAKER_FAILURES": "0"}
    model.script(*[FAIL] * 5)
    for n in range(1, 6):
        assert call(env).status == "API_ERROR" and len(posts(model)) == n
    assert list(state_dir.iterdir()) == []


@pytest.mark.parametrize("mode", ["transfer", "dial"])
def test_classic_open_circuit_with_direct_hands_off_at_once_without_s(model, breaker_env, mode):
    """on_api_failure=direct: the refused call still reaches the agent with E. and no S., no POST; SUCCESS, DEGRADED."""
    env = {**breaker_env, "SYNTHFLOW_ON_API_FAILURE": "direct", "SYNTHFLOW_MODE": mode}
    open_classic(model, env, expected="SUCCESS")  # each failing call is handed off degraded
    r, api_s, _ = classic(env)
    assert len(posts(model)) == FAILURES and api_s < 0.01
    assert r.status == "SUCCESS" and r.variables["SYNTHFLOW_DEGRADED"] == "1"
    error = r.variables["SYNTHFLOW_ERROR"]
    assert error.startswith("handed off without S.: ") and REFUSAL.match(error[len("handed off without S.: "):])
    if mode == "dial":
        assert sets_of(r, "_SYNTHFLOW_XEI") == ["E.%s;" % LINKEDID]
        assert [app for app, *_ in r.execs] == ["Dial"]
    else:
        assert r.execs == [("Transfer", "PJSIP/<sip:%s@sip.us.synthflow.ai:32681?X-EI=E.%s%%3B>" % (AGENT, LINKEDID))]


# --- FastAGI: one process, the state in memory -------------------------------------------------


@pytest.fixture
def server(breaker_env):
    """The FastAGI server with a 3-failure, 1 s breaker; stopped after the test, its log clean."""
    proc = FastAgiServerProcess({**breaker_env, "SYNTHFLOW_BREAKER_COOLDOWN": "1"}, ["--read-timeout", "5"]).start()
    try:
        yield proc
    finally:
        code = proc.stop()
    assert code == 0 and "Traceback" not in proc.log and TOKEN not in proc.log, proc.log


def fast(server, uniqueid, **channel):
    """One FastAGI call; returns the result, its peer (for timing) and its api_ms in seconds."""
    peer = StatusTimedFastPeer(server.port, uniqueid=uniqueid, **channel)
    result = peer.run(timeout=15)
    assert_basics(result)
    found = server.wait_for_log(re.compile(r"uniqueid=%s .*?api_ms=([0-9.]+)" % re.escape(uniqueid)), 10)
    return result, peer, float(found.group(1)) / 1000.0


def test_fastagi_opens_after_three_silent_calls_and_answers_in_milliseconds(model, server):
    """Three calls wait out a 1 s timeout; the fourth has its status within 50 ms of its start, no POST."""
    model.script(*[HANG] * FAILURES)
    waits = []
    for n in range(FAILURES):
        r, peer, _ = fast(server, "1700000001.%d" % n, variables={"SYNTHFLOW_TIMEOUT": "1"})
        assert r.status == "API_TIMEOUT"
        waits.append(peer.seconds_to_status)
    r, peer, api_s = fast(server, "1700000001.9")
    assert_refused(r)
    assert len(posts(model)) == FAILURES
    assert all(1.0 <= wait < 1.3 for wait in waits), waits
    assert peer.seconds_to_status < 0.05 and api_s < 0.005, (peer.seconds_to_status, api_s)
    assert server.log.count("circuit open:") == 1


def test_fastagi_401s_never_open_it(model, server):
    """Five 401s: five POSTs, then a success POSTs too."""
    model.script(*[{"kind": "status", "code": 401}] * 5, {"kind": "ok", "call_id": CALL_ID})
    for n in range(5):
        assert fast(server, "1700000002.%d" % n)[0].status == "API_AUTH_FAILED"
    assert fast(server, "1700000002.9")[0].status == "SUCCESS"
    assert len(posts(model)) == 6 and "circuit" not in server.log


def test_fastagi_one_probe_while_others_are_refused_then_closed(model, server):
    """After the 1 s cooldown: the probe POSTs (slowly); 5 calls meanwhile are refused; success closes it."""
    model.script(*[FAIL] * FAILURES)
    for n in range(FAILURES):
        assert fast(server, "1700000003.%d" % n)[0].status == "API_ERROR"
    assert_refused(fast(server, "1700000003.5")[0])
    time.sleep(1.05)
    model.script({"kind": "delay", "seconds": 1.0, "then": {"kind": "ok", "call_id": CALL_ID}},
                 {"kind": "ok", "call_id": CALL_ID})
    probes = []
    prober = threading.Thread(target=lambda: probes.append(fast(server, "1700000003.6")[0]))
    prober.start()
    try:
        model.wait_for_request(10, count=FAILURES + 1)
        during = [fast(server, "1700000004.%d" % n) for n in range(5)]
    finally:
        prober.join(15)
    for r, peer, _ in during:
        assert_refused(r)
        assert peer.seconds_to_status < 0.05
    assert probes[0].status == "SUCCESS" and len(posts(model)) == FAILURES + 1
    assert fast(server, "1700000003.7")[0].status == "SUCCESS" and len(posts(model)) == FAILURES + 2
    changes = re.findall(r"(?:INFO|WARNING) circuit (open|half-open|closed)", server.log)
    assert changes == ["open", "half-open", "closed"], server.log


def test_fastagi_open_circuit_with_direct_dials_at_once_without_s(model, server):
    """A per-call on_api_failure=direct on an open circuit: Dial with E. only, no POST, SUCCESS, DEGRADED."""
    model.script(*[FAIL] * FAILURES)
    for n in range(FAILURES):
        fast(server, "1700000005.%d" % n)
    r, _, api_s = fast(server, "1700000005.9",
                       variables={"SYNTHFLOW_ON_API_FAILURE": "direct", "SYNTHFLOW_MODE": "dial"})
    assert len(posts(model)) == FAILURES and api_s < 0.005
    assert r.status == "SUCCESS" and r.variables["SYNTHFLOW_DEGRADED"] == "1"
    assert sets_of(r, "_SYNTHFLOW_XEI") == ["E.1700000005.9;"] and [e[0] for e in r.execs] == ["Dial"]
