"""Prometheus metrics and a health check for the FastAGI server (``--metrics-listen``).

prometheus_client is an optional extra (``synthflow-agi[metrics]``) imported
only when the flag is given.  Each server has its own ``CollectorRegistry``,
so nothing registers in the library's global one.  No label takes a value a
caller controls: statuses, modes and attempt outcomes are closed sets, and
anything outside them is counted as ``other``.

``/metrics`` and ``/healthz`` share one small HTTP server: prometheus_client's
own ``start_http_server`` serves only the registry.  It is bounded like the
FastAGI port: a few concurrent requests, each with a short socket timeout.
"""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional, Tuple

from ._call import Outcome
from ._errors import ConfigError
from ._logging import LOGGER
from ._status import Status

DEFAULT_PORT = 9573
# 10 ms to 10 s for the API step; a hand-off in dial mode lasts the whole bridged
# conversation, so its histogram goes on to an hour.
API_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HANDOFF_BUCKETS = API_BUCKETS + (30.0, 60.0, 300.0, 900.0, 3600.0)
MODES = frozenset({"", "dial", "transfer", "auto", "auto:dial"})
ATTEMPT_OUTCOMES = ("2xx", "3xx", "4xx", "429", "5xx", "timeout", "unreachable", "error")
REFUSAL_REASONS = ("capacity", "peer")
CIRCUIT_STATES = {"closed": 0, "half-open": 1, "open": 2}
MAX_HTTP_CLIENTS = 8
HTTP_TIMEOUT = 5.0
INSTALL_HINT = "pip install 'synthflow-agi[metrics]'"


def require_library() -> None:
    """Raise a one-line ConfigError when prometheus_client cannot be imported."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--metrics-listen needs the prometheus_client library, which is not installed "
                          f"({INSTALL_HINT})") from exc


class NoMetrics:
    """What the server reports, to nobody: the default when ``--metrics-listen`` is not given."""

    registry = None

    def watch(self, server) -> None:
        """Read the server's gauges (calls in flight, capacity, circuit, health) at scrape time."""

    def handoff(self, outcome: Outcome) -> None:
        """Count a finished hand-off and observe its durations."""

    def crashed(self) -> None:
        """Count a call whose serving thread failed before a hand-off outcome existed."""

    def hand_over(self) -> object:
        """This thread's counts of its call, for the thread that will finish it (after a parked Dial)."""
        return None

    def take_over(self, counts: object) -> None:
        """Go on counting, in this thread, the call whose counts ``hand_over`` gave."""

    def attempt(self, outcome: str) -> None:
        """Count one HTTP attempt at prepare_inbound (called in the call's own thread)."""

    def probe(self) -> None:
        """Count a connection closed without a byte (a load balancer's health check)."""

    def broken(self) -> None:
        """Count a connection closed without a usable AGI environment."""

    def refused(self, reason: str) -> None:
        """Count a connection refused at once: ``capacity`` or ``peer`` (not in --allow)."""


