"""Synthflow's ``POST /prepare_inbound`` over requests: the HTTP edge.

requests and urllib3 are imported here and nowhere else; every exception
they (or the socket, ssl and http.client modules under them) raise is mapped
to the ``ApiError`` tree by ``ERROR_TABLE`` before it leaves this module.

``timeout`` bounds the whole step by the wall clock: name resolution,
connect, TLS, headers and body, retries and their waits.  urllib3 cannot do
that alone (see ``_deadline``), so its connections are given a bounded
resolver and a watchdog; retries and their policy stay urllib3's ``Retry``.

Longer than most modules on purpose: it is the one place that imports
requests and urllib3, so their subclasses and the exception table live here.
"""

from __future__ import annotations

import contextvars
import errno
import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
from typing import Callable, List, Optional, Tuple, Type
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError, ResponseError
from urllib3.util import Retry, Timeout, connection as urllib3_connection

from . import __version__
from ._call import PreparedCall, PrepareRequest
from ._deadline import RESOLVER, CallDeadline, current
from ._errors import (ApiAuthError, ApiError, ApiTimeoutError, ApiUnavailableError, ConfigError, SynthflowAgiError,
                      UnmappedError)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})
BACKOFF_FACTOR = 0.2
# An attempt with less time than this left cannot finish a TLS round trip.
MIN_ATTEMPT_SECONDS = 0.05
# A prepare_inbound answer is a few hundred bytes, plus the custom_variables it may
# echo, each at most one AGI value (64 KiB); far more than that is not an answer.
MAX_ANSWER_BYTES = 1024 * 1024
# The attempts of the API call running in this context, when its client reports them:
# each is an outcome word and the urllib3 response it came from (None for an error).
_attempts: contextvars.ContextVar[Optional[List[Tuple[str, object]]]] = contextvars.ContextVar(
    "synthflow_attempts", default=None)


def attempt_outcome(response=None, error: Optional[BaseException] = None) -> str:
    """Name one attempt's result in a bounded word: its status class, ``429``, ``timeout``, ``unreachable`` or ``error``.

    >>> attempt_outcome(error=NewConnectionError(None, "refused")), attempt_outcome(error=ConnectTimeoutError())
    ('unreachable', 'timeout')
    """
    if error is not None:
        # urllib3 makes a refused or unresolvable connect a ConnectTimeoutError subclass.
        if isinstance(error, NewConnectionError):
            return "unreachable"
        return "timeout" if isinstance(error, (urllib3.exceptions.TimeoutError, socket.timeout)) else "error"
    status = getattr(response, "status", 0)
    if status == 429:
        return "429"
    return f"{status // 100}xx" if isinstance(status, int) and 100 <= status < 600 else "error"


def _record_attempt(response=None, error: Optional[BaseException] = None) -> None:
    attempts = _attempts.get()
    if attempts is None:
        return
    # A retryable status passes through Retry.increment and, once retries are spent, is
    # also the answer returned: one attempt, counted once.
    if response is not None and any(seen is response for _, seen in attempts):
        return
    outcome = attempt_outcome(response, error)
    call = current()
    if error is not None and call is not None and call.passed():
        outcome = "timeout"  # the watchdog cut the socket: urllib3 sees a broken connection
    attempts.append((outcome, response))


class DeadlineTimeout(Timeout):
    """A urllib3 Timeout that gives each attempt only the time left before one deadline.

    urllib3 clones the timeout at the start of every attempt, retries
    included, so recomputing in ``clone`` shrinks the limits as the deadline
    nears.  These are still per-operation limits; the watchdog in
    ``_deadline`` is what bounds a dripping answer.
    """

    def __init__(self, deadline: float, connect_cap: float) -> None:
        remaining = max(deadline - time.monotonic(), 0.001)
        super().__init__(connect=min(connect_cap, remaining), read=remaining)
        self.deadline = deadline
        self.connect_cap = connect_cap

    def clone(self) -> "DeadlineTimeout":
        return DeadlineTimeout(self.deadline, self.connect_cap)


