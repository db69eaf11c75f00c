"""The pieces behind --metrics-listen and --allow: the refusal log, the allow list, the registry and the HTTP bound."""
from __future__ import annotations

import doctest
import importlib
import socket
import time
import urllib.request

import pytest
from prometheus_client import REGISTRY

from synthflow_agi._call import Outcome
from synthflow_agi._metrics import MAX_HTTP_CLIENTS, MetricsHttpServer, PrometheusMetrics
from synthflow_agi._peers import AllowList, RefusalLog, parse_allow
from synthflow_agi._status import Status


@pytest.mark.parametrize("name", ["_peers", "_api"])
def test_module_examples_pass(name):
    """Every doctest in the module passes, and the module really has some."""
    result = doctest.testmod(importlib.import_module("synthflow_agi." + name))
    assert result.attempted > 0 and result.failed == 0


def test_refusals_are_logged_once_per_address_and_minute_with_the_count_in_between():
    """Over five minutes, one refusal a second from three addresses gives five lines each, each counting the rest."""
    log = RefusalLog()
    lines = {}
    for second in range(300):
        for peer in ("10.0.0.1", "10.0.0.2", "fd00::7"):
            unlogged = log.note(peer, 1000.0 + second)
            if unlogged is not None:
                lines.setdefault(peer, []).append((second, unlogged))
    expected = [(0, 0), (60, 59), (120, 59), (180, 59), (240, 59)]
    assert lines == {"10.0.0.1": expected, "10.0.0.2": expected, "fd00::7": expected}


def test_the_refusal_table_forgets_the_oldest_address_beyond_its_bound():
    """With room for 1000 addresses, 5000 in one minute forget the first (logged again) but not the latest."""
    log = RefusalLog(max_peers=1000)
    assert [log.note("10.1.%d.%d" % divmod(i, 256), 1.0) for i in range(5000)] == [0] * 5000
    assert log.note("10.1.0.0", 2.0) == 0        # forgotten: logged again, still within the minute
    assert log.note("10.1.19.135", 2.0) is None  # the 5000th is remembered: silent


def test_a_clock_stepping_back_does_not_silence_an_address_for_good():
    """A refusal timed before the address's last line (a clock step) is logged again rather than suppressed."""
    log = RefusalLog()
    assert log.note("10.0.0.1", 500.0) == 0
    assert log.note("10.0.0.1", 400.0) == 0


@pytest.mark.parametrize("peer,allowed", [
    ("127.0.0.1", True), ("127.255.255.254", True), ("::1", True), ("::ffff:127.0.0.9", True),
    ("10.0.0.1", False), ("::2", False), ("::ffff:10.0.0.1", False), ("", False),
])
def test_the_default_list_allows_loopback_and_nothing_else(peer, allowed):
    """Without --allow on a loopback listener, exactly 127.0.0.0/8 and ::1 (IPv4-mapped included) may connect."""
    assert AllowList(parse_allow(None, "127.0.0.1")).allows(peer) is allowed


def test_versions_never_mix_in_membership():
    """An IPv4 peer is never matched against an IPv6 network whose integer range would contain it."""
    assert not AllowList(parse_allow("::/96", "::")).allows("0.0.0.1")


def fake_server(in_flight=0, phase="closed", health=(200, "ok"), capacity=7, in_dial=0):
    """The few attributes PrometheusMetrics reads from a FastAgiServer."""
    class Server:
        max_connections = capacity
        parking = [None] * in_dial  # only its length is read

        class stats:  # noqa: N801 - mirrors server.stats
            pass

        @staticmethod
        def circuit_phase():
            return phase

        @staticmethod
        def health():
            return health
    Server.stats.in_flight = in_flight
    return Server()


def test_each_server_has_its_own_registry():
    """Two PrometheusMetrics coexist, count separately, and put nothing into the library's global registry."""
    first, second = PrometheusMetrics(), PrometheusMetrics()
    first.watch(fake_server(in_flight=3, phase="open", health=(503, "draining"), in_dial=2))
    second.watch(fake_server())
    first.refused("peer")
    assert first.registry.get_sample_value("synthflow_agi_connections_refused_total", {"reason": "peer"}) == 1
    assert second.registry.get_sample_value("synthflow_agi_connections_refused_total", {"reason": "peer"}) == 0
    assert first.registry.get_sample_value("synthflow_agi_calls_in_flight") == 3
    assert first.registry.get_sample_value("synthflow_agi_calls_in_dial") == 2
    assert first.registry.get_sample_value("synthflow_agi_circuit_state") == 2
    assert first.registry.get_sample_value("synthflow_agi_accepting_calls") == 0
    assert first.registry.get_sample_value("synthflow_agi_max_connections") == 7
    assert REGISTRY.get_sample_value("synthflow_agi_calls_in_flight") is None


def test_api_duration_is_observed_only_for_calls_that_sent_a_request():
    """A hand-off with attempts observes its api_ms; one the open circuit refused (no attempt) does not."""
    metrics = PrometheusMetrics()
    metrics.attempt("5xx")
    metrics.attempt("2xx")
    metrics.handoff(Outcome(status=Status.SUCCESS, mode="transfer", api_ms=120.0, total_ms=150.0))
    metrics.handoff(Outcome(status=Status.API_ERROR, mode="transfer", api_ms=0.1, total_ms=2.0))
    get = metrics.registry.get_sample_value
    assert get("synthflow_agi_api_request_duration_seconds_count") == 1
    assert get("synthflow_agi_api_request_duration_seconds_sum") == pytest.approx(0.12)
    assert get("synthflow_agi_api_request_duration_seconds_bucket", {"le": "0.1"}) == 0
    assert get("synthflow_agi_api_request_duration_seconds_bucket", {"le": "0.25"}) == 1
    assert get("synthflow_agi_handoff_duration_seconds_count") == 2
    assert get("synthflow_agi_api_attempts_total", {"outcome": "5xx"}) == 1


def test_unknown_label_values_collapse_to_a_closed_set():
    """A mode or attempt outcome outside the known words is counted as other/error, never as itself."""
    metrics = PrometheusMetrics()
    metrics.handoff(Outcome(status=Status.SUCCESS, mode="1700000000.42", total_ms=1.0))
    metrics.attempt("+15551230000")
    get = metrics.registry.get_sample_value
    assert get("synthflow_agi_handoffs_total", {"status": "SUCCESS", "mode": "other"}) == 1
    assert get("synthflow_agi_api_attempts_total", {"outcome": "error"}) == 1
    assert get("synthflow_agi_handoffs_total", {"status": "SUCCESS", "mode": "1700000000.42"}) is None


def test_the_metrics_port_serves_a_bounded_number_of_clients_at_once():
    """With the client slots held by silent connections, one more is closed at once; freed, /healthz answers."""
    metrics = PrometheusMetrics()
    http = MetricsHttpServer(("127.0.0.1", 0), metrics.registry, lambda: (200, "ok")).start()
    port = http.server_address[1]
    held = []
    try:
        for _ in range(MAX_HTTP_CLIENTS):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            started = time.monotonic()
            assert extra.recv(100) == b""
            assert time.monotonic() - started < 1.0
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 5  # each slot frees when its handler reads the EOF
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as answer:
                    assert (answer.status, answer.read()) == (200, b"ok\n")
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()
        http.stop()
