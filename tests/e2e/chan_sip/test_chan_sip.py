"""chan_sip (Asterisk 16): REFER with X-EI in the Refer-To URI, and Dial with SIPAddHeader."""
import re

import pytest

from lab_run import AGENT, CUSTOMER, CUSTOMER_CHAN_SIP, HUMANS, SYNTHFLOW
from lab_sip_log import requests_sent

TRANSFER_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00016"  # in sipp/customer_accepts_refer.xml
DIAL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00017"  # in sipp/agent_requires_chan_sip_xei.xml


@pytest.mark.e2e
@pytest.mark.chan_sip
def test_chan_sip_call_is_referred_with_x_ei_in_a_single_sip_uri(call):
    """A chan_sip call is REFERred to <sip:+agent@host:port?X-EI=S.<id>%3B>, never to a doubled <sip:<sip:...>>."""
    call.model.script({"kind": "ok", "call_id": TRANSFER_ID})
    customer = call.sipp("customer", "customer_accepts_refer.xml", CUSTOMER_CHAN_SIP)
    call.originate("e2e-chan-sip-transfer", {"CUSTOMER_NUMBER": CUSTOMER}, endpoint="customer-sip",
                   technology="SIP")
    customer.assert_passed()
    assert call.result() == {"status": "SUCCESS", "call_id": TRANSFER_ID, "error": "",
                             "target": "sip:%s@127.0.0.1:32681" % AGENT}
    log = call.log()
    # The Transfer argument follows the channel: chan_sip adds <sip:...> itself.
    assert re.search(r'AGI Rx << EXEC Transfer "SIP/\+14155550123@127\.0\.0\.1:32681\?X-EI=S\.%s%%3BE\.[0-9.]+%%3B"'
                     % TRANSFER_ID, log), log[-3000:]
    assert "<sip:<sip:" not in log and "PJSIP/<sip:" not in log  # nor on the wire: sipdebug logs every message


@pytest.mark.e2e
@pytest.mark.chan_sip
def test_chan_sip_dial_puts_x_ei_on_the_chan_sip_invite(call):
    """Dial reaches the agent over chan_sip; SIPAddHeader adds X-EI: S.<id>;; one POST."""
    call.model.script({"kind": "ok", "call_id": DIAL_ID})
    agent = call.sipp("agent", "agent_requires_chan_sip_xei.xml", SYNTHFLOW)
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_CHAN_SIP)
    call.originate("e2e-chan-sip-dial", {"CUSTOMER_NUMBER": CUSTOMER}, endpoint="customer-sip", technology="SIP")
    agent.assert_passed()
    customer.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    assert re.search(r"Executing \[s@synthflow-predial:\d+\] SIPAddHeader\(\"SIP/", call.log())
    assert len(call.posts()) == 1


@pytest.mark.e2e
@pytest.mark.chan_sip
def test_chan_sip_auto_never_dials_after_a_failed_refer(call):
    """chan_sip reports every REFER failure as 1, refused or after a 202 alike, so auto mode ends TRANSFER_FAILED without a Dial."""
    call.model.script({"kind": "ok", "call_id": DIAL_ID})
    humans = call.sipp("humans", "humans_require_no_xei.xml", HUMANS)
    customer = call.sipp("customer", "customer_refuses_refer.xml", CUSTOMER_CHAN_SIP)
    call.originate("e2e-chan-sip-auto", {"CUSTOMER_NUMBER": CUSTOMER}, endpoint="customer-sip", technology="SIP")
    customer.assert_passed()
    humans.assert_passed()
    result = call.result()
    assert result["status"] == "TRANSFER_FAILED", result
    assert "(SIP 1)" in result["error"] and "no Dial follows" in result["error"], result
    assert len(call.posts()) == 1
    assert requests_sent(call.sip_messages(), "INVITE", SYNTHFLOW) == []
