"""Every way prepare_inbound can fail, each mapped to its status with no hand-off."""
from __future__ import annotations

import json

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


def test_retries_end_before_the_deadline_when_no_retry_fits(model, env):
    """Slow 503s that keep coming end API_ERROR once the next backoff would pass the deadline."""
    env["SYNTHFLOW_TIMEOUT"] = "1"
    model.script(*[{"kind": "delay", "seconds": 0.4, "then": {"kind": "status", "code": 503}}] * 10)
    r = call(env)
    assert r.status == "API_ERROR"
    assert "HTTP 503" in r.variables["SYNTHFLOW_ERROR"]
    assert len(posts(model)) == 2  # 0.4 s, an immediate retry, 0.4 s; a 0.4 s backoff would not fit
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
    """A 429 with Retry-After: 1 is retried after that second, not sooner, and then succeeds."""
    model.script({"kind": "status", "code": 429, "retry_after": 1}, {"kind": "ok"})
    r = call(env)
    assert r.status == "SUCCESS"
    first, second = posts(model)
    assert 1.0 <= second.time - first.time <= 1.3, second.time - first.time


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_beyond_the_deadline_is_not_waited_for(model, env, code):
    """A Retry-After longer than the time left ends API_ERROR at once, after one POST."""
    env["SYNTHFLOW_TIMEOUT"] = "2"
    model.script({"kind": "status", "code": code, "retry_after": 5}, {"kind": "ok"})
    r = call(env)
    assert r.status == "API_ERROR"
    assert "HTTP %d" % code in r.variables["SYNTHFLOW_ERROR"]
    assert len(posts(model)) == 1
    assert r.seconds < 1.5, r.seconds  # neither the Retry-After nor the 2 s deadline was waited out


@pytest.mark.parametrize("code", [401, 403])
def test_auth_failure_with_retry_after_is_still_not_retried(model, env, code):
    """A Retry-After on a 401/403 changes nothing: one POST, API_AUTH_FAILED."""
    model.script({"kind": "status", "code": code, "retry_after": 0}, {"kind": "ok"})
    r = call(env)
    assert r.status == "API_AUTH_FAILED"
    assert len(posts(model)) == 1


@pytest.mark.parametrize("retries", [1, 2, 3])
def test_retries_are_bounded_by_the_retry_count(model, env, retries):
    """With SYNTHFLOW_RETRIES=n, 503s that keep coming end API_ERROR after exactly n + 1 POSTs."""
    env["SYNTHFLOW_RETRIES"] = str(retries)
    model.script(*[{"kind": "status", "code": 503}] * 6)
    r = call(env)
    assert r.status == "API_ERROR"
    assert len(posts(model)) == retries + 1
    assert_no_handoff(r)


def test_retries_zero_means_one_post(model, env):
    """SYNTHFLOW_RETRIES=0 turns retries off: one 503, one POST, API_ERROR."""
    env["SYNTHFLOW_RETRIES"] = "0"
    model.script({"kind": "status", "code": 503}, {"kind": "ok"})
    r = call(env)
    assert r.status == "API_ERROR"
    assert len(posts(model)) == 1


@pytest.mark.parametrize("kind", ["drop", "reset", "hang"])
def test_a_failure_after_the_request_was_sent_is_not_retried(model, env, kind):
    """A close, a reset or a read timeout after the POST went out: API_ERROR/API_TIMEOUT, exactly one POST."""
    env["SYNTHFLOW_TIMEOUT"] = "1"
    env["SYNTHFLOW_RETRIES"] = "3"
    model.script({"kind": kind}, {"kind": "ok"}, {"kind": "ok"})
    r = call(env)
    assert r.status == ("API_TIMEOUT" if kind == "hang" else "API_ERROR")
    assert len(posts(model)) == 1
    assert len(model.accepted) == 1
    assert_no_handoff(r)


SENTINEL = "SENTINEL-from-the-wire-7Qx"


@pytest.mark.parametrize("behaviour", [
    {"kind": "call_status", "value": SENTINEL},
    {"kind": "raw", "code": 200, "body": json.dumps([SENTINEL])},
    {"kind": "raw", "code": 500, "body": SENTINEL},
    {"kind": "raw", "code": 200, "body": json.dumps({"call_status": {SENTINEL: SENTINEL}})},
    {"kind": "wire", "data": "HTTP/1.1 2%s0 OK\r\n\r\n" % SENTINEL},
    {"kind": "wire", "data": "HTTP/1.1 503 %s\r\nRetry-After: %s\r\nContent-Length: 0\r\n\r\n"
     % (SENTINEL, SENTINEL)},
    {"kind": "wire", "data": "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n{}" % SENTINEL},
], ids=["call_status", "json_array", "error_body", "call_status_object", "status_line", "retry_after",
        "content_length"])
def test_nothing_the_api_sends_is_echoed(model, env, behaviour):
    """Body text, status lines and header values from the API reach no variable, VERBOSE or log."""
    model.script(behaviour)
    r = call(env)
    assert r.status == "API_ERROR"
    assert SENTINEL not in r.stderr
    assert SENTINEL.encode() not in r.stdout
    assert all(SENTINEL not in value for value in r.variables.values())
    assert_no_handoff(r)


def test_api_url_userinfo_is_refused_and_never_echoed(model, env):
    """api_url with user:password@ is CONFIG_ERROR (it would replace the token), never echoing them."""
    env["SYNTHFLOW_API_URL"] = model.base_url.replace("http://", "http://user:%s@" % SENTINEL)
    r = call(env)
    assert r.status == "CONFIG_ERROR"
    assert posts(model) == []
    assert r.variables["SYNTHFLOW_ERROR"] == "api_url must not carry a user name or password; the token is the credential"
    assert SENTINEL not in r.stderr
    assert all(SENTINEL not in value for value in r.variables.values())
