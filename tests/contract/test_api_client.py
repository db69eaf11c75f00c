"""SynthflowClient in this process against the loopback model: exact attempts, POST counts, texts and times."""
from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
from typing import List

import pytest
import requests

from synthflow_agi import __version__
from synthflow_agi._api import MAX_ANSWER_BYTES, SynthflowClient
from synthflow_agi._call import PrepareRequest
from synthflow_agi._errors import ApiAuthError, ApiError, ApiTimeoutError, ApiUnavailableError, ConfigError
from tests.contract._helpers import AGENT, CALLER, TOKEN, closed_port, posts

REQUEST = PrepareRequest(CALLER, AGENT, "model-1", "ws-1", {"lead_id": "L-7"})


class Attempts(List[str]):
    """The outcome words the client reported, in order."""


def client_for(url: str, retries: int = 2, **kwargs) -> "tuple[SynthflowClient, Attempts]":
    attempts = Attempts()
    return SynthflowClient(url, TOKEN, retries=retries, on_attempt=attempts.append, **kwargs), attempts


def host(model) -> str:
    return "127.0.0.1:%d" % model.port


def test_success_posts_once_with_the_documented_request(model):
    """One POST to /v2/prepare_inbound with the Bearer token, JSON accept, our User-Agent and the exact body."""
    model.script({"kind": "ok", "call_id": "exact-0000001"})
    client, attempts = client_for(model.base_url)
    assert client.prepare(REQUEST, 2.0).call_id == "exact-0000001"
    assert attempts == ["2xx"]
    (post,) = posts(model)
    assert post.method == "POST" and post.path == "/v2/prepare_inbound"
    assert post.header("Authorization") == "Bearer " + TOKEN
    assert post.header("Accept") == "application/json"
    assert post.header("User-Agent") == "synthflow-agi/%s %s" % (__version__, requests.utils.default_user_agent())
    assert post.body == {"from_number": CALLER, "to_number": AGENT, "model_id": "model-1", "workspace_id": "ws-1",
                         "custom_variables": {"lead_id": "L-7"}}


def test_without_an_attempt_listener_the_client_still_works(model):
    """on_attempt is optional: no listener, same answer."""
    model.script({"kind": "ok", "call_id": "no-listener-01"})
    client = SynthflowClient(model.base_url, TOKEN)
    assert client.prepare(REQUEST, 2.0).call_id == "no-listener-01"
    assert len(posts(model)) == 1


@pytest.mark.parametrize("deadline", [2.0, 0.8])
def test_a_503_then_ok_reports_both_attempts(model, deadline):
    """A retried 503 and the answer after it are two attempts, in order; with no Retry-After the first backoff is 0 s, so a 0.8 s deadline still fits the retry."""
    model.script({"kind": "status", "code": 503}, {"kind": "ok", "call_id": "second-000001"})
    client, attempts = client_for(model.base_url)
    assert client.prepare(REQUEST, deadline).call_id == "second-000001"
    assert attempts == ["5xx", "2xx"]
    assert len(posts(model)) == 2


def test_the_last_of_the_retried_503s_is_counted_once(model):
    """Three 503s with two retries: three POSTs, three attempts, the last 503 as the error."""
    model.script(*[{"kind": "status", "code": 503}] * 4)
    client, attempts = client_for(model.base_url, retries=2)
    with pytest.raises(ApiUnavailableError) as caught:
        client.prepare(REQUEST, 3.0)
    assert caught.value.reason == "prepare_inbound answered HTTP 503"
    assert attempts == ["5xx"] * 3
    assert len(posts(model)) == 3


def test_a_429_is_its_own_attempt_word(model):
    """A 429 with Retry-After: 0 is retried at once and reported as 429."""
    model.script({"kind": "status", "code": 429, "retry_after": 0}, {"kind": "ok"})
    client, attempts = client_for(model.base_url)
    client.prepare(REQUEST, 2.0)
    assert attempts == ["429", "2xx"]


def test_auth_refusal_text_and_single_attempt(model):
    """A 401 is one attempt and the exact auth text."""
    model.script({"kind": "status", "code": 401})
    client, attempts = client_for(model.base_url)
    with pytest.raises(ApiAuthError) as caught:
        client.prepare(REQUEST, 2.0)
    assert caught.value.reason == "Synthflow refused the API token (HTTP 401)"
    assert attempts == ["4xx"]


