"""The hand-off in each mode, on the exact wire: Transfer and Dial arguments, X-EI, statuses."""
from __future__ import annotations

import pytest

from synthflow_agi._settings import PER_CALL_KEYS
from tests.contract._helpers import AGENT, assert_no_handoff, call, posts, sets_of

HOST = "sip.us.synthflow.ai"  # the default cluster (us)
CALL_ID = "3f2b1c9e-4d5a-4b6c-8e7f-0123456789ab"


def only_post(model):
    """The single prepare_inbound request of a run (a second one would register twice)."""
    reqs = posts(model)
    assert len(reqs) == 1, reqs
    return reqs[0]


def test_transfer_on_pjsip_sends_the_header_in_the_refer_to_uri(model, env):
    """Transfer mode on PJSIP sets PJSIP_HEADER, then Transfers to the bracketed URI with X-EI."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env)
    assert r.status == "SUCCESS"
    assert r.execs == [("Transfer", "PJSIP/<sip:%s@%s:32681?X-EI=S.%s%%3BE.1700000000.42%%3B>" % (AGENT, HOST, CALL_ID))]
    assert sets_of(r, "PJSIP_HEADER(add,X-EI)") == ["S.%s;E.1700000000.42;" % CALL_ID]
    names = [c.words[:3] for c in r.commands]
    header_at = names.index(["SET", "VARIABLE", "PJSIP_HEADER(add,X-EI)"])
    exec_at = [i for i, c in enumerate(r.commands) if c.words[:1] == ["EXEC"]][0]
    assert header_at < exec_at
    assert r.variables["SYNTHFLOW_CALL_ID"] == CALL_ID
    assert r.variables["SYNTHFLOW_ERROR"] == ""
    assert r.variables["SYNTHFLOW_TARGET"] == "sip:%s@%s:32681" % (AGENT, HOST)
    req = only_post(model)
    assert req.method == "POST" and req.path == "/v2/prepare_inbound"
    assert req.header("Authorization") == "Bearer sk-test-Zq8-SECRET-7f3a"
    assert set(req.body) == {"from_number", "to_number", "model_id", "workspace_id",
                             "custom_variables"}
    assert req.body["to_number"] == AGENT and req.body["from_number"] == "+15551230000"
    assert req.body["model_id"] == "model-1" and req.body["workspace_id"] == "ws-1"


def test_transfer_exec_has_exactly_one_argument_word(model, env):
    """The EXEC line parses into exactly EXEC, the application and one argument."""
    r = call(env)
    execs = [c for c in r.commands if c.words[:1] == ["EXEC"]]
    assert len(execs) == 1 and len(execs[0].words) == 3, execs


@pytest.mark.parametrize("transport,port,suffix", [
    ("tcp", "32681", ";transport=tcp"),
    ("tls", "32682", ";transport=tls"),
    ("udp", "32681", ""),
])
def test_transport_forms_in_transfer(model, env, transport, port, suffix):
    """The transport adds ;transport=x (not for udp) and tls defaults to port 32682."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, variables={"SYNTHFLOW_SIP_TRANSPORT": transport})
    uri = "sip:%s@%s:%s%s" % (AGENT, HOST, port, suffix)
    assert r.status == "SUCCESS"
    assert r.execs == [("Transfer", "PJSIP/<%s?X-EI=S.%s%%3BE.1700000000.42%%3B>" % (uri, CALL_ID))]
    assert r.variables["SYNTHFLOW_TARGET"] == uri


def test_host_and_port_overrides_per_call(model, env):
    """SYNTHFLOW_SIP_HOST and SYNTHFLOW_SIP_PORT on the channel shape the URI."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, variables={"SYNTHFLOW_SIP_HOST": "sip.eu.example.test",
                             "SYNTHFLOW_SIP_PORT": "5070"})
    assert r.execs == [("Transfer", "PJSIP/<sip:%s@sip.eu.example.test:5070?X-EI=S.%s%%3BE.1700000000.42%%3B>"
                        % (AGENT, CALL_ID))]


def test_chan_sip_channel_gets_the_unbracketed_sip_form(model, env):
    """On a chan_sip channel the Transfer target is SIP/+E164@host:port?X-EI=..., never <sip:<sip:."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, agi_type="SIP")
    assert r.status == "SUCCESS"
    assert r.execs == [("Transfer", "SIP/%s@%s:32681?X-EI=S.%s%%3BE.1700000000.42%%3B" % (AGENT, HOST, CALL_ID))]
    assert "<sip:" not in r.execs[0][1]


