"""local_channel: a technology no REFER can move fails clearly in transfer mode and still dials."""
import pytest

from lab_run import CUSTOMER, HUMANS, SYNTHFLOW
from lab_sip_log import requests_sent

DIAL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00018"  # in sipp/agent_requires_xei.xml


@pytest.mark.e2e
def test_transfer_mode_on_a_local_channel_fails_clearly_before_the_api(call):
    """Transfer mode on a Local channel: TRANSFER_FAILED naming the technology, no POST, the humans get the call."""
    humans = call.sipp("humans", "humans_require_no_xei.xml", HUMANS)
    call.originate("e2e-local-transfer", {"CUSTOMER_NUMBER": CUSTOMER}, endpoint="e2e-local-answer",
                   number="s", technology="Local")
    humans.assert_passed()
    result = call.result()
    assert result["status"] == "TRANSFER_FAILED", result
    assert result["error"] == "cannot REFER a Local channel: transfer mode needs PJSIP or SIP (use mode=dial)"
    assert call.posts() == []
    assert requests_sent(call.sip_messages(), "REFER") == []


@pytest.mark.e2e
@pytest.mark.parametrize("context", ["e2e-local-dial", "e2e-local-auto"], ids=["dial", "auto"])
def test_dial_and_auto_modes_reach_the_agent_from_a_local_channel(call, context):
    """Dial mode, and auto mode without trying a REFER, reach the agent from a Local channel with X-EI: S.<id>;."""
    call.model.script({"kind": "ok", "call_id": DIAL_ID})
    agent = call.sipp("agent", "agent_requires_xei.xml", SYNTHFLOW)
    call.originate(context, {"CUSTOMER_NUMBER": CUSTOMER}, endpoint="e2e-local-answer", number="s", technology="Local")
    agent.assert_passed()
    result = call.result()
    assert result["status"] == "SUCCESS", result
    assert result["call_id"] == DIAL_ID
    assert len(call.posts()) == 1
    assert requests_sent(call.sip_messages(), "REFER") == []
