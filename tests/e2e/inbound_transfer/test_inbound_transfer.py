"""inbound_transfer: a call from the customer is handed off by REFER with X-EI."""
import pytest

from lab_run import AGENT, CUSTOMER

CALL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00002"  # also in sipp/customer_calls_accepts_refer.xml


@pytest.mark.e2e
def test_inbound_call_is_referred_to_the_agent_with_x_ei(call):
    """An inbound call is answered, prepared with the caller's number, REFERred with X-EI, and Asterisk hangs up."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    caller = call.inbound("customer_calls_accepts_refer.xml", mode="transfer")
    caller.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    (post,) = call.posts()
    assert post["body"]["from_number"] == CUSTOMER
    assert post["body"]["to_number"] == AGENT
    assert post["body"]["custom_variables"] == {"dialed_number": "+14155550100"}
