"""way_back: the AI agent hands a dial-mode caller back to a human on this PBX."""
import pytest

from lab_peers import Sipp
from lab_run import CUSTOMER_UAS, HUMANS, SYNTHFLOW

CALL_ID = "5a0b7c3d-9e1f-4a2b-8c3d-0a11e2e0b001"
WARM_ID = "0875704225f3a9c1e7"
HUMAN_NUMBER = "+14155550199"
SYNTHFLOW_OUT = 32683  # the port Synthflow's own INVITE comes from, on 127.0.0.2


def synthflow_peer(call, xml, port, ip, remote=None, calls=1, **kw):
    """A SIPp bound to ip (Synthflow's address in the lab), running `calls` calls."""
    peer = Sipp(call.lab.run_dir / call.test_name, "%s-%d" % (xml.split(".")[0], port),
                call.scenario_dir / "sipp" / xml, port, remote=remote, **kw)
    peer.cmd[peer.cmd.index("-i") + 1] = ip
    peer.cmd[peer.cmd.index("-mi") + 1] = ip
    peer.cmd[peer.cmd.index("-m") + 1] = str(calls)
    call.peers.append(peer)
    return peer.start()


def hand_off(call, refer_to, calls=2):
    """Originate a dial-mode hand-off to an agent that will REFER the caller to refer_to."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    agent = synthflow_peer(call, "agent_refers.xml", SYNTHFLOW, "127.0.0.1", calls=calls,
                           keys={"refer_to": refer_to})
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_UAS)
    call.originate("e2e-way-back", {"CUSTOMER_NUMBER": "+12125550199"})
    call.asterisk.wait_for(r"PJSIP/synthflow-\S+ answered PJSIP/customer-", call.mark)
    return agent, customer


@pytest.mark.e2e
def test_a_warm_transfer_dials_back_to_synthflow_and_the_human_sees_the_summary(call):
    """Warm: Synthflow's INVITE reaches the human with the filtered summary, its REFER sends the caller back to Synthflow's 0875704225 URI."""
    human = call.sipp("human", "human_answers.xml", HUMANS)
    agent, customer = hand_off(call, WARM_ID)
    synthflow = synthflow_peer(call, "synthflow_invites_human.xml", SYNTHFLOW_OUT, "127.0.0.2",
                               remote="127.0.0.1:15060", service=HUMAN_NUMBER)
    synthflow.assert_passed()
    human.assert_passed()
    agent.assert_passed()
    customer.assert_passed()
    result = call.result()
    assert result["status"] == "SUCCESS", result
    log = call.log()
    # the customer's channel went on in [from-synthflow], the program's verdict beside it
    assert ("SYNTHFLOW_WAYBACK warm to %s@127.0.0.1:32681 agent_transfer=warm %s" % (WARM_ID, WARM_ID)
            in log), log[-4000:]
    assert "synthflow-agi: SUCCESS call_id=%s (agent transfer: warm %s)" % (CALL_ID, WARM_ID) in log
    assert "Synthflow hand-off failed" not in log


@pytest.mark.e2e
def test_a_cold_transfer_takes_the_caller_to_the_human(call):
    """Cold: the agent REFERs the caller to the human's number; the customer's channel reaches the queue's member."""
    human = call.sipp("human", "human_hangs_up.xml", HUMANS)
    agent, customer = hand_off(call, HUMAN_NUMBER, calls=1)
    agent.assert_passed()
    human.assert_passed()
    customer.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    log = call.log()
    assert "synthflow-agi: SUCCESS call_id=%s (agent transfer: cold %s)" % (CALL_ID, HUMAN_NUMBER) in log
    assert "Executing [%s@from-synthflow:2] Queue(\"PJSIP/customer-" % HUMAN_NUMBER in log
    assert "SYNTHFLOW_HANDBACK" not in log  # the customer's channel: its headers are not Synthflow's
    assert "Synthflow hand-off failed" not in log


@pytest.mark.e2e
def test_a_refer_from_the_customer_side_is_declined(call):
    """A REFER to a 0875704225 URI from the customer's trunk (not the synthflow endpoint) gets 603 and moves nothing."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    agent = call.sipp("agent", "agent_answers.xml", SYNTHFLOW)
    customer = call.sipp("customer", "customer_refers.xml", CUSTOMER_UAS)
    call.originate("e2e-way-back", {"CUSTOMER_NUMBER": "+12125550199"})
    customer.assert_passed()
    agent.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    log = call.log()
    assert "Endpoint customer transfer attempt blocked" in log
    assert "@from-synthflow:" not in log and "agent transfer" not in log  # nothing ran there
