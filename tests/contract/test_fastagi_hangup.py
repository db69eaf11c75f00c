"""A FastAGI HANGUP line that is already waiting before the API step means no POST and no hand-off."""
from __future__ import annotations

import pytest

from tests.contract._helpers import assert_basics, assert_no_handoff, posts
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess

CALL_ID = "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6"
# The last read before the API: the settings batch, or the custom variables when there are some.
LAST_READ_BEFORE_THE_API = {
    "settings_batch": ([], "GET FULL VARIABLE ${LEN(${CHANNEL(linkedid)})}"),
    "custom_variables": (["customer_name"], "GET FULL VARIABLE ${LEN(${customer_name})}"),
}


@pytest.fixture
def server(env):
    """The FastAGI server with the contract tests' settings; stopped (and reaped) after the test."""
    proc = FastAgiServerProcess(env, ["--read-timeout", "5"]).start()
    try:
        yield proc
    finally:
        assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


@pytest.mark.parametrize("mode", ["transfer", "dial"])
@pytest.mark.parametrize("case", sorted(LAST_READ_BEFORE_THE_API))
def test_hangup_line_pending_before_the_api_means_no_post(model, server, case, mode):
    """HANGUP sent right after the last read before the API: status HANGUP, zero POSTs, no Transfer or Dial.

    The zero-POST part relies on the core asking ``channel.hung_up`` right before the API call.
    """
    args, last_read = LAST_READ_BEFORE_THE_API[case]
    model.script({"kind": "ok", "call_id": CALL_ID})
    result = FastAgiPeer(server.port, args=args, variables={"customer_name": "Jane", "SYNTHFLOW_MODE": mode},
                         hangup_after=last_read).run(timeout=15)
    assert_basics(result)
    assert result.sighup_sent
    assert result.status == "HANGUP"
    assert_no_handoff(result)
    assert posts(model) == []


def test_hangup_line_after_the_post_still_stops_the_handoff(model, server):
    """HANGUP sent with the reply to the X-EI header set (after the POST) leaves the channel without Transfer."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    result = FastAgiPeer(server.port, hangup_after="SET VARIABLE PJSIP_HEADER(add,X-EI)").run(timeout=15)
    assert_basics(result)
    assert result.status == "HANGUP"
    assert result.execs == []
    assert len(posts(model)) == 1