def test_dial_mode_bridges_with_the_predial_handler(model, env):
    """Dial mode sets the inheritable _SYNTHFLOW_XEI then Dials the endpoint with b(handler)."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, variables={"SYNTHFLOW_MODE": "dial"})
    assert r.status == "SUCCESS"
    assert r.execs == [("Dial", "PJSIP/synthflow/sip:%s@%s:32681,30,b(synthflow-predial^s^1)"
                        % (AGENT, HOST))]
    assert sets_of(r, "_SYNTHFLOW_XEI") == ["S.%s;E.1700000000.42;" % CALL_ID]
    xei_at = [i for i, c in enumerate(r.commands) if c.words[2:3] == ["_SYNTHFLOW_XEI"]][0]
    dial_at = [i for i, c in enumerate(r.commands) if c.words[:2] == ["EXEC", "Dial"]][0]
    assert xei_at < dial_at
    assert r.variables["SYNTHFLOW_CALL_ID"] == CALL_ID
    assert r.variables["SYNTHFLOW_ERROR"] == ""
    only_post(model)


def test_dial_mode_with_tcp_and_per_call_dial_settings(model, env):
    """Endpoint, timeout, handler and transport all come through to the Dial argument."""
    r = call(env, variables={"SYNTHFLOW_MODE": "dial", "SYNTHFLOW_SIP_TRANSPORT": "tcp",
                             "SYNTHFLOW_DIAL_ENDPOINT": "sf-eu", "SYNTHFLOW_DIAL_TIMEOUT": "45",
                             "SYNTHFLOW_PREDIAL_HANDLER": "my-predial^s^1"})
    assert r.status == "SUCCESS"
    assert r.execs == [("Dial", "PJSIP/sf-eu/sip:%s@%s:32681;transport=tcp,45,b(my-predial^s^1)"
                        % (AGENT, HOST))]


def test_dial_mode_busy_is_transfer_failed(model, env):
    """DIALSTATUS other than ANSWER gives TRANSFER_FAILED naming the dial status."""
    r = call(env, variables={"SYNTHFLOW_MODE": "dial"}, dial_status="BUSY")
    assert r.status == "TRANSFER_FAILED"
    assert "BUSY" in r.variables["SYNTHFLOW_ERROR"]
    assert len(r.execs) == 1


@pytest.mark.parametrize("refused", ["FAILURE", "UNSUPPORTED"])
def test_auto_mode_falls_back_to_dial_with_the_same_id(model, env, refused):
    """Auto mode: a refused Transfer is followed by Dial with the same call id and one POST."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, variables={"SYNTHFLOW_MODE": "auto"}, transfer_status=refused,
             transfer_protocol="501" if refused == "FAILURE" else "0")
    assert r.status == "SUCCESS"
    assert [e[0] for e in r.execs] == ["Transfer", "Dial"]
    assert r.execs[0][1] == "PJSIP/<sip:%s@%s:32681?X-EI=S.%s%%3BE.1700000000.42%%3B>" % (AGENT, HOST, CALL_ID)
    assert r.execs[1][1].startswith("PJSIP/synthflow/sip:%s@%s:32681," % (AGENT, HOST))
    assert sets_of(r, "_SYNTHFLOW_XEI") == ["S.%s;E.1700000000.42;" % CALL_ID]
    assert r.variables["SYNTHFLOW_CALL_ID"] == CALL_ID
    only_post(model)


def test_auto_mode_stops_after_a_successful_transfer(model, env):
    """Auto mode with an accepted Transfer never Dials."""
    r = call(env, variables={"SYNTHFLOW_MODE": "auto"})
    assert r.status == "SUCCESS"
    assert [e[0] for e in r.execs] == ["Transfer"]


