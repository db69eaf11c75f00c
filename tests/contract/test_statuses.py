"""The statuses decided before any API call: NOT_ANSWERED, INVALID_NUMBER, CONFIG_ERROR."""
from __future__ import annotations

import pytest

from synthflow_agi._agent_transfer import AFTER_DIAL
from synthflow_agi._wire import AgiProtocolError, batch_expression
from tests.contract._helpers import assert_no_handoff, call, posts

CALL_ID = "3f2b1c9e-4d5a-4b6c-8e7f-0123456789cd"


@pytest.mark.parametrize("state", ["Ring", "Ringing", "Down", "Dialing"])
def test_unanswered_channel_makes_no_api_call(model, env, state):
    """A channel whose state is not Up gives NOT_ANSWERED with no POST and no EXEC."""
    r = call(env, variables={"CHANNEL(state)": state})
    assert r.status == "NOT_ANSWERED"
    assert posts(model) == []
    assert_no_handoff(r)


def test_state_and_settings_are_read_in_one_round_trip(model, env):
    """CHANNEL(state) and every per-call setting come back from one GET FULL VARIABLE; every read is length-prefixed."""
    r = call(env, variables={"SYNTHFLOW_MODE": "dial", "customer_name": "Jane"}, args=["customer_name"])
    reads = [c for c in r.commands if c.name.startswith("GET")]
    assert [c.words[:3] for c in reads] == [["GET", "FULL", "VARIABLE"]] * 3
    assert "${CHANNEL(state)}" in reads[0].words[3] and "${SYNTHFLOW_MODE}" in reads[0].words[3]
    assert reads[1].words[3] == "${LEN(${customer_name})}:${customer_name}"
    # DIALSTATUS first, then what tells whether the agent transferred the caller away
    assert reads[2].words[3] == batch_expression(AFTER_DIAL)
    assert reads[2].words[3].startswith("${LEN(${DIALSTATUS})}:${DIALSTATUS}${LEN(${BLINDTRANSFER})}")
    assert r.status == "SUCCESS"


@pytest.mark.parametrize("reply,reason", [("200 result=1 (2:Up5:di)", "AGI reply stopped short for 2s"),
                                          ("200 result=1 (\ufffd)", "the value reply does not add up (a length is wrong)")])
def test_a_batch_reply_that_does_not_add_up_is_refused_and_the_stream_stays_in_step(model, env, reply, reason):
    """A batch reply cut short or not length-prefixed is refused before the API, and later replies still read right."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, variables={"SYNTHFLOW_MODE": "dial"}, force_replies=[("GET FULL VARIABLE", reply)])
    assert r.status == AgiProtocolError.status.value
    assert r.variables["SYNTHFLOW_ERROR"] == reason
    assert posts(model) == []
    assert_no_handoff(r)
    assert r.seconds < 6.0, r.seconds  # a reply stopped short is given up after 2 s, not the peer's 15 s


@pytest.mark.parametrize("where,value", [
    ("callerid", "not-a-number"),
    ("callerid", "12"),
    ("agent", "abc"),
    ("agent", "+999"),
])
def test_unusable_numbers_make_no_api_call(model, env, where, value):
    """A from or agent number that is not a phone number gives INVALID_NUMBER with no POST."""
    if where == "callerid":
        r = call(env, callerid=value)
    else:
        r = call(env, variables={"SYNTHFLOW_AGENT_NUMBER": value})
    assert r.status == "INVALID_NUMBER"
    assert posts(model) == []
    assert_no_handoff(r)
    assert r.variables["SYNTHFLOW_ERROR"]


def test_anonymous_caller_without_from_number_is_invalid(model, env):
    """An anonymous caller id with no SYNTHFLOW_FROM_NUMBER gives INVALID_NUMBER."""
    r = call(env, callerid="unknown")
    assert r.status == "INVALID_NUMBER"
    assert posts(model) == []


def test_missing_token_is_config_error(model, env):
    """No api_token anywhere gives CONFIG_ERROR with no POST."""
    del env["SYNTHFLOW_API_TOKEN"]
    r = call(env)
    assert r.status == "CONFIG_ERROR"
    assert posts(model) == []
    assert_no_handoff(r)
    assert r.variables["SYNTHFLOW_ERROR"]


def test_token_from_a_channel_variable_is_ignored(model, env):
    """A token only on the channel is no token: CONFIG_ERROR (never from a channel variable)."""
    del env["SYNTHFLOW_API_TOKEN"]
    r = call(env, variables={"SYNTHFLOW_API_TOKEN": "sk-channel-token-9"})
    assert r.status == "CONFIG_ERROR"
    assert posts(model) == []


def test_named_config_file_that_is_missing_is_config_error(model, env, tmp_path):
    """SYNTHFLOW_CONFIG naming a file that does not exist gives CONFIG_ERROR."""
    env["SYNTHFLOW_CONFIG"] = str(tmp_path / "nope.conf")
    r = call(env)
    assert r.status == "CONFIG_ERROR"
    assert posts(model) == []


@pytest.mark.parametrize("via", ["env", "channel"])
def test_bad_mode_is_config_error(model, env, via):
    """A mode other than transfer/dial/auto gives CONFIG_ERROR before any POST."""
    if via == "env":
        env["SYNTHFLOW_MODE"] = "teleport"
        r = call(env)
    else:
        r = call(env, variables={"SYNTHFLOW_MODE": "teleport"})
    assert r.status == "CONFIG_ERROR"
    assert posts(model) == []
    assert_no_handoff(r)


@pytest.mark.parametrize("key", ["SYNTHFLOW_MODEL_ID", "SYNTHFLOW_WORKSPACE_ID",
                                 "SYNTHFLOW_AGENT_NUMBER"])
def test_missing_required_setting_is_config_error(model, env, key):
    """Each required setting missing gives CONFIG_ERROR with no POST."""
    del env[key]
    r = call(env)
    assert r.status == "CONFIG_ERROR"
    assert posts(model) == []


@pytest.mark.parametrize("key,value", [
    ("SYNTHFLOW_SIP_TRANSPORT", "sctp"),
    ("SYNTHFLOW_TIMEOUT", "soon"),
    ("SYNTHFLOW_TIMEOUT", "0"),
    ("SYNTHFLOW_SIP_PORT", "port"),
    ("SYNTHFLOW_SIP_PORT", "70000"),
    ("SYNTHFLOW_SIP_HOST", "evil.host>;x"),
    ("SYNTHFLOW_SIP_HOST", "host?X-EI=S.forged"),
    ("SYNTHFLOW_DIAL_ENDPOINT", "x,g"),
    ("SYNTHFLOW_DIAL_TIMEOUT", "30,g"),
    ("SYNTHFLOW_PREDIAL_HANDLER", "ctx^s^1)g(x"),
])
def test_malformed_per_call_values_are_config_error(model, env, key, value):
    """A per-call value that cannot be used (or would inject into a dialplan argument) is CONFIG_ERROR."""
    r = call(env, variables={key: value, "SYNTHFLOW_MODE": "auto"})
    assert r.status == "CONFIG_ERROR"
    assert_no_handoff(r)


def test_malformed_ini_is_config_error(model, env, ini):
    """An INI file that does not parse gives CONFIG_ERROR, not a traceback."""
    ini.write_text("this is not [an ini\n= = =\n")
    r = call(env)
    assert r.status == "CONFIG_ERROR"
    assert posts(model) == []
