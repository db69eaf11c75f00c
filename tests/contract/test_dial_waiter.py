"""Dial mode on the classic AGI: the long wait inside Dial runs in a small shell, not in Python."""
from __future__ import annotations

import os
import signal

import pytest

from tests.contract._helpers import call, posts
from tests.support.agi_peer import AgiPeer

SHELL = os.path.realpath("/bin/sh")
MAX_PRIVATE_KB = 2048
CALL_ID = "0d1a1e55-7a17-4c5e-a11b-5e11d1a10001"


def _private_kb(pid: int) -> int:
    with open("/proc/%d/smaps_rollup" % pid) as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    return sum(int(fields[key].split()[0]) for key in ("Private_Clean", "Private_Dirty"))


class ProcessAtDial:
    """A command matcher that looks at the AGI process when EXEC Dial arrives, and never matches."""

    def __init__(self, peer: AgiPeer, send_sighup: bool = False) -> None:
        self.peer, self.send_sighup = peer, send_sighup
        self.exe = ""
        self.private_kb = -1

    def __call__(self, words) -> bool:
        if words[:2] == ["EXEC", "Dial"]:
            pid = self.peer._proc.pid
            self.exe = os.path.realpath("/proc/%d/exe" % pid)
            self.private_kb = _private_kb(pid)
            if self.send_sighup:
                os.kill(pid, signal.SIGHUP)
        return False


def dial_call(env, peer_kwargs=None, send_sighup=False):
    peer = AgiPeer(variables={"SYNTHFLOW_MODE": "dial"}, **(peer_kwargs or {}))
    probe = ProcessAtDial(peer, send_sighup)
    peer.force_replies = [(probe, "unused")]
    result = peer.run(env=env)
    return result, probe


def test_the_wait_inside_dial_holds_under_2_mb_of_private_memory(model, env):
    """While Dial runs, the AGI process is the shell waiter, holding under 2 MB of its own memory."""
    result, probe = dial_call(env)
    assert result.returncode == 0 and result.status == "SUCCESS", result
    assert probe.exe == SHELL
    assert 0 < probe.private_kb < MAX_PRIVATE_KB, probe.private_kb
    assert len(posts(model)) == 1


def test_python_can_be_kept_for_the_wait(model, env):
    """SYNTHFLOW_DIAL_WAITER=python keeps Dial in the Python process, with the same lines on the wire."""
    model.script({"kind": "ok", "call_id": CALL_ID}, {"kind": "ok", "call_id": CALL_ID})
    shell, _ = dial_call(env)
    python, probe = dial_call({**env, "SYNTHFLOW_DIAL_WAITER": "python"})
    assert probe.exe != SHELL and "python" in os.path.basename(probe.exe)
    assert [c.raw for c in python.commands] == [c.raw for c in shell.commands]


@pytest.mark.parametrize("dial_status, status, error", [
    ("ANSWER", "SUCCESS", ""),
    ("BUSY", "TRANSFER_FAILED", "Dial BUSY"),
    ("", "TRANSFER_FAILED", "Dial gave no DIALSTATUS"),
    ('BUSY" x\\', "TRANSFER_FAILED", "Dial UNREADABLE"),
])
def test_the_shell_turns_dialstatus_into_the_documented_status(model, env, dial_status, status, error):
    """DIALSTATUS decides the status in the shell exactly as in Python; odd text is never echoed."""
    r = call({**env, "SYNTHFLOW_MODE": "dial"}, dial_status=dial_status)
    assert (r.status, r.variables["SYNTHFLOW_ERROR"]) == (status, error)
    assert [c.name for c in r.commands[-5:]] == ["GET FULL", "SET VARIABLE", "SET VARIABLE", "SET VARIABLE", "VERBOSE"]
    assert r.variables["CDR(synthflow_status)"] == status
    (line,) = [x for x in r.stderr.splitlines() if "status=" in x]
    assert " status=%s mode=dial call_id=" % status in line
    assert line.endswith(' error="%s"' % error)


def test_a_hangup_during_dial_is_hangup(model, env):
    """Dial ending with result=-1 and no answer gives HANGUP with the DIALSTATUS in the reason."""
    r = call({**env, "SYNTHFLOW_MODE": "dial"}, minus_one_at="EXEC Dial")
    assert r.status == "HANGUP"
    assert r.variables["SYNTHFLOW_ERROR"] == "caller hung up during Dial (DIALSTATUS=CANCEL)"


def test_sighup_during_dial_does_not_kill_the_waiter(model, env):
    """Asterisk's SIGHUP while Dial runs leaves the shell alive to set the status and exit 0."""
    result, probe = dial_call(env, send_sighup=True)
    assert probe.exe == SHELL
    assert result.returncode == 0
    assert result.status == "SUCCESS"
    assert result.commands[-1].name == "VERBOSE"
