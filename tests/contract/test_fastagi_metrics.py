"""FastAGI --metrics-listen: Prometheus counters and histograms after known calls, /healthz, and the flag's errors."""
from __future__ import annotations

import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Dict, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.contract._helpers import TOKEN, assert_basics, posts
from tests.contract.test_fastagi_lifecycle import held_port, hold_a_call, one_error_line
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess

CALL_ID = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
METRICS_AT = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]
# The only label names the server may use: each takes values from a closed set.
BOUNDED_LABELS = {"status", "mode", "outcome", "reason", "le"}


def start(env, options=()) -> Tuple[FastAgiServerProcess, int]:
    """A FastAGI server with metrics on an ephemeral loopback port; returns it and the metrics port."""
    server = FastAgiServerProcess(env, ["--metrics-listen", "127.0.0.1:0"] + list(options)).start()
    return server, int(server.wait_for_log(METRICS_AT).group(1))


def get(port: int, path: str) -> Tuple[int, str, str]:
    """GET a path on the metrics port: the status, the Content-Type and the body."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        # An HTTPError holds the open answer; Python 3.14 warns when it is left to the collector.
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode("utf-8")


def scrape(port: int) -> Samples:
    """Every synthflow_agi_* sample of /metrics, keyed by name and sorted labels."""
    status, content_type, body = get(port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name.startswith("synthflow_agi_"):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; an absent labelled counter is 0 (it was never incremented)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of a metric over all its label values."""
    return sum(v for (n, _), v in samples.items() if n == name)


def stopped_cleanly(server: FastAgiServerProcess) -> None:
    code = server.stop()
    assert code == 0, server.log
    assert "Traceback" not in server.log and TOKEN not in server.log, server.log


