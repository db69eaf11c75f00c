"""The HTTP edge's pure parts pinned exactly: attempt words, the retry budget against the deadline, texts."""

import http.client
import json
import socket
import ssl
import sys
import time
import traceback
import types

import pytest
import requests
import urllib3
from urllib3.exceptions import (ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError,
                                ProtocolError, ReadTimeoutError, ResponseError)
from urllib3.response import HTTPResponse
from urllib3.util.retry import RequestHistory

from synthflow_agi import _api
from synthflow_agi._deadline import CallDeadline
from synthflow_agi._errors import ApiAuthError, ApiError, ApiUnavailableError

URL = "/v2/prepare_inbound"
POOL = object()  # stands for the urllib3 pool a MaxRetryError names


def _response(status, retry_after=None):
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return HTTPResponse(body=b"", status=status, headers=headers, preload_content=False)


def _refused():
    return NewConnectionError(None, "refused")


@pytest.mark.parametrize("error, word", [
    (NewConnectionError(None, "refused"), "unreachable"),
    (NameResolutionError("h", None, socket.gaierror(-2, "x")), "unreachable"),
    (ConnectTimeoutError(), "timeout"),
    (ReadTimeoutError(None, URL, "slow"), "timeout"),
    (socket.timeout(), "timeout"),
    (ProtocolError("aborted"), "error"),
    (OSError(104, "reset"), "error"),
])
def test_attempt_outcome_of_an_error(error, word):
    """A refused connect is unreachable, any timeout is timeout, anything else is error."""
    assert _api.attempt_outcome(error=error) == word


@pytest.mark.parametrize("status, word", [
    (429, "429"), (428, "4xx"), (430, "4xx"), (200, "2xx"), (100, "1xx"), (99, "error"),
    (599, "5xx"), (600, "error"), (503, "5xx"), (0, "error"), (None, "error"), ("503", "error"),
])
def test_attempt_outcome_of_a_status(status, word):
    """Only an integer status in 100..599 gets a class word; 429 has its own."""
    assert _api.attempt_outcome(types.SimpleNamespace(status=status)) == word


def test_attempt_outcome_of_nothing_is_error():
    """An attempt with neither a response nor an error is named error, without failing."""
    assert _api.attempt_outcome() == "error"


def test_attempt_outcome_error_wins_over_a_response():
    """An attempt with an error is named by the error even when a response object came along."""
    assert _api.attempt_outcome(_response(200), error=socket.timeout()) == "timeout"


def test_retry_outside_a_call_only_counts():
    """With no call deadline running, increment is urllib3's: the budget shrinks by one, no time check."""
    retry = _api.retry_policy(2).increment("POST", URL, error=_refused())
    assert (retry.total, retry.connect, retry.status) == (1, 1, 2)


def test_retry_history_names_the_attempt():
    """Each counted attempt is kept in the Retry's history with its method, URL and error or status."""
    error = _refused()
    once = _api.retry_policy(2).increment("POST", URL, error=error)
    twice = once.increment("POST", URL, response=_response(503))
    assert twice.history == (RequestHistory("POST", URL, error, None, None),
                             RequestHistory("POST", URL, None, 503, None))


def test_a_spent_budget_names_the_pool_and_url():
    """With no retries left, urllib3's own MaxRetryError carries the pool and URL it was given."""
    error = _refused()
    with pytest.raises(MaxRetryError) as caught:
        _api.retry_policy(0).increment("POST", URL, error=error, _pool=POOL)
    assert (caught.value.pool, caught.value.url, caught.value.reason) == (POOL, URL, error)


def _raise_where_it_happened():
    raise ProtocolError("Connection aborted.")


def test_a_read_error_keeps_its_original_traceback():
    """The re-raised read error still shows where it first happened (the stack trace urllib3 hands over)."""
    try:
        _raise_where_it_happened()
    except ProtocolError as exc:
        error, stacktrace = exc, sys.exc_info()[2]
    with pytest.raises(ProtocolError) as caught:
        _api.retry_policy(2).increment("POST", URL, error=error, _stacktrace=stacktrace)
    names = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert "_raise_where_it_happened" in names


