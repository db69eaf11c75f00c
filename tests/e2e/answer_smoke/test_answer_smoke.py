"""answer_smoke: the lab itself works (container, PJSIP, call files, SIPp on loopback)."""
import pytest

from lab_run import CUSTOMER_UAS


@pytest.mark.e2e
def test_originated_call_is_answered_by_sipp(call):
    """Asterisk originates to the SIPp customer, which answers and then receives Asterisk's BYE."""
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_UAS)
    call.originate("e2e-answer-smoke", {})
    call.asterisk.wait_for(r"E2E_SMOKE answered PJSIP/customer-\S+ state=Up", call.mark)
    customer.assert_passed()
