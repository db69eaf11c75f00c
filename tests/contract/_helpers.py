"""Shared checks for the contract tests (imported by the test modules)."""
from __future__ import annotations

import socket
from typing import Dict, Optional

from tests.support.agi_peer import AgiPeer, AgiResult
from tests.support.synthflow_model import SynthflowModel

TOKEN = "sk-test-Zq8-SECRET-7f3a"
AGENT = "+15557654321"
CALLER = "+15551230000"
STATUSES = {"SUCCESS", "NOT_ANSWERED", "INVALID_NUMBER", "CONFIG_ERROR", "API_AUTH_FAILED",
            "API_ERROR", "API_TIMEOUT", "TRANSFER_FAILED", "HANGUP", "INTERNAL_ERROR"}


def call(env: Dict[str, str], timeout: float = 15.0, **channel: object) -> AgiResult:
    """Run the program once on a channel described by ``channel`` and check the basics.

    The basics hold for every run whatever its outcome: it ends by itself with exit 0, no
    traceback, stdout holds only AGI commands the peer understood, each SET VARIABLE has
    exactly two arguments, a known status is set, and the token leaks nowhere.
    """
    result = AgiPeer(**channel).run(env=env, timeout=timeout)  # type: ignore[arg-type]
    assert_basics(result)
    return result


def assert_basics(result: AgiResult, token: Optional[str] = TOKEN) -> None:
    assert not result.timed_out, result
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr, result.stderr
    expected_stdout = "".join(c.raw + "\n" for c in result.commands)
    assert result.stdout.decode("utf-8", "surrogateescape") == expected_stdout, result
    for c in result.commands:
        assert not c.reply.startswith("510"), "unknown command on stdout: %r" % c
        assert not c.reply.startswith("520"), "bad usage: %r" % c
        assert "\r" not in c.raw and len(c.raw.encode("utf-8", "surrogateescape")) < 8192, c
    assert result.status in STATUSES, result
    statuses = [v for n, v in result.sets if n == "SYNTHFLOW_STATUS"]
    assert len(statuses) == 1, result.sets
    # set on every run whatever happens, then one VERBOSE line, last
    for name in ("SYNTHFLOW_ERROR", "SYNTHFLOW_TARGET"):
        assert name in [n for n, _ in result.sets], (name, result.sets)
    assert len(result.verboses) == 1, result.verboses
    assert result.commands[-1].name == "VERBOSE", result.commands[-3:]
    if result.status == "SUCCESS" and result.variables.get("SYNTHFLOW_DEGRADED") != "1":
        assert result.variables["SYNTHFLOW_ERROR"] == "", result.variables
    if token:
        assert_no_token(result, token)


def assert_no_token(result: AgiResult, token: str) -> None:
    assert token.encode() not in result.stdout
    assert token not in result.stderr
    for name, value in result.variables.items():
        assert token not in value, name
    for line in result.verboses:
        assert token not in line


def posts(model: SynthflowModel):
    """The API requests the model received (control calls are never recorded)."""
    return [r for r in model.requests if r.path.endswith("/prepare_inbound")]


def sets_of(result: AgiResult, name: str):
    return [v for n, v in result.sets if n == name]


def assert_no_handoff(result: AgiResult) -> None:
    """No application ran and no X-EI was prepared: nothing went anywhere near SIP."""
    assert result.execs == [], result.execs
    assert not sets_of(result, "PJSIP_HEADER(add,X-EI)")
    assert not sets_of(result, "_SYNTHFLOW_XEI")


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
