"""hangup_during_api: a caller who hangs up while the API is slow ends as HANGUP, cleanly."""
import pytest

from lab_run import SYNTHFLOW
from lab_sip_log import requests_sent


@pytest.mark.e2e
def test_caller_hangup_during_slow_api_is_reported_as_hangup(call):
    """The caller hangs up during a slow prepare_inbound: status HANGUP, no REFER or Dial, no traceback."""
    call.model.script({"kind": "delay", "seconds": 6})
    caller = call.inbound("customer_calls_hangs_up.xml", api_timeout="8")
    caller.assert_passed()
    result = call.result(timeout=15)
    assert result["status"] == "HANGUP", result
    assert len(call.posts()) == 1
    messages = call.sip_messages()
    assert requests_sent(messages, "REFER") == []
    assert requests_sent(messages, "INVITE", SYNTHFLOW) == []
    # the fixture's hygiene check then requires: no Python traceback in log or stderr
