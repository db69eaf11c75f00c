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

from tests.support.fastagi_peer import FastAgiPeer

from image_lab import AGENT, IMAGE_UID, PORT, TOKEN

CALL_ID = "5d2c1b0a-9e8f-4a7b-8c6d-0123456789ab"


def loopback_command():
    """The image's CMD on loopback and a free port: on the host network, 0.0.0.0:4573 would
    listen on every interface of this machine, and a FastAGI lab may hold 4573."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return port, ["fastagi", "--listen", "127.0.0.1:%d" % port, "--grace", "30"]


def server_uid(container):
    """The real, effective, saved and filesystem uids of the container's PID 1 (the server)."""
    status = container.exec_(["python", "-c", "print(open('/proc/1/status').read())"])
    assert status.returncode == 0, status.stdout
    return re.search(r"^Uid:\s+(.*)$", status.stdout, re.M).group(1).split()


def healthcheck(container):
    """Run the image's HEALTHCHECK once; (exit code, the health status the engine recorded)."""
    proc = subprocess.run([container.engine.cli, "healthcheck", "run", container.cid], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
    return proc.returncode, container.inspect("{{.State.Health.Status}}")


@pytest.mark.e2e
def test_default_command_listens_on_all_addresses_as_non_root_and_reports_healthy(start_server):
    """With its own CMD in a private network namespace, the server runs as uid 10001 on 0.0.0.0:4573 and the HEALTHCHECK passes."""
    container = start_server(network="none")
    assert "FastAGI listening on agi://0.0.0.0:%d/synthflow" % PORT in container.logs()
    assert server_uid(container) == [IMAGE_UID] * 4
    assert healthcheck(container) == (0, "healthy")


@pytest.mark.e2e
def test_healthcheck_fails_when_nothing_listens_on_4573(start_server):
    """A server on another port leaves 4573 closed, and the image's HEALTHCHECK reports it unhealthy."""
    container = start_server(["fastagi", "--listen", "0.0.0.0:%d" % (PORT + 1), "--allow", "127.0.0.0/8"], network="none")
    code, _ = healthcheck(container)
    assert code != 0


@pytest.mark.e2e
def test_serves_a_fastagi_call_against_the_api_model(start_server, model):
    """A FastAGI call from the scripted peer gets SUCCESS and a Dial with X-EI, after one POST carrying the mounted token."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    port, command = loopback_command()
    container = start_server(command)
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


@pytest.mark.e2e
def test_stop_drains_the_call_in_flight_and_exits_0(start_server, model):
    """`podman stop` sends the image's STOPSIGNAL; a call in flight finishes with SUCCESS and the container exits 0."""
    api_delay = 2.0
    model.script({"kind": "delay", "seconds": api_delay, "then": {"kind": "ok", "call_id": CALL_ID}})
    port, command = loopback_command()
    container = start_server(command)
    results = []
    flight = threading.Thread(target=lambda: results.append(FastAgiPeer(port).run(timeout=20)), daemon=True)
    flight.start()
    model.wait_for_request(10)
    started = time.monotonic()
    # -t 25: a server that ignored SIGTERM would be killed after 25 s and exit 137.
    subprocess.run([container.engine.cli, "stop", "-t", "25", container.cid], stdout=subprocess.DEVNULL,
                   stderr=subprocess.STDOUT, timeout=60, check=True)
    stop_seconds = time.monotonic() - started
    flight.join(20)
    assert results and results[0].status == "SUCCESS", (results, container.logs()[-2000:])
    assert container.inspect("{{.State.ExitCode}}") == "0"
    # It waited for the API answer still due (about api_delay after the request), no longer.
    assert api_delay - 0.8 <= stop_seconds <= api_delay + 4, stop_seconds
    logs = container.logs()
    assert re.search(r"summary calls=1 success=1 in_flight=0", logs), logs
    assert "grace of" not in logs and "Traceback" not in logs
