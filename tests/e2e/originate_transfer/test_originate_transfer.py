"""originate_transfer: the product's main flow, REFER with X-EI in the Refer-To URI."""
import re

import pytest

from lab_run import AGENT, CUSTOMER, CUSTOMER_UAS

CALL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00001"  # also in sipp/customer_accepts_refer.xml


@pytest.mark.e2e
def test_originated_call_is_referred_to_the_agent_with_x_ei(call):
    """An originated, answered call is prepared at the API and REFERred with X-EI=S.<id>, then Asterisk hangs up."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    customer = call.sipp("customer", "customer_accepts_refer.xml", CUSTOMER_UAS)
    call.originate("e2e-originate-transfer", {"CUSTOMER_NUMBER": CUSTOMER, "customer_name": "Jane Doe"})
    customer.assert_passed()
    assert call.result() == {"status": "SUCCESS", "call_id": CALL_ID, "error": "",
                             "target": "sip:%s@127.0.0.1:32681" % AGENT}
    (post,) = call.posts()
    assert post["body"] == {"from_number": CUSTOMER, "to_number": AGENT, "model_id": "lab-model",
                            "workspace_id": "lab-workspace",
                            "custom_variables": {"customer_name": "Jane Doe", "campaign": "spring"}}


@pytest.mark.e2e
def test_amd_branch_hands_off_a_call_that_is_not_a_machine(call):
    """With USE_AMD=1 the sample runs AMD(); a non-MACHINE verdict still goes to the agent by REFER."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    customer = call.sipp("customer", "customer_accepts_refer.xml", CUSTOMER_UAS)
    call.originate("e2e-originate-transfer", {"CUSTOMER_NUMBER": CUSTOMER, "USE_AMD": "1"})
    customer.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    assert re.search(r"Executing \[s@synthflow-outbound:\d+\] AMD\(", call.log())  # AMD really ran