def test_counters_and_histograms_match_calls_with_known_outcomes(model, env):
    """After seven calls with known statuses, a probe and one retry, every counter and histogram count is exact."""
    model.script({"kind": "ok", "call_id": CALL_ID},                                   # SUCCESS transfer
                 {"kind": "status", "code": 500},                                      # API_ERROR
                 {"kind": "status", "code": 503}, {"kind": "ok", "call_id": CALL_ID},  # retried, SUCCESS
                 {"kind": "ok", "call_id": CALL_ID},                                   # SUCCESS dial
                 {"kind": "status", "code": 401})                                      # API_AUTH_FAILED
    server, port = start(env, ["--max-connections", "40"])
    try:
        statuses = [FastAgiPeer(server.port).run(timeout=15) for _ in range(3)]
        statuses.append(FastAgiPeer(server.port, variables={"SYNTHFLOW_MODE": "dial"}).run(timeout=15))
        statuses.append(FastAgiPeer(server.port).run(timeout=15))
        statuses.append(FastAgiPeer(server.port, script="elsewhere").run(timeout=15))
        statuses.append(FastAgiPeer(server.port, force_replies=[("GET FULL VARIABLE", "200 result=1 (\ufffd)")])
                        .run(timeout=15))
        for result in statuses:
            assert_basics(result)
        assert [r.status for r in statuses] == ["SUCCESS", "API_ERROR", "SUCCESS", "SUCCESS", "API_AUTH_FAILED",
                                                "CONFIG_ERROR", "INTERNAL_ERROR"]
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()  # a health check
        server.wait_for_log(re.compile(r"status=INTERNAL_ERROR"))
        deadline = time.monotonic() + 5
        samples = scrape(port)
        while value(samples, "synthflow_agi_probe_connections_total") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
            samples = scrape(port)
    finally:
        stopped_cleanly(server)
    handoffs = {labels: v for (name, labels), v in samples.items() if name == "synthflow_agi_handoffs_total"}
    assert handoffs == {(("mode", "transfer"), ("status", "SUCCESS")): 2.0,
                        (("mode", "dial"), ("status", "SUCCESS")): 1.0,
                        (("mode", "transfer"), ("status", "API_ERROR")): 1.0,
                        (("mode", "transfer"), ("status", "API_AUTH_FAILED")): 1.0,
                        (("mode", ""), ("status", "CONFIG_ERROR")): 1.0,
                        (("mode", ""), ("status", "INTERNAL_ERROR")): 1.0}
    attempts = {dict(labels)["outcome"]: v for (name, labels), v in samples.items()
                if name == "synthflow_agi_api_attempts_total"}
    assert attempts == {"2xx": 3.0, "3xx": 0.0, "4xx": 1.0, "429": 0.0, "5xx": 2.0, "timeout": 0.0,
                        "unreachable": 0.0, "error": 0.0}
    assert sum(attempts.values()) == len(posts(model)) == 6
    # Five calls sent a request (one of them twice); all seven ran a hand-off.
    assert value(samples, "synthflow_agi_api_request_duration_seconds_count") == 5
    assert value(samples, "synthflow_agi_api_request_duration_seconds_bucket", le="+Inf") == 5
    assert value(samples, "synthflow_agi_handoff_duration_seconds_count") == 7
    assert value(samples, "synthflow_agi_handoff_duration_seconds_bucket", le="10.0") == 7
    assert 0 < value(samples, "synthflow_agi_api_request_duration_seconds_sum") \
        < value(samples, "synthflow_agi_handoff_duration_seconds_sum") < 7 * 2.0
    assert value(samples, "synthflow_agi_probe_connections_total") == 1
    assert value(samples, "synthflow_agi_broken_connections_total") == 0
    assert value(samples, "synthflow_agi_connections_refused_total", reason="capacity") == 0
    assert value(samples, "synthflow_agi_connections_refused_total", reason="peer") == 0
    assert total(samples, "synthflow_agi_degraded_handoffs_total") == 0
    assert value(samples, "synthflow_agi_calls_in_flight") == 0
    assert value(samples, "synthflow_agi_max_connections") == 40
    assert value(samples, "synthflow_agi_circuit_state") == 0
    assert value(samples, "synthflow_agi_accepting_calls") == 1
    label_names = {name for (_, labels) in samples for name, _ in labels}
    assert label_names <= BOUNDED_LABELS, label_names
    label_values = " ".join(v for (_, labels) in samples for _, v in labels)
    for unbounded in (CALL_ID, "1700000000.42", "127.0.0.1", "+1555"):
        assert unbounded not in label_values


def test_degraded_hand_offs_are_counted_apart(model, env):
    """With on_api_failure=direct, a 503 answer gives a SUCCESS that the degraded counter also shows."""
    model.script(*[{"kind": "status", "code": 503}] * 3)
    server, port = start(dict(env, SYNTHFLOW_ON_API_FAILURE="direct"))
    try:
        result = FastAgiPeer(server.port).run(timeout=15)
        assert_basics(result)
        assert result.status == "SUCCESS" and result.variables.get("SYNTHFLOW_DEGRADED") == "1"
        samples = scrape(port)
    finally:
        stopped_cleanly(server)
    assert value(samples, "synthflow_agi_handoffs_total", status="SUCCESS", mode="transfer") == 1
    assert value(samples, "synthflow_agi_degraded_handoffs_total", status="SUCCESS") == 1
    assert value(samples, "synthflow_agi_api_attempts_total", outcome="5xx") == 3 == len(posts(model))


