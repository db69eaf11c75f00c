"""Dial mode: the agent REFERs the caller away (Synthflow's warm or cold transfer) while Dial runs."""
from __future__ import annotations

import pytest

from synthflow_agi._agent_transfer import TARGET_CHARACTERS
from tests.contract._helpers import assert_basics, call, sets_of
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess

WAITERS = {"sh": {}, "python": {"SYNTHFLOW_DIAL_WAITER": "python"}}
BLIND = {"BLINDTRANSFER": "PJSIP/synthflow-00000001"}


def moved_to(exten: str, filtered: str, context: str = "from-synthflow", **extra: str) -> dict:
    """The customer's channel as Asterisk leaves it after a REFER: moved, BLINDTRANSFER set.

    The scripted peer evaluates ``FILTER()`` by its full text, so the filtered value is given.
    """
    return {"SYNTHFLOW_MODE": "dial", "CONTEXT": context, "EXTEN": exten,
            "FILTER(%s,%s)" % (TARGET_CHARACTERS, exten): filtered, **extra}


def dial(env, waiter, variables):
    return call({**env, **WAITERS[waiter]}, variables=variables)


@pytest.mark.parametrize("waiter", WAITERS)
@pytest.mark.parametrize("exten, expected", [
    ("0875704225f3a9c1e7", "warm 0875704225f3a9c1e7"),
    ("+14155550199", "cold +14155550199"),
])
def test_a_transfer_by_the_agent_is_success_with_its_kind_and_target(model, env, waiter, exten, expected):
    """A warm or cold REFER from the agent ends the run with SUCCESS and SYNTHFLOW_AGENT_TRANSFER naming it."""
    r = dial(env, waiter, moved_to(exten, exten, **BLIND))
    assert r.status == "SUCCESS" and r.variables["SYNTHFLOW_ERROR"] == ""
    assert sets_of(r, "SYNTHFLOW_AGENT_TRANSFER") == [expected]
    assert r.verboses[-1].endswith("(agent transfer: %s)" % expected), r.verboses
    assert [c.name for c in r.commands[-6:]] == ["GET FULL"] + ["SET VARIABLE"] * 4 + ["VERBOSE"]


@pytest.mark.parametrize("waiter", WAITERS)
@pytest.mark.parametrize("exten, filtered", [
    ('+1415"555\n0199', "+14155550199"),  # a quote and a line break in the Refer-To user part
    ("0875704225" + "a" * 60, "0875704225" + "a" * 60),  # longer than 64
    ("sales-team", "salesteam"),
])
def test_a_target_of_an_odd_shape_is_never_echoed_only_its_kind(model, env, waiter, exten, filtered):
    """A REFER target that FILTER() changed, or over 64 bytes, gives the kind alone; its text reaches neither the wire nor the log."""
    r = dial(env, waiter, moved_to(exten, filtered, **BLIND))
    kind = "warm" if exten.startswith("0875704225") else "cold"
    assert r.status == "SUCCESS"
    assert sets_of(r, "SYNTHFLOW_AGENT_TRANSFER") == [kind]
    assert filtered not in r.stdout.decode() and filtered not in r.stderr


@pytest.mark.parametrize("waiter", WAITERS)
@pytest.mark.parametrize("variables", [
    moved_to("s", "s", context="synthflow-test", **BLIND),  # an old BLINDTRANSFER; the channel stayed
    moved_to("+14155550199", "+14155550199"),  # moved, but not by a blind transfer
])
def test_a_plain_end_of_the_agent_call_names_no_transfer(model, env, waiter, variables):
    """Without BLINDTRANSFER, or when the channel stayed where the AGI ran, no transfer is reported."""
    r = dial(env, waiter, variables)
    assert r.status == "SUCCESS"
    assert sets_of(r, "SYNTHFLOW_AGENT_TRANSFER") == []
    assert [c.name for c in r.commands[-5:]] == ["GET FULL"] + ["SET VARIABLE"] * 3 + ["VERBOSE"]


@pytest.mark.parametrize("exten", ["0875704225f3a9c1e7", '+1415"555\n0199'])
def test_the_shell_waiter_speaks_the_same_lines_as_python(model, env, exten):
    """After an agent's transfer the /bin/sh waiter puts exactly Python's lines on the AGI wire."""
    model.script({"kind": "ok", "call_id": "0d1a1e55-7a17-4c5e-a11b-5e11d1a10002"},
                 {"kind": "ok", "call_id": "0d1a1e55-7a17-4c5e-a11b-5e11d1a10002"})
    variables = moved_to(exten, exten.replace('"', "").replace("\n", ""), **BLIND)
    shell, python = dial(env, "sh", variables), dial(env, "python", variables)
    assert [c.raw for c in shell.commands] == [c.raw for c in python.commands]
    assert sets_of(shell, "SYNTHFLOW_AGENT_TRANSFER") == sets_of(python, "SYNTHFLOW_AGENT_TRANSFER") != []


def test_fastagi_reports_the_transfer_with_the_classic_lines(model, env):
    """The FastAGI server reads and reports an agent's transfer with the classic AGI's very lines."""
    model.script({"kind": "ok", "call_id": "0d1a1e55-7a17-4c5e-a11b-5e11d1a10003"},
                 {"kind": "ok", "call_id": "0d1a1e55-7a17-4c5e-a11b-5e11d1a10003"})
    variables = moved_to("0875704225f3a9c1e7", "0875704225f3a9c1e7", **BLIND)
    classic = dial(env, "sh", variables)
    server = FastAgiServerProcess(env, ["--read-timeout", "5", "--grace", "5"]).start()
    try:
        fast = FastAgiPeer(server.port, variables=variables).run(timeout=15)
    finally:
        assert server.stop() == 0, server.log
    assert_basics(fast)
    assert sets_of(fast, "SYNTHFLOW_AGENT_TRANSFER") == ["warm 0875704225f3a9c1e7"]
    assert [c.raw for c in fast.commands] == [c.raw for c in classic.commands]
