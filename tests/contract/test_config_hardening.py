"""Settings as Asterisk users write them, reloads that never make things worse, and one clear line per mistake."""
from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.contract._helpers import AGENT, TOKEN, call, posts
from tests.contract.test_cli import assert_one_line_error, run_cli
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"
CALL_ID = "c0ffee00-1234-4abc-9def-00000000c0de"


def readme_ini_block() -> str:
    """The configuration example of the README, exactly as printed there."""
    text = README.read_text(encoding="utf-8")
    (block,) = re.findall(r"Write `/etc/asterisk/synthflow.conf`:\n\n```ini\n(.*?)```", text, re.S)
    return block


def test_the_readmes_configuration_block_loads_verbatim(tmp_path):
    """The README's synthflow.conf, trailing '; comments' included, passes `check` unchanged."""
    config = tmp_path / "synthflow.conf"
    config.write_text(readme_ini_block(), encoding="utf-8")
    token_file = "/etc/asterisk/synthflow.token"
    assert token_file + "   ; or api_token" in config.read_text()  # the comment is really there
    proc = run_cli({"SYNTHFLOW_CONFIG": str(config), "SYNTHFLOW_API_TOKEN": TOKEN}, "check")
    assert proc.returncode == 0, proc.stderr
    assert "  api_token_file" not in proc.stdout  # the file path is a source, not a setting shown
    assert re.search(r"^  mode +=[ ]dial$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^  sip_host +=[ ]sip.us.synthflow.ai$", proc.stdout, re.M), proc.stdout


@pytest.mark.parametrize("line, key, value", [
    ("mode = dial ; bridge instead", "mode", "dial"),
    ("mode = transfer # REFER", "mode", "transfer"),
    ("timeout = 3	; tab before the comment", "timeout", "3.0"),
])
def test_inline_comments_end_the_value(tmp_path, line, key, value):
    """A trailing ';' or '#' comment after whitespace is not part of the value."""
    config = tmp_path / "synthflow.conf"
    config.write_text("; a comment line\n# another\n[general]\n%s\n" % line, encoding="utf-8")
    env = {"SYNTHFLOW_CONFIG": str(config), "SYNTHFLOW_API_TOKEN": TOKEN, "SYNTHFLOW_MODEL_ID": "m",
           "SYNTHFLOW_WORKSPACE_ID": "w", "SYNTHFLOW_AGENT_NUMBER": AGENT}
    proc = run_cli(env, "check")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^  %s +=[ ]%s$" % (key, re.escape(value)), proc.stdout, re.M), proc.stdout


@pytest.mark.parametrize("url, reason", [
    ("http://[127.0.0.1/v2", "api_url is not a valid URL: Invalid IPv6 URL"),
    ("http://api.example.net/v2", "api_url uses plain http to api.example.net"),
    ("https://user:pw@api.us.synthflow.ai/v2", "api_url must not carry a user name or password"),
    ("ftp://api.us.synthflow.ai/v2", "api_url must start with https://"),
    ("https://api.us.synthflow.ai/v2?x=1", "api_url must not carry a query or fragment"),
])
def test_an_unusable_api_url_is_config_error_everywhere(model, env, url, reason):
    """A malformed or clear-text api_url is CONFIG_ERROR with one line: classic AGI, FastAGI and CLI, no POST."""
    bad = {**env, "SYNTHFLOW_API_URL": url}
    classic = call(bad)
    assert classic.status == "CONFIG_ERROR"
    assert classic.variables["SYNTHFLOW_ERROR"].startswith(reason), classic.variables
    with FastAgiServerProcess(bad) as server:
        fast = FastAgiPeer(server.port).run()
        assert fast.status == "CONFIG_ERROR"
        assert fast.variables["SYNTHFLOW_ERROR"] == classic.variables["SYNTHFLOW_ERROR"]
    assert "Traceback" not in server.log and "ValueError" not in server.log
    proc = run_cli(bad, "check")
    assert_one_line_error(proc)
    assert proc.returncode == 2 and reason in proc.stderr
    assert posts(model) == []


def test_plain_http_off_loopback_needs_an_explicit_yes(env):
    """allow_insecure_http = yes accepts a clear-text api_url the operator chose (checked offline)."""
    proc = run_cli({**env, "SYNTHFLOW_API_URL": "http://api.example.net/v2", "SYNTHFLOW_ALLOW_INSECURE_HTTP": "yes"},
                   "check")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^  allow_insecure_http += True$", proc.stdout, re.M)


def test_a_cluster_mismatch_stops_before_the_api(model, env):
    """An EU API with a US SIP host is CONFIG_ERROR before any POST: the INVITE could never find the call."""
    r = call({**env, "SYNTHFLOW_API_URL": "https://api.eu.synthflow.ai/v2", "SYNTHFLOW_SIP_HOST": "sip.us.synthflow.ai"})
    assert r.status == "CONFIG_ERROR"
    assert "eu cluster but sip_host is in the us cluster" in r.variables["SYNTHFLOW_ERROR"]
    assert posts(model) == []


def test_a_per_call_sip_host_of_another_cluster_is_refused(model, env):
    """A channel variable cannot send one call to a cluster other than the API's."""
    r = call({**env, "SYNTHFLOW_CLUSTER": "eu", "SYNTHFLOW_API_URL": "https://api.eu.synthflow.ai/v2"},
             variables={"SYNTHFLOW_SIP_HOST": "sip.synthflow.ai"})
    assert r.status == "CONFIG_ERROR"
    assert posts(model) == []


