"""What only a private network can show: how many connects were tried, and a name server that never answers.

Each test runs a driver (``namespace_main`` below) under ``unshare --user --map-root-user
--mount --net``: a network namespace of its own, with only a loopback interface, so the
kernel's TCP counters (``/proc/net/snmp``) count this program's connects and nothing else,
and ``/etc/resolv.conf`` can point at a name server on its 127.0.0.1:53 without touching
the host.  User namespaces make this work unprivileged and inside the lab containers too.
Nothing here can reach beyond the namespace: it has no interface but ``lo``.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parents[2]
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--net"]
BOOT = "import sys; sys.path.insert(0, '.'); from tests.contract.test_api_netns import namespace_main; namespace_main()"
# A name under .test (RFC 6761), answered by nobody: the stub server below drops every query.
SLOW_NAME = "api.synthflow.test"


def run_in_namespace(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run the driver in a fresh namespace; its last stdout line is the JSON outcome."""
    proc = subprocess.run(UNSHARE + [sys.executable, "-c", BOOT, json.dumps(spec)], cwd=str(REPO),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-3000:]
    outcome = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert outcome.get("basics_error") is None, outcome["basics_error"]
    return outcome


@pytest.fixture
def ns_env(env, tmp_path):
    """The contract settings, with the namespace driver's scratch directory."""
    env = dict(env)
    env.pop("SYNTHFLOW_API_URL")
    return {"env": env, "tmp": str(tmp_path)}


@pytest.mark.parametrize("retries", [0, 2, 3])
@pytest.mark.parametrize("agi", ["classic", "fastagi"])
def test_refused_connects_are_retried_exactly_retries_times(ns_env, agi, retries):
    """Nothing listening: the kernel counts exactly retries + 1 refused connects, and the call is API_ERROR."""
    ns_env["env"]["SYNTHFLOW_API_URL"] = "http://127.0.0.1:9/v2"
    ns_env["env"]["SYNTHFLOW_RETRIES"] = str(retries)
    outcome = run_in_namespace(dict(ns_env, agi=agi))
    assert outcome["status"] == "API_ERROR"
    assert "Connection refused" in outcome["error"]
    assert outcome["attempt_fails"] == retries + 1, outcome


@pytest.mark.parametrize("agi", ["classic", "fastagi"])
def test_a_name_server_that_never_answers_is_bounded_by_the_deadline(ns_env, agi):
    """Resolution that hangs (glibc would wait 2 x 5 s) ends API_TIMEOUT within [1.0, 1.3] s of its start."""
    ns_env["env"]["SYNTHFLOW_API_URL"] = "http://%s:9/v2" % SLOW_NAME
    ns_env["env"]["SYNTHFLOW_ALLOW_INSECURE_HTTP"] = "yes"  # a name that is not loopback, in clear text
    outcome = run_in_namespace(dict(ns_env, agi=agi, timeout="1"))
    print("%s slow DNS: step %.3f s, api_ms %.3f s" % (agi, outcome["step"], outcome["api_ms"]))
    assert outcome["status"] == "API_TIMEOUT", outcome
    assert outcome["dns_queries"] >= 1
    assert outcome["api_ms"] >= 1.0
    assert outcome["step"] <= 1.3, outcome
    assert outcome["active_opens"] == (1 if agi == "fastagi" else 0)  # only the FastAGI peer's own


# --- inside the namespace ---------------------------------------------------------------------

def _loopback_up() -> None:
    siocsifflags, up_loopback_running = 0x8914, 0x1 | 0x8 | 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", up_loopback_running))


def _private_resolver(tmp: str) -> None:
    """/etc/resolv.conf and nsswitch.conf of this mount namespace only: files, then 127.0.0.1."""
    for name, text in (("resolv.conf", "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n"),
                       ("nsswitch.conf", "hosts: files dns\n")):
        path = os.path.join(tmp, name)
        with open(path, "w") as fh:
            fh.write(text)
        subprocess.run(["mount", "--bind", path, "/etc/" + name], check=True)


def _silent_name_server(arrivals: List[float]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))

    def drop_queries() -> None:
        while True:
            sock.recv(2048)
            arrivals.append(time.monotonic())

    threading.Thread(target=drop_queries, daemon=True).start()


def _tcp_counters() -> Dict[str, int]:
    with open("/proc/net/snmp") as fh:
        names, values = [line.split()[1:] for line in fh if line.startswith("Tcp:")]
    return dict(zip(names, map(int, values)))


def namespace_main() -> None:
    """The driver: one call through the classic AGI or FastAGI, reported as one JSON line."""
    from tests.contract._helpers import assert_basics
    from tests.contract.test_api_deadline import TimedAgiPeer, TimedFastAgiPeer, api_ms
    from tests.support.fastagi_peer import FastAgiServerProcess

    spec = json.loads(sys.argv[1])
    _loopback_up()
    _private_resolver(spec["tmp"])
    queries: List[float] = []
    _silent_name_server(queries)
    variables = {"SYNTHFLOW_TIMEOUT": spec["timeout"]} if spec.get("timeout") else {}
    before = _tcp_counters()
    if spec["agi"] == "classic":
        peer: Any = TimedAgiPeer(variables=variables)
        result = peer.run(env=spec["env"], timeout=20)
        log = result.stderr
    else:
        server = FastAgiServerProcess(spec["env"], ["--read-timeout", "5", "--grace", "5"]).start()
        try:
            before = _tcp_counters()
            peer = TimedFastAgiPeer(server.port, variables=variables)
            result = peer.run(timeout=20)
            server.wait_for_log(re.compile(r"uniqueid=\S+ .*api_ms="), 10)
        finally:
            server.stop()
        log = server.log
    after = _tcp_counters()
    basics_error = None
    try:
        assert_basics(result)
    except AssertionError as exc:
        basics_error = str(exc)[-2000:]
    print(json.dumps({
        "status": result.status, "error": result.variables.get("SYNTHFLOW_ERROR", ""),
        "attempt_fails": after["AttemptFails"] - before["AttemptFails"],
        "active_opens": after["ActiveOpens"] - before["ActiveOpens"],
        "dns_queries": len(queries), "step": peer.first_command_after(queries[0]) - queries[0] if queries else None,
        "api_ms": api_ms(log, peer.uniqueid), "basics_error": basics_error,
    }))