class PrometheusMetrics(NoMetrics):
    """The server's metrics in a registry of their own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client import ProcessCollector

        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        prefix = "synthflow_agi_"
        self._handoffs = Counter(prefix + "handoffs", "Hand-offs by SYNTHFLOW_STATUS and mode",
                                 ["status", "mode"], registry=registry)
        self._degraded = Counter(prefix + "degraded_handoffs", "Hand-offs without a prepared call "
                                 "(on_api_failure=direct), by status", ["status"], registry=registry)
        self._api_seconds = Histogram(prefix + "api_request_duration_seconds", "The prepare_inbound step, "
                                      "retries included, of calls that sent at least one request",
                                      buckets=API_BUCKETS, registry=registry)
        self._handoff_seconds = Histogram(prefix + "handoff_duration_seconds", "Whole hand-offs; in dial "
                                          "mode this includes the bridged conversation",
                                          buckets=HANDOFF_BUCKETS, registry=registry)
        self._attempts = Counter(prefix + "api_attempts", "HTTP attempts at prepare_inbound, retries "
                                 "included, by outcome", ["outcome"], registry=registry)
        self._refused = Counter(prefix + "connections_refused", "Connections closed at once, by reason",
                                ["reason"], registry=registry)
        self._probes = Counter(prefix + "probe_connections", "Connections closed without a byte "
                               "(health checks)", registry=registry)
        self._broken = Counter(prefix + "broken_connections", "Connections closed without a usable "
                               "AGI environment", registry=registry)
        self._in_flight = Gauge(prefix + "calls_in_flight", "Calls being served now", registry=registry)
        self._in_dial = Gauge(prefix + "calls_in_dial", "Calls of calls_in_flight waiting inside Dial "
                              "(parked: no thread of their own)", registry=registry)
        self._capacity = Gauge(prefix + "max_connections", "Calls served at once (--max-connections)",
                               registry=registry)
        self._circuit = Gauge(prefix + "circuit_state", "The circuit breaker for the configured API: "
                              "0 closed, 1 half-open, 2 open", registry=registry)
        self._accepting = Gauge(prefix + "accepting_calls", "1 when /healthz answers 200: valid settings "
                                "and not draining", registry=registry)
        for outcome in ATTEMPT_OUTCOMES:
            self._attempts.labels(outcome)
        for reason in REFUSAL_REASONS:
            self._refused.labels(reason)
        self._calls = threading.local()

    def watch(self, server) -> None:
        self._in_flight.set_function(lambda: server.stats.in_flight)
        self._in_dial.set_function(lambda: len(server.parking))
        self._capacity.set(server.max_connections)
        self._circuit.set_function(lambda: CIRCUIT_STATES.get(server.circuit_phase(), 0))
        self._accepting.set_function(lambda: 1 if server.health()[0] == 200 else 0)

    def attempt(self, outcome: str) -> None:
        self._attempts.labels(outcome if outcome in ATTEMPT_OUTCOMES else "error").inc()
        self._calls.attempts = getattr(self._calls, "attempts", 0) + 1

    def handoff(self, outcome: Outcome) -> None:
        status = outcome.status.value
        self._handoffs.labels(status, outcome.mode if outcome.mode in MODES else "other").inc()
        if outcome.degraded:
            self._degraded.labels(status).inc()
        # A call the open circuit refused sent nothing: its ~0 s would hide the outage's latency.
        if outcome.api_ms is not None and getattr(self._calls, "attempts", 0):
            self._api_seconds.observe(outcome.api_ms / 1000.0)
        self._calls.attempts = 0
        self._handoff_seconds.observe(outcome.total_ms / 1000.0)

    def crashed(self) -> None:
        self._handoffs.labels(Status.INTERNAL_ERROR.value, "").inc()
        self._calls.attempts = 0

    def hand_over(self) -> object:
        attempts, self._calls.attempts = getattr(self._calls, "attempts", 0), 0
        return attempts

    def take_over(self, counts: object) -> None:
        self._calls.attempts = counts if isinstance(counts, int) else 0

    def probe(self) -> None:
        self._probes.inc()

    def broken(self) -> None:
        self._broken.inc()

    def refused(self, reason: str) -> None:
        self._refused.labels(reason).inc()


class MetricsHttpServer(ThreadingHTTPServer):
    """``/metrics`` (the registry) and ``/healthz`` (``health()``'s code and word), a few clients at once."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: Tuple[str, int], registry, health: Callable[[], Tuple[int, str]]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.registry = registry
        self.health = health
        self._slots = threading.BoundedSemaphore(MAX_HTTP_CLIENTS)
        self._thread: Optional[threading.Thread] = None

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        # A health checker that resets the connection once it has read the status line
        # (HAProxy's httpchk does, to spare itself TIME_WAIT) is doing its job: not an error.
        if isinstance(error, (ConnectionError, socket.timeout)):
            return
        LOGGER.warning("metrics: failed to serve a request from %s: %s", client_address[0],
                       type(error).__name__ if error else "unknown error")

    def start(self) -> "MetricsHttpServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="metrics-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    timeout = HTTP_TIMEOUT
    server: MetricsHttpServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            from prometheus_client.exposition import choose_encoder

            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, encoder(self.server.registry), content_type)
        elif path == "/healthz":
            code, word = self.server.health()
            self._reply(code, (word + "\n").encode("ascii"), "text/plain; charset=utf-8")
        else:
            self._reply(404, b"not found: /metrics or /healthz\n", "text/plain; charset=utf-8")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # a scrape every few seconds is not news; failures go through handle_error
