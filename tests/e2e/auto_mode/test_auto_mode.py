"""auto_mode: a refused REFER falls back to Dial with X-EI, without a second prepare."""
import pytest

from lab_run import CUSTOMER, CUSTOMER_UAS, SYNTHFLOW
from lab_sip_log import requests_sent

CALL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00004"  # also in both sipp/*.xml


@pytest.mark.e2e
def test_refused_refer_falls_back_to_dial_with_one_prepare(call):
    """The customer answers the REFER with 603; the call is bridged to Synthflow with X-EI and the API saw one POST."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    agent = call.sipp("agent", "agent_requires_xei.xml", SYNTHFLOW)
    customer = call.sipp("customer", "customer_refuses_refer.xml", CUSTOMER_UAS)
    call.originate("e2e-auto-mode", {"CUSTOMER_NUMBER": CUSTOMER})
    customer.assert_passed()
    agent.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    assert len(call.posts()) == 1
    messages = call.sip_messages()
    assert len(requests_sent(messages, "REFER")) == 1
    assert len(requests_sent(messages, "INVITE", SYNTHFLOW)) == 1
