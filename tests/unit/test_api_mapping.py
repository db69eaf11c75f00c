"""Every third-party exception and every answer shape maps into the package's tree, echoing nothing."""

import builtins
import doctest
import http.client
import inspect
import json
import socket
import ssl
import time

import pytest
import requests
import urllib3

from synthflow_agi import _api
from synthflow_agi._deadline import CallDeadline
from synthflow_agi._errors import (ApiError, ApiTimeoutError, ApiUnavailableError, ConfigError,
                                   SynthflowAgiError, UnmappedError)

SENTINEL = "SENTINEL-from-the-wire-7Qx"


def _exception_classes(module):
    """The module's public exception classes (private ones, like socket's sendfile signal, never escape)."""
    prefix = module.__name__.split(".")[0]
    return [
        cls for name, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and not issubclass(cls, Warning) and not name.startswith("_")
        and cls.__module__.startswith(prefix)
    ]


LIBRARY_EXCEPTIONS = _exception_classes(requests.exceptions) + _exception_classes(urllib3.exceptions)
# What sits under the libraries: socket and ssl errors, http.client's, and the builtin OSErrors.
LOWER_EXCEPTIONS = (
    _exception_classes(http.client) + _exception_classes(ssl) + _exception_classes(socket)
    + [cls for cls in _exception_classes(builtins) if issubclass(cls, OSError)]
)
ALL_EXCEPTIONS = LIBRARY_EXCEPTIONS + LOWER_EXCEPTIONS


def _instance(cls):
    """Build an instance carrying SENTINEL without knowing each constructor's arguments."""
    try:
        return cls(SENTINEL)
    except TypeError:
        instance = cls.__new__(cls)
        BaseException.__init__(instance, SENTINEL)
        return instance


def _matched(cls):
    entry = _api.table_entry_for(cls)
    return None if entry is None else entry[0]


def test_the_walk_found_the_exceptions():
    """The exhaustive walk really sees the classes it claims to cover, from every layer."""
    names = {cls.__name__ for cls in ALL_EXCEPTIONS}
    assert {"ConnectTimeout", "ReadTimeout", "SSLError", "MaxRetryError", "ProtocolError", "NewConnectionError",
            "RemoteDisconnected", "BadStatusLine", "SSLCertVerificationError", "gaierror",
            "ConnectionRefusedError"} <= names
    assert len(ALL_EXCEPTIONS) > 80