def test_circuit_state_follows_the_breaker_and_refused_calls_send_nothing(model, env):
    """Two failures open the circuit (2); the cooldown's probe shows half-open (1); its success closes it (0)."""
    model.script({"kind": "status", "code": 500}, {"kind": "status", "code": 500},
                 {"kind": "delay", "seconds": 2, "then": {"kind": "ok", "call_id": CALL_ID}})
    settings = dict(env, SYNTHFLOW_BREAKER_FAILURES="2", SYNTHFLOW_BREAKER_COOLDOWN="1", SYNTHFLOW_RETRIES="0")
    server, port = start(settings)
    try:
        assert [FastAgiPeer(server.port).run(timeout=15).status for _ in range(3)] == ["API_ERROR"] * 3
        opened = scrape(port)
        time.sleep(1.2)  # past the cooldown: the next call probes
        probe = threading.Thread(target=lambda: FastAgiPeer(server.port).run(timeout=15), daemon=True)
        probe.start()
        model.wait_for_request(10, count=3)
        probing = scrape(port)
        probe.join(15)
        closed = scrape(port)
    finally:
        stopped_cleanly(server)
    assert value(opened, "synthflow_agi_circuit_state") == 2
    # The third call was turned away by the open circuit: no attempt, no API duration.
    assert value(opened, "synthflow_agi_api_attempts_total", outcome="5xx") == 2
    assert value(opened, "synthflow_agi_api_request_duration_seconds_count") == 2
    assert value(opened, "synthflow_agi_handoffs_total", status="API_ERROR", mode="transfer") == 3
    assert value(probing, "synthflow_agi_circuit_state") == 1
    assert value(probing, "synthflow_agi_calls_in_flight") == 1
    assert value(closed, "synthflow_agi_circuit_state") == 0
    assert value(closed, "synthflow_agi_handoffs_total", status="SUCCESS", mode="transfer") == 1
    assert value(closed, "synthflow_agi_api_request_duration_seconds_count") == 3


