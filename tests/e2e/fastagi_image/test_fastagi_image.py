"""docker/fastagi.Dockerfile: the image runs the FastAGI server as a non-root user, serves calls, reports health, drains.

Every container runs read-only with all capabilities dropped, as contrib/kubernetes asks,
with its settings from SYNTHFLOW_* variables and the token from a mounted file.
"""
import re
import socket
import subprocess
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fastagi_peer import FastAgiPeer
from tests.support.http_get import get

from image_lab import AGENT, IMAGE_UID, METRICS_PORT, PORT, TOKEN

CALL_ID = "5d2c1b0a-9e8f-4a7b-8c6d-0123456789ab"
# GET a URL from inside the container (no proxy); prints the HTTP code and the body.
GET_INSIDE = ("import sys, urllib.error as e, urllib.request as r\n"
              "try:\n    a = r.build_opener(r.ProxyHandler({})).open(sys.argv[1], timeout=5)\n"
              "except e.HTTPError as x:\n    a = x\n"
              "print(a.getcode(), a.read().decode().strip())")


def free_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_command():
    """The image's CMD on loopback and free ports: on the host network, 0.0.0.0:4573 and
    0.0.0.0:9573 would listen on every interface of this machine, and a lab may hold 4573."""
    port, metrics_port = free_loopback_port(), free_loopback_port()
    return port, metrics_port, ["fastagi", "--listen", "127.0.0.1:%d" % port, "--grace", "30",
                                "--metrics-listen", "127.0.0.1:%d" % metrics_port]


def get_inside(container, path, port=METRICS_PORT):
    """'CODE body' of GET http://127.0.0.1:port/path from inside the container's network namespace."""
    proc = container.exec_(["python", "-c", GET_INSIDE, "http://127.0.0.1:%d%s" % (port, path)])
    assert proc.returncode == 0, proc.stdout
    return proc.stdout.strip()


def samples(text):
    """{(metric sample name, sorted labels): value} of a Prometheus text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def server_uid(container):
    """The real, effective, saved and filesystem uids of the container's PID 1 (the server)."""
    status = container.exec_(["python", "-c", "print(open('/proc/1/status').read())"])
    assert status.returncode == 0, status.stdout
    return re.search(r"^Uid:\s+(.*)$", status.stdout, re.M).group(1).split()


