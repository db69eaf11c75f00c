"""Two FastAGI servers behind DNS SRV (hagi://) or HAProxy: a killed server costs no call, a drained one costs nothing.

Each case places 24 calls at 4 calls/s through the lab's Asterisk 22.  The API answers
after 1 s and the agent holds each call 2 s, so at the fault the victim (agi-a) holds
calls in both phases: waiting for the API, and bridged to the agent.  bench/failover.py
runs the same plans at 20 calls/s for 30 s.
"""
import pytest

from failover_lab import Plan

CALLS = 24


def plan(mechanism, fault):
    return Plan(mechanism, fault, calls=CALLS, rate=4, hold_ms=2000, api_delay=1.0, fault_at=2.5, restart_at=4.0)


def assert_sound(result, mechanism):
    """What every run must show, whatever its fault."""
    assert result["neither"] == 0, result
    assert result["agent"] + result["humans"] == CALLS, result
    assert result["customer_exit"] == 0, result
    assert result["problems"] == [], result
    # Calls placed after the fault never noticed it.
    assert result["new_calls"] >= 8 and result["new_calls_affected"] == 0, result
    if mechanism == "hagi":
        # Every call asked the lab's DNS server for the SRV record: Asterisk resolved through it.
        assert result["srv_queries"] == CALLS, result


@pytest.mark.e2e
@pytest.mark.parametrize("mechanism", ["hagi", "haproxy"])
def test_sigkill_sends_the_victims_waiting_calls_to_humans_and_loses_none(failover, mechanism):
    """SIGKILL of one server: its calls still waiting for the API go to the humans, its bridged calls stay with the agent, new calls all reach the agent, and the restarted server takes calls again."""
    result = failover.run(plan(mechanism, "kill"), "%s-kill" % mechanism)
    assert_sound(result, mechanism)
    assert result["exit_code"] == 137, result
    waiting_at_kill = result["humans"]
    assert waiting_at_kill >= 1, result
    # Only calls that were on the victim at the kill went to the humans ...
    assert result["old_calls_to_humans"] == waiting_at_kill, result
    # ... and some of the victim's calls were bridged then, and were not queued afterwards.
    assert result["in_flight_at_fault"] - waiting_at_kill >= 1, result
    assert result["agent_and_humans"] == 0, result
    assert result["victim_calls_after_restart"] >= 1, result


@pytest.mark.e2e
@pytest.mark.parametrize("mechanism", ["hagi", "haproxy"])
def test_sigterm_drains_one_server_without_losing_a_call(failover, mechanism):
    """SIGTERM of one server with calls in flight: all of them finish with the agent, it exits 0, and no call goes to the humans."""
    result = failover.run(plan(mechanism, "term"), "%s-term" % mechanism)
    assert_sound(result, mechanism)
    assert result["in_flight_at_fault"] >= 2, result
    assert result["exit_code"] == 0, result
    assert (result["agent"], result["humans"]) == (CALLS, 0), result
    assert "summary calls=" in result["victim_log_before_restart"], result
    assert " in_flight=0 " in result["victim_log_before_restart"], result