def test_retry_budget_is_shared_by_connect_errors_and_statuses():
    """A refused connect, a 503 and a refused connect spend a budget of two: the third raises."""
    once = _api.retry_policy(2).increment("POST", URL, error=_refused())
    twice = once.increment("POST", URL, response=_response(503))
    with pytest.raises(MaxRetryError):
        twice.increment("POST", URL, error=_refused())


def test_an_error_neither_connect_nor_read_is_never_retried():
    """A TLS failure is an 'other' error, and the policy allows none of those."""
    with pytest.raises(MaxRetryError) as caught:
        _api.retry_policy(2).increment("POST", URL, error=urllib3.exceptions.SSLError("handshake"))
    assert type(caught.value.reason) is urllib3.exceptions.SSLError


def test_a_read_error_is_raised_as_itself():
    """A failure after the POST went out is re-raised, not retried and not wrapped."""
    error = ProtocolError("Connection aborted.")
    with pytest.raises(ProtocolError) as caught:
        _api.retry_policy(2).increment("POST", URL, error=error)
    assert caught.value is error


def test_first_retry_fits_half_a_second():
    """The first retry waits no backoff, so 0.5 s left is plenty (an attempt needs 0.05 s)."""
    with CallDeadline(0.5):
        retry = _api.retry_policy(2).increment("POST", URL, error=_refused())
        assert retry.total == 1
        assert _api.retry_policy(2).increment("POST", URL, response=_response(503)).total == 1


def test_no_retry_with_less_than_an_attempts_time_left():
    """With 0.04 s left and no backoff, a retry cannot fit MIN_ATTEMPT_SECONDS: MaxRetryError naming the error."""
    error = _refused()
    with CallDeadline(0.04):
        with pytest.raises(MaxRetryError) as caught:
            _api.retry_policy(2).increment("POST", URL, error=error, _pool=POOL)
    assert caught.value.reason is error
    assert caught.value.__cause__ is error
    assert caught.value.url == URL
    assert caught.value.pool is POOL


def test_no_retry_once_the_watchdog_expired_the_call():
    """A call the watchdog has expired gets no retry however far its deadline seems."""
    with CallDeadline(10.0) as call:
        call.expire()
        with pytest.raises(MaxRetryError):
            _api.retry_policy(2).increment("POST", URL, error=_refused())


def test_a_refused_status_retry_names_its_reason():
    """A status retry that does not fit raises MaxRetryError with 'no time left to retry' as its reason."""
    with CallDeadline(0.5):
        with pytest.raises(MaxRetryError) as caught:
            _api.retry_policy(2).increment("POST", URL, response=_response(503, "5"), _pool=POOL)
    reason = caught.value.reason
    assert type(reason) is ResponseError
    assert str(reason) == "no time left to retry"
    assert caught.value.__cause__ is reason
    assert (caught.value.url, caught.value.pool) == (URL, POOL)


@pytest.mark.parametrize("seconds, fits", [(0.9, False), (1.2, True)])
def test_retry_after_is_the_wait_when_present(seconds, fits):
    """Retry-After: 1 needs 1.05 s left: refused with 0.9 s, granted with 1.2 s."""
    with CallDeadline(seconds):
        retry = _api.retry_policy(2)
        if fits:
            assert retry.increment("POST", URL, response=_response(429, "1")).status == 1
        else:
            with pytest.raises(MaxRetryError):
                retry.increment("POST", URL, response=_response(429, "1"))


def test_retry_after_zero_falls_back_to_the_backoff():
    """Retry-After: 0 means the backoff (0 s on the first retry), so 0.3 s left is enough."""
    with CallDeadline(0.3):
        assert _api.retry_policy(2).increment("POST", URL, response=_response(503, "0")).status == 1


@pytest.mark.parametrize("url, host", [
    ("https://api.synthflow.ai:99999/v2", "api.synthflow.ai"),
    ("https:///v2", "the API host"),
    ("https://api.synthflow.ai/v2", "api.synthflow.ai"),
    ("http://127.0.0.1:8080/v2", "127.0.0.1:8080"),
])
def test_host_of_edge_cases(url, host):
    """An unusable port is left out, and a URL without a host says so."""
    assert _api.host_of(url) == host


