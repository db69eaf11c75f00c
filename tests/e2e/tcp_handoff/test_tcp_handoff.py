"""tcp_handoff: the hand-off SIP shape with SYNTHFLOW_SIP_TRANSPORT=tcp."""
import pytest

from lab_run import AGENT, CUSTOMER, CUSTOMER_UAS, CUSTOMER_TCP, SYNTHFLOW

TRANSFER_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00005"  # in sipp/customer_tcp_accepts_refer.xml
DIAL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00006"  # in sipp/agent_tcp_requires_xei.xml


@pytest.mark.e2e
def test_transfer_over_tcp_puts_transport_in_the_refer_to_uri(call):
    """Over a TCP customer leg, the REFER's Refer-To is <sip:+agent@host:port;transport=tcp?X-EI=S.<id>%3B>."""
    call.model.script({"kind": "ok", "call_id": TRANSFER_ID})
    customer = call.sipp("customer", "customer_tcp_accepts_refer.xml", CUSTOMER_TCP, transport="tcp")
    call.originate("e2e-tcp-transfer", {"CUSTOMER_NUMBER": CUSTOMER}, endpoint="customer-tcp")
    customer.assert_passed()
    result = call.result()
    assert result["status"] == "SUCCESS"
    assert result["target"] == "sip:%s@127.0.0.1:32681;transport=tcp" % AGENT


@pytest.mark.e2e
def test_dial_over_tcp_sends_x_ei_on_a_tcp_invite(call):
    """Dial mode with transport tcp reaches the Synthflow UAS over TCP with X-EI: S.<id>; on the INVITE."""
    call.model.script({"kind": "ok", "call_id": DIAL_ID})
    agent = call.sipp("agent", "agent_tcp_requires_xei.xml", SYNTHFLOW, transport="tcp")
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_UAS)
    call.originate("e2e-tcp-dial", {"CUSTOMER_NUMBER": CUSTOMER})
    agent.assert_passed()
    customer.assert_passed()
    assert call.result()["status"] == "SUCCESS"
