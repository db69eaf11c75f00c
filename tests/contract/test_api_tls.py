"""The deadline and the error mapping over real TLS on loopback: the path every production call takes.

The certificates below are a throwaway test CA and a leaf for IP 127.0.0.1 (valid until 2126),
made with ``openssl req``/``openssl x509``: X.509-strict, as Python 3.13+ and urllib3 require.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

from synthflow_agi._api import SynthflowClient
from synthflow_agi._call import PrepareRequest
from synthflow_agi._errors import ApiError, ApiUnavailableError, ApiTimeoutError
from tests.contract._helpers import TOKEN
from tests.support.synthflow_model import SynthflowModel

CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBqDCCAU2gAwIBAgIUJFAFAC75p4MSjv8FswHARTg8hfMwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVc3ludGhmbG93LWFnaSB0ZXN0IENBMCAXDTI2MTIwNTIzMTM1
OVoYDzIxMjYxMTExMjMxMzU5WjAgMR4wHAYDVQQDDBVzeW50aGZsb3ctYWdpIHRl
c3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATPFMt/vuU3d16IqgI+5NfC
mxckH0mQdk4XmXs/CbBTPwhBPbVhskc8FyIQ1eObeJSbvH50lvbUC9XTP+f/7FEg
o2MwYTAdBgNVHQ4EFgQU/gO+1+xmDHCpE/xj6Euq7YlS/4owHwYDVR0jBBgwFoAU
/gO+1+xmDHCpE/xj6Euq7YlS/4owDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8E
BAMCAQYwCgYIKoZIzj0EAwIDSQAwRgIhAKA3nWiXvZsy0BV99lxYxGBmqvNSK19s
8WtpT5lRNmIwAiEAoFa/9UJ2k4pLQds42PNemIyz7qKu72nW/U54Wb+Fx/g=
-----END CERTIFICATE-----
"""
LEAF_PEM = """-----BEGIN CERTIFICATE-----
MIIBwDCCAWagAwIBAgIUOu0J8O8VPfvxpfRo91PnbU8atZYwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVc3ludGhmbG93LWFnaSB0ZXN0IENBMCAXDTI2MTIwNTIzMTM1
OVoYDzIxMjYxMTExMjMxMzU5WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAASPnwAzFLqP9a9SvSh9GkH+fwYFLR9+/CnE2KlH
Rqgkt+0AycjFTaty5XQzOon8Sn73LYlsdOvWEQuN6AvJDOpoo4GHMIGEMA8GA1Ud
EQQIMAaHBH8AAAEwDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0l
BAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYEFK7ubtWARpr6gF6stkCcTuBSTrCMMB8G
A1UdIwQYMBaAFP4DvtfsZgxwqRP8Y+hLqu2JUv+KMAoGCCqGSM49BAMCA0gAMEUC
IH4MOyn1cpVsq6U+MiqdtskF4vRWyyFcnjbytrY4lz0JAiEAxcU7vJSPSDUAdf32
z5Yv2p6z1hUGL5FRsiKzM4cOHjM=
-----END CERTIFICATE-----
"""
LEAF_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmoslplmMw97PMogS
COibgzSRXiq70RrQA8Qg0GtPvsuhRANCAASPnwAzFLqP9a9SvSh9GkH+fwYFLR9+
/CnE2KlHRqgkt+0AycjFTaty5XQzOon8Sn73LYlsdOvWEQuN6AvJDOpo
-----END PRIVATE KEY-----
"""
REQUEST = PrepareRequest("+15551230000", "+15557654321", "model-1", "ws-1", {})


@pytest.fixture
def tls_model(tmp_path):
    """The API model behind TLS with the test leaf certificate."""
    (tmp_path / "leaf.pem").write_text(LEAF_PEM)
    (tmp_path / "leaf.key").write_text(LEAF_KEY)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "leaf.pem"), str(tmp_path / "leaf.key"))
    with SynthflowModel(token=TOKEN, tls=context) as model:
        yield model


@pytest.fixture
def trusting(tmp_path, monkeypatch):
    """A client factory whose CA bundle is the test CA (read from the environment once, at construction)."""
    (tmp_path / "ca.pem").write_text(CA_PEM)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    clients = []

    def make(url):
        clients.append(SynthflowClient(url, TOKEN, retries=2))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def timed_prepare(client, timeout=1.0):
    started = time.monotonic()
    try:
        return client.prepare(REQUEST, timeout), time.monotonic() - started
    except ApiError as exc:
        return exc, time.monotonic() - started


def test_a_tls_answer_is_used(tls_model, trusting):
    """Through TLS with a trusted certificate, a registered answer gives its call id."""
    tls_model.script({"kind": "ok", "call_id": "tls-call-00001"})
    prepared, _ = timed_prepare(trusting(tls_model.base_url))
    assert prepared.call_id == "tls-call-00001"


@pytest.mark.parametrize("behaviour", [{"kind": "drip", "interval": 0.4}, {"kind": "slow_headers", "interval": 0.3},
                                       {"kind": "hang"}], ids=["drip", "slow_headers", "hang"])
def test_a_slow_tls_answer_ends_at_the_deadline(tls_model, trusting, behaviour):
    """Over TLS too, a slow answer ends ApiTimeoutError within [1.0, 1.3] s, after one POST."""
    tls_model.script(behaviour)
    error, elapsed = timed_prepare(trusting(tls_model.base_url))
    print("tls %s: %.3f s" % (behaviour["kind"], elapsed))
    assert isinstance(error, ApiTimeoutError), error
    assert 1.0 <= elapsed <= 1.3, elapsed
    assert len(tls_model.requests) == 1


def test_a_server_that_never_completes_the_handshake(trusting):
    """A listener that accepts and never speaks TLS: ApiTimeoutError by the deadline, the connect not repeated."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []

    def hold():
        listener.settimeout(5)
        try:
            while True:
                accepted.append(listener.accept()[0])
        except OSError:
            pass

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        error, elapsed = timed_prepare(trusting("https://127.0.0.1:%d/v2" % listener.getsockname()[1]))
    finally:
        listener.close()
        thread.join(6)
        for sock in accepted:
            sock.close()
    print("tls no handshake: %.3f s" % elapsed)
    assert isinstance(error, ApiTimeoutError), error
    assert elapsed <= 1.3, elapsed
    assert len(accepted) == 1


def test_an_untrusted_certificate_is_not_retried_and_names_only_the_reason(tls_model, monkeypatch):
    """Without the test CA the handshake fails once: ApiUnavailableError naming OpenSSL's reason code, no POST."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = SynthflowClient(tls_model.base_url, TOKEN, retries=2)
    try:
        error, elapsed = timed_prepare(client)
    finally:
        client.close()
    assert type(error) is ApiUnavailableError
    assert error.reason == "TLS with 127.0.0.1:%d failed: CERTIFICATE_VERIFY_FAILED" % tls_model.port
    assert len(tls_model.accepted) == 1
    assert tls_model.requests == []
