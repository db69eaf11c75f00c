"""Values that span lines, oversized values and exact arguments, over classic AGI and FastAGI alike."""
from __future__ import annotations

import pytest

from synthflow_agi._wire import AgiValueError
from tests.contract._helpers import assert_basics, call, posts
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess

CALL_ID = "5d0c3b2a-1e9f-4a8b-8c7d-6e5f4a3b2c1d"
# Each would be taken for a reply (or the end of one) by a reader that goes line by line.
TRICKY_VALUES = {
    "lf": "a\nb",
    "crlf": "a\r\nb\r\nc",
    "reply_lines": "x)\n200 result=0\n510 Invalid or unknown command\n",
    "hangup_line": "before\nHANGUP\nafter",
    "trailing_cr": "ends with CR\r",
    "unicode_lines": "Zoë\nßtraße\n",
    "only_newlines": "\n\n\n",
}


@pytest.fixture(params=["classic", "fastagi"])
def run(request, model, env):
    """Run one call over the transport named by the parameter (the FastAGI server is started once per test)."""
    if request.param == "classic":
        yield lambda **channel: call(env, **channel)
        return
    server = FastAgiServerProcess(env, ["--read-timeout", "5"]).start()

    def fast(**channel):
        result = FastAgiPeer(server.port, **channel).run(timeout=15)
        assert_basics(result)
        return result

    try:
        yield fast
    finally:
        assert server.stop() == 0
        assert "Traceback" not in server.log, server.log


@pytest.mark.parametrize("name", sorted(TRICKY_VALUES))
def test_a_value_over_several_lines_passes_exactly_and_the_stream_stays_in_step(model, run, name):
    """A channel variable holding LF, CRLF or reply-like lines reaches the API byte for byte, and the call completes."""
    value = TRICKY_VALUES[name]
    model.script({"kind": "ok", "call_id": CALL_ID})
    r = run(args=["note", "tag=t"], variables={"note": value, "SYNTHFLOW_MODE": "dial"})
    assert r.status == "SUCCESS"
    assert posts(model)[0].body["custom_variables"] == {"note": value, "tag": "t"}
    assert r.execs[0][0] == "Dial"
    # the reply to every later command was read as its own: the status was read back and published
    assert r.variables["SYNTHFLOW_CALL_ID"] == CALL_ID


def test_multi_line_values_in_the_settings_batch_keep_it_in_step(model, run):
    """Line breaks in several values of the one settings read still give every setting its own value."""
    r = run(variables={"SYNTHFLOW_VARIABLES": "", "SYNTHFLOW_MODE": "dial", "CHANNEL(linkedid)": "L\n1\r\n",
                       "SYNTHFLOW_FROM_NUMBER": "+15551230000"})
    assert r.status == "SUCCESS"
    assert r.execs[0][0] == "Dial"  # the mode after the multi-line linkedid was read right


def test_a_value_at_the_limit_passes_whole(model, run):
    """A value of exactly 64 KiB (the most one reply may hold) reaches the API whole."""
    value = ("x" * 1023 + "\n") * 64
    r = run(args=["big"], variables={"big": value})
    assert r.status == "SUCCESS"
    assert posts(model)[0].body["custom_variables"] == {"big": value}


def test_a_value_over_the_limit_is_refused_and_skipped_by_its_length(model, run):
    """A 100 kB multi-line value is refused by name, no POST, and the replies after it still read right."""
    r = run(args=["big"], variables={"big": ("y" * 99 + "\n") * 1000})
    assert r.status == AgiValueError.status.value
    assert r.variables["SYNTHFLOW_ERROR"] == "channel variable big holds 100000 bytes, more than the 65536 read"
    assert posts(model) == []
    assert r.execs == []


@pytest.mark.parametrize("literal", ["  two leading and trailing  ", "ends with CR\r", " \r", "a: b", "x=y=z"])
def test_argument_values_pass_exactly(model, run, literal):
    """A key=value argument keeps its spaces, a trailing CR and its colons: res_agi's line is read as written."""
    r = run(args=["note=" + literal])
    assert r.status == "SUCCESS"
    assert posts(model)[0].body["custom_variables"] == {"note": literal}


@pytest.mark.parametrize("args", [["x" * 8200], ["a=b"] * 300], ids=["line_over_8192_bytes", "300_lines"])
def test_classic_agi_refuses_an_oversized_environment_and_ends_cleanly(model, env, args):
    """An environment line over 8192 bytes or a block over 256 lines ends the program at once, exit 0, no command."""
    from tests.support.agi_peer import AgiPeer

    r = AgiPeer(args=args).run(env=env)
    assert not r.timed_out and r.returncode == 0, r
    assert r.stdout == b""
    assert "refused the AGI environment" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert posts(model) == []
