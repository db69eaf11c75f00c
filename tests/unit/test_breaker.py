"""The circuit breaker: its pure transitions, the breaker on an injected clock, the stores, the API wrapper."""

from __future__ import annotations

import doctest
import json
import logging
import os
import threading

import pytest

from synthflow_agi import _breaker
from synthflow_agi._breaker import (CLOSED, Breaker, Circuit, Circuits, FileStore, MemoryStore, Policy, admit, decode,
                                    encode, failed, released, succeeded)
from synthflow_agi._call import PreparedCall, PrepareRequest
from synthflow_agi._edges import ClientCache, GuardedApi
from synthflow_agi._errors import (ApiAuthError, ApiError, ApiTimeoutError, ApiUnavailableError, ChannelHungUp,
                                   ConfigError)
from synthflow_agi._settings import DEFAULTS, PER_CALL_KEYS, resolve

POLICY = Policy(failures=3, cooldown=30.0)
T0 = 1796514012.0  # 2026-12-05T23:40:12Z
REFUSAL = "circuit open since 2026-12-05T23:40:12Z after 3 failures on Synthflow's side; no request sent"
REQUEST = PrepareRequest("+15551230000", "+15557654321", "m", "w", {})


class Clock:
    """Seconds since the epoch that move only when the test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """Collects the package's log lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log():
    """The package logger's lines during the test."""
    logger = logging.getLogger("synthflow_agi")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class ScriptedApi:
    """A PrepareApi that raises or answers as scripted, counting the requests it got."""

    def __init__(self, *outcomes) -> None:
        self.outcomes = list(outcomes)
        self.requests = 0

    def prepare(self, request, timeout):
        self.requests += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return PreparedCall(call_id="call-0001-abcdef", answer={})


def guarded(api, clock, store=None, policy=POLICY):
    return GuardedApi(lambda: api, Breaker(store or MemoryStore(), clock), policy)


def open_circuit(api_wrapper, count=3):
    for _ in range(count):
        with pytest.raises(ApiError):
            api_wrapper.prepare(REQUEST, 4.0)


# --- the pure transitions -------------------------------------------------------------------


def test_the_module_examples_pass():
    """Every doctest in _breaker passes, and there are some."""
    result = doctest.testmod(_breaker)
    assert result.attempted > 0 and result.failed == 0


def test_it_opens_on_the_nth_consecutive_failure_and_not_before():
    """Two failures leave it closed; the third opens it at that moment."""
    circuit = CLOSED
    for n in (1, 2):
        circuit = failed(circuit, POLICY, T0, None)
        assert circuit == Circuit(n) and admit(circuit, POLICY, T0)[0]
    circuit = failed(circuit, POLICY, T0 + 1, None)
    assert circuit == Circuit(3, since=T0 + 1, opened_at=T0 + 1)
    assert circuit.phase == "open"


def test_a_success_resets_the_count():
    """A success between failures starts the count again."""
    circuit = failed(failed(CLOSED, POLICY, T0, None), POLICY, T0, None)
    circuit = failed(succeeded(circuit), POLICY, T0, None)
    assert circuit == Circuit(1)


def test_open_refuses_until_the_cooldown_then_lets_exactly_one_probe():
    """Refused for 30 s; at 30 s one call probes and every other call stays refused."""
    circuit = Circuit(3, T0, T0)
    assert not admit(circuit, POLICY, T0 + 29.999)[0]
    allowed, probing = admit(circuit, POLICY, T0 + 30)
    assert allowed and probing.phase == "half-open" and probing.probe_started == T0 + 30
    assert not admit(probing, POLICY, T0 + 30)[0]
    assert not admit(probing, POLICY, T0 + 60)[0]


def test_the_probe_closes_on_success_and_reopens_for_a_whole_cooldown_on_failure():
    """A failed probe restarts the cooldown from its own time and keeps when the outage began."""
    probing = admit(Circuit(3, T0, T0), POLICY, T0 + 30)[1]
    assert succeeded(probing) == CLOSED
    reopened = failed(probing, POLICY, T0 + 31, T0 + 30)
    assert reopened == Circuit(4, since=T0, opened_at=T0 + 31)
    assert not admit(reopened, POLICY, T0 + 60.9)[0]
    assert admit(reopened, POLICY, T0 + 61)[0]


def test_a_late_failure_counts_but_does_not_extend_the_cooldown():
    """A call let through before the circuit opened fails later: counted, cooldown unchanged."""
    assert failed(Circuit(3, T0, T0), POLICY, T0 + 10, None) == Circuit(4, T0, T0)


