"""auto_mode: a REFER refused as a method falls back to Dial; a result that can follow a 202 never does."""
import pytest

from lab_run import CUSTOMER, CUSTOMER_UAS, HUMANS, SYNTHFLOW
from lab_sip_log import requests_sent

CALL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00004"  # also in both sipp/*.xml


@pytest.mark.e2e
def test_refer_refused_as_a_method_falls_back_to_dial_with_one_prepare(call):
    """The customer answers the REFER with 501; the call is bridged to Synthflow with X-EI and the API saw one POST."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    agent = call.sipp("agent", "agent_requires_xei.xml", SYNTHFLOW)
    customer = call.sipp("customer", "customer_refuses_refer_501.xml", CUSTOMER_UAS)
    call.originate("e2e-auto-mode", {"CUSTOMER_NUMBER": CUSTOMER})
    customer.assert_passed()
    agent.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    assert len(call.posts()) == 1
    messages = call.sip_messages()
    assert len(requests_sent(messages, "REFER")) == 1
    assert len(requests_sent(messages, "INVITE", SYNTHFLOW)) == 1


@pytest.mark.e2e
def test_refer_declined_never_leads_to_a_second_invite(call):
    """A 603 (which Asterisk also reports after an accepted REFER) ends TRANSFER_FAILED at the humans, no Dial to Synthflow."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    humans = call.sipp("humans", "humans_require_no_xei.xml", HUMANS)
    customer = call.sipp("customer", "customer_refuses_refer_603.xml", CUSTOMER_UAS)
    call.originate("e2e-auto-mode", {"CUSTOMER_NUMBER": CUSTOMER})
    customer.assert_passed()
    humans.assert_passed()
    result = call.result()
    assert result["status"] == "TRANSFER_FAILED", result
    assert "no Dial follows" in result["error"], result
    assert len(call.posts()) == 1
    messages = call.sip_messages()
    assert len(requests_sent(messages, "REFER")) == 1
    assert requests_sent(messages, "INVITE", SYNTHFLOW) == []
