"""One wall-clock deadline per API call, enforced below the HTTP library.

Standard library only.  ``_api`` builds on it; nothing here knows requests.

Why this exists: urllib3's ``Timeout`` is a per-socket-operation limit (its
docs: the read timeout is "the time between bytes"), so a server that drips
one byte every half second, or sends headers slowly, is never cut off, and
``getaddrinfo`` is not bounded at all.  Two pieces close that gap:

* ``CallDeadline`` + one process-wide watchdog thread: when a call's deadline
  passes, the sockets of the connections that call is using are shut down, so
  whatever read or write is blocked returns at once.
* ``BoundedResolver``: name resolution in a daemon thread, waited on only
  until the deadline (a hung resolver cannot hold the call or, being a
  daemon, the process's exit).
"""

from __future__ import annotations

import contextvars
import heapq
import ipaddress
import itertools
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

AddrInfo = Tuple[Any, ...]

_current: contextvars.ContextVar[Optional["CallDeadline"]] = contextvars.ContextVar(
    "synthflow_call_deadline", default=None
)


def current() -> Optional["CallDeadline"]:
    """The deadline of the API call running in this thread, if any.

    A context variable, not an attribute of the shared client: FastAGI runs
    many calls at once through one client, and each thread sees only its own.
    """
    return _current.get()


class CallDeadline:
    """The deadline of one API call, and the connections to cut when it passes."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self.finished = False
        self._lock = threading.Lock()
        self._watched: List[Tuple[Any, Optional[socket.socket]]] = []
        self._token: Optional[contextvars.Token] = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def passed(self) -> bool:
        return self.expired or time.monotonic() >= self.deadline

    def __enter__(self) -> "CallDeadline":
        self._token = _current.set(self)
        WATCHDOG.arm(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self.finished = True
            self._watched.clear()
        if self._token is not None:
            _current.reset(self._token)

    def watch(self, connection: Any, raw_socket: Optional[socket.socket] = None) -> None:
        """Claim ``connection`` (an http.client-style object with ``.sock``) for this call.

        The claim is an attribute on the connection, so a pooled connection
        later used by another call is never cut by this call's watchdog.
        """
        with self._lock:
            if self.finished:
                return
            connection._synthflow_deadline = self
            self._watched.append((connection, raw_socket))
            if self.expired:
                _cut(connection, raw_socket)

    def expire(self) -> None:
        """Called by the watchdog at the deadline: shut down every socket still claimed."""
        with self._lock:
            if self.finished:
                return
            self.expired = True
            for connection, raw_socket in self._watched:
                if getattr(connection, "_synthflow_deadline", None) is self:
                    _cut(connection, raw_socket)


def _cut(connection: Any, raw_socket: Optional[socket.socket]) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: the latter also drops
    # the TLS object under a thread that may be reading through it.  Shutdown,
    # not close: the reading thread owns the descriptor and closes it itself.
    for sock in (getattr(connection, "sock", None), raw_socket):
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass


class _Watchdog:
    """One daemon thread for the whole process, sleeping until the nearest deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: List[Tuple[float, int, CallDeadline]] = []
        self._order = itertools.count()
        self._thread: Optional[threading.Thread] = None

    def arm(self, call: CallDeadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (call.deadline, next(self._order), call))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="synthflow-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].finished:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)[2].expire()


WATCHDOG = _Watchdog()


class ResolutionTimeout(socket.timeout):
    """Name resolution did not finish before the call's deadline."""


class _Lookup:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: List[AddrInfo] = []
        self.error: Optional[BaseException] = None


class BoundedResolver:
    """``getaddrinfo`` with a deadline, one lookup in flight per name, answers kept briefly.

    Sharing the lookup in flight bounds the threads a hung resolver can
    collect to one per name; only successes are cached.
    """

    def __init__(self, ttl: float = 10.0, max_names: int = 32) -> None:
        self._ttl = ttl
        self._max_names = max_names
        self._lock = threading.Lock()
        self._cache: Dict[Tuple[str, int, int], Tuple[float, List[AddrInfo]]] = {}
        self._pending: Dict[Tuple[str, int, int], _Lookup] = {}

    def resolve(self, host: str, port: int, family: int, deadline: float) -> List[AddrInfo]:
        """Addresses for ``host`` as ``getaddrinfo`` gives them; ``ResolutionTimeout`` at the deadline."""
        host = host.strip("[]")
        if _is_address(host):
            return socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
        key = (host, port, family)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            lookup = self._pending.get(key)
            if lookup is None:
                lookup = self._pending[key] = _Lookup()
                threading.Thread(target=self._lookup, args=(key, lookup), name="synthflow-resolve",
                                 daemon=True).start()
        if not lookup.done.wait(max(deadline - time.monotonic(), 0.0)):
            raise ResolutionTimeout(f"resolving {host} took longer than the time left")
        if lookup.error is not None:
            raise lookup.error
        return lookup.result

    def _lookup(self, key: Tuple[str, int, int], lookup: _Lookup) -> None:
        host, port, family = key
        try:
            lookup.result = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except OSError as exc:
            lookup.error = exc
        except Exception as exc:  # noqa: BLE001 - e.g. UnicodeError: hand it to the waiting call
            lookup.error = exc
        with self._lock:
            self._pending.pop(key, None)
            if lookup.error is None:
                if len(self._cache) >= self._max_names:
                    self._cache.clear()
                self._cache[key] = (time.monotonic() + self._ttl, lookup.result)
        lookup.done.set()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


RESOLVER = BoundedResolver()
