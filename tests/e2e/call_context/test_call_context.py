"""call_context: S., E. and O. in X-EI and X-<key> context headers reach the agent byte-exact, in every mode."""
import pytest

from lab_run import CUSTOMER, CUSTOMER_CHAN_SIP, CUSTOMER_UAS, SYNTHFLOW

DIAL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00021"  # in sipp/agent_requires_context.xml
CHAN_SIP_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00022"  # in sipp/agent_requires_chan_sip_context.xml
TRANSFER_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00023"  # in sipp/customer_accepts_refer_context.xml
# Commas, quotes, ';', '&', '?', '=', '%', unicode and spaces: all travel, nothing is trimmed.
NAME = 'Zoë "JD" Doe, VIP; a&b?c=d%e'
CONTEXT = {"CUSTOMER_NUMBER": CUSTOMER, "customer_name": NAME, "SYNTHFLOW_HEADERS": "*",
           "SYNTHFLOW_EXTERNAL_ID": "crm-77"}


@pytest.mark.e2e
def test_dial_mode_puts_the_whole_x_ei_and_the_headers_on_the_invite(call):
    """Dial mode: the agent's INVITE has X-EI S.;E.;O. and X-customer_name, X-campaign exactly as the dialplan had them."""
    call.model.script({"kind": "ok", "call_id": DIAL_ID})
    agent = call.sipp("agent", "agent_requires_context.xml", SYNTHFLOW)
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_UAS)
    call.originate("e2e-context-dial", {**CONTEXT, "SYNTHFLOW_DIVERSION": "+14155550100"})
    agent.assert_passed()
    customer.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    (post,) = call.posts()
    assert post["body"]["custom_variables"] == {"customer_name": NAME, "campaign": "spring"}


@pytest.mark.e2e
def test_transfer_mode_percent_encodes_everything_into_the_refer_to(call):
    """Transfer mode: the Refer-To URI carries X-EI and both headers, every value percent-encoded."""
    call.model.script({"kind": "ok", "call_id": TRANSFER_ID})
    customer = call.sipp("customer", "customer_accepts_refer_context.xml", CUSTOMER_UAS)
    call.originate("e2e-context-transfer", {**CONTEXT, "SYNTHFLOW_DIVERSION": "+14155550100"})
    customer.assert_passed()
    assert call.result()["status"] == "SUCCESS"


@pytest.mark.e2e
def test_an_api_outage_with_direct_still_reaches_the_agent_without_s(call):
    """With the API down and on_api_failure=direct, the agent gets E. and the headers without S.; SUCCESS, degraded."""
    call.model.stop()  # connection refused; the next test's fixture restarts it
    agent = call.sipp("agent", "agent_requires_context_without_s.xml", SYNTHFLOW)
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_UAS)
    call.originate("e2e-context-direct", CONTEXT)
    agent.assert_passed()
    customer.assert_passed()
    result = call.result()
    assert result["status"] == "SUCCESS" and result["call_id"] == "", result
    assert result["error"].startswith("handed off without S.: cannot reach 127.0.0.1"), result


@pytest.mark.e2e
@pytest.mark.chan_sip
def test_chan_sip_dial_adds_every_header_with_sipaddheader(call):
    """chan_sip: the pre-dial handler's SIPAddHeader loop puts X-EI and both context headers on the INVITE."""
    call.model.script({"kind": "ok", "call_id": CHAN_SIP_ID})
    agent = call.sipp("agent", "agent_requires_chan_sip_context.xml", SYNTHFLOW)
    customer = call.sipp("customer", "customer_sip_answers.xml", CUSTOMER_CHAN_SIP)
    call.originate("e2e-context-chan-sip", CONTEXT, endpoint="customer-sip", technology="SIP")
    agent.assert_passed()
    customer.assert_passed()
    assert call.result()["status"] == "SUCCESS"