@pytest.mark.parametrize("cls", ALL_EXCEPTIONS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_every_exception_has_its_own_row(cls):
    """Each class is caught by prepare and matched by a named row, not by the fallback or a bare root."""
    assert issubclass(cls, _api.TRANSPORT_ERRORS), f"{cls} escapes SynthflowClient.prepare"
    assert _api.factory_for(cls) is not _api.unmapped, f"{cls} reaches the unmapped fallback"
    assert _matched(cls) not in _api.LIBRARY_ROOTS or cls in _api.LIBRARY_ROOTS, \
        f"{cls} is mapped only because it derives from {_matched(cls)}: give it a row"


@pytest.mark.parametrize("cls", ALL_EXCEPTIONS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_mapped_errors_never_quote_the_exception(cls):
    """The mapped reason names the host and a class or OS reason, never the exception's own text."""
    mapped = _api.map_transport_error(_instance(cls), "api.example")
    assert isinstance(mapped, SynthflowAgiError)
    assert SENTINEL not in mapped.reason


def test_the_exhaustive_check_can_fail():
    """A new library class with no row, and a foreign exception, are both caught by the checks above."""

    class NewLibraryError(urllib3.exceptions.HTTPError):
        pass

    assert _matched(NewLibraryError) in _api.LIBRARY_ROOTS
    assert _api.factory_for(KeyError) is _api.unmapped
    assert not issubclass(KeyError, _api.TRANSPORT_ERRORS)
    unmapped = _api.map_transport_error(KeyError("k"), "h")
    assert type(unmapped) is UnmappedError and unmapped.status.value == "INTERNAL_ERROR"


def test_prepare_catches_no_bare_value_or_type_error():
    """A programming error inside the edge is not disguised as an API failure."""
    assert not issubclass(ValueError, _api.TRANSPORT_ERRORS)
    assert not issubclass(TypeError, _api.TRANSPORT_ERRORS)


@pytest.mark.parametrize(
    "exc, expected",
    [
        (requests.exceptions.ReadTimeout("r"), ApiTimeoutError),
        (requests.exceptions.ConnectTimeout("c"), ApiTimeoutError),
        (urllib3.exceptions.ConnectTimeoutError(None, "c"), ApiTimeoutError),
        (socket.timeout("t"), ApiTimeoutError),
        (urllib3.exceptions.NewConnectionError(None, "refused"), ApiUnavailableError),
        (urllib3.exceptions.NameResolutionError("h", None, socket.gaierror(-2, "x")), ApiUnavailableError),
        (requests.exceptions.ConnectionError("refused"), ApiUnavailableError),
        (requests.exceptions.SSLError("bad cert"), ApiUnavailableError),
        (requests.exceptions.InvalidURL("x"), ConfigError),
        (requests.exceptions.InvalidHeader("token with a line break"), ConfigError),
        (requests.exceptions.InvalidHeader(urllib3.exceptions.InvalidHeader("Retry-After")), ApiError),
        (urllib3.exceptions.ProxySchemeUnsupported("x"), ConfigError),
        (ConnectionRefusedError(111, "Connection refused"), ApiUnavailableError),
        (http.client.BadStatusLine("x"), ApiError),
    ],
)
def test_mapping_keeps_the_meaning(exc, expected):
    """Timeouts stay timeouts, a refused connect is not one, unusable settings are configuration."""
    assert type(_api.map_transport_error(exc, "api.example")) is expected


def test_root_cause_names_the_os_reason():
    """The reason names the socket error, not the URL or headers."""
    inner = ConnectionRefusedError(111, "Connection refused " + SENTINEL)
    outer = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/v2", inner))
    assert _api.map_transport_error(outer, "api.example").reason == "cannot reach api.example: Connection refused"


def test_root_cause_of_tls_is_openssls_mnemonic():
    """A TLS failure names OpenSSL's reason code, not the message (which may quote the peer's certificate)."""
    inner = ssl.SSLCertVerificationError(1, "certificate verify failed: " + SENTINEL)
    inner.reason = "CERTIFICATE_VERIFY_FAILED"
    mapped = _api.map_transport_error(requests.exceptions.SSLError(inner), "api.example")
    assert mapped.reason == "TLS with api.example failed: CERTIFICATE_VERIFY_FAILED"


def test_root_cause_finds_an_error_in_any_argument():
    """urllib3 puts the cause in the second argument of ProtocolError; it is still found."""
    inner = http.client.RemoteDisconnected(SENTINEL)
    outer = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", inner))
    assert _api.map_transport_error(outer, "h").reason == "cannot reach h: RemoteDisconnected"


@pytest.mark.parametrize("url, host", [
    ("https://api.synthflow.ai/v2", "api.synthflow.ai"),
    ("https://user:pw-SECRET@api.eu.synthflow.ai:8443/v2?key=SECRET#SECRET", "api.eu.synthflow.ai:8443"),
    ("http://[::1]:9/v2", "[::1]:9"),
])
def test_error_texts_name_only_the_host(url, host):
    """The host in error texts drops userinfo, path, query and fragment."""
    assert _api.host_of(url) == host


@pytest.mark.parametrize("answer", [
    {"call_status": SENTINEL, "synthflow_call_id": "abc-12345678"},
    {"call_status": ["registered", SENTINEL]},
    {"call_status": {SENTINEL: 1}},
    [SENTINEL],
    SENTINEL,
])
def test_no_answer_text_is_echoed(answer):
    """Whatever the API sends back, its text never appears in the error."""
    with pytest.raises(ApiError) as caught:
        _api.read_answer(200, json.dumps(answer).encode())
    assert SENTINEL not in caught.value.reason
    assert SENTINEL not in str(caught.value)


def test_registered_answer_gives_the_call_id():
    """A 2xx JSON answer with call_status registered yields its id and the whole answer."""
    answer = {"call_status": "registered", "synthflow_call_id": "abc-12345678", "x": 1}
    prepared = _api.read_answer(201, json.dumps(answer).encode())
    assert prepared.call_id == "abc-12345678"
    assert prepared.answer["x"] == 1


def test_module_examples_pass():
    """The doctests of the HTTP edge hold (host_of, _shape)."""
    result = doctest.testmod(_api)
    assert result.attempted >= 2 and result.failed == 0


def test_deadline_timeout_shrinks_with_each_clone():
    """Every attempt's limits are only the time left before the one deadline the object carries."""
    deadline = time.monotonic() + 2.0
    first = _api.DeadlineTimeout(deadline, connect_cap=0.5)
    assert first.connect_timeout == 0.5
    assert 1.9 < first.read_timeout <= 2.0
    time.sleep(0.3)
    later = first.clone()
    assert later.deadline == deadline
    assert 1.6 < later.read_timeout <= 1.71
    expired = _api.DeadlineTimeout(time.monotonic() - 1, connect_cap=0.5)
    assert expired.read_timeout == expired.connect_timeout == 0.001


def test_retry_policy_never_retries_a_read():
    """A POST that may have reached Synthflow is not sent again (no idempotency key)."""
    policy = _api.retry_policy(3)
    assert policy.read is False
    assert policy.status_forcelist == _api.RETRY_STATUSES == {429, 502, 503, 504}
    assert "POST" in policy.allowed_methods
    assert not policy.is_retry("POST", 401) and not policy.is_retry("POST", 403)
    assert not policy.is_retry("POST", 500)
    assert policy.is_retry("POST", 503)


def test_retry_is_refused_when_its_wait_passes_the_deadline():
    """Inside a call, a retry whose backoff would end after the deadline raises MaxRetryError at once."""
    policy = _api.retry_policy(5)
    error = urllib3.exceptions.NewConnectionError(None, "refused")
    with CallDeadline(10.0):
        once = policy.increment("POST", "/v2/prepare_inbound", error=error)
        twice = once.increment("POST", "/v2/prepare_inbound", error=error)
        assert twice.get_backoff_time() == pytest.approx(0.4)
    with CallDeadline(0.3):
        once = policy.increment("POST", "/v2/prepare_inbound", error=error)
        started = time.monotonic()
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            once.increment("POST", "/v2/prepare_inbound", error=error)
        assert time.monotonic() - started < 0.05
