"""api_failure_fallback: when prepare_inbound fails, the call reaches the human queue without X-EI."""
import pytest

from lab_run import CUSTOMER, CUSTOMER_UAS, HUMANS, SYNTHFLOW
from lab_sip_log import requests_sent

FAILURES = [
    # (test id, API model behaviours, status the dialplan must report)
    ("api_down", None, "API_ERROR"),
    ("http_500", [{"kind": "status", "code": 500}], "API_ERROR"),
    ("http_503_every_time", [{"kind": "status", "code": 503}] * 5, "API_ERROR"),
    ("http_401", [{"kind": "status", "code": 401}], "API_AUTH_FAILED"),
    ("not_json", [{"kind": "not_json"}], "API_ERROR"),
    ("too_slow", [{"kind": "delay", "seconds": 6}], "API_TIMEOUT"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("behaviours,status", [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_api_failure_lands_on_the_human_queue(call, behaviours, status):
    """A failing API gives the right status, no hand-off, and the human queue gets an INVITE without X-EI."""
    if behaviours is None:
        call.model.stop()  # connection refused; the next test's fixture restarts it
    else:
        call.model.script(*behaviours)
    humans = call.sipp("humans", "humans_require_no_xei.xml", HUMANS)
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_UAS)
    call.originate("e2e-api-failure", {"CUSTOMER_NUMBER": CUSTOMER})
    humans.assert_passed()
    customer.assert_passed()
    result = call.result()
    assert result["status"] == status, result
    assert result["call_id"] == "" and result["error"]
    messages = call.sip_messages()
    assert requests_sent(messages, "REFER") == []
    assert requests_sent(messages, "INVITE", SYNTHFLOW) == []
