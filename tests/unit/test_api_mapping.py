"""Every requests/urllib3 exception and every answer shape maps into the package's tree."""

import inspect
import json
import time

import pytest
import requests
import urllib3

from synthflow_agi import _api
from synthflow_agi._errors import ApiAuthError, ApiError, ApiTimeoutError, ApiUnavailableError, ConfigError, SynthflowAgiError


def _exception_classes(module):
    return [
        cls for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and not issubclass(cls, Warning)
        and cls.__module__.startswith(module.__name__.split(".")[0])
    ]


ALL_LIBRARY_EXCEPTIONS = _exception_classes(requests.exceptions) + _exception_classes(urllib3.exceptions)


def _instance(cls):
    """Build an instance without knowing each constructor's arguments."""
    try:
        return cls("boom")
    except TypeError:
        instance = cls.__new__(cls)
        BaseException.__init__(instance, "boom")
        return instance


def test_the_walk_found_the_libraries_exceptions():
    """The exhaustive walk really sees the classes it claims to cover."""
    names = {cls.__name__ for cls in ALL_LIBRARY_EXCEPTIONS}
    assert {"ConnectTimeout", "ReadTimeout", "SSLError", "MaxRetryError", "ProtocolError", "NewConnectionError"} <= names


@pytest.mark.parametrize("cls", ALL_LIBRARY_EXCEPTIONS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_no_library_exception_reaches_the_core_unmapped(cls):
    """Each exception is caught at the edge and becomes a SynthflowAgiError."""
    assert issubclass(cls, _api.TRANSPORT_ERRORS), f"{cls} escapes SynthflowClient.prepare"
    mapped = _api.map_transport_error(_instance(cls), "api.example")
    assert isinstance(mapped, SynthflowAgiError)


@pytest.mark.parametrize(
    "exc, expected",
    [
        (requests.exceptions.ReadTimeout("r"), ApiTimeoutError),
        (requests.exceptions.ConnectTimeout("c"), ApiTimeoutError),
        (requests.exceptions.ConnectionError("refused"), ApiUnavailableError),
        (requests.exceptions.SSLError("bad cert"), ApiUnavailableError),
        (requests.exceptions.InvalidURL("x"), ConfigError),
        (ConnectionRefusedError(111, "Connection refused"), ApiUnavailableError),
    ],
)
def test_mapping_keeps_the_meaning(exc, expected):
    """Timeouts stay timeouts, unusable URLs are configuration, the rest is API_ERROR."""
    assert type(_api.map_transport_error(exc, "api.example")) is expected


def test_root_cause_names_the_os_reason():
    """The reason names the socket error, not the URL or headers."""
    inner = ConnectionRefusedError(111, "Connection refused")
    outer = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/v2", inner))
    assert _api.map_transport_error(outer, "api.example").reason == "cannot reach api.example: Connection refused"


def _body(**fields):
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    "status, content, expected, message",
    [
        (401, b"", ApiAuthError, "HTTP 401"),
        (403, b"{}", ApiAuthError, "HTTP 403"),
        (404, b"{}", ApiError, "HTTP 404"),
        (500, b"oops", ApiUnavailableError, "HTTP 500"),
        (200, b"<html>", ApiError, "not JSON"),
        (200, b"\xff\xfe", ApiError, "not JSON"),
        (200, b"[1, 2]", ApiError, "not an object"),
        (200, _body(call_status="registered"), ApiError, "no synthflow_call_id"),
        (200, _body(call_status="registered", synthflow_call_id=5), ApiError, "no synthflow_call_id"),
        (200, _body(call_status="failed", synthflow_call_id="abc-12345678"), ApiError, "'failed'"),
        (200, _body(synthflow_call_id="abc-12345678"), ApiError, "'None'"),
    ],
)
def test_bad_answers_are_api_errors(status, content, expected, message):
    """Each documented failure shape gives the right error with a readable reason."""
    with pytest.raises(expected, match=message) as caught:
        _api.read_answer(status, content)
    assert type(caught.value) is expected


def test_registered_answer_gives_the_call_id():
    """A 2xx JSON answer with call_status registered yields its id and the whole answer."""
    prepared = _api.read_answer(201, _body(call_status="registered", synthflow_call_id="abc-12345678", x=1))
    assert prepared.call_id == "abc-12345678"
    assert prepared.answer["x"] == 1


def test_deadline_timeout_shrinks_with_each_clone():
    """Every attempt's read timeout is only the time left before the deadline."""
    deadline = time.monotonic() + 2.0
    first = _api.DeadlineTimeout(deadline, connect_cap=0.5)
    assert first.connect_timeout == 0.5
    assert 1.9 < first.read_timeout <= 2.0
    time.sleep(0.3)
    later = first.clone()
    assert later.read_timeout <= 1.71
    expired = _api.DeadlineTimeout(time.monotonic() - 1, connect_cap=0.5)
    assert expired.read_timeout == expired.connect_timeout == 0.001


def test_retry_policy_never_retries_a_read():
    """A POST that may have reached Synthflow is not sent again (no idempotency key)."""
    policy = _api.retry_policy(3)
    assert policy.read is False
    assert policy.status_forcelist == _api.RETRY_STATUSES == {429, 502, 503, 504}
    assert "POST" in policy.allowed_methods
    assert not policy.is_retry("POST", 401) and not policy.is_retry("POST", 500)
    assert policy.is_retry("POST", 503)