REGISTERED = json.dumps({"call_status": "registered", "synthflow_call_id": "abc-12345678"}).encode()


@pytest.mark.parametrize("status, content, expected, message", [
    (401, b"", ApiAuthError, "Synthflow refused the API token (HTTP 401)"),
    (403, REGISTERED, ApiAuthError, "Synthflow refused the API token (HTTP 403)"),
    (500, REGISTERED, ApiUnavailableError, "prepare_inbound answered HTTP 500"),
    (599, b"", ApiUnavailableError, "prepare_inbound answered HTTP 599"),
    (499, REGISTERED, ApiError, "prepare_inbound answered HTTP 499"),
    (300, REGISTERED, ApiError, "prepare_inbound answered HTTP 300"),
    (199, REGISTERED, ApiError, "prepare_inbound answered HTTP 199"),
    (200, b"<html>", ApiError, "prepare_inbound answered HTTP 200 with a body that is not JSON"),
    (202, b"\xff", ApiError, "prepare_inbound answered HTTP 202 with a body that is not JSON"),
    (200, b"[1, 2]", ApiError, "prepare_inbound answered a JSON array of 2 items, not an object"),
    (200, b'"registered"', ApiError, "prepare_inbound answered a JSON string of 10 characters, not an object"),
    (200, b'{"call_status": "failed"}', ApiError, "prepare_inbound call_status is a string of 6 characters, not 'registered'"),
    (200, b'{"call_status": {"a": 1, "b": 2}}', ApiError, "prepare_inbound call_status is a object of 2 keys, not 'registered'"),
    (200, b'{"call_status": true}', ApiError, "prepare_inbound call_status is a boolean, not 'registered'"),
    (200, b'{"call_status": 1.5}', ApiError, "prepare_inbound call_status is a number, not 'registered'"),
    (200, b'{"call_status": null, "synthflow_call_id": "abc-12345678"}', ApiError,
     "prepare_inbound call_status is a null, not 'registered'"),
    (404, b"{}", ApiError, "prepare_inbound answered HTTP 404"),
    (200, b'{"synthflow_call_id": "abc-12345678"}', ApiError, "prepare_inbound call_status is missing, not 'registered'"),
    (200, b'{"call_status": "registered"}', ApiError, "prepare_inbound answer has no synthflow_call_id"),
    (200, b'{"call_status": "registered", "synthflow_call_id": ""}', ApiError,
     "prepare_inbound answer has no synthflow_call_id"),
])
def test_read_answer_texts_are_exact(status, content, expected, message):
    """Every refusal of an answer has one exact text, naming the status or the shape, never the content."""
    with pytest.raises(expected) as caught:
        _api.read_answer(status, content)
    assert type(caught.value) is expected
    assert caught.value.reason == message


@pytest.mark.parametrize("status", [200, 201, 299])
def test_read_answer_takes_every_2xx(status):
    """The edges of the 2xx range are answers too."""
    assert _api.read_answer(status, REGISTERED).call_id == "abc-12345678"


def test_shape_of_a_value_json_never_gives():
    """A non-JSON type is named by its class (a safe, bounded description)."""
    assert _api._shape(b"raw") == "bytes"
    assert _api._shape(3) == _api._shape(2.5) == "number"


@pytest.mark.parametrize("exc, text", [
    (socket.timeout("t"), "no answer from h:1 before the deadline"),
    (requests.exceptions.InvalidURL("x"), "api_url, proxy or api_token is not usable: InvalidURL"),
    (requests.exceptions.InvalidHeader("line break"), "api_url, proxy or api_token is not usable: InvalidHeader"),
    (requests.exceptions.InvalidHeader(urllib3.exceptions.InvalidHeader("Retry-After")),
     "h:1 sent a malformed HTTP answer: InvalidHeader"),
    (http.client.BadStatusLine("x"), "h:1 sent a malformed HTTP answer: BadStatusLine"),
    (requests.exceptions.TooManyRedirects("x"), "the HTTP client failed on the request to h:1: TooManyRedirects"),
    (ConnectionRefusedError(111, "x"), "cannot reach h:1: Connection refused"),
    (KeyError("k"), "unexpected KeyError from the HTTP client"),
])
def test_mapped_texts_are_exact(exc, text):
    """Each row of the table builds one exact text from the host and a class or OS reason."""
    assert _api.map_transport_error(exc, "h:1").reason == text