def test_refused_connects_are_retried_then_named(model):
    """Nothing listening: 1 + retries refused connects, then 'cannot reach <host>: Connection refused'."""
    port = closed_port()
    client, attempts = client_for("http://127.0.0.1:%d/v2" % port, retries=2)
    with pytest.raises(ApiUnavailableError) as caught:
        client.prepare(REQUEST, 2.0)
    assert caught.value.reason == "cannot reach 127.0.0.1:%d: Connection refused" % port
    assert attempts == ["unreachable"] * 3


@pytest.mark.parametrize("kind, text", [
    ("drop", "cannot reach {host}: RemoteDisconnected"),
    ("reset", "cannot reach {host}: Connection reset by peer"),
])
def test_a_broken_answer_is_one_error_attempt(model, kind, text):
    """A close or reset after the POST went out: one attempt named error, never retried, an exact text."""
    model.script({"kind": kind}, {"kind": "ok"})
    client, attempts = client_for(model.base_url, retries=3)
    with pytest.raises(ApiUnavailableError) as caught:
        client.prepare(REQUEST, 2.0)
    assert caught.value.reason == text.format(host=host(model))
    assert attempts == ["error"]
    assert len(posts(model)) == 1


@pytest.mark.parametrize("behaviour, word", [
    ({"kind": "hang"}, "timeout"),
    ({"kind": "slow_headers", "interval": 0.3}, "timeout"),
    ({"kind": "drip", "interval": 0.3}, "2xx"),
])
def test_a_slow_answer_ends_at_the_deadline(model, behaviour, word):
    """Hanging, slow headers or a dripping body: 'no answer from <host> before the deadline' at 0.5 s (+0.25 s)."""
    model.script(behaviour)
    client, attempts = client_for(model.base_url)
    started = time.monotonic()
    with pytest.raises(ApiTimeoutError) as caught:
        client.prepare(REQUEST, 0.5)
    elapsed = time.monotonic() - started
    assert caught.value.reason == "no answer from %s before the deadline" % host(model)
    assert 0.5 <= elapsed <= 0.75, elapsed
    assert attempts == [word]


def test_a_pooled_connection_is_cut_at_the_new_calls_deadline(model):
    """A kept-alive connection reused by a second call obeys that call's deadline, not the first's."""
    model.script({"kind": "ok"}, {"kind": "drip", "interval": 0.3})
    client, _ = client_for(model.base_url)
    client.prepare(REQUEST, 2.0)
    started = time.monotonic()
    with pytest.raises(ApiTimeoutError):
        client.prepare(REQUEST, 0.5)
    assert 0.5 <= time.monotonic() - started <= 0.75
    assert len(model.accepted) == 1  # the second POST went over the first call's connection


