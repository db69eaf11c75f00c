"""Every way prepare_inbound can fail, each mapped to its status with no hand-off."""
from __future__ import annotations

import pytest

from tests.contract._helpers import assert_no_handoff, call, closed_port, posts


@pytest.mark.parametrize("code", [401, 403])
def test_auth_failure_is_not_retried(model, env, code):
    """401 and 403 give API_AUTH_FAILED after exactly one POST."""
    model.script({"kind": "status", "code": code})
    r = call(env)
    assert r.status == "API_AUTH_FAILED"
    assert len(posts(model)) == 1
    assert_no_handoff(r)


def test_wrong_token_gets_the_models_bare_401(model, env):
    """A token the API does not accept gives API_AUTH_FAILED after one POST."""
    env["SYNTHFLOW_API_TOKEN"] = "sk-wrong-token-0000"
    r = call(env)
    assert r.status == "API_AUTH_FAILED"
    assert len(posts(model)) == 1
    assert "sk-wrong-token-0000" not in r.stderr


@pytest.mark.parametrize("code", [400, 404, 409, 422, 500])
def test_other_error_statuses_are_api_error(model, env, code):
    """Other 4xx and a 500 give API_ERROR after one POST and no hand-off."""
    model.script({"kind": "status", "code": code})
    r = call(env)
    assert r.status == "API_ERROR"
    assert len(posts(model)) == 1
    assert r.variables["SYNTHFLOW_ERROR"]
    assert_no_handoff(r)


@pytest.mark.parametrize("behaviour", [
    {"kind": "not_json"},
    {"kind": "missing_id"},
    {"kind": "call_status", "value": "failed"},
    {"kind": "ok", "call_id": "abc;def-12345678"},
    {"kind": "ok", "call_id": "abc def 12345678"},
    {"kind": "ok", "call_id": "3f2b1c9e-4d5a\r\nX-Evil: 1"},
    {"kind": "ok", "call_id": ""},
    {"kind": "ok", "call_id": "short"},
    {"kind": "ok", "call_id": "<sip:evil@x>"},
], ids=["not_json", "missing_id", "call_status_failed", "semicolon", "spaces", "crlf",
        "empty", "too_short", "angle"])
def test_unusable_success_bodies_are_api_error(model, env, behaviour):
    """A 200 that is not JSON, lacks an id, is not registered or has an unsafe id: no EXEC."""
    model.script(behaviour)
    r = call(env)
    assert r.status == "API_ERROR"
    assert len(posts(model)) == 1
    assert_no_handoff(r)
    if behaviour.get("call_id"):
        assert all(behaviour["call_id"] not in c.raw for c in r.commands
                   if c.words[:1] == ["EXEC"] or "X-EI" in c.raw or "XEI" in c.raw)


def test_api_timeout_ends_within_the_deadline(model, env):
    """A reply slower than SYNTHFLOW_TIMEOUT=1 gives API_TIMEOUT soon after, without a retry."""
    env["SYNTHFLOW_TIMEOUT"] = "1"
    model.script({"kind": "delay", "seconds": 8})
    r = call(env)
    assert r.status == "API_TIMEOUT"
    assert r.seconds < 1 + 1.5 + 2.0, r.seconds  # generous: startup included; catches hangs
    assert len(posts(model)) == 1
    assert_no_handoff(r)


def test_api_timeout_per_call(model, env):
    """SYNTHFLOW_TIMEOUT as a channel variable shortens the deadline for this call."""
    model.script({"kind": "delay", "seconds": 8})
    r = call(env, variables={"SYNTHFLOW_TIMEOUT": "1"})
    assert r.status == "API_TIMEOUT"
    assert r.seconds < 1 + 1.5 + 2.0, r.seconds


def test_retries_end_at_the_deadline(model, env):
    """Slow 503s that keep coming stop at the deadline with a failure status, not a hang."""
    env["SYNTHFLOW_TIMEOUT"] = "1"
    model.script(*[{"kind": "delay", "seconds": 0.4, "then": {"kind": "status", "code": 503}}] * 10)
    r = call(env)
    assert r.status in ("API_TIMEOUT", "API_ERROR")
    assert r.seconds < 1 + 1.5 + 2.0, r.seconds
    assert_no_handoff(r)


def test_connection_refused_is_api_error_quickly(env):
    """Nothing listening at api_url gives API_ERROR within the deadline (refusals are retried)."""
    env["SYNTHFLOW_API_URL"] = "http://127.0.0.1:%d/v2" % closed_port()
    r = call(env)
    assert r.status == "API_ERROR"
    assert r.seconds < 4 + 1.5 + 2.0, r.seconds
    assert_no_handoff(r)


@pytest.mark.parametrize("code", [502, 503, 504])
def test_transient_status_then_ok_succeeds(model, env, code):
    """A 502/503/504 is retried within the deadline and the second answer is used."""
    model.script({"kind": "status", "code": code}, {"kind": "ok", "call_id": "retry-ok-0001"})
    r = call(env)
    assert r.status == "SUCCESS"
    assert len(posts(model)) == 2
    assert r.variables["SYNTHFLOW_CALL_ID"] == "retry-ok-0001"


def test_429_with_retry_after_then_ok(model, env):
    """A 429 with Retry-After: 1 is retried and then succeeds."""
    model.script({"kind": "status", "code": 429, "retry_after": 1}, {"kind": "ok"})
    r = call(env)
    assert r.status == "SUCCESS"
    assert len(posts(model)) == 2


def test_retries_are_bounded_by_the_retry_count(model, env):
    """With the default 2 retries, three 503s end API_ERROR after exactly three POSTs."""
    model.script(*[{"kind": "status", "code": 503}] * 5)
    r = call(env)
    assert r.status == "API_ERROR"
    assert len(posts(model)) == 3
    assert_no_handoff(r)


def test_retries_zero_means_one_post(model, env):
    """SYNTHFLOW_RETRIES=0 turns retries off: one 503, one POST, API_ERROR."""
    env["SYNTHFLOW_RETRIES"] = "0"
    model.script({"kind": "status", "code": 503}, {"kind": "ok"})
    r = call(env)
    assert r.status == "API_ERROR"
    assert len(posts(model)) == 1


def test_dropped_connection_never_hands_off_twice(model, env):
    """A connection dropped after the POST was sent ends API_ERROR or one retried success."""
    model.script({"kind": "drop"}, {"kind": "ok"})
    r = call(env)
    n = len(posts(model))
    assert (r.status, n) in (("API_ERROR", 1), ("SUCCESS", 2)), (r.status, n)
    assert len(r.execs) == (1 if r.status == "SUCCESS" else 0)
