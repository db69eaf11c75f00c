"""Hostile timing and sizes: a hangup at every command, long Retry-After, oversized values."""
from __future__ import annotations

import pytest

from synthflow_agi._wire import AgiValueError
from tests.contract._helpers import assert_no_token, call, posts
from tests.support.agi_peer import AgiPeer


def baseline(env):
    """The commands of a plain successful transfer-mode run, as res_agi would see them."""
    return [c.raw for c in AgiPeer().run(env=env).commands]


def test_hangup_with_sighup_at_every_command(model, env):
    """Whichever command the caller hangs up at, the outcome is exactly the one that point allows."""
    commands = baseline(env)
    after_api = next(i for i, raw in enumerate(commands) if raw.startswith('SET VARIABLE "SYNTHFLOW_CALL_ID"'))
    transfer_at = next(i for i, raw in enumerate(commands) if raw.startswith("EXEC Transfer"))
    assert 0 < after_api < transfer_at < len(commands) - 1
    for index in range(len(commands)):
        model.reset()
        r = AgiPeer(hangup_at=index, hangup_sends_sighup=True).run(env=env)
        where = "hangup at command %d (%s)" % (index, commands[index][:40])
        assert not r.timed_out and r.returncode == 0, (where, r)
        assert "Traceback" not in r.stderr, (where, r.stderr)
        assert_no_token(r, env["SYNTHFLOW_API_TOKEN"])
        # Before the API call: nothing is registered; before the REFER's answer: HANGUP;
        # after the REFER was accepted, the caller leaving is the hand-off's normal end.
        assert len(posts(model)) == (0 if index < after_api else 1), where
        assert r.status == ("HANGUP" if index <= transfer_at else "SUCCESS"), (where, r)
        execs = [raw for raw in (c.raw for c in r.commands) if raw.startswith("EXEC ")]
        assert len(execs) == (1 if index >= transfer_at else 0), (where, r)


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_beyond_the_deadline_is_not_waited_out(model, env, code):
    """A Retry-After longer than the whole deadline never stretches the call past it."""
    env["SYNTHFLOW_TIMEOUT"] = "2"
    model.script({"kind": "status", "code": code, "retry_after": 30}, {"kind": "ok"})
    r = call(env, timeout=40)
    # The retry would start past the deadline, so it is never made: the answer in hand is reported.
    assert r.status == "API_ERROR", r
    assert r.variables["SYNTHFLOW_ERROR"] == "prepare_inbound answered HTTP %d" % code
    assert len(posts(model)) == 1
    assert r.seconds < 1.5, r.seconds


def test_oversized_protocol_text_keeps_commands_within_res_agi_limits(model, env):
    """A huge TRANSFERSTATUSPROTOCOL still yields well-formed command lines under 8192 bytes."""
    r = call(env, transfer_status="FAILURE", transfer_protocol="4" * 9000)
    assert r.status == "TRANSFER_FAILED"


def test_oversized_custom_variable_is_sent_whole(model, env):
    """A 20 kB custom variable value reaches the body whole (HTTP has no AGI line limit)."""
    value = "x" * 20000
    r = call(env, args=["big"], variables={"big": value})
    assert r.status == "SUCCESS"
    assert posts(model)[0].body["custom_variables"] == {"big": value}


def test_caller_id_with_quotes_is_invalid_not_broken(model, env):
    """A caller id full of quoting characters ends INVALID_NUMBER with well-formed commands."""
    r = call(env, callerid='"Eve" <\\"+1555\\">')
    assert r.status == "INVALID_NUMBER"
    assert r.variables["SYNTHFLOW_ERROR"] == "caller number has an impossible length (17 characters)"
    assert posts(model) == []


ODD_BODIES = [
    ("array", 200, "[]", "API_ERROR"),
    ("null", 200, "null", "API_ERROR"),
    ("string", 200, '"registered"', "API_ERROR"),
    ("numeric_id", 200, '{"call_status":"registered","synthflow_call_id":12345678901}', "API_ERROR"),
    ("list_id", 200, '{"call_status":"registered","synthflow_call_id":["abcdefgh1"]}', "API_ERROR"),
    ("null_status", 200, '{"call_status":null,"synthflow_call_id":"abcdefgh1"}', "API_ERROR"),
    ("upper_status", 200, '{"call_status":"REGISTERED","synthflow_call_id":"abcdefgh1"}', "API_ERROR"),
    ("truncated", 200, '{"call_status":"registered","synthflow_call_id":"abcdefgh1"', "API_ERROR"),
    ("empty", 200, "", "API_ERROR"),
    ("non_ascii_id", 200, '{"call_status":"registered","synthflow_call_id":"abcdefgh\\u00e91"}', "API_ERROR"),
    ("created", 201, '{"call_status":"registered","synthflow_call_id":"abcdefgh1"}', "SUCCESS"),
]


@pytest.mark.parametrize("code,text,status", [b[1:] for b in ODD_BODIES], ids=[b[0] for b in ODD_BODIES])
def test_odd_json_shapes_map_to_a_status(model, env, code, text, status):
    """Bodies of the wrong JSON shape give API_ERROR (no traceback, no hand-off); any 2xx can succeed."""
    model.script({"kind": "raw", "code": code, "body": text})
    r = call(env)
    assert r.status == status
    assert len(posts(model)) == 1
    assert len(r.execs) == (1 if status == "SUCCESS" else 0)


def test_slow_answer_inside_the_deadline_succeeds(model, env):
    """A reply after 2.5 s of the 4 s deadline is still used: the deadline is for the whole step."""
    model.script({"kind": "delay", "seconds": 2.5})
    r = call(env)
    assert r.status == "SUCCESS"
    assert len(posts(model)) == 1


def test_api_url_with_a_trailing_slash(model, env):
    """api_url ending in / still reaches {api_url}/prepare_inbound without a double slash."""
    env["SYNTHFLOW_API_URL"] = model.base_url + "/"
    r = call(env)
    assert r.status == "SUCCESS"
    assert [p.path for p in posts(model)] == ["/v2/prepare_inbound"]


def test_an_argument_that_is_not_utf8_passes_with_a_replacement_character(model, env):
    """An AGI argument holding a Latin-1 byte (not UTF-8) arrives once, so its byte becomes U+FFFD."""
    r = call(env, args=["name=caf\udce9"])  # the peer writes this as the single byte 0xE9
    assert r.status == "SUCCESS"
    assert posts(model)[0].body["custom_variables"]["name"] == "caf\ufffd"


def test_a_variable_that_is_not_utf8_is_refused_and_the_stream_stays_in_step(model, env):
    """A channel variable holding a Latin-1 byte is refused by name, with no POST, and every later reply reads right."""
    r = call(env, args=["name"], variables={"name": "caf\udce9"})
    assert r.status == AgiValueError.status.value
    assert r.variables["SYNTHFLOW_ERROR"] == "channel variable name is not UTF-8 text (4 bytes)"
    assert posts(model) == []
    assert r.execs == []