class DeadlineRetry(Retry):
    """urllib3's Retry, refusing a retry whose wait would run past the call's deadline.

    The Retry belongs to the adapter every call shares, so the deadline comes
    from the calling thread's ``CallDeadline``, never from this object.
    """

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        # urllib3 calls this for every attempt that failed or answered a retryable status,
        # whether or not a retry follows: the one place that sees each failed attempt.
        _record_attempt(response, error)
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        call = current()
        if call is None:
            return retry
        wait = 0.0
        if response is not None and retry.respect_retry_after_header:
            wait = retry.get_retry_after(response) or 0.0
        if not wait:  # urllib3 sleeps the backoff when Retry-After is absent or 0
            wait = retry.get_backoff_time()
        if call.expired or call.remaining() < wait + MIN_ATTEMPT_SECONDS:
            reason = error or ResponseError("no time left to retry")
            raise MaxRetryError(_pool, url, reason) from reason
        return retry


def retry_policy(retries: int) -> DeadlineRetry:
    """Retry only what cannot have registered a call: connects that failed, and 429/502/503/504.

    A read error or read timeout is never retried: the POST may have reached
    Synthflow, and prepare_inbound has no idempotency key.
    """
    return DeadlineRetry(
        total=retries, connect=retries, read=False, status=retries, other=0, redirect=False,
        allowed_methods=frozenset({"POST"}), status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR, raise_on_status=False, respect_retry_after_header=True,
    )


class _DeadlineConnectionMixin:
    """A urllib3 connection whose socket the call's deadline can cut, resolved within it."""

    # Our own _new_conn, because urllib3's calls getaddrinfo with no limit at all;
    # the rest (error types, socket options) follows urllib3's own.
    def _new_conn(self):
        call = current()
        if call is None:
            return super()._new_conn()
        if call.passed():
            raise ConnectTimeoutError(self, "no time left to connect")
        try:
            addresses = RESOLVER.resolve(self._dns_host, self.port, urllib3_connection.allowed_gai_family(),
                                         call.deadline)
        except socket.timeout as exc:
            raise ConnectTimeoutError(self, "name resolution ran out of time") from exc
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except OSError as exc:
            raise NewConnectionError(self, "name resolution failed") from exc
        error: Optional[BaseException] = None
        for _family, _type, _proto, _name, sockaddr in addresses:
            left = call.remaining()
            if left <= 0:
                break
            limit = min(self.timeout, left) if isinstance(self.timeout, (int, float)) else left
            try:
                sock = urllib3_connection.create_connection(
                    (sockaddr[0], sockaddr[1]), limit, source_address=self.source_address,
                    socket_options=self.socket_options)
            except socket.timeout as exc:
                error = ConnectTimeoutError(self, "connect timed out")
                error.__cause__ = exc
            except OSError as exc:
                error = NewConnectionError(self, "failed to establish a new connection")
                error.__cause__ = exc
            else:
                call.watch(self, sock)
                sys.audit("http.client.connect", self, self.host, self.port)
                return sock
        raise error or ConnectTimeoutError(self, "no time left to connect")

    def connect(self):
        super().connect()
        call = current()
        if call is not None:
            # The socket as finally wrapped (TLS): http.client drops ``self.sock`` once
            # an answer says ``Connection: close``, while the body is still being read.
            call.watch(self, self.sock)

    def request(self, *args, **kwargs):
        call = current()
        if call is not None and self.sock is not None:
            call.watch(self, self.sock)  # a pooled connection: claim it for this call
        return super().request(*args, **kwargs)


class _DeadlineHTTPConnection(_DeadlineConnectionMixin, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnectionMixin, HTTPSConnection):
    pass


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with urllib3 pools whose connections obey the call's deadline."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