def test_connects_get_half_the_timeout_each(model):
    """A listener whose backlog is full never completes a connect: two connects of 0.5 s fill a 1 s deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.1)
        client, attempts = client_for("http://127.0.0.1:%d/v2" % port, retries=2)
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as caught:
            client.prepare(REQUEST, 1.0)
        elapsed = time.monotonic() - started
    finally:
        for sock in fillers + [listener]:
            sock.close()
    assert caught.value.reason == "no answer from 127.0.0.1:%d before the deadline" % port
    assert attempts == ["timeout", "timeout"]
    assert 1.0 <= elapsed <= 1.2, elapsed


def _registered_body(size: int) -> str:
    """A registered answer padded to exactly ``size`` bytes of JSON."""
    head = {"call_status": "registered", "synthflow_call_id": "big-answer-01", "pad": ""}
    pad = size - len(json.dumps(head))
    head["pad"] = "x" * pad
    body = json.dumps(head)
    assert len(body) == size
    return body


def test_an_answer_of_exactly_the_limit_is_read(model):
    """A body of MAX_ANSWER_BYTES bytes is still an answer."""
    model.script({"kind": "raw", "code": 200, "body": _registered_body(MAX_ANSWER_BYTES)})
    client, _ = client_for(model.base_url)
    assert client.prepare(REQUEST, 5.0).call_id == "big-answer-01"


def test_an_answer_over_the_limit_is_refused(model):
    """One byte more than MAX_ANSWER_BYTES: 'prepare_inbound answered more than 1048576 bytes'."""
    model.script({"kind": "raw", "code": 200, "body": _registered_body(MAX_ANSWER_BYTES + 1)})
    client, _ = client_for(model.base_url)
    with pytest.raises(ApiError) as caught:
        client.prepare(REQUEST, 5.0)
    assert type(caught.value) is ApiError
    assert caught.value.reason == "prepare_inbound answered more than 1048576 bytes"


def test_userinfo_in_the_url_is_refused_naming_only_the_host():
    """api_url with user:password@ is a ConfigError that names the host and never the password."""
    with pytest.raises(ConfigError) as caught:
        SynthflowClient("http://user:pw-SECRET@127.0.0.1:9/v2", TOKEN)
    assert caught.value.reason == "api_url for 127.0.0.1:9 must not hold user:password@; the token is api_token"


def test_a_netrc_entry_never_replaces_the_token(model, tmp_path, monkeypatch):
    """requests would send ~/.netrc credentials as Basic auth; the client reads no environment per request."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    model.script({"kind": "ok", "call_id": "bearer-only-01"})
    client, _ = client_for(model.base_url)
    assert client.prepare(REQUEST, 2.0).call_id == "bearer-only-01"
    assert posts(model)[0].header("Authorization") == "Bearer " + TOKEN


def test_an_unresolvable_address_is_unreachable_named_by_the_resolver():
    """A scoped IPv6 literal on no such interface fails in getaddrinfo itself (numeric, no DNS): unreachable, retried."""
    host, port = "fe80::1%nosuchif0", 9
    try:
        socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror as exc:
        expected = exc.strerror
    else:
        pytest.fail("this host has an interface named nosuchif0")
    client, attempts = client_for("http://[%s]:%d/v2" % (host, port), retries=2)
    with pytest.raises(ApiUnavailableError) as caught:
        client.prepare(REQUEST, 1.0)
    assert caught.value.reason == "cannot reach [%s]:%d: %s" % (host, port, expected)
    assert attempts == ["unreachable"] * 3