def test_tls_text_names_the_mnemonic():
    """A TLS failure reads 'TLS with <host> failed: <OpenSSL reason>'."""
    inner = ssl.SSLError(1, "handshake")
    inner.reason = "WRONG_VERSION_NUMBER"
    assert _api.map_transport_error(requests.exceptions.SSLError(inner), "h:1").reason == \
        "TLS with h:1 failed: WRONG_VERSION_NUMBER"


def _caused(outer, inner, how):
    setattr(outer, how, inner)
    return outer


@pytest.mark.parametrize("how", ["__cause__", "__context__"])
def test_root_cause_follows_cause_and_context(how):
    """An OS reason is found through an explicit cause or an implicit context alike."""
    outer = _caused(RuntimeError("wrapper"), ConnectionRefusedError(111, "x"), how)
    assert _api.root_cause(outer) == "Connection refused"


def test_root_cause_survives_a_cycle():
    """Exceptions that are each other's context end the walk, naming the last new one."""
    first, second = RuntimeError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert _api.root_cause(first) == "ValueError"


def test_root_cause_without_a_reason_names_the_innermost_class():
    """No OS or TLS reason anywhere: the innermost class name, not the outer one."""
    outer = requests.exceptions.ConnectionError(ProtocolError("aborted", http.client.RemoteDisconnected("x")))
    assert _api.root_cause(outer) == "RemoteDisconnected"
    assert _api.root_cause(RuntimeError("alone")) == "RuntimeError"


def test_root_cause_cuts_a_resolver_text_at_80_characters():
    """A resolver text is C library text, still bounded to 80 characters."""
    assert _api.root_cause(socket.gaierror(-2, "N" * 100)) == "N" * 80
    assert _api.root_cause(socket.gaierror("no code")) == "gaierror"


def test_root_cause_ignores_an_unknown_errno():
    """An errno the C library does not know gives the class name, not 'Unknown error'."""
    assert _api.root_cause(OSError(9999, "x")) == "OSError"


def test_root_cause_of_tls_without_a_mnemonic():
    """A TLS error with no reason attribute, or one of None, adds no reason of its own."""
    assert _api.root_cause(ssl.SSLError("no code")) == "SSLError"
    inner = ssl.SSLError("no code")
    inner.reason = None
    assert _api.root_cause(_caused(ConnectionRefusedError(111, "x"), inner, "__cause__")) == "Connection refused"
    lowercase = ssl.SSLError("x")
    lowercase.reason = "not a mnemonic"
    assert _api.root_cause(lowercase) == "SSLError"


def test_deadline_timeout_caps_only_the_connect():
    """The connect limit is the cap while the deadline is far; the read limit is all the time left."""
    timeout = _api.DeadlineTimeout(time.monotonic() + 5.0, connect_cap=0.2)
    assert timeout.connect_timeout == 0.2
    assert 4.9 < timeout.read_timeout <= 5.0
    assert timeout.clone().connect_cap == 0.2


@pytest.mark.parametrize("cls", [
    requests.exceptions.RetryError, requests.exceptions.TooManyRedirects, requests.exceptions.URLRequired,
    requests.exceptions.InvalidJSONError, requests.exceptions.StreamConsumedError,
    requests.exceptions.UnrewindableBodyError, requests.exceptions.HTTPError, requests.exceptions.RequestException,
])
def test_client_side_failures_are_not_an_unavailable_api(cls):
    """requests' own failures (all OSError subclasses) are the client's, not Synthflow's: ApiError, never unavailable."""
    mapped = _api.map_transport_error(cls("x"), "h:1")
    assert type(mapped) is ApiError
    assert not mapped.unavailable
    assert mapped.reason == "the HTTP client failed on the request to h:1: %s" % cls.__name__


def test_a_plain_os_error_is_still_unreachable():
    """Below the libraries, a socket's OSError still means the API could not be reached."""
    mapped = _api.map_transport_error(OSError(113, "x"), "h:1")
    assert type(mapped) is ApiUnavailableError
    assert mapped.reason == "cannot reach h:1: No route to host"