class SynthflowClient:
    """One pooled HTTP session to prepare_inbound; thread-safe for concurrent calls."""

    def __init__(self, api_url: str, api_token: str, retries: int = 2, pool_size: int = 1,
                 on_attempt: Optional[Callable[[str], None]] = None) -> None:
        """``on_attempt`` is told each HTTP attempt's outcome (``attempt_outcome``), retries included."""
        self._on_attempt = on_attempt
        self._url = f"{api_url}/prepare_inbound"
        self._host = host_of(api_url)
        if "@" in urlsplit(api_url).netloc:
            # requests would turn user:password@ into Basic auth, replacing the Bearer token.
            raise ConfigError(f"api_url for {self._host} must not hold user:password@; the token is api_token")
        self._headers = {
            "Authorization": f"Bearer {api_token}",
            "Accept": "application/json",
            "User-Agent": f"synthflow-agi/{__version__} {requests.utils.default_user_agent()}",
        }
        self._session = requests.Session()
        adapter = _DeadlineAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1),
                                   max_retries=retry_policy(retries))
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        # requests re-reads the environment (proxies, REQUESTS_CA_BUNDLE, ~/.netrc) on
        # every request: a scan of os.environ per call, and a netrc entry would replace
        # our Authorization header.  Read proxies and CA bundle once, here, instead.
        self._environment = self._session.merge_environment_settings(self._url, {}, True, None, None)
        self._session.trust_env = False

    def prepare(self, request: PrepareRequest, timeout: float) -> PreparedCall:
        """Register the call; raise an ``ApiError`` subclass when no usable answer came in time."""
        if self._on_attempt is None:
            return self._prepare(request, timeout)
        attempts: List[Tuple[str, object]] = []
        token = _attempts.set(attempts)
        try:
            return self._prepare(request, timeout)
        finally:
            _attempts.reset(token)
            for outcome, _ in attempts:
                self._on_attempt(outcome)

    def _prepare(self, request: PrepareRequest, timeout: float) -> PreparedCall:
        with CallDeadline(timeout) as call:
            try:
                status, content = self._post(request, call, timeout)
            except TRANSPORT_ERRORS as exc:
                if call.passed():
                    raise ApiTimeoutError(f"no answer from {self._host} before the deadline") from exc
                raise map_transport_error(exc, self._host) from exc
            # Checked after the answer is complete: a hand-off never starts late.
            if call.passed():
                raise ApiTimeoutError(f"the answer from {self._host} was complete only after the deadline")
        return read_answer(status, content)

    def _post(self, request: PrepareRequest, call: CallDeadline, timeout: float) -> Tuple[int, bytes]:
        response = self._session.post(  # stream=True is in self._environment: the body is read below
            self._url, json=request.body(), headers=self._headers, allow_redirects=False,
            timeout=DeadlineTimeout(call.deadline, connect_cap=max(timeout / 2, MIN_ATTEMPT_SECONDS)),
            **self._environment,
        )
        _record_attempt(response.raw)  # the attempt that answered (unless already counted as retryable)
        with response:
            content = bytearray()
            for chunk in response.iter_content(16 * 1024):
                content += chunk
                if len(content) > MAX_ANSWER_BYTES:
                    raise ApiError(f"prepare_inbound answered more than {MAX_ANSWER_BYTES} bytes")
            return response.status_code, bytes(content)

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()