def test_healthz_is_200_then_503_while_draining(model, env):
    """/healthz answers 200 ok while serving, and 503 draining once SIGTERM waits for a call in flight."""
    server, port = start(env, ["--grace", "20", "--read-timeout", "30"])
    try:
        assert get(port, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        held = hold_a_call(server.port)
        try:
            server.send_signal(signal.SIGTERM)
            server.wait_for_log(re.compile(r"draining: refusing new connections"))
            assert get(port, "/healthz")[::2] == (503, "draining\n")
            samples = scrape(port)
            assert value(samples, "synthflow_agi_accepting_calls") == 0
            assert value(samples, "synthflow_agi_calls_in_flight") == 1
            assert server.proc.poll() is None
        finally:
            held.close()
        assert server.proc.wait(15) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        stopped_cleanly(server)


def test_healthz_is_503_with_a_configuration_error(model, env):
    """A server started on unusable settings answers 503 configuration error, and /metrics says it does not accept."""
    broken = {k: v for k, v in env.items() if k != "SYNTHFLOW_API_TOKEN"}
    server, port = start(broken)
    try:
        assert get(port, "/healthz")[::2] == (503, "configuration error\n")
        assert value(scrape(port), "synthflow_agi_accepting_calls") == 0
        assert get(port, "/nothing-here")[0] == 404
    finally:
        stopped_cleanly(server)


@pytest.mark.parametrize("args,text", [
    (["--metrics-listen", "127.0.0.1:70000"], "--metrics-listen '127.0.0.1:70000': the port must be 0 to 65535"),
    (["--metrics-listen", "[::1"], "--metrics-listen '[::1' is not host:port"),
])
def test_a_bad_metrics_listen_is_one_line_and_exit_2(env, args, text):
    """A malformed --metrics-listen gives one error line naming the flag and exit 2."""
    line = one_error_line(args, env)
    assert line.startswith("synthflow-agi: CONFIG_ERROR: " + text), line


def test_metrics_port_in_use_is_one_line_and_exit_2(env):
    """A --metrics-listen port another socket holds fails with one line and exit 2, and the AGI port is let go."""
    with held_port() as port:
        line = one_error_line(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:%d" % port], env)
    assert "--metrics-listen: cannot listen on 127.0.0.1:%d" % port in line, line


def test_without_prometheus_client_the_flag_is_refused_with_one_line(env):
    """When prometheus_client cannot be imported, --metrics-listen exits 2 with one line and nothing listens."""
    blocked = ("import sys; sys.modules['prometheus_client'] = None; "  # makes `import prometheus_client` fail
               "from synthflow_agi._cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", blocked, "fastagi", "--metrics-listen", "127.0.0.1:0"], env=env,
                          timeout=10, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [
        "synthflow-agi: CONFIG_ERROR: --metrics-listen needs the prometheus_client library, which is not installed "
        "(pip install 'synthflow-agi[metrics]')"], done.stderr
    assert done.stdout == ""


ATTEMPT_CASES = {
    "ok_at_once": ([{"kind": "ok"}], 2, ["2xx"]),
    "two_503_then_ok": ([{"kind": "status", "code": 503}] * 2 + [{"kind": "ok"}], 2, ["5xx", "5xx", "2xx"]),
    "503_until_retries_run_out": ([{"kind": "status", "code": 503}] * 3, 2, ["5xx"] * 3),
    "429_no_retries": ([{"kind": "status", "code": 429, "retry_after": 0}], 0, ["429"]),
    "500_is_not_retried": ([{"kind": "status", "code": 500}], 2, ["5xx"]),
    "401_is_not_retried": ([{"kind": "status", "code": 401}], 2, ["4xx"]),
    "dropped_after_the_request": ([{"kind": "drop"}], 2, ["error"]),
    "hung_until_the_deadline": ([{"kind": "hang"}], 2, ["timeout"]),
}


@pytest.mark.parametrize("case", sorted(ATTEMPT_CASES))
def test_each_http_attempt_is_reported_once_with_its_outcome(model, case):
    """The client reports every attempt at prepare_inbound, retries included, as many as the model saw requests."""
    from synthflow_agi._api import SynthflowClient
    from synthflow_agi._call import PrepareRequest
    from synthflow_agi._errors import SynthflowAgiError

    behaviours, retries, expected = ATTEMPT_CASES[case]
    model.script(*behaviours)
    seen = []
    client = SynthflowClient(model.base_url, TOKEN, retries, on_attempt=seen.append)
    try:
        client.prepare(PrepareRequest("+15551230000", "+15557654321", "m", "w", {}), 1.0)
    except SynthflowAgiError:
        pass
    finally:
        client.close()
    assert seen == expected
    assert len(model.requests) == len(expected)


def test_an_unreachable_api_reports_each_connect_attempt(model):
    """With nothing listening, each of the 1 + retries connects is reported as unreachable."""
    from synthflow_agi._api import SynthflowClient
    from synthflow_agi._call import PrepareRequest
    from synthflow_agi._errors import ApiError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d/v2" % closed.getsockname()[1]
    seen = []
    client = SynthflowClient(url, TOKEN, 2, on_attempt=seen.append)
    try:
        with pytest.raises(ApiError):
            client.prepare(PrepareRequest("+15551230000", "+15557654321", "m", "w", {}), 2.0)
    finally:
        client.close()
    assert seen == ["unreachable"] * 3


def reset_after_status_line(port: int, path: str) -> bytes:
    """GET path the way HAProxy's httpchk does: read the status line, then close with a TCP RST."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode("ascii"))
        first = client.recv(12)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return first


def test_a_checker_that_resets_after_the_status_line_is_not_logged(model, env):
    """Forty health checks that read '200' and reset the connection leave no log line, and the port still answers."""
    server, port = start(env)
    try:
        for _ in range(20):
            assert reset_after_status_line(port, "/healthz") == b"HTTP/1.0 200"
            assert reset_after_status_line(port, "/metrics") == b"HTTP/1.0 200"
        time.sleep(0.3)  # the handlers' failed writes happen after the client is gone
        assert get(port, "/healthz")[::2] == (200, "ok\n")
        assert "metrics:" not in server.log, server.log
    finally:
        stopped_cleanly(server)
