"""FastAGI: a long-lived server that runs the same hand-off core for many calls at once.

One thread per call keeps pyst2 (a blocking codec) and requests as they
are; a slow API holds only its own thread. A call waiting inside Dial (the
whole conversation, in dial mode) gives its thread up and is parked
(``_parking``) until Asterisk answers. The HTTP pool is shared, so a warm
keep-alive connection serves the next call.
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import threading
import time
from typing import Mapping, Optional, Sequence, Tuple

from ._agi import EmptyConnection
from ._call import CallInfo
from ._edges import ClientCache, preload, to_e164
from ._errors import ChannelHungUp, ConfigError
from ._handoff import Edges, finish_dial, hand_off
from ._logging import LOGGER, call_line, configure
from ._metrics import DEFAULT_PORT as METRICS_PORT, MetricsHttpServer, NoMetrics, PrometheusMetrics
from ._options import parse_listen
from ._parking import DialParking
from ._peers import LOOPBACK, AllowList, Network, RefusalLog
from ._server_stats import PROBE, Stats
from ._settings import Base, load_base, validate_base
from ._socket_channel import SocketChannel
from ._text import describe_text
from ._wire import AgiEnvironmentError

ROUTE = "synthflow"
# Each call thread needs little stack; capping it keeps hundreds of
# concurrent calls within a small resident and virtual footprint.
THREAD_STACK_BYTES = 512 * 1024
# Asterisk writes the whole environment block as soon as it connects; a peer
# still sending it after this long is not Asterisk, or not healthy.
ENV_TIMEOUT = 5.0
# The call waits in Dial, parked: its thread has nothing more to report.
PARKED = "parked"


class FastAgiServer(socketserver.ThreadingTCPServer):
    """Serves ``agi://host:port/synthflow``; bounded in connections and patient with slow calls."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: Tuple[str, int], environ: Mapping[str, str], max_connections: int = 500,
                 read_timeout: float = 30.0, summary_interval: float = 300.0,
                 allow: Sequence[Network] = LOOPBACK, metrics: Optional[NoMetrics] = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.request_queue_size = min(max_connections, 1024)
        super().__init__(address, socketserver.BaseRequestHandler, bind_and_activate=True)
        self._environ = environ
        self.base: Base = load_base(environ)
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._read_timeout = read_timeout
        self._allow = AllowList(allow)
        self._refusals = RefusalLog()
        self.draining = False
        self.metrics = metrics or NoMetrics()
        self._clients = ClientCache(pool_size=max_connections, circuit="memory", on_attempt=self.metrics.attempt)
        self._edges = Edges(api_for=self._clients, to_e164=to_e164, clock=time.monotonic, delegate_dial=True)
        preload()
        self.parking = DialParking()
        self._parked_sockets: "set[socket.socket]" = set()
        self._summary_interval = summary_interval
        self._next_summary = time.monotonic() + summary_interval
        self._idle = threading.Condition()
        self.stats = Stats()
        self.metrics.watch(self)

    def reload(self) -> None:
        """Re-read and validate the settings; anything unusable keeps the previous ones in force."""
        fresh = load_base(self._environ)
        if not fresh.usable:
            LOGGER.error("reload refused, keeping the previous settings: %s", fresh.error)
            return
        # The old token stays redacted too: calls in flight may still be using it.
        configure(fresh.log, secrets=fresh.secrets + self.base.secrets)
        self.base = fresh
        # New calls build clients for the new settings; calls in flight finish on
        # theirs, which close their connections once returned to the pool.
        self._clients.close()
        LOGGER.info("settings reloaded")

    def health(self) -> Tuple[int, str]:
        """The HTTP code and word of /healthz: 200 ``ok`` only with usable settings and while accepting."""
        if self.draining:
            return 503, "draining"
        if not self.base.usable:
            return 503, "configuration error"
        return 200, "ok"

    def circuit_phase(self) -> str:
        """The circuit breaker's phase for the configured API (``closed`` while the settings are unusable)."""
        base = self.base
        return self._clients.circuit_phase(validate_base(base.raw)) if base.usable else "closed"

    def verify_request(self, request, client_address) -> bool:
        # Runs in the accepting thread, before a slot is taken or a byte is read.
        peer = client_address[0]
        if self._allow.allows(peer):
            return True
        self.stats.refused_peers += 1
        self.metrics.refused("peer")
        unlogged = self._refusals.note(peer, time.monotonic())
        if unlogged is not None:
            LOGGER.warning("refused a connection from %s: not in --allow%s; this address is logged at most once "
                           "a minute", peer, f" ({unlogged} more since its last line)" if unlogged else "")
        return False

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            # Closing at once makes AGI() return at once with no SYNTHFLOW_STATUS,
            # so the dialplan falls back instead of the call waiting in a queue.
            self.stats.rejected += 1
            self.metrics.refused("capacity")
            LOGGER.warning("at capacity, refused a connection from %s", client_address[0])
            self.shutdown_request(request)
            return
        self.stats.begin()
        try:
            super().process_request(request, client_address)
        except Exception:
            self._finished(None)
            raise

    def finish_request(self, request, client_address) -> None:
        status = None
        try:
            status = self._serve_call(request)
        finally:
            if status != PARKED:
                self._finished(status)

    def shutdown_request(self, request) -> None:
        if request not in self._parked_sockets:  # a parked call's socket closes when it resumes
            super().shutdown_request(request)

    def _finished(self, status: Optional[str]) -> None:
        self.stats.end(status)
        self._slots.release()
        with self._idle:
            self._idle.notify_all()

    def _serve_call(self, sock: socket.socket) -> Optional[str]:
        try:
            channel = SocketChannel(sock, self._read_timeout, min(ENV_TIMEOUT, self._read_timeout))
        except EmptyConnection:
            self.metrics.probe()
            return PROBE
        except AgiEnvironmentError as exc:
            LOGGER.warning("closed a connection whose AGI environment was refused: %s", exc.reason)
            self.metrics.broken()
            return None
        except (OSError, ChannelHungUp) as exc:
            LOGGER.warning("no AGI environment from the peer: %s", exc)
            self.metrics.broken()
            return None
        base = self.base
        script = channel.env.get("agi_network_script", "").strip("/")
        if script != ROUTE:
            base = Base(base.raw, f"unknown FastAGI script ({describe_text(script)}); the route is agi://host:port/{ROUTE}")
        parked = False
        try:
            call = CallInfo.from_env(channel.env)
            outcome = hand_off(channel, call, base, self._edges)
            if outcome.pending_dial:
                parked = self._park(sock, channel, call, outcome)
                if parked:
                    return PARKED
                outcome = finish_dial(channel, outcome, self._edges, call)
        except Exception:
            self.metrics.crashed()
            raise
        finally:
            if not parked:
                channel.close()
        return self._report(call, outcome)

    def _report(self, call: CallInfo, outcome) -> str:
        self.metrics.handoff(outcome)
        LOGGER.info(call_line(call, outcome))
        return outcome.status.value

    def _park(self, sock: socket.socket, channel: SocketChannel, call: CallInfo, outcome) -> bool:
        """Send the prepared Dial and park the call until its reply; False: finish it in this thread."""
        if channel.hung_up:
            return False  # finish_dial reports the hangup and dials nothing
        try:
            channel.send_exec("Dial", outcome.pending_dial)
        except ChannelHungUp:
            return False  # finish_dial meets the same broken connection and says so
        if channel.reply_waiting:
            return False  # the reply is already here: read it now
        self._parked_sockets.add(sock)
        counts = self.metrics.hand_over()
        try:
            self.parking.park(sock, lambda: self._resume(sock, channel, call, outcome, counts))
        except RuntimeError:  # the server is closing: finish the call in this thread
            self._parked_sockets.discard(sock)
            self.metrics.take_over(counts)
            return False
        return True

    def _resume(self, sock: socket.socket, channel: SocketChannel, call: CallInfo, outcome, counts: object) -> None:
        """Finish a parked call once Asterisk has written to it: read the Dial's reply, publish, log."""
        status = None
        self.metrics.take_over(counts)
        try:
            try:
                outcome = finish_dial(channel, outcome, self._edges, call)
            finally:
                channel.close()
            status = self._report(call, outcome)
        except Exception:  # noqa: BLE001 - the thread's last word; the call is counted as broken
            self.metrics.crashed()
            LOGGER.error("unexpected error finishing a call after its Dial", exc_info=True)
        finally:
            self._parked_sockets.discard(sock)
            super().shutdown_request(sock)
            self._finished(status)

    def handle_error(self, request, client_address) -> None:
        # socketserver would print the traceback raw to stderr, past the redaction.
        LOGGER.error("unexpected error serving a connection from %s", client_address[0], exc_info=True)

    def service_actions(self) -> None:
        if time.monotonic() >= self._next_summary:
            self._next_summary = time.monotonic() + self._summary_interval
            LOGGER.info(self.stats.line())

    def stop_accepting(self) -> None:
        """Close the listening socket: from now on a new connection is refused at once."""
        self.draining = True
        self.socket.close()

    def drain(self, grace: float) -> bool:
        """Stop accepting, then wait up to ``grace`` seconds for calls in flight; return whether all finished."""
        self.stop_accepting()
        deadline = time.monotonic() + grace
        if self.stats.in_flight:
            LOGGER.info("draining: refusing new connections, waiting up to %gs for %d call(s)", grace,
                        self.stats.in_flight)
        with self._idle:
            while self.stats.in_flight and time.monotonic() < deadline:
                self._idle.wait(min(0.5, max(deadline - time.monotonic(), 0.01)))
        return self.stats.in_flight == 0

    def close(self) -> None:
        """Release the listening socket, the parking and the HTTP pool."""
        self.server_close()
        self.parking.close()
        self._clients.close()


