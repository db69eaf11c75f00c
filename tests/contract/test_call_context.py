"""The whole X-EI (S., E., O.), X-<key> context headers, and a hand-off that survives an API outage."""
from __future__ import annotations

import pytest

from tests.contract._helpers import AGENT, call, posts, sets_of

CALL_ID = "5e1ec7ed-0000-4000-8000-00000000c11d"
LINKEDID = "1700000000.42"  # the peer's uniqueid, which is also its linkedid
HOST = "sip.us.synthflow.ai"
HOSTILE = 'Jane "JD" Doe, VIP; a&b?c=d%e ü'


def test_external_id_defaults_to_the_linkedid_and_diversion_adds_o(model, env):
    """Transfer mode: X-EI carries S., E.<linkedid> and O.<diversion>, each ';' written %3B."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, variables={"SYNTHFLOW_DIVERSION": "+14155550100"})
    assert r.execs == [("Transfer", "PJSIP/<sip:%s@%s:32681?X-EI=S.%s%%3BE.%s%%3BO.%%2B14155550100%%3B>"
                        % (AGENT, HOST, CALL_ID, LINKEDID))]
    assert sets_of(r, "PJSIP_HEADER(add,X-EI)") == ["S.%s;E.%s;O.+14155550100;" % (CALL_ID, LINKEDID)]


def test_an_explicit_external_id_wins_in_dial_mode(model, env):
    """Dial mode: the inheritable X-EI holds the configured external id instead of the linkedid."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, variables={"SYNTHFLOW_MODE": "dial", "SYNTHFLOW_EXTERNAL_ID": "crm:lead/77"})
    assert sets_of(r, "_SYNTHFLOW_XEI") == ["S.%s;E.crm:lead/77;" % CALL_ID]


@pytest.mark.parametrize("key, value", [("EXTERNAL_ID", "a;b"), ("DIVERSION", "+1555;x"), ("EXTERNAL_ID", "x" * 129),
                                        ("EXTERNAL_ID", "a\\r\\nX-Evil: 1")])
def test_a_token_value_that_cannot_be_carried_is_refused_before_the_api(model, env, key, value):
    """A value with ';' or over 128 characters is CONFIG_ERROR before any POST, never trimmed."""
    r = call(env, variables={"SYNTHFLOW_" + key: value})
    assert r.status == "CONFIG_ERROR"
    assert "cannot go into X-EI" in r.variables["SYNTHFLOW_ERROR"] and value not in r.variables["SYNTHFLOW_ERROR"]
    assert posts(model) == [] and r.execs == []


def test_context_headers_in_dial_mode_are_inheritable_and_exact(model, env):
    """Dial mode: each listed custom variable becomes X-<key>, value byte-exact, counted for the handler."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, args=["customer_name", "plan=gold"], variables={
        "SYNTHFLOW_MODE": "dial", "SYNTHFLOW_HEADERS": "customer_name, plan", "customer_name": HOSTILE})
    assert r.status == "SUCCESS"
    assert sets_of(r, "_SYNTHFLOW_HEADERS") == ["2"]
    assert sets_of(r, "_SYNTHFLOW_HEADER_NAME_1") == ["X-customer_name"]
    assert sets_of(r, "_SYNTHFLOW_HEADER_VALUE_1") == [HOSTILE]
    assert (sets_of(r, "_SYNTHFLOW_HEADER_NAME_2"), sets_of(r, "_SYNTHFLOW_HEADER_VALUE_2")) == (["X-plan"], ["gold"])
    assert posts(model)[0].body["custom_variables"] == {"customer_name": HOSTILE, "plan": "gold"}


def test_context_headers_in_transfer_mode_are_percent_encoded_in_the_refer_to(model, env):
    """Transfer mode: `headers=*` puts every custom variable into the Refer-To URI, percent-encoded."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, args=["customer_name"], variables={"SYNTHFLOW_HEADERS": "*", "customer_name": HOSTILE})
    (transfer,) = r.execs
    assert transfer[1].endswith("%%3BE.%s%%3B&X-customer_name=Jane%%20%%22JD%%22%%20Doe%%2C%%20VIP%%3B%%20a%%26b"
                                "%%3Fc%%3Dd%%25e%%20%%C3%%BC>" % LINKEDID), transfer