def test_auto_mode_dial_fails_too(model, env):
    """Auto mode with a refused Transfer and a busy Dial ends TRANSFER_FAILED after one POST."""
    r = call(env, variables={"SYNTHFLOW_MODE": "auto"}, transfer_status="FAILURE",
             transfer_protocol="405", dial_status="BUSY")
    assert r.status == "TRANSFER_FAILED"
    assert [e[0] for e in r.execs] == ["Transfer", "Dial"]
    only_post(model)


@pytest.mark.parametrize("technology, protocol", [
    ("PJSIP", "603"), ("PJSIP", "486"), ("PJSIP", "503"), ("PJSIP", "500"), ("PJSIP", "1"), ("PJSIP", "0"),
    ("SIP", "1"), ("SIP", "501"),
])
def test_auto_mode_never_dials_after_a_result_that_can_follow_a_202(model, env, technology, protocol):
    """A failure Asterisk also reports after an accepted REFER ends TRANSFER_FAILED with no second INVITE."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, variables={"SYNTHFLOW_MODE": "auto"}, agi_type=technology,
             transfer_status="FAILURE", transfer_protocol=protocol)
    assert r.status == "TRANSFER_FAILED"
    assert [e[0] for e in r.execs] == ["Transfer"]
    assert not sets_of(r, "_SYNTHFLOW_XEI")
    expected = "REFER outcome unknown" if protocol == "0" else "so no Dial follows"
    assert expected in r.variables["SYNTHFLOW_ERROR"]
    only_post(model)


def test_auto_mode_on_iax2_goes_straight_to_dial(model, env):
    """Auto mode on a channel that cannot Transfer to SIP Dials without trying Transfer."""
    r = call(env, variables={"SYNTHFLOW_MODE": "auto"}, agi_type="IAX2")
    assert r.status == "SUCCESS"
    assert [e[0] for e in r.execs] == ["Dial"]


def test_transfer_failure_reports_the_protocol_code(model, env):
    """TRANSFERSTATUS FAILURE gives TRANSFER_FAILED with the SIP code in SYNTHFLOW_ERROR."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env, transfer_status="FAILURE", transfer_protocol="486")
    assert r.status == "TRANSFER_FAILED"
    assert "486" in r.variables["SYNTHFLOW_ERROR"]
    assert r.variables["SYNTHFLOW_CALL_ID"] == CALL_ID
    assert [e[0] for e in r.execs] == ["Transfer"]


def test_transfer_mode_on_iax2_is_transfer_failed_without_exec(model, env):
    """Transfer mode on a non-SIP technology fails clearly instead of a mismatched Transfer."""
    r = call(env, agi_type="IAX2")
    assert r.status == "TRANSFER_FAILED"
    assert_no_handoff(r)
    error = r.variables["SYNTHFLOW_ERROR"]
    assert error and ("IAX2" in error.upper() or "TECHNOLOGY" in error.upper()), error


def test_exact_wire_lines_of_the_x_ei_and_status_commands(model, env):
    """The X-EI and status SET VARIABLE lines are byte-exact, each argument double-quoted."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = call(env)
    raw = [c.raw for c in r.commands]
    assert 'SET VARIABLE "PJSIP_HEADER(add,X-EI)" "S.%s;E.1700000000.42;"' % CALL_ID in raw
    assert 'SET VARIABLE "SYNTHFLOW_STATUS" "SUCCESS"' in raw
    assert 'SET VARIABLE "SYNTHFLOW_CALL_ID" "%s"' % CALL_ID in raw
    assert 'SET VARIABLE "SYNTHFLOW_ERROR" ""' in raw
    assert raw[0] == 'GET FULL VARIABLE "%s"' % "".join(
        "${LEN(${%s})}:${%s}" % (name, name) for name in ["CHANNEL(linkedid)", "CHANNEL(state)"] + [
            "SYNTHFLOW_" + key.upper() for key in PER_CALL_KEYS])
    exec_line = [line for line in raw if line.startswith("EXEC ")][0]
    assert exec_line.endswith(' "PJSIP/<sip:%s@%s:32681?X-EI=S.%s%%3BE.1700000000.42%%3B>"' % (AGENT, HOST, CALL_ID))
    assert r.verboses and all("\n" not in v for v in r.verboses)
    assert r.commands[-1].raw == 'VERBOSE "synthflow-agi: SUCCESS call_id=%s" 1' % CALL_ID
