"""What goes into the request body and back onto the wire: numbers, custom variables, escaping."""
from __future__ import annotations

import json

import pytest

from tests.contract._helpers import AGENT, TOKEN, call, posts
from tests.support.agi_peer import parse_args

NASTY = [
    'He said "hi"',
    "back\\slash\\",
    'C:\\"quoted\\"',
    "semi;colon;",
    "  two  spaces  ",
    "Zoë – 日本 🙂",
    "it's",
    "${CALLERID(num)}",
    "S.x%3B;X-EI: S.evil;",
    "(paren) )",
    "",
]


def body(model):
    reqs = posts(model)
    assert len(reqs) == 1, reqs
    json.loads(reqs[0].raw.decode("utf-8"))  # the raw body is valid JSON
    return reqs[0].body


@pytest.mark.parametrize("callerid,region,expected", [
    ("5551230000", None, "+15551230000"),
    ("(555) 123-0000", None, "+15551230000"),
    ("+15551230000", None, "+15551230000"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("030 123456", "DE", "+4930123456"),
])
def test_caller_number_goes_out_as_e164(model, env, callerid, region, expected):
    """The caller's number is sent in E.164, using default_region for national forms."""
    variables = {"SYNTHFLOW_DEFAULT_REGION": region} if region else {}
    r = call(env, callerid=callerid, variables=variables)
    assert r.status == "SUCCESS"
    assert body(model)["from_number"] == expected


def test_national_agent_number_is_normalised_everywhere(model, env):
    """A national agent number becomes E.164 in the body and in the SIP URI."""
    env["SYNTHFLOW_AGENT_NUMBER"] = "(555) 765-4321"
    r = call(env)
    assert body(model)["to_number"] == AGENT
    assert r.execs[0][1].startswith("PJSIP/<sip:%s@" % AGENT)
    assert r.variables["SYNTHFLOW_TARGET"].startswith("sip:%s@" % AGENT)


def test_from_number_override_beats_caller_id(model, env):
    """SYNTHFLOW_FROM_NUMBER on the channel replaces the (originated) caller id."""
    r = call(env, callerid="anonymous", variables={"SYNTHFLOW_FROM_NUMBER": "+442079460958"})
    assert r.status == "SUCCESS"
    assert body(model)["from_number"] == "+442079460958"


def test_custom_variables_from_setting_and_agi_arguments(model, env):
    """SYNTHFLOW_VARIABLES names and AGI arguments (name and k=v) all reach custom_variables."""
    env["SYNTHFLOW_VARIABLES"] = "lead_id, campaign"
    r = call(env, args=["customer_name", "account_id=A12345", "note=a=b"],
             variables={"lead_id": "L-77", "campaign": "spring", "customer_name": "Ada"})
    assert r.status == "SUCCESS"
    assert body(model)["custom_variables"] == {
        "lead_id": "L-77", "campaign": "spring", "customer_name": "Ada",
        "account_id": "A12345", "note": "a=b"}


def test_variables_setting_per_call(model, env):
    """SYNTHFLOW_VARIABLES as a channel variable picks the names for this call."""
    r = call(env, variables={"SYNTHFLOW_VARIABLES": "crm_ref", "crm_ref": "CRM-1"})
    assert r.status == "SUCCESS"
    assert body(model)["custom_variables"] == {"crm_ref": "CRM-1"}


def test_no_custom_variables_is_an_empty_object(model, env):
    """Without names or arguments, custom_variables is still sent, as an empty object."""
    call(env)
    assert body(model)["custom_variables"] == {}


@pytest.mark.parametrize("value", NASTY, ids=range(len(NASTY)))
def test_channel_variable_values_arrive_byte_exact(model, env, value):
    """A channel variable's value reaches the JSON body exactly as the channel held it."""
    r = call(env, args=["customer_name"], variables={"customer_name": value})
    assert r.status == "SUCCESS"
    assert body(model)["custom_variables"] == {"customer_name": value}


@pytest.mark.parametrize("value", [v for v in NASTY if v.strip() == v and v], ids=str)
def test_agi_argument_literals_arrive_byte_exact(model, env, value):
    """A k=v AGI argument's literal reaches the JSON body exactly."""
    r = call(env, args=["note=" + value])
    assert r.status == "SUCCESS"
    assert body(model)["custom_variables"] == {"note": value}


def test_error_text_with_quotes_round_trips_through_parse_args(model, env):
    """A SYNTHFLOW_ERROR naming a hostile per-call value is read back by res_agi rules unchanged."""
    r = call(env, variables={"SYNTHFLOW_MODE": 'tr"ans\\fer'})
    assert r.status == "CONFIG_ERROR"
    assert "mode" in r.variables["SYNTHFLOW_ERROR"]
    line = [c.raw for c in r.commands if c.words[2:3] == ["SYNTHFLOW_ERROR"]][0]
    assert parse_args(line)[3] == r.variables["SYNTHFLOW_ERROR"]


def test_hostile_transfer_protocol_is_described_not_echoed(model, env):
    """A TRANSFERSTATUSPROTOCOL that is not a SIP code never reaches SYNTHFLOW_ERROR."""
    r = call(env, transfer_status="FAILURE", transfer_protocol='486 "Busy\\Here"; x')
    assert r.status == "TRANSFER_FAILED"
    assert r.variables["SYNTHFLOW_ERROR"] == "Transfer FAILURE with an unreadable TRANSFERSTATUSPROTOCOL"


def test_hostile_call_status_keeps_every_command_well_formed(model, env):
    """A call_status full of quotes and backslashes still yields 4-word SET VARIABLE lines."""
    model.script({"kind": "call_status", "value": 'fa"il\\ed" "x'})
    r = call(env)
    assert r.status == "API_ERROR"
    for c in r.commands:
        if c.words[:2] == ["SET", "VARIABLE"]:
            assert len(c.words) == 4, c


def test_token_appears_in_no_output_in_any_outcome(model, env):
    """Across success and failures the token is in no stdout, stderr, variable or VERBOSE."""
    outcomes = [{"kind": "ok"}, {"kind": "status", "code": 500}, {"kind": "not_json"},
                {"kind": "status", "code": 403}, {"kind": "call_status", "value": TOKEN}]
    for behaviour in outcomes:
        model.script(behaviour)
        r = call(env)  # call() asserts the token is absent everywhere
        assert r.status != "SUCCESS" or behaviour["kind"] == "ok"


def test_stdout_holds_only_agi_commands(model, env):
    """Every stdout line is an AGI command the channel understood; logs go to stderr."""
    r = call(env, args=["customer_name"], variables={"customer_name": "x"})
    lines = r.stdout.decode().splitlines()
    assert lines and all(line.split(" ")[0] in ("GET", "SET", "EXEC", "VERBOSE") for line in lines)
    assert r.stderr.strip(), "one log line per call is expected on stderr"


@pytest.mark.parametrize("behaviour,status", [({"kind": "ok", "call_id": "log-line-0001"}, "SUCCESS"),
                                              ({"kind": "status", "code": 500}, "API_ERROR")])
def test_one_structured_log_line_per_call_on_stderr(model, env, behaviour, status):
    """stderr holds exactly one log line with uniqueid, linkedid, status, call id and timings."""
    model.script(behaviour)
    r = call(env, variables={"CHANNEL(linkedid)": "1699999999.7"})
    assert r.status == status
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr  # no pyst2 chatter (env lines, echoed commands)
    line = lines[0]
    for needle in ("1700000000.42", "1699999999.7", status, "ms"):
        assert needle in line, (needle, line)
    if status == "SUCCESS":
        assert "log-line-0001" in line
    assert "agi_" not in r.stderr and "GET VARIABLE" not in r.stderr
