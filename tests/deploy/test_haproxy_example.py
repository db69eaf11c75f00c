"""contrib/haproxy.cfg: HAProxy accepts it, and in front of two real FastAGI servers it balances and fails over.

The lab copy changes only addresses (127.0.0.1, free ports, each server's metrics port) and
the check interval (200 ms instead of 2 s, so a server is marked down within a second).
"""
import contextlib
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess
from tests.support.synthflow_model import SynthflowModel

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "contrib" / "haproxy.cfg"
TOKEN = "sk-test-haproxy-2b7e-SECRET"
CALL_LINE = re.compile(r"status=SUCCESS")
METRICS_AT = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")


def haproxy():
    path = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    assert path, "haproxy is missing: `make bootstrap` installs it with apt"
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_config(frontend_port, servers):
    """The shipped file with loopback addresses, each server's metrics port and a fast check interval."""
    text = SHIPPED.read_text()
    text, binds = re.subn(r"(?m)^(\s*bind )\S+$", r"\g<1>127.0.0.1:%d" % frontend_port, text)
    text, removed = re.subn(r"(?m)^\s*server agi\d .*\n", "", text)
    text, checks = re.subn(r"(?m)^(\s*default-server check port 9573) inter 2s ", r"\1 inter 200ms ", text)
    assert (binds, removed, checks) == (1, 3, 1), (binds, removed, checks)
    return text + "".join("    server agi%d 127.0.0.1:%d port %d\n" % (i, port, metrics)
                          for i, (port, metrics) in enumerate(servers, 1))


def start_server(env):
    """A FastAGI server with /healthz on an ephemeral port: (server, its metrics port)."""
    server = FastAgiServerProcess(env, ["--metrics-listen", "127.0.0.1:0"]).start()
    return server, int(server.wait_for_log(METRICS_AT).group(1))


@contextlib.contextmanager
def balance(tmp_path, second_broken=False):
    """Two FastAGI servers behind HAProxy, one API model; everything stopped by its own handle.

    second_broken: the second server runs on unusable settings (its FastAGI port accepts, /healthz says 503).
    """
    ini = tmp_path / "synthflow.conf"
    ini.write_text("[general]\n")
    with SynthflowModel(token=TOKEN) as model:
        env = {"SYNTHFLOW_CONFIG": str(ini), "SYNTHFLOW_API_URL": model.base_url, "SYNTHFLOW_API_TOKEN": TOKEN,
               "SYNTHFLOW_MODEL_ID": "model-1", "SYNTHFLOW_WORKSPACE_ID": "ws-1",
               "SYNTHFLOW_AGENT_NUMBER": "+15557654321"}
        broken = dict(env, SYNTHFLOW_MODE="tranfser") if second_broken else env
        started = [start_server(env), start_server(broken)]
        servers = [server for server, _ in started]
        port = free_port()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(lab_config(port, [(server.port, metrics) for server, metrics in started]))
        log = open(str(tmp_path / "haproxy.log"), "w+")
        proxy = subprocess.Popen([haproxy(), "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    assert proxy.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()
                    time.sleep(0.05)
            yield model, servers, port, proxy, Path(log.name)
        finally:
            proxy.terminate()
            proxy.wait(10)
            log.close()
            for server in servers:
                server.stop()


@pytest.fixture
def balanced(tmp_path):
    with balance(tmp_path) as parts:
        yield parts


@pytest.fixture
def second_broken(tmp_path):
    with balance(tmp_path, second_broken=True) as parts:
        yield parts


def successes(server):
    return len(CALL_LINE.findall(server.log))


def all_calls_go_to_the_first(model, servers, port, log, calls, uniqueid):
    """Once HAProxy has marked the second server DOWN (within 3 s), every call succeeds on the first."""
    started = time.monotonic()
    while "agi2 is DOWN" not in log.read_text():
        assert time.monotonic() - started < 3.0, log.read_text()  # fall 2 x inter 200ms: ~0.5 s
        time.sleep(0.05)
    results = [FastAgiPeer(port, uniqueid="%s.%d" % (uniqueid, i)).run(timeout=15) for i in range(calls)]
    assert [r.status for r in results] == ["SUCCESS"] * calls
    deadline = time.monotonic() + 5  # a call's log line follows its last AGI reply
    while successes(servers[0]) < calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert successes(servers[0]) == calls, servers[0].log
    assert len([r for r in model.requests if r.path.endswith("/prepare_inbound")]) == calls


def test_shipped_config_is_valid():
    """`haproxy -c` accepts contrib/haproxy.cfg as shipped."""
    proc = subprocess.run([haproxy(), "-c", "-f", str(SHIPPED)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
    assert proc.returncode == 0, proc.stdout


def test_calls_go_to_the_server_with_fewer_calls_in_flight(balanced):
    """While one server holds a slow call, leastconn sends the next three calls to the other one."""
    model, servers, port, _, _ = balanced
    model.script({"kind": "delay", "seconds": 2, "then": {"kind": "ok"}})
    slow = []
    flight = threading.Thread(target=lambda: slow.append(FastAgiPeer(port).run(timeout=15)), daemon=True)
    flight.start()
    model.wait_for_request(10)
    quick = []
    for i in range(3):
        quick.append(FastAgiPeer(port, uniqueid="1700000001.%d" % i).run(timeout=15))
        # HAProxy counts a connection until it has seen both sides close; without this pause
        # the next call could meet a tie (1 and 1) that leastconn breaks round-robin.
        time.sleep(0.2)
    flight.join(15)
    assert [r.status for r in slow + quick] == ["SUCCESS"] * 4
    deadline = time.monotonic() + 5  # the slow call's log line follows its last AGI reply
    while sum(successes(s) for s in servers) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(successes(s) for s in servers) == [1, 3], [s.log for s in servers]


def test_a_stopped_server_is_marked_down_and_calls_go_to_the_other(balanced):
    """After one server stops, the /healthz check marks it DOWN within seconds and every call still succeeds."""
    model, servers, port, _, log = balanced
    assert servers[1].stop() == 0
    all_calls_go_to_the_first(model, servers, port, log, calls=3, uniqueid="1700000002")


def test_a_server_on_broken_settings_gets_no_calls(second_broken):
    """A server whose settings are unusable still accepts FastAGI connections, yet /healthz marks it DOWN and every call goes to the other."""
    model, servers, port, _, log = second_broken
    socket.create_connection(("127.0.0.1", servers[1].port), 2).close()  # a TCP check would pass it
    all_calls_go_to_the_first(model, servers, port, log, calls=4, uniqueid="1700000003")
    assert "status=" not in servers[1].log, servers[1].log
