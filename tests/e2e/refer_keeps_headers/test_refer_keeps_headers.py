"""refer_keeps_headers: pjsua2 follows the hand-off REFER and copies X-EI onto its INVITE."""
import re

import pytest

import lab_sip_log
from lab_run import AGENT, CUSTOMER, SYNTHFLOW

CALL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00021"  # also in sipp/agent_requires_pjsua2_xei.xml
PJSUA2_PORT = 15075  # the carrier-pjsua2 trunk (docker/asterisk/pjsip-refer-recipients.conf)


@pytest.mark.e2e
def test_pjsua2_follows_the_refer_and_the_agent_receives_x_ei(call):
    """Transfer mode to a pjsua2 customer: the agent's INVITE, sent by pjsua2, carries X-EI: S.<issued id>;."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    agent = call.sipp("agent", "agent_requires_pjsua2_xei.xml", SYNTHFLOW)
    customer = call.pjsua("customer", PJSUA2_PORT)
    call.originate("e2e-refer-keeps-transfer", {"CUSTOMER_NUMBER": CUSTOMER}, endpoint="carrier-pjsua2")
    agent.assert_passed()
    assert customer.wait(20) == 0, customer.report()
    # The id the model issued (scripted above) is the one the dialplan reports and the agent got.
    assert call.result() == {"status": "SUCCESS", "call_id": CALL_ID, "error": "",
                             "target": "sip:%s@127.0.0.1:32681" % AGENT}
    (post,) = call.posts()
    assert post["body"]["from_number"] == CUSTOMER and post["body"]["to_number"] == AGENT
    (invite,) = [m for m in lab_sip_log.sipp_received(agent.text("messages.log")) if m.label == "INVITE"]
    assert re.fullmatch(r"S\.%s;E\.[0-9]+\.[0-9]+;" % CALL_ID, invite.header("X-EI"))
    assert invite.header("User-Agent") == "lab-pjsua2"
    targets = [e["target"] for e in customer.events() if e["event"] == "transfer_request"]
    assert len(targets) == 1 and re.fullmatch(
        r"<sip:%s@127\.0\.0\.1:32681\?X-EI=S\.%s%%3BE\.[0-9]+\.[0-9]+%%3B>" % (re.escape(AGENT), CALL_ID), targets[0])
