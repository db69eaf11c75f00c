"""refer_drops_headers: a carrier that follows REFER but drops Refer-To URI headers (Asterisk)."""
import re

import pytest

import lab_sip_log
from lab_run import AGENT, CUSTOMER, SYNTHFLOW

TRANSFER_CALL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00022"
DIAL_CALL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00023"  # also in sipp/agent_requires_pbx_xei.xml


def agent_invite(agent):
    (invite,) = [m for m in lab_sip_log.sipp_received(agent.text("messages.log")) if m.label == "INVITE"]
    return invite


@pytest.mark.e2e
def test_transfer_through_a_header_dropping_carrier_reaches_the_agent_without_x_ei(call, carrier):
    """Transfer mode via the Asterisk carrier: the agent's INVITE has no X-EI, yet the status is SUCCESS."""
    call.model.script({"kind": "ok", "call_id": TRANSFER_CALL_ID})
    agent = call.sipp("agent", "agent_requires_carrier_without_xei.xml", SYNTHFLOW)
    call.originate("e2e-refer-drops-transfer", {"CUSTOMER_NUMBER": CUSTOMER}, endpoint="carrier-asterisk")
    agent.assert_passed()
    # The documented trap: "SUCCESS" means the carrier accepted the REFER, not that X-EI arrived.
    assert call.result() == {"status": "SUCCESS", "call_id": TRANSFER_CALL_ID, "error": "",
                             "target": "sip:%s@127.0.0.1:32681" % AGENT}
    assert len(call.posts()) == 1
    (refer,) = lab_sip_log.requests_sent(call.sip_messages(), "REFER", 15064)
    assert re.fullmatch(r"<sip:%s@127\.0\.0\.1:32681\?X-EI=S\.%s%%3BE\.[0-9]+\.[0-9]+%%3B>" % (re.escape(AGENT), TRANSFER_CALL_ID),
                        refer.header("Refer-To"))
    invite = agent_invite(agent)
    assert invite.header("User-Agent") == "lab-carrier-asterisk"
    assert invite.header("X-EI") is None and TRANSFER_CALL_ID not in invite.text


@pytest.mark.e2e
def test_dial_mode_with_the_same_carrier_delivers_x_ei(call, carrier):
    """Dial mode with the same carrier on the customer side: the PBX's INVITE to the agent carries X-EI: S.<id>;."""
    call.model.script({"kind": "ok", "call_id": DIAL_CALL_ID})
    agent = call.sipp("agent", "agent_requires_pbx_xei.xml", SYNTHFLOW)
    call.originate("e2e-refer-drops-dial", {"CUSTOMER_NUMBER": CUSTOMER}, endpoint="carrier-asterisk")
    agent.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    assert len(call.posts()) == 1
    assert re.fullmatch(r"S\.%s;E\.[0-9]+\.[0-9]+;" % DIAL_CALL_ID, agent_invite(agent).header("X-EI"))
    assert not lab_sip_log.requests_sent(call.sip_messages(), "REFER")
