"""FastAGI: the same calls as the classic AGI, over agi://, against the real server process."""
from __future__ import annotations

import re
import signal
import socket
import threading

import pytest

from tests.contract._helpers import AGENT, TOKEN, assert_basics, call, posts
from tests.support.agi_peer import AgiResult
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess, serving

CALL_ID = "0b9c7d1e-2f3a-4b5c-9d8e-fedcba987654"
CALL_LINE = re.compile(r"^.*status=\S+.*$", re.M)


@pytest.fixture
def server(env):
    """The FastAGI server with the contract tests' settings; stopped (and reaped) after the test."""
    with serving(env, ["--read-timeout", "5", "--grace", "10"], secret=TOKEN) as proc:
        yield proc


def fast_call(server: FastAgiServerProcess, timeout: float = 15.0, **channel: object) -> AgiResult:
    """One call over FastAGI, held to the same basics as a classic run (its log is the server's)."""
    result = FastAgiPeer(server.port, **channel).run(timeout=timeout)  # type: ignore[arg-type]
    assert_basics(result)
    return result


SAME_AS_CLASSIC = {
    "transfer_pjsip": ({}, [{"kind": "ok", "call_id": CALL_ID}]),
    "transfer_chan_sip": ({"agi_type": "SIP"}, [{"kind": "ok", "call_id": CALL_ID}]),
    "dial": ({"variables": {"SYNTHFLOW_MODE": "dial"}}, [{"kind": "ok", "call_id": CALL_ID}]),
    "auto_refused_refer": ({"variables": {"SYNTHFLOW_MODE": "auto"}, "transfer_status": "FAILURE"},
                           [{"kind": "ok", "call_id": CALL_ID}]),
    "custom_variables": ({"args": ["customer_name", "campaign=spring"],
                          "variables": {"customer_name": "Jane \"JD\" Doe; VIP"}},
                         [{"kind": "ok", "call_id": CALL_ID}]),
    "per_call_agent": ({"variables": {"SYNTHFLOW_AGENT_NUMBER": "+14155550124"}},
                       [{"kind": "ok", "call_id": CALL_ID}]),
    "iax2_transfer": ({"agi_type": "IAX2"}, [{"kind": "ok", "call_id": CALL_ID}]),
    "invalid_number": ({"callerid": "not-a-number"}, []),
    "api_error": ({}, [{"kind": "status", "code": 500}]),
    "api_auth": ({}, [{"kind": "status", "code": 401}]),
    "api_retried_then_ok": ({}, [{"kind": "status", "code": 503}, {"kind": "ok", "call_id": CALL_ID}]),
    "not_answered": ({"variables": {"CHANNEL(state)": "Ring"}}, []),
}


@pytest.mark.parametrize("case", sorted(SAME_AS_CLASSIC))
def test_fastagi_sends_what_the_classic_agi_sends(model, env, server, case):
    """Each case gives the classic AGI and FastAGI the same channel and API, and the same wire back."""
    channel, behaviours = SAME_AS_CLASSIC[case]
    model.script(*behaviours)
    classic = call(env, **channel)
    classic_posts = [r.body for r in posts(model)]
    model.reset()
    model.script(*behaviours)
    fast = fast_call(server, **channel)
    assert fast.status == classic.status
    assert [c.raw for c in fast.commands] == [c.raw for c in classic.commands]
    assert [r.body for r in posts(model)] == classic_posts


def test_the_route_must_be_synthflow(model, server):
    """A call to another script gets CONFIG_ERROR naming the route, and no API request."""
    result = fast_call(server, script="other")
    assert result.status == "CONFIG_ERROR"
    assert "agi://host:port/synthflow" in result.variables["SYNTHFLOW_ERROR"]
    assert posts(model) == []


def test_hangup_line_during_the_api_call_stops_the_handoff(model, server):
    """A bare HANGUP line sent while the API answers ends the call as HANGUP, with no Transfer."""
    model.script({"kind": "delay", "seconds": 1, "then": {"kind": "ok", "call_id": CALL_ID}})
    result = fast_call(server, sighup_on=lambda: model.wait_for_request(10))
    assert result.sighup_sent
    assert result.status == "HANGUP"
    assert result.execs == []
    assert len(posts(model)) == 1


