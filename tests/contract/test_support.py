"""The test infrastructure itself: the peer's parse_args and the API model (in-process and CLI)."""
from __future__ import annotations

import doctest
import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

import tests.support.agi_peer as agi_peer
from tests.support.synthflow_model import SynthflowModel

MODEL_SCRIPT = agi_peer.REPO / "tests" / "support" / "synthflow_model.py"


def post(url, payload, token="T", timeout=10):
    """POST JSON; returns (status, body bytes) for any HTTP status."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def test_parse_args_doctests():
    """The literal wire lines in agi_peer.parse_args's docstring parse as documented."""
    result = doctest.testmod(agi_peer)
    assert result.attempted >= 5 and result.failed == 0


def test_model_ok_echoes_the_request_and_records_it():
    """ok returns registered with a call id and echoes model, workspace and custom variables."""
    with SynthflowModel(token="T") as model:
        code, raw = post(model.base_url + "/prepare_inbound",
                         {"model_id": "m", "workspace_id": "w", "custom_variables": {"a": "ü"}})
        reply = json.loads(raw)
        assert code == 200 and reply["call_status"] == "registered"
        assert reply["synthflow_call_id"] and reply["direction"] == "inbound"
        assert (reply["model_id"], reply["workspace_id"], reply["custom_variables"]) == ("m", "w", {"a": "ü"})
        rec = model.wait_for_request(1)
        assert rec.body["custom_variables"] == {"a": "ü"} and rec.header("authorization") == "Bearer T"


def test_model_401_for_wrong_token_does_not_consume_the_script():
    """A wrong token gets a bare 401 and the scripted behaviour waits for the next request."""
    with SynthflowModel(token="T") as model:
        model.script({"kind": "status", "code": 503})
        assert post(model.base_url + "/prepare_inbound", {}, token="bad") == (401, b"")
        assert post(model.base_url + "/prepare_inbound", {})[0] == 503


def test_model_drop_closes_without_a_reply():
    """drop closes the connection with no status line at all."""
    with SynthflowModel(token="T") as model:
        model.script({"kind": "drop"})
        with pytest.raises(http.client.RemoteDisconnected):
            post(model.base_url + "/prepare_inbound", {})


def test_model_delay_does_not_block_other_requests():
    """A delayed request does not hold up a concurrent one (threaded server)."""
    with SynthflowModel(token="T") as model:
        model.script({"kind": "delay", "seconds": 3, "then": {"kind": "status", "code": 500}})
        slow = threading.Thread(target=post, args=(model.base_url + "/prepare_inbound", {}))
        slow.start()
        model.wait_for_request(5)
        started = time.monotonic()
        assert post(model.base_url + "/prepare_inbound", {})[0] == 200
        assert time.monotonic() - started < 2.5
        slow.join(10)


def test_model_rejects_unknown_behaviours():
    """A typo in a script fails at once instead of when a request meets it."""
    with SynthflowModel(token="T") as model:
        with pytest.raises(ValueError):
            model.script({"kind": "okay"})


def test_model_cli_with_control_endpoints(tmp_path):
    """The CLI writes its port file and serves /_model/script, /_model/requests and /_model/reset."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, str(MODEL_SCRIPT), "--listen", "127.0.0.1:0",
                             "--token", "T", "--port-file", str(port_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        base = "http://127.0.0.1:%d" % int(port_file.read_text())
        assert post(base + "/_model/script", [{"kind": "status", "code": 429, "retry_after": 1}])[0] == 200
        assert post(base + "/_model/script", [{"kind": "nope"}])[0] == 400
        assert post(base + "/_model/script", [{"kind": "status", "code": 429}])[0] == 200
        assert post(base + "/v2/prepare_inbound", {"x": 1})[0] == 429
        assert post(base + "/v2/prepare_inbound", {"x": 2})[0] == 200
        with urllib.request.urlopen(base + "/_model/requests", timeout=5) as resp:
            recorded = json.loads(resp.read())
        assert [r["body"] for r in recorded] == [{"x": 1}, {"x": 2}]
        assert post(base + "/_model/reset", {})[0] == 200
        with urllib.request.urlopen(base + "/_model/requests", timeout=5) as resp:
            assert json.loads(resp.read()) == []
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