def test_a_probe_without_a_verdict_frees_the_probe_at_once():
    """A 401 or a hangup on the probe lets the next call probe without another cooldown."""
    probing = admit(Circuit(3, T0, T0), POLICY, T0 + 30)[1]
    freed = released(probing, T0 + 30)
    assert freed == Circuit(3, T0, T0)
    assert admit(freed, POLICY, T0 + 30.1)[0]
    assert released(probing, None) == probing  # a call that did not probe frees nothing


def test_a_probe_that_never_reports_expires_after_its_lease():
    """A prober that died (killed process) blocks probing only for PROBE_LEASE seconds."""
    probing = admit(Circuit(3, T0, T0), POLICY, T0 + 30)[1]
    assert not admit(probing, POLICY, T0 + 30 + _breaker.PROBE_LEASE - 0.001)[0]
    allowed, again = admit(probing, POLICY, T0 + 30 + _breaker.PROBE_LEASE)
    assert allowed and again.probe_started == T0 + 30 + _breaker.PROBE_LEASE


def test_a_clock_stepped_back_does_not_hold_the_circuit_open():
    """With the clock an hour behind the stored times, the next call probes instead of waiting an hour."""
    assert admit(Circuit(3, T0, T0), POLICY, T0 - 3600)[0]


def test_the_refusal_names_the_time_in_utc_and_the_count():
    """SYNTHFLOW_ERROR of a refused call: since when (UTC, the outage's first opening) and how many failures."""
    assert Circuit(3, T0, T0 + 100).refusal() == REFUSAL


@pytest.mark.parametrize("data", [
    b"", b"\xff", b"[]", b'{"v": 2, "failures": 1}', b'{"v": 1, "failures": true}',
    b'{"v": 1, "failures": 1, "opened_at": "soon"}', b'{"v": 1, "failures": 1, "opened_at": -5}',
    b'{"v": 1, "failures": 1, "since": NaN}', b'{"v": 1, "failures": 10000001}',
])
def test_decode_refuses_what_this_program_did_not_write(data):
    """Anything but a version 1 object of counts and finite times is a ValueError."""
    with pytest.raises(ValueError):
        decode(data)


# --- the breaker on an injected clock ---------------------------------------------------------


def test_after_n_failures_calls_fail_fast_with_no_request(log):
    """Three 503s open it; the fourth call raises ApiUnavailableError without reaching the API."""
    api = ScriptedApi(*[ApiUnavailableError("prepare_inbound answered HTTP 503")] * 3)
    wrapper = guarded(api, Clock())
    open_circuit(wrapper)
    with pytest.raises(ApiUnavailableError) as refused:
        wrapper.prepare(REQUEST, 4.0)
    assert refused.value.reason == REFUSAL and refused.value.unavailable
    assert api.requests == 3
    assert log == ["circuit open: 3 consecutive failures on Synthflow's side "
                   "(last: prepare_inbound answered HTTP 503); calls fail fast for 30s"]


@pytest.mark.parametrize("error", [
    ApiAuthError("Synthflow refused the API token (HTTP 401)"), ApiError("prepare_inbound answered HTTP 400"),
    ApiError("prepare_inbound answered HTTP 200 with a body that is not JSON"),
    ConfigError("api_url, proxy or api_token is not usable: InvalidURL"), ChannelHungUp("caller hung up (SIGHUP)"),
])
def test_refusals_wrong_answers_config_errors_and_hangups_never_count(error, log):
    """Ten of them in a row leave it closed: every call still reaches the API."""
    api = ScriptedApi(*[error] * 10)
    wrapper = guarded(api, Clock())
    for _ in range(10):
        with pytest.raises(type(error)):
            wrapper.prepare(REQUEST, 4.0)
    assert wrapper.prepare(REQUEST, 4.0).call_id
    assert api.requests == 11 and log == []


def test_timeouts_and_unreachable_count():
    """API_TIMEOUT and an unreachable host are Synthflow's side too."""
    api = ScriptedApi(ApiTimeoutError("no answer"), ApiUnavailableError("cannot reach x: Connection refused"),
                      ApiTimeoutError("no answer"))
    wrapper = guarded(api, Clock())
    open_circuit(wrapper)
    with pytest.raises(ApiUnavailableError, match="^circuit open since"):
        wrapper.prepare(REQUEST, 4.0)
    assert api.requests == 3


def test_probe_success_closes_and_each_change_is_logged_once(log):
    """Open, then after the cooldown one probe succeeds; open, half-open and closed are one line each."""
    clock = Clock()
    api = ScriptedApi(*[ApiUnavailableError("prepare_inbound answered HTTP 503")] * 3)
    wrapper = guarded(api, clock)
    open_circuit(wrapper)
    for _ in range(5):
        with pytest.raises(ApiUnavailableError):
            wrapper.prepare(REQUEST, 4.0)
    clock.now = T0 + 30
    assert wrapper.prepare(REQUEST, 4.0).call_id
    assert wrapper.prepare(REQUEST, 4.0).call_id
    assert api.requests == 5
    assert [line.split(":")[0] for line in log] == ["circuit open", "circuit half-open", "circuit closed"]