def healthcheck(container):
    """Run the image's HEALTHCHECK once; (exit code, the output the engine recorded for it)."""
    proc = subprocess.run([container.engine.cli, "healthcheck", "run", container.cid], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
    log = container.inspect("{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}\n{{end}}")
    return proc.returncode, log


@pytest.mark.e2e
def test_default_command_serves_healthz_as_non_root_and_reports_healthy(start_server):
    """With its own CMD in a private network namespace, the server runs as uid 10001 on 0.0.0.0:4573, /healthz on 9573 answers 200, and the HEALTHCHECK passes even with an http_proxy set."""
    # Nothing listens on the proxy's port: a check that used it would fail.
    container = start_server(network="none", env={"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    logs = container.logs()
    assert "FastAGI listening on agi://0.0.0.0:%d/synthflow" % PORT in logs
    assert "metrics on http://0.0.0.0:%d/metrics and /healthz" % METRICS_PORT in logs
    assert server_uid(container) == [IMAGE_UID] * 4
    assert get_inside(container, "/healthz") == "200 ok"
    code, log = healthcheck(container)
    assert code == 0, log
    assert container.inspect("{{.State.Health.Status}}") == "healthy"


@pytest.mark.e2e
def test_healthcheck_fails_on_a_configuration_error_though_the_fastagi_port_accepts(start_server):
    """Unusable settings leave 4573 accepting, but /healthz answers 503 and the image's HEALTHCHECK fails with it."""
    container = start_server(network="none", env={"SYNTHFLOW_MODE": "bogus"})
    assert "starting with a configuration error" in container.logs()
    # What the previous TCP check did, and what it would have reported healthy:
    connect = container.exec_(["python", "-c", "import socket; socket.create_connection(('127.0.0.1', %d), 2).close()" % PORT])
    assert connect.returncode == 0, connect.stdout
    assert get_inside(container, "/healthz") == "503 configuration error"
    code, log = healthcheck(container)
    assert code == 1, log
    assert log.strip().splitlines()[-1] == "1 unhealthy: HTTP Error 503: Service Unavailable", log
    assert TOKEN not in container.logs()


@pytest.mark.e2e
def test_serves_a_fastagi_call_against_the_api_model(start_server, model):
    """A FastAGI call from the scripted peer gets SUCCESS and a Dial with X-EI, after one POST carrying the mounted token."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    port, metrics_port, command = loopback_command()
    container = start_server(command)
    before = samples(get(metrics_port, "/metrics")[1])
    result = FastAgiPeer(port, variables={"SYNTHFLOW_MODE": "dial"}).run(timeout=15)
    assert result.status == "SUCCESS", (result, container.logs()[-2000:])
    assert result.variables["SYNTHFLOW_CALL_ID"] == CALL_ID
    assert ("_SYNTHFLOW_XEI", "S.%s;E.1700000000.42;" % CALL_ID) in result.sets
    assert [e[0] for e in result.execs] == ["Dial"]
    assert "sip:%s@sip.us.synthflow.ai:32681" % AGENT in result.execs[0][1]
    posts = [r for r in model.requests if r.path.endswith("/prepare_inbound")]
    assert len(posts) == 1
    assert posts[0].header("Authorization") == "Bearer %s" % TOKEN
    logs = container.logs()
    assert re.search(r"status=SUCCESS", logs), logs
    assert TOKEN not in logs and "Traceback" not in logs
    assert server_uid(container) == [IMAGE_UID] * 4
    # The image's prometheus_client counted that call and its one API attempt.
    code, text = get(metrics_port, "/metrics")
    after = samples(text)
    handoff = ("synthflow_agi_handoffs_total", (("mode", "dial"), ("status", "SUCCESS")))
    attempt = ("synthflow_agi_api_attempts_total", (("outcome", "2xx"),))
    assert code == 200
    assert (before.get(handoff, 0.0), after[handoff]) == (0.0, 1.0)
    assert (before[attempt], after[attempt]) == (0.0, 1.0)
    assert after[("synthflow_agi_api_request_duration_seconds_count", ())] == 1.0


@pytest.mark.e2e
def test_stop_drains_the_call_in_flight_with_healthz_draining_and_exits_0(start_server, model):
    """`podman stop` sends the image's STOPSIGNAL; /healthz turns 503 draining while a call in flight finishes with SUCCESS, and the container exits 0."""
    api_delay = 2.0
    model.script({"kind": "delay", "seconds": api_delay, "then": {"kind": "ok", "call_id": CALL_ID}})
    port, metrics_port, command = loopback_command()
    container = start_server(command)
    assert get(metrics_port, "/healthz") == (200, "ok\n")
    results = []
    flight = threading.Thread(target=lambda: results.append(FastAgiPeer(port).run(timeout=20)), daemon=True)
    flight.start()
    model.wait_for_request(10)
    started = time.monotonic()
    stop_seconds = []

    def stop():
        # -t 25: a server that ignored SIGTERM would be killed after 25 s and exit 137.
        subprocess.run([container.engine.cli, "stop", "-t", "25", container.cid], stdout=subprocess.DEVNULL,
                       stderr=subprocess.STDOUT, timeout=60, check=True)
        stop_seconds.append(time.monotonic() - started)

    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    health = get(metrics_port, "/healthz")
    while health[0] == 200 and time.monotonic() - started < api_delay:
        time.sleep(0.05)
        health = get(metrics_port, "/healthz")
    seen_draining = time.monotonic() - started
    call_done_then = bool(results)
    stopper.join(60)
    flight.join(20)
    assert health == (503, "draining\n"), health
    assert not call_done_then and seen_draining < api_delay, seen_draining
    assert results and results[0].status == "SUCCESS", (results, container.logs()[-2000:])
    assert container.inspect("{{.State.ExitCode}}") == "0"
    # It waited for the API answer still due (about api_delay after the request), no longer.
    assert stop_seconds and api_delay - 0.8 <= stop_seconds[0] <= api_delay + 4, stop_seconds
    logs = container.logs()
    assert re.search(r"summary calls=1 success=1 in_flight=0", logs), logs
    assert "grace of" not in logs and "Traceback" not in logs


# Inside the container: a FastAGI call that sends its environment, prints the server's first
# command, and leaves it unanswered (the call stays in flight) until a line on stdin hangs up.
HELD_CALL = ("import socket, sys\n"
             "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)\n"
             "s.sendall(sys.argv[2].encode())\n"
             "print('command:', s.makefile('rb').readline().decode().split(' ')[0], flush=True)\n"
             "sys.stdin.readline()\n"
             "s.close()")


@pytest.mark.e2e
def test_healthcheck_fails_while_the_server_drains(start_server):
    """After SIGTERM, with a call in flight, the image's own HEALTHCHECK fails on /healthz's 503 draining; the call's hangup then ends the drain and the container exits 0."""
    container = start_server(network="none")
    held = subprocess.Popen([container.engine.cli, "exec", "-i", container.cid, "python", "-c", HELD_CALL,
                             str(PORT), FastAgiPeer(PORT).env_block()],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    try:
        first = held.stdout.readline().strip()
        assert first.startswith("command: ") and first != "command: ", first
        subprocess.run([container.engine.cli, "kill", "--signal", "TERM", container.cid], stdout=subprocess.DEVNULL,
                       stderr=subprocess.STDOUT, timeout=30, check=True)
        container.wait_for_log("draining: refusing new connections", timeout=5)
        assert get_inside(container, "/healthz") == "503 draining"
        code, log = healthcheck(container)
        assert code == 1, log
        assert log.strip().splitlines()[-1] == "1 unhealthy: HTTP Error 503: Service Unavailable", log
        assert container.inspect("{{.State.Running}}") == "true"  # still draining: the call holds it
        held.stdin.write("hang up\n")
        held.stdin.flush()
        assert held.wait(15) == 0
        deadline = time.monotonic() + 15
        while container.inspect("{{.State.Running}}") == "true" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert container.inspect("{{.State.ExitCode}}") == "0", container.logs()[-2000:]
        assert re.search(r"summary calls=1 ", container.logs()), container.logs()[-2000:]
    finally:
        if held.poll() is None:
            held.kill()
            held.wait(10)
        held.stdin.close()
        held.stdout.close()