def test_hangup_line_before_transfer_gets_no_transfer(model, server):
    """A HANGUP line arriving with a reply, before the Transfer, leaves the channel alone."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    result = fast_call(server, hangup_at="SET VARIABLE PJSIP_HEADER(add,X-EI)", hangup_sends_sighup=True)
    assert result.status == "HANGUP"
    assert result.execs == []


def test_a_slow_call_does_not_hold_up_another(model, server):
    """While one call waits on a slow API, a second call completes its whole hand-off."""
    model.script({"kind": "delay", "seconds": 3, "then": {"kind": "ok", "call_id": CALL_ID}})
    slow_done = threading.Event()
    slow_result = []

    def slow_call():
        slow_result.append(FastAgiPeer(server.port).run(timeout=15))
        slow_done.set()

    thread = threading.Thread(target=slow_call, daemon=True)
    thread.start()
    model.wait_for_request(10)
    quick = fast_call(server)
    assert quick.status == "SUCCESS"
    assert not slow_done.is_set(), "the quick call waited for the slow one"
    thread.join(15)
    assert slow_result and slow_result[0].status == "SUCCESS"
    assert_basics(slow_result[0])


def test_warm_connection_serves_the_next_call(model, server):
    """Sequential calls reuse one pooled keep-alive connection to the API."""
    for _ in range(3):
        assert fast_call(server).status == "SUCCESS"
    ports = {r.client_port for r in posts(model)}
    assert len(posts(model)) == 3 and len(ports) == 1, ports


def test_one_log_line_per_call_and_no_token(model, server):
    """Every call leaves exactly one logfmt line with its status in the server log."""
    fast_call(server)
    model.script({"kind": "status", "code": 500})
    fast_call(server)
    server.wait_for_log(re.compile(r"status=API_ERROR"))
    lines = CALL_LINE.findall(server.log)
    assert len(lines) == 2, server.log
    assert "status=SUCCESS" in lines[0] and "status=API_ERROR" in lines[1]


def test_at_capacity_a_new_connection_is_closed_at_once(model, env):
    """With --max-connections 1 busy, the next connection is closed before any command."""
    model.script({"kind": "delay", "seconds": 2, "then": {"kind": "ok", "call_id": CALL_ID}})
    with FastAgiServerProcess(env, ["--max-connections", "1"]) as server:
        busy = threading.Thread(target=lambda: FastAgiPeer(server.port).run(timeout=15), daemon=True)
        busy.start()
        model.wait_for_request(10)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            assert sock.recv(100) == b""  # closed by the server, nothing sent
        server.wait_for_log(re.compile(r"at capacity, refused a connection"))
        busy.join(15)
        code = server.stop()
        assert code == 0
        assert re.search(r"summary calls=1 success=1 .*rejected=1", server.log), server.log


def test_a_silent_peer_is_dropped_after_the_read_timeout(model, env):
    """A peer that connects and sends nothing is closed after --read-timeout; calls go on."""
    with FastAgiServerProcess(env, ["--read-timeout", "1"]) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            assert sock.recv(100) == b""
        assert fast_call(server).status == "SUCCESS"
        server.stop()
        assert "broken_connections=1" in server.log, server.log


def test_a_peer_that_goes_away_mid_call_is_counted_not_fatal(model, server):
    """A connection closed after the environment block is logged; the next call still succeeds."""
    peer = FastAgiPeer(server.port)
    with peer.connect(10) as sock:
        sock.sendall(peer.env_block().encode())
        sock.recv(4096)  # the first command; then the "channel" vanishes
    assert fast_call(server).status == "SUCCESS"


def test_sigterm_drains_calls_in_flight(model, env):
    """SIGTERM stops accepting, lets the call in flight finish, and exits 0 with a summary."""
    model.script({"kind": "delay", "seconds": 2, "then": {"kind": "ok", "call_id": CALL_ID}})
    with FastAgiServerProcess(env, ["--grace", "20"]) as server:
        results = []
        flight = threading.Thread(target=lambda: results.append(FastAgiPeer(server.port).run(timeout=15)),
                                  daemon=True)
        flight.start()
        model.wait_for_request(10)
        server.send_signal(signal.SIGTERM)
        flight.join(20)
        # Wait for the exit SIGTERM started: a second SIGTERM could land during finalisation.
        assert server.proc.wait(20) == 0
        assert results and results[0].status == "SUCCESS"
        assert_basics(results[0])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        assert re.search(r"summary calls=1 success=1 in_flight=0", server.log), server.log


def test_sighup_reloads_settings_and_keeps_them_when_broken(model, env, ini):
    """SIGHUP applies a changed settings file; a broken one is refused and the old ones stay."""
    from_file = {k: v for k, v in env.items() if k != "SYNTHFLOW_AGENT_NUMBER"}  # the file decides
    ini.write_text("[general]\nagent_number = %s\n" % AGENT)
    with FastAgiServerProcess(from_file) as server:
        ini.write_text("[general]\nagent_number = +14155550199\n")
        server.send_signal(signal.SIGHUP)
        server.wait_for_log(re.compile(r"settings reloaded"))
        first = fast_call(server)
        assert first.variables["SYNTHFLOW_TARGET"].startswith("sip:+14155550199@")
        ini.write_text("[general]\nno_such_key = 1\n")
        server.send_signal(signal.SIGHUP)
        server.wait_for_log(re.compile(r"reload refused, keeping the previous settings"))
        second = fast_call(server)
        assert second.status == "SUCCESS"
        assert second.variables["SYNTHFLOW_TARGET"].startswith("sip:+14155550199@")
        assert posts(model)[-1].body["to_number"] == "+14155550199" != AGENT