def test_probe_failure_reopens_for_another_cooldown(log):
    """The failed probe is one request; the calls after it are refused until a full cooldown later."""
    clock = Clock()
    api = ScriptedApi(*[ApiUnavailableError("prepare_inbound answered HTTP 503")] * 4)
    wrapper = guarded(api, clock)
    open_circuit(wrapper)
    clock.now = T0 + 30
    with pytest.raises(ApiUnavailableError, match="HTTP 503"):
        wrapper.prepare(REQUEST, 4.0)
    clock.now = T0 + 59.9
    with pytest.raises(ApiUnavailableError, match="^circuit open since 2026-12-05T23:40:12Z after 4 failures"):
        wrapper.prepare(REQUEST, 4.0)
    assert api.requests == 4
    assert log[-1] == "circuit open again: the probe failed (prepare_inbound answered HTTP 503); next probe in 30s"
    clock.now = T0 + 60
    assert wrapper.prepare(REQUEST, 4.0).call_id and api.requests == 5


def test_concurrent_calls_during_the_probe_stay_refused():
    """While the probe waits on the API, 20 other threads are refused at once; one request in all."""
    clock = Clock()
    probe_in, probe_go = threading.Event(), threading.Event()

    class SlowApi(ScriptedApi):
        def prepare(self, request, timeout):
            if self.requests == 3:
                probe_in.set()
                assert probe_go.wait(5)
            return super().prepare(request, timeout)

    api = SlowApi(*[ApiUnavailableError("HTTP 503")] * 3)
    wrapper = guarded(api, clock)
    open_circuit(wrapper)
    clock.now = T0 + 30
    outcomes = []
    probe = threading.Thread(target=lambda: outcomes.append(wrapper.prepare(REQUEST, 4.0).call_id))
    probe.start()
    assert probe_in.wait(5)
    refused = []

    def other():
        try:
            wrapper.prepare(REQUEST, 4.0)
        except ApiUnavailableError as exc:
            refused.append(exc.reason)

    others = [threading.Thread(target=other) for _ in range(20)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(5)
    probe_go.set()
    probe.join(5)
    assert len(refused) == 20 and all(reason == REFUSAL for reason in refused)
    assert outcomes == ["call-0001-abcdef"] and api.requests == 4


# --- the file store: state shared between processes --------------------------------------------


def test_two_stores_on_one_directory_share_the_circuit(tmp_path):
    """What one process's failures open, another process (its own FileStore) refuses."""
    clock = Clock()
    first = guarded(ScriptedApi(*[ApiUnavailableError("HTTP 503")] * 3), clock, FileStore(str(tmp_path), "k"))
    open_circuit(first)
    second_api = ScriptedApi()
    second = guarded(second_api, clock, FileStore(str(tmp_path), "k"))
    with pytest.raises(ApiUnavailableError, match="^circuit open since"):
        second.prepare(REQUEST, 4.0)
    assert second_api.requests == 0
    assert json.loads((tmp_path / "circuit-k.json").read_text()) == {
        "v": 1, "failures": 3, "since": T0, "opened_at": T0, "probe_started": None}
    assert [p.name for p in tmp_path.iterdir()] == ["circuit-k.json"]  # no temporary file left


def test_a_success_on_a_closed_circuit_writes_nothing(tmp_path):
    """The common case costs one read: no state file appears."""
    wrapper = guarded(ScriptedApi(), Clock(), FileStore(str(tmp_path), "k"))
    for _ in range(3):
        wrapper.prepare(REQUEST, 4.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"garbage{", b"x" * 5000, encode(Circuit(3, T0, T0))[:-1]])
def test_a_corrupt_or_oversized_file_counts_as_closed_and_is_said_once(tmp_path, content, log):
    """The call goes through, one warning per store, and the next write replaces the bad file."""
    (tmp_path / "circuit-k.json").write_bytes(content)
    api = ScriptedApi(ApiUnavailableError("HTTP 503"))
    wrapper = guarded(api, Clock(), FileStore(str(tmp_path), "k"))
    with pytest.raises(ApiUnavailableError, match="HTTP 503"):
        wrapper.prepare(REQUEST, 4.0)
    assert wrapper.prepare(REQUEST, 4.0).call_id and api.requests == 2
    assert len(log) == 1 and log[0].startswith("circuit breaker: ignoring")
    assert decode((tmp_path / "circuit-k.json").read_bytes()) == CLOSED