class ForwardProxy:
    """A minimal HTTP forward proxy on loopback: rewrites the absolute request line, then pipes bytes both ways."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.requests: List[bytes] = []
        self._threads: List[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.listener.getsockname()[1]

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), 2)
        with client, upstream:
            head = b""
            while b"\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            line, rest = head.split(b"\r\n", 1)
            method, target, version = line.split(b" ")
            self.requests.append(line)
            path = b"/" + target.split(b"/", 3)[3]
            upstream.sendall(b" ".join((method, path, version)) + b"\r\n" + rest)
            pipes = {client: upstream, upstream: client}
            while True:
                ready, _, _ = select.select(list(pipes), [], [], 10)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pipes[sock].sendall(data)

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread above (Linux)
        except OSError:
            pass
        self.listener.close()
        self._accepting.join(2)
        for thread in self._threads:
            thread.join(12)


@pytest.fixture
def proxy(model, monkeypatch):
    """A forward proxy to the model, named by HTTP_PROXY for the client under test only."""
    forward = ForwardProxy(model.port)
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", forward.url)
    yield forward
    forward.close()


def test_through_a_proxy_the_answer_is_used(model, proxy):
    """HTTP_PROXY, read when the client is made, carries the POST in absolute form to the API."""
    model.script({"kind": "ok", "call_id": "via-proxy-0001"})
    client, attempts = client_for(model.base_url)
    assert client.prepare(REQUEST, 2.0).call_id == "via-proxy-0001"
    assert proxy.requests == [b"POST %s/prepare_inbound HTTP/1.1" % model.base_url.encode()]
    assert attempts == ["2xx"]


def test_through_a_proxy_a_dripping_answer_still_ends_at_the_deadline(model, proxy):
    """The proxy's connections obey the call's deadline too: a dripping body ends API_TIMEOUT at 0.5 s (+0.25 s)."""
    model.script({"kind": "drip", "interval": 0.3})
    client, _ = client_for(model.base_url)
    started = time.monotonic()
    with pytest.raises(ApiTimeoutError) as caught:
        client.prepare(REQUEST, 0.5)
    assert caught.value.reason == "no answer from %s before the deadline" % host(model)
    assert 0.5 <= time.monotonic() - started <= 0.75
    assert len(proxy.requests) == 1


class StalledClient(SynthflowClient):
    """A client whose process stalls (as under SIGSTOP) right after the whole answer was read."""

    def _post(self, *args, **kwargs):
        answer = super()._post(*args, **kwargs)
        time.sleep(0.6)
        return answer


def test_an_answer_complete_only_after_the_deadline_is_refused(model):
    """A full, good answer that the program could only act on after the deadline is API_TIMEOUT, with its own text."""
    model.script({"kind": "ok", "call_id": "too-late-00001"})
    attempts = Attempts()
    client = StalledClient(model.base_url, TOKEN, on_attempt=attempts.append)
    with pytest.raises(ApiTimeoutError) as caught:
        client.prepare(REQUEST, 0.5)
    assert caught.value.reason == "the answer from %s was complete only after the deadline" % host(model)
    assert attempts == ["2xx"]
    assert len(posts(model)) == 1


@pytest.mark.parametrize("code", [302, 307, 308])
def test_a_redirect_is_never_followed(model, code):
    """A 3xx is an answer, not a new address: one POST, 'prepare_inbound answered HTTP <code>'."""
    model.script({"kind": "wire", "data": "HTTP/1.1 %d Moved\r\nLocation: %s/prepare_inbound\r\n"
                                          "Content-Length: 0\r\n\r\n" % (code, model.base_url)},
                 {"kind": "ok"})
    client, attempts = client_for(model.base_url)
    with pytest.raises(ApiError) as caught:
        client.prepare(REQUEST, 2.0)
    assert type(caught.value) is ApiError
    assert caught.value.reason == "prepare_inbound answered HTTP %d" % code
    assert len(model.requests) == 1
    assert attempts == ["3xx"]


_AUDITED: List[tuple] = []
_AUDITING: List[bool] = []
_HOOKED: List[bool] = []


def _audit(event, args):
    if _AUDITING and event == "http.client.connect":
        _AUDITED.append(args)


def test_each_connect_is_audited_like_http_client(model):
    """Our own connect still raises http.client's audit event, naming the connection, host and port."""
    if not _HOOKED:
        sys.addaudithook(_audit)  # hooks cannot be removed; this one records only while _AUDITING is set
        _HOOKED.append(True)
    _AUDITING.append(True)
    del _AUDITED[:]
    try:
        model.script({"kind": "ok"})
        client, _ = client_for(model.base_url)
        client.prepare(REQUEST, 2.0)
    finally:
        _AUDITING.clear()
    assert [(type(conn).__name__, host, port) for conn, host, port in _AUDITED] == [
        ("_DeadlineHTTPConnection", "127.0.0.1", model.port)]


@pytest.mark.parametrize("pool_size, connections", [(1, 3), (2, 2)])
def test_the_pool_keeps_at_most_pool_size_connections(model, pool_size, connections):
    """Two overlapping calls, twice: with pool_size 1 one connection is dropped each time, with 2 both are reused."""
    model.script(*[{"kind": "delay", "seconds": 0.5}] * 4)
    client, _ = client_for(model.base_url, pool_size=pool_size)
    for _ in range(2):
        calls = [threading.Thread(target=client.prepare, args=(REQUEST, 3.0)) for _ in range(2)]
        for thread in calls:
            thread.start()
        for thread in calls:
            thread.join(5)
    assert len(posts(model)) == 4
    assert len(model.accepted) == connections


def test_a_lying_content_length_is_not_waited_for(model):
    """A body announced as 100 MB is refused once just over MAX_ANSWER_BYTES were read, not read to its end."""
    model.script({"kind": "wire", "data": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                          "Content-Length: 100000000\r\n\r\n" + "x" * (2 * MAX_ANSWER_BYTES)})
    client, attempts = client_for(model.base_url)
    with pytest.raises(ApiError) as caught:
        client.prepare(REQUEST, 3.0)
    assert type(caught.value) is ApiError
    assert caught.value.reason == "prepare_inbound answered more than 1048576 bytes"
    assert attempts == ["2xx"]
