"""Hangups at every stage: SIGHUP, ``200 result=-1`` and 511 all end HANGUP, exit 0, no traceback."""
from __future__ import annotations

import pytest

from tests.contract._helpers import assert_basics, assert_no_handoff, call, posts, sets_of
from tests.support.agi_peer import DEAD_MSG, AgiPeer


def test_sighup_during_the_api_call_aborts_it(model, env):
    """SIGHUP while prepare_inbound is pending gives HANGUP at once, with no Transfer."""
    model.script({"kind": "delay", "seconds": 10})
    r = call(env, sighup_on=lambda: model.wait_for_request(10))
    assert r.sighup_sent
    assert r.status == "HANGUP"
    assert sets_of(r, "SYNTHFLOW_STATUS") == ["HANGUP"]
    assert_no_handoff(r)
    assert len(posts(model)) == 1
    assert r.seconds < 4.0, r.seconds  # the API deadline is 4 s: not waited out


def test_sighup_during_the_api_call_in_dial_mode(model, env):
    """In dial mode too, SIGHUP during the API call means no Dial."""
    model.script({"kind": "delay", "seconds": 10})
    r = call(env, variables={"SYNTHFLOW_MODE": "dial"},
             sighup_on=lambda: model.wait_for_request(10))
    assert r.status == "HANGUP"
    assert_no_handoff(r)


def test_sighup_before_the_api_call_makes_no_post(model, env):
    """A hangup (with SIGHUP) while settings are read gives HANGUP and no hand-off."""
    r = call(env, hangup_at="GET FULL VARIABLE", hangup_sends_sighup=True)
    assert r.status == "HANGUP"
    assert_no_handoff(r)


@pytest.mark.parametrize("app,mode", [("Transfer", "transfer"), ("Dial", "dial")])
def test_result_minus_one_on_exec_is_hangup(model, env, app, mode):
    """``200 result=-1`` to the hand-off EXEC gives HANGUP, still set on the channel."""
    r = call(env, variables={"SYNTHFLOW_MODE": mode}, minus_one_at="EXEC " + app)
    assert r.status == "HANGUP"
    assert sets_of(r, "SYNTHFLOW_STATUS") == ["HANGUP"]
    assert [e[0] for e in r.execs] == [app]


def test_auto_mode_hangup_during_transfer_does_not_dial(model, env):
    """A hangup during auto mode's Transfer never falls back to Dial."""
    r = call(env, variables={"SYNTHFLOW_MODE": "auto"}, minus_one_at="EXEC Transfer")
    assert r.status == "HANGUP"
    assert [e[0] for e in r.execs] == ["Transfer"]


def test_dead_channel_at_transfer_with_sighup(model, env):
    """The channel dies as Transfer runs (EXEC gives -1, SIGHUP sent): HANGUP, exit 0."""
    r = call(env, hangup_at="EXEC Transfer", hangup_sends_sighup=True)
    assert r.status == "HANGUP"
    assert r.sighup_sent


def test_dead_channel_without_sighup(model, env):
    """AGISIGHUP=no: the dead channel is only seen in EXEC's -1; still HANGUP."""
    r = call(env, hangup_at="EXEC Transfer")
    assert r.status == "HANGUP"


@pytest.mark.parametrize("where", ["GET FULL VARIABLE ${LEN(${TRANSFERSTATUS})}", "GET FULL VARIABLE"])
def test_511_reply_is_hangup(model, env, where):
    """A 511 dead-channel reply gives HANGUP, never a traceback or a hand-off after it."""
    r = call(env, force_replies=[(where, DEAD_MSG)])
    assert r.status == "HANGUP"
    if where == "GET FULL VARIABLE":  # the batch that reads the state and settings, before the API
        assert_no_handoff(r)
        assert posts(model) == []


def test_minus_one_on_channel_state_is_hangup_not_unanswered(model, env):
    """``result=-1`` to the read of CHANNEL(state) (and the settings) means the caller is gone: HANGUP, no POST."""
    r = call(env, minus_one_at="GET FULL VARIABLE")
    assert r.status == "HANGUP"
    assert posts(model) == []


def test_sighup_after_the_handoff_keeps_success(model, env):
    """SIGHUP at the final VERBOSE, after a completed hand-off, exits 0 with SUCCESS kept."""
    r = call(env, hangup_at="VERBOSE", hangup_sends_sighup=True)
    assert r.status == "SUCCESS"


def test_channel_answering_minus_one_to_everything_still_exits_cleanly(model, env):
    """Even when no command succeeds after the hang-up, the program exits 0 without a traceback."""
    seen = {"dead": False}

    def after_post(words):
        seen["dead"] = seen["dead"] or bool(posts(model))
        return seen["dead"]

    peer = AgiPeer(force_replies=[(after_post, "200 result=-1")] * 50)
    r = peer.run(env=env)
    assert not r.timed_out and r.returncode == 0, r
    assert "Traceback" not in r.stderr, r.stderr


def test_hangup_status_when_peer_is_sighup_only(model, env):
    """SIGHUP with the default deadline and a long delay: one POST, HANGUP, basics hold."""
    model.script({"kind": "delay", "seconds": 10})
    peer = AgiPeer(sighup_on=lambda: model.wait_for_request(10))
    r = peer.run(env=env)
    assert_basics(r)
    assert r.status == "HANGUP"


def test_sighup_during_retry_backoff_aborts_it(model, env):
    """SIGHUP while waiting out a 503's Retry-After gives HANGUP without the retry."""
    model.script({"kind": "status", "code": 503, "retry_after": 3})
    r = call(env, sighup_on=lambda: model.wait_for_request(10))
    assert r.status == "HANGUP"
    assert len(posts(model)) == 1
    assert_no_handoff(r)
    assert r.seconds < 3.0, r.seconds  # the 3 s backoff was not waited out