def serve(listen: str, max_connections: int, read_timeout: float, grace: float, summary_interval: float,
          allow: Sequence[Network] = LOOPBACK, metrics_listen: Optional[str] = None) -> int:
    """Run the server until SIGTERM/SIGINT; SIGHUP reloads the settings."""
    threading.stack_size(THREAD_STACK_BYTES)
    metrics = PrometheusMetrics() if metrics_listen is not None else None
    server = FastAgiServer(parse_listen(listen), os.environ, max_connections, read_timeout, summary_interval,
                           allow, metrics)
    http = None
    if metrics is not None and metrics_listen is not None:
        try:
            http = MetricsHttpServer(parse_listen(metrics_listen, "--metrics-listen", METRICS_PORT),
                                     metrics.registry, server.health).start()
        except OSError as exc:
            server.close()
            raise ConfigError(f"--metrics-listen: cannot listen on {metrics_listen[:60]}: "
                              f"{exc.strerror or exc}") from exc
    configure(server.base.log, secrets=server.base.secrets)
    if not server.base.usable:
        LOGGER.error("starting with a configuration error; every call gets CONFIG_ERROR: %s", server.base.error)
    stopping = threading.Event()

    def stop(signum, frame) -> None:
        if not stopping.is_set():
            stopping.set()
            server.stop_accepting()
            # shutdown() waits for serve_forever, which runs in this very thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda signum, frame: server.reload())
    host, port = server.server_address[:2]
    if http is not None:
        metrics_host, metrics_port = http.server_address[:2]
        LOGGER.info("metrics on http://%s:%d/metrics and /healthz", metrics_host, metrics_port)
    LOGGER.info("FastAGI listening on agi://%s:%d/%s (max %d calls)", host, port, ROUTE, max_connections)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        drained = server.drain(grace)
        LOGGER.info("%s%s", server.stats.line(), "" if drained else f" (grace of {grace:g}s ran out)")
        if http is not None:
            http.stop()
        server.close()
        # Past this point the process is only exiting: a repeated SIGTERM (systemd, an
        # impatient operator) must not turn a clean drain into death by signal.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return 0