def test_headers_that_cannot_be_carried_are_left_out_and_named_but_still_sent_as_variables(model, env):
    """A key that is no header name, a value with a CR or one too long stays out of SIP, is logged by shape, and reaches the API."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    long_value = "y" * 513
    r = call(env, args=["CALLERID(name)", "note", "long", "escape", "ok"], variables={
        "SYNTHFLOW_MODE": "dial", "SYNTHFLOW_HEADERS": "*", "CALLERID(name)": "Jane", "note": "line1\rline2",
        "long": long_value, "escape": "a\\r\\nX-Evil: 1", "ok": "fine"})
    assert r.status == "SUCCESS"
    assert sets_of(r, "_SYNTHFLOW_HEADER_NAME_1") == ["X-ok"] and sets_of(r, "_SYNTHFLOW_HEADERS") == ["1"]
    assert "header left out: CALLERID(name): not a header name" in r.stderr
    assert "header left out: note: value cannot be carried in SIP (11 characters, with control characters)" in r.stderr
    assert "header left out: long: value cannot be carried in SIP (513 characters)" in r.stderr
    assert "header left out: escape: value cannot be carried in SIP (14 characters, with a backslash)" in r.stderr
    assert "line1" not in r.stderr and long_value not in r.stderr
    assert posts(model)[0].body["custom_variables"] == {
        "CALLERID(name)": "Jane", "note": "line1\rline2", "long": long_value, "escape": "a\\r\\nX-Evil: 1", "ok": "fine"}


@pytest.mark.parametrize("mode", ["transfer", "dial"])
def test_an_outage_with_direct_hands_off_without_s(model, env, mode):
    """on_api_failure=direct: three 503s, then the agent gets E. and the headers without S.; SUCCESS, DEGRADED=1."""
    model.script(*[{"kind": "status", "code": 503}] * 3)
    r = call({**env, "SYNTHFLOW_ON_API_FAILURE": "direct"}, args=["plan=gold"],
             variables={"SYNTHFLOW_MODE": mode, "SYNTHFLOW_HEADERS": "plan"})
    assert len(posts(model)) == 3
    assert r.status == "SUCCESS"
    assert r.variables["SYNTHFLOW_DEGRADED"] == "1"
    assert r.variables["SYNTHFLOW_ERROR"] == "handed off without S.: prepare_inbound answered HTTP 503"
    assert r.variables["SYNTHFLOW_CALL_ID"] == ""
    if mode == "dial":
        assert sets_of(r, "_SYNTHFLOW_XEI") == ["E.%s;" % LINKEDID]
        assert sets_of(r, "_SYNTHFLOW_HEADER_VALUE_1") == ["gold"]
    else:
        assert r.execs == [("Transfer", "PJSIP/<sip:%s@%s:32681?X-EI=E.%s%%3B&X-plan=gold>" % (AGENT, HOST, LINKEDID))]
    assert 'status=SUCCESS' in r.stderr and 'error="handed off without S.' in r.stderr


@pytest.mark.parametrize("behaviour, status", [
    ({"kind": "status", "code": 401}, "API_AUTH_FAILED"),
    ({"kind": "status", "code": 400}, "API_ERROR"),
    ({"kind": "not_json"}, "API_ERROR"),
    ({"kind": "missing_id"}, "API_ERROR"),
])
def test_direct_never_covers_a_request_synthflow_refused(model, env, behaviour, status):
    """401/403, other 4xx and a wrong answer still go to the fallback with on_api_failure=direct."""
    model.script(behaviour)
    r = call({**env, "SYNTHFLOW_ON_API_FAILURE": "direct"})
    assert r.status == status
    assert r.execs == [] and "SYNTHFLOW_DEGRADED" not in r.variables
    assert len(posts(model)) == 1


def test_fallback_stays_the_default_in_an_outage(model, env):
    """Without on_api_failure=direct an outage is API_ERROR and nothing is handed off."""
    model.script(*[{"kind": "status", "code": 503}] * 3)
    r = call(env)
    assert r.status == "API_ERROR" and r.execs == []
