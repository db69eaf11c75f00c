"""Synthflow's ``POST /prepare_inbound`` over requests: the HTTP edge.

requests and urllib3 are imported here and nowhere else; every exception
they raise is mapped to the ``ApiError`` tree before it leaves this module.
"""

from __future__ import annotations

import contextvars
import json
import time
from typing import Optional
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util import Retry, Timeout

from . import __version__
from ._call import PreparedCall, PrepareRequest
from ._errors import ApiAuthError, ApiError, ApiTimeoutError, ApiUnavailableError, ConfigError, SynthflowAgiError

RETRY_STATUSES = frozenset({429, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})
BACKOFF_FACTOR = 0.2
# An attempt with less time than this left cannot finish a TLS round trip.
MIN_ATTEMPT_SECONDS = 0.05
# Everything a requests call can raise; the exhaustive test walks both
# libraries' exception modules and checks each class is one of these.
# (urllib3's ProxySchemeUnsupported, for one, is a plain ValueError.)
TRANSPORT_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError)

# The deadline of the call running in this thread (or task). Retry objects
# belong to the shared adapter, so the per-call deadline reaches them here.
_call_deadline: contextvars.ContextVar[Optional[float]] = contextvars.ContextVar(
    "synthflow_call_deadline", default=None
)


class DeadlineTimeout(Timeout):
    """A urllib3 Timeout that gives each attempt only the time left before one deadline.

    urllib3 clones the timeout at the start of every attempt, retries
    included, so recomputing in ``clone`` shrinks the read timeout as the
    deadline nears instead of granting each retry the full budget again.
    """

    def __init__(self, deadline: float, connect_cap: float) -> None:
        remaining = max(deadline - time.monotonic(), 0.001)
        super().__init__(connect=min(connect_cap, remaining), read=remaining)
        self.deadline = deadline
        self.connect_cap = connect_cap

    def clone(self) -> "DeadlineTimeout":
        return DeadlineTimeout(self.deadline, self.connect_cap)


class DeadlineRetry(Retry):
    """urllib3's Retry, refusing a retry whose wait would run past the call's deadline."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        deadline = _call_deadline.get()
        if deadline is None:
            return retry
        wait = None
        if response is not None and retry.respect_retry_after_header:
            wait = retry.get_retry_after(response)
        if wait is None:
            wait = retry.get_backoff_time()
        if time.monotonic() + wait + MIN_ATTEMPT_SECONDS >= deadline:
            reason = error or ResponseError(f"no time left to retry {getattr(response, 'status', '')}")
            raise MaxRetryError(_pool, url, reason) from reason
        return retry


def retry_policy(retries: int) -> DeadlineRetry:
    """Retry only what cannot have registered a call: connects that failed, and 429/502/503/504.

    A read error or read timeout is never retried: the POST may have reached
    Synthflow, and prepare_inbound has no idempotency key (FACTS 13).
    """
    return DeadlineRetry(
        total=retries, connect=retries, read=False, status=retries, other=0, redirect=False,
        allowed_methods=frozenset({"POST"}), status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR, raise_on_status=False, respect_retry_after_header=True,
    )


class SynthflowClient:
    """One pooled HTTP session to prepare_inbound; thread-safe for concurrent calls."""

    def __init__(self, api_url: str, api_token: str, retries: int = 2, pool_size: int = 1) -> None:
        self._url = f"{api_url}/prepare_inbound"
        self._host = urlsplit(api_url).netloc
        self._headers = {
            "Authorization": f"Bearer {api_token}",
            "Accept": "application/json",
            "User-Agent": f"synthflow-agi/{__version__} {requests.utils.default_user_agent()}",
        }
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), max_retries=retry_policy(retries))
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        # requests re-reads the environment (proxies, REQUESTS_CA_BUNDLE, ~/.netrc) on
        # every request: a scan of os.environ per call, and a netrc entry would replace
        # our Authorization header.  Read proxies and CA bundle once, here, instead.
        self._environment = self._session.merge_environment_settings(self._url, {}, None, None, None)
        self._session.trust_env = False

    def prepare(self, request: PrepareRequest, timeout: float) -> PreparedCall:
        """Register the call; raise an ``ApiError`` subclass when no usable answer came in time."""
        deadline = time.monotonic() + timeout
        token = _call_deadline.set(deadline)
        try:
            response = self._session.post(
                self._url, json=request.body(), headers=self._headers, allow_redirects=False,
                timeout=DeadlineTimeout(deadline, connect_cap=max(timeout / 2, MIN_ATTEMPT_SECONDS)),
                **self._environment,
            )
        except TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, self._host) from exc
        finally:
            _call_deadline.reset(token)
        return read_answer(response.status_code, response.content)

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()


def read_answer(status: int, content: bytes) -> PreparedCall:
    """Turn an HTTP status and body into a PreparedCall, or the ApiError they amount to."""
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
        raise ApiError("prepare_inbound answered JSON that is not an object")
    call_status = answer.get("call_status")
    if call_status != "registered":
        raise ApiError(f"prepare_inbound call_status is {str(call_status)[:40]!r}, not 'registered'")
    call_id = answer.get("synthflow_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ApiError("prepare_inbound answer has no synthflow_call_id")
    return PreparedCall(call_id=call_id, answer=answer)


def map_transport_error(exc: BaseException, host: str) -> SynthflowAgiError:
    """Map any requests/urllib3/socket exception to this package's tree."""
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return ApiTimeoutError(f"no answer from {host} before the deadline")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                        requests.exceptions.MissingSchema, urllib3.exceptions.LocationValueError)):
        return ConfigError(f"api_url is not usable: {type(exc).__name__}")
    if isinstance(exc, (requests.exceptions.SSLError, urllib3.exceptions.SSLError)):
        return ApiUnavailableError(f"TLS with {host} failed: {_root_cause(exc)}")
    if isinstance(exc, (requests.exceptions.ConnectionError, urllib3.exceptions.ProtocolError,
                        urllib3.exceptions.MaxRetryError, OSError)):
        return ApiUnavailableError(f"cannot reach {host}: {_root_cause(exc)}")
    if isinstance(exc, ValueError) and not isinstance(exc, requests.exceptions.RequestException):
        return ConfigError(f"HTTP client settings (URL or proxy) are not usable: {type(exc).__name__}")
    return ApiError(f"request to {host} failed: {type(exc).__name__}")


def _root_cause(exc: BaseException) -> str:
    """Name the innermost OS-level reason (e.g. 'Connection refused'), never a URL or header."""
    seen = set()
    current: Optional[BaseException] = exc
    reason = type(exc).__name__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        nested = getattr(current, "reason", None)
        if isinstance(nested, BaseException):
            current = nested
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__
    return reason