def host_of(api_url: str) -> str:
    """The configured host and port, for error texts: never the URL's userinfo, path or query.

    >>> host_of("https://user:secret@api.synthflow.ai:8443/v2?key=secret")
    'api.synthflow.ai:8443'
    """
    parts = urlsplit(api_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "the API host"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def read_answer(status: int, content: bytes) -> PreparedCall:
    """Turn an HTTP status and body into a PreparedCall, or the ApiError they amount to.

    Error texts describe the answer's shape; nothing the API sent is copied.
    """
    if status in AUTH_STATUSES:
        raise ApiAuthError(f"Synthflow refused the API token (HTTP {status})")
    if status >= 500:
        raise ApiUnavailableError(f"prepare_inbound answered HTTP {status}")
    if not 200 <= status < 300:
        raise ApiError(f"prepare_inbound answered HTTP {status}")
    try:
        answer = json.loads(content.decode("utf-8"))
    except ValueError as exc:
        raise ApiError(f"prepare_inbound answered HTTP {status} with a body that is not JSON") from exc
    if not isinstance(answer, dict):
        raise ApiError(f"prepare_inbound answered a JSON {_shape(answer)}, not an object")
    call_status = answer.get("call_status")
    if call_status != "registered":
        shape = "missing" if "call_status" not in answer else f"a {_shape(call_status)}"
        raise ApiError(f"prepare_inbound call_status is {shape}, not 'registered'")
    call_id = answer.get("synthflow_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ApiError("prepare_inbound answer has no synthflow_call_id")
    return PreparedCall(call_id=call_id, answer=answer)


def _shape(value: object) -> str:
    """Describe a JSON value without quoting it: its type, and its length when it has one.

    >>> _shape("failed"), _shape(None), _shape([1, 2])
    ('string of 6 characters', 'null', 'array of 2 items')
    """
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"string of {len(value)} characters"
    if isinstance(value, list):
        return f"array of {len(value)} items"
    if isinstance(value, dict):
        return f"object of {len(value)} keys"
    return {bool: "boolean", int: "number", float: "number"}.get(type(value), type(value).__name__)


# --- the exception table ------------------------------------------------------------

Factory = Callable[[BaseException, str], SynthflowAgiError]


def _timed_out(exc: BaseException, host: str) -> SynthflowAgiError:
    return ApiTimeoutError(f"no answer from {host} before the deadline")


def _unusable_settings(exc: BaseException, host: str) -> SynthflowAgiError:
    return ConfigError(f"api_url, proxy or api_token is not usable: {type(exc).__name__}")


def _invalid_header(exc: BaseException, host: str) -> SynthflowAgiError:
    # requests raises InvalidHeader both for a header we send (a token with a line
    # break: configuration) and, wrapping urllib3's, for one the API sent.
    if any(isinstance(arg, _U.InvalidHeader) for arg in exc.args):
        return _bad_http(exc, host)
    return _unusable_settings(exc, host)


def _tls_failed(exc: BaseException, host: str) -> SynthflowAgiError:
    return ApiUnavailableError(f"TLS with {host} failed: {root_cause(exc)}")


def _unreachable(exc: BaseException, host: str) -> SynthflowAgiError:
    return ApiUnavailableError(f"cannot reach {host}: {root_cause(exc)}")


def _bad_http(exc: BaseException, host: str) -> SynthflowAgiError:
    return ApiError(f"{host} sent a malformed HTTP answer: {type(exc).__name__}")


def _client_failed(exc: BaseException, host: str) -> SynthflowAgiError:
    return ApiError(f"the HTTP client failed on the request to {host}: {type(exc).__name__}")


def unmapped(exc: BaseException, host: str) -> SynthflowAgiError:
    # Never meant to happen: the exhaustive test walks every exception class of
    # requests, urllib3, http.client, ssl and socket and fails on any that lands here.
    return UnmappedError(f"unexpected {type(exc).__name__} from the HTTP client")


_R = requests.exceptions
_U = urllib3.exceptions
# Ordered: the first row whose classes match wins, so narrower rows come first.
ERROR_TABLE: Tuple[Tuple[Tuple[Type[BaseException], ...], Factory], ...] = (
    # urllib3 makes a refused or unresolvable connect a ConnectTimeoutError subclass.
    ((_U.NewConnectionError,), _unreachable),
    ((_R.Timeout, _U.TimeoutError, socket.timeout), _timed_out),
    ((_R.InvalidHeader,), _invalid_header),
    ((_R.InvalidURL, _R.InvalidSchema, _R.MissingSchema, _R.InvalidProxyURL, _U.LocationValueError, _U.ProxySchemeUnknown, _U.ProxySchemeUnsupported), _unusable_settings),
    ((_R.SSLError, _U.SSLError, ssl.SSLError, ssl.CertificateError), _tls_failed),
    ((_R.ChunkedEncodingError, _R.ContentDecodingError, _U.DecodeError, _U.ResponseNotChunked,
      _U.InvalidChunkLength, _U.IncompleteRead, _U.InvalidHeader, _U.HeaderParsingError,
      _U.BodyNotHttplibCompatible, http.client.HTTPException), _bad_http),
    ((_R.ConnectionError, _U.ProtocolError, _U.MaxRetryError, _U.ProxyError,
      _U.PoolError), _unreachable),
    ((_R.RetryError, _R.TooManyRedirects, _R.URLRequired, _R.InvalidJSONError, _R.HTTPError,
      _R.StreamConsumedError, _R.UnrewindableBodyError, _U.UnrewindableBodyError, _U.ResponseError,
      _U.TimeoutStateError,
      _U.HTTPError, _R.RequestException), _client_failed),
    # Last: every requests exception is an OSError (IOError), so an OSError row any
    # earlier would claim the client's own failures above as an unreachable API.
    ((OSError,), _unreachable),
)
# What ``prepare`` catches: exactly the classes the table maps, nothing broader.
TRANSPORT_ERRORS: Tuple[Type[BaseException], ...] = tuple(cls for classes, _ in ERROR_TABLE for cls in classes)
# The client_failed row ends in the libraries' root classes; only those two
# classes themselves may rely on it, so a new library class cannot hide there.
LIBRARY_ROOTS = (_U.HTTPError, _R.RequestException)


def table_entry_for(exc_type: Type[BaseException]) -> Optional[Tuple[Type[BaseException], Factory]]:
    """The first table class ``exc_type`` derives from, with its row's factory; None when unmapped."""
    for classes, factory in ERROR_TABLE:
        for cls in classes:
            if issubclass(exc_type, cls):
                return cls, factory
    return None


def factory_for(exc_type: Type[BaseException]) -> Factory:
    """The table's factory for an exception class, or ``unmapped``."""
    entry = table_entry_for(exc_type)
    return unmapped if entry is None else entry[1]


def map_transport_error(exc: BaseException, host: str) -> SynthflowAgiError:
    """Map a requests/urllib3/socket/ssl/http.client exception to this package's tree."""
    return factory_for(type(exc))(exc, host)


_REASON = re.compile(r"^[A-Z0-9_]{1,64}$")


def root_cause(exc: BaseException) -> str:
    """Name the innermost OS or TLS reason (e.g. 'Connection refused'), never a URL, header or body.

    Texts come from the C library's tables (``os.strerror``, ``gai_strerror``)
    or OpenSSL's reason mnemonics, never from an exception's message.
    """
    seen = set()
    current_exc: Optional[BaseException] = exc
    innermost, reason = type(exc).__name__, ""
    while current_exc is not None and id(current_exc) not in seen:
        seen.add(id(current_exc))
        innermost = type(current_exc).__name__
        if isinstance(current_exc, ssl.SSLError) and _REASON.match(str(getattr(current_exc, "reason", "") or "")):
            reason = current_exc.reason
        elif isinstance(current_exc, socket.gaierror) and isinstance(current_exc.strerror, str):
            reason = current_exc.strerror[:80]
        elif isinstance(current_exc, OSError) and isinstance(current_exc.errno, int) \
                and current_exc.errno in errno.errorcode:
            reason = os.strerror(current_exc.errno)
        nested = [getattr(current_exc, "reason", None), *current_exc.args]
        current_exc = next((n for n in nested if isinstance(n, BaseException)), None) \
            or current_exc.__cause__ or current_exc.__context__
    return reason or innermost


_root_cause = root_cause  # the name earlier versions used