@pytest.mark.parametrize("plant", ["symlink", "fifo", "directory"])
def test_something_else_at_the_state_path_counts_as_closed_without_hanging(tmp_path, plant):
    """A symlink (not followed), a FIFO (not waited on) or a directory there: closed, the call goes through."""
    path = tmp_path / "circuit-k.json"
    if plant == "symlink":
        (tmp_path / "target").write_bytes(encode(Circuit(3, T0, T0)))
        path.symlink_to(tmp_path / "target")
    elif plant == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    api = ScriptedApi()
    assert guarded(api, Clock(), FileStore(str(tmp_path), "k")).prepare(REQUEST, 4.0).call_id
    assert api.requests == 1


def test_an_unusable_directory_never_opens_and_is_said_once(tmp_path, log):
    """A state_dir that is a file: five 503s all reach the API, one warning in all."""
    (tmp_path / "file").write_text("")
    api = ScriptedApi(*[ApiUnavailableError("HTTP 503")] * 5)
    wrapper = guarded(api, Clock(), FileStore(str(tmp_path / "file"), "k"))
    for _ in range(5):
        with pytest.raises(ApiUnavailableError, match="HTTP 503"):
            wrapper.prepare(REQUEST, 4.0)
    assert api.requests == 5
    assert len(log) == 1 and "(Not a directory)" in log[0]


def test_a_missing_directory_never_opens_and_says_nothing(tmp_path, log):
    """No state directory leaves the classic AGI's breaker off, silently (every call would say it)."""
    api = ScriptedApi(*[ApiUnavailableError("HTTP 503")] * 5)
    wrapper = guarded(api, Clock(), FileStore(str(tmp_path / "absent"), "k"))
    for _ in range(5):
        with pytest.raises(ApiUnavailableError, match="HTTP 503"):
            wrapper.prepare(REQUEST, 4.0)
    assert api.requests == 5 and log == []


# --- settings and wiring -----------------------------------------------------------------------

REQUIRED = {"api_token": "tok-secret-1", "model_id": "m", "workspace_id": "w", "agent_number": "+15551234567"}


def test_settings_defaults_and_they_are_process_wide():
    """5 failures, 30 s, /run/synthflow-agi; none of them can be set per call."""
    settings = resolve(REQUIRED)
    assert (settings.breaker_failures, settings.breaker_cooldown, settings.state_dir) == (5, 30.0, "/run/synthflow-agi")
    assert {"breaker_failures", "breaker_cooldown", "state_dir"} <= set(DEFAULTS)
    assert not {"breaker_failures", "breaker_cooldown", "state_dir"} & set(PER_CALL_KEYS)
    overridden = resolve(REQUIRED, {"breaker_failures": "1", "state_dir": "/tmp/x"})
    assert (overridden.breaker_failures, overridden.state_dir) == (5, "/run/synthflow-agi")


@pytest.mark.parametrize("key, value, reason", [
    ("breaker_failures", "-1", "breaker_failures -1 is outside 0..1000"),
    ("breaker_failures", "many", "breaker_failures 'many' is not a number"),
    ("breaker_cooldown", "0", "breaker_cooldown 0.0 is outside 0.1..3600.0"),
    ("state_dir", "run/x", "state_dir 'run/x' is not an absolute path"),
    ("state_dir", "/run/\x01x", "state_dir holds control characters or is longer than 1024 characters"),
])
def test_settings_refuse_bad_values(key, value, reason):
    """Each bad value is a ConfigError that says which key and why."""
    with pytest.raises(ConfigError) as refused:
        resolve({**REQUIRED, key: value})
    assert refused.value.reason == reason


def test_the_cache_wraps_only_when_asked_and_not_when_turned_off(tmp_path):
    """ClientCache(circuit=...) guards its clients; breaker_failures = 0 or no circuit hands the bare client."""
    on = resolve({**REQUIRED, "api_url": "http://127.0.0.1:9/v2"})
    off = resolve({**REQUIRED, "api_url": "http://127.0.0.1:9/v2", "breaker_failures": "0"})
    assert isinstance(ClientCache(circuit="memory")(on), GuardedApi)
    assert not isinstance(ClientCache(circuit="memory")(off), GuardedApi)
    assert not isinstance(ClientCache()(on), GuardedApi)
    with pytest.raises(ValueError):
        ClientCache(circuit="disk")


def test_one_breaker_per_api_url_for_the_process():
    """The same URL gets the same breaker on every call; another URL its own."""
    circuits = Circuits(shared_through_files=False)
    first = circuits.breaker_for("https://a/v2", "/run/x")
    assert circuits.breaker_for("https://a/v2", "/run/x") is first
    assert circuits.breaker_for("https://b/v2", "/run/x") is not first