def test_check_names_the_cluster_and_warns_about_global(env):
    """`check` prints the cluster and its hosts, and warns on stderr when it is the legacy global one."""
    base = {k: v for k, v in env.items() if k != "SYNTHFLOW_API_URL"}
    us = run_cli(base, "check")
    assert us.returncode == 0 and re.search(r"^  cluster +=[ ]us$", us.stdout, re.M)
    assert "WARNING" not in us.stderr
    legacy = run_cli({**base, "SYNTHFLOW_CLUSTER": "global"}, "check")
    assert legacy.returncode == 0
    assert re.search(r"^  api_url +=[ ]https://api.synthflow.ai/v2$", legacy.stdout, re.M)
    assert "WARNING: cluster global is Synthflow's legacy cluster" in legacy.stderr


def test_check_explains_the_mode(env):
    """`check` says what the configured mode does, and that transfer's SUCCESS means 'REFER accepted'."""
    dial = run_cli({k: v for k, v in env.items() if k != "SYNTHFLOW_MODE"}, "check")
    assert "mode dial: Asterisk dials the agent itself" in dial.stdout
    transfer = run_cli(env, "check")
    assert "SUCCESS means 'the REFER was accepted', not 'X-EI arrived'" in transfer.stdout


def test_check_live_always_sends_the_fictional_caller(model, env):
    """`check --live` registers +1 202 555 0199, never the configured from_number."""
    proc = run_cli({**env, "SYNTHFLOW_FROM_NUMBER": "+14155550100"}, "check", "--live")
    assert proc.returncode == 0, proc.stderr
    (post,) = posts(model)
    assert post.body["from_number"] == "+12025550199"


@pytest.mark.parametrize("item", ["bad key=1", "=1", "a;b=1", "novalue"])
def test_cli_var_follows_the_agi_argument_key_rule(model, env, item):
    """`prepare --var` refuses a key the dialplan could not send either, with one line and exit 2."""
    proc = run_cli(env, "prepare", "--from", "+14155550100", "--var", item)
    assert_one_line_error(proc)
    assert proc.returncode == 2
    assert posts(model) == []


def test_cli_redacts_a_token_the_api_echoes(model, env):
    """An API answer that echoes the token is printed with the token masked."""
    body = '{"call_status": "registered", "synthflow_call_id": "%s", "echo": "Bearer %s"}' % (CALL_ID, TOKEN)
    model.script({"kind": "raw", "code": 200, "body": body})
    proc = run_cli(env, "prepare", "--from", "+14155550100")
    assert proc.returncode == 0, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    assert '"echo": "Bearer ***"' in proc.stdout


BAD_RELOADS = [
    ({"mode": "tranfser"}, "mode 'tranfser' is not one of"),
    ({"timeout": "2s"}, "timeout '2s' is not a number"),
    ({"api_token": None}, "missing required setting(s): api_token"),
    ({"api_url": "http://[127.0.0.1/v2"}, "api_url is not a valid URL"),
    ({"cluster": "asia"}, "cluster 'asia' is not one of"),
]


def ini_text(values):
    return "[general]\n" + "".join("%s = %s\n" % kv for kv in values.items() if kv[1] is not None)


@pytest.mark.parametrize("change, problem", BAD_RELOADS, ids=["mode", "timeout", "token_removed", "api_url", "cluster"])
def test_a_reload_that_would_break_calls_is_refused(model, env, ini, change, problem):
    """A file that parses but holds a bad value is refused on SIGHUP, with an ERROR line naming it; calls go on."""
    from_file = {k: v for k, v in env.items() if k not in ("SYNTHFLOW_API_TOKEN", "SYNTHFLOW_API_URL", "SYNTHFLOW_MODE")}
    good = {"api_token": TOKEN, "api_url": env["SYNTHFLOW_API_URL"]}
    ini.write_text(ini_text(good))
    with FastAgiServerProcess(from_file) as server:
        ini.write_text(ini_text({**good, **change}))
        server.send_signal(signal.SIGHUP)
        line = server.wait_for_log(re.compile(r"ERROR reload refused, keeping the previous settings: (.*)"))
        assert problem in line.group(1)
        assert "settings reloaded" not in server.log
        r = FastAgiPeer(server.port).run()
        assert r.status == "SUCCESS", r
    assert TOKEN not in server.log


def test_a_good_reload_redacts_the_new_token_and_drops_old_connections(model, env, ini):
    """After a reload with a rotated token, calls use it on a fresh connection, and neither token is logged."""
    rotated = TOKEN + "-rotated"
    from_file = {k: v for k, v in env.items() if k not in ("SYNTHFLOW_API_TOKEN", "SYNTHFLOW_API_URL", "SYNTHFLOW_MODE")}
    url = env["SYNTHFLOW_API_URL"]
    ini.write_text("[general]\napi_token = %s\napi_url = %s\n" % (TOKEN, url))
    with FastAgiServerProcess(from_file) as server:
        assert FastAgiPeer(server.port).run().status == "SUCCESS"
        ini.write_text("[general]\napi_token = %s\napi_url = %s\n" % (rotated, url))
        model.token = rotated
        server.send_signal(signal.SIGHUP)
        server.wait_for_log(re.compile(r"settings reloaded"))
        after = FastAgiPeer(server.port).run()
        assert after.status == "SUCCESS", after
    first, second = posts(model)
    assert second.header("Authorization") == "Bearer " + rotated
    assert first.client_port != second.client_port
    assert TOKEN not in server.log and rotated not in server.log
