"""The ``synthflow-agi`` console script: check, prepare, --version, agi; clear one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.contract._helpers import AGENT, TOKEN, assert_basics, posts
from tests.support.agi_peer import AgiPeer

BIN = Path(sys.executable).parent
CLI = BIN / "synthflow-agi"


def run_cli(env, *args, timeout=30):
    """Run the console script with only ``env``'s SYNTHFLOW_* settings."""
    child = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHFLOW_")}
    child.update(env)
    return subprocess.run([str(CLI), *args], env=child, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc):
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr


def test_console_script_is_installed():
    """The venv holds the synthflow-agi console script next to the interpreter."""
    assert CLI.exists(), CLI


def test_version_matches_the_distribution(env):
    """--version prints the installed distribution's version and exits 0."""
    proc = run_cli(env, "--version")
    assert proc.returncode == 0, proc
    assert metadata.version("synthflow-agi") in proc.stdout + proc.stderr


def test_check_prints_settings_with_the_token_masked(model, env):
    """check exits 0, shows the effective settings, and never prints the token."""
    proc = run_cli(env, "check")
    assert proc.returncode == 0, proc
    assert TOKEN not in proc.stdout + proc.stderr
    assert model.base_url in proc.stdout
    assert "api_token" in proc.stdout  # shown, but masked
    assert "model-1" in proc.stdout and AGENT in proc.stdout
    assert posts(model) == []


@pytest.mark.parametrize("breakage", ["no_token", "missing_file", "bad_mode", "bad_timeout"])
def test_check_bad_config_is_one_line_error(model, env, tmp_path, breakage):
    """check on a broken configuration exits non-zero with one line on stderr, no traceback."""
    if breakage == "no_token":
        del env["SYNTHFLOW_API_TOKEN"]
    elif breakage == "missing_file":
        env["SYNTHFLOW_CONFIG"] = str(tmp_path / "absent.conf")
    elif breakage == "bad_mode":
        env["SYNTHFLOW_MODE"] = "teleport"
    else:
        env["SYNTHFLOW_TIMEOUT"] = "soon"
    proc = run_cli(env, "check")
    assert_one_line_error(proc)
    assert TOKEN not in proc.stdout + proc.stderr


def test_check_live_calls_prepare_once(model, env):
    """check --live makes exactly one prepare_inbound call and reports its call id."""
    model.script({"kind": "ok", "call_id": "live-check-0001"})
    proc = run_cli(env, "check", "--live")
    assert proc.returncode == 0, proc
    assert len(posts(model)) == 1
    assert "live-check-0001" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr


def test_check_live_auth_failure_is_one_line_error(model, env):
    """check --live with a rejected token exits non-zero with one line, no token, no traceback."""
    model.script({"kind": "status", "code": 401})
    proc = run_cli(env, "check", "--live")
    assert_one_line_error(proc)
    assert TOKEN not in proc.stdout + proc.stderr


def test_prepare_prints_the_api_json(model, env):
    """prepare sends the numbers and --var pairs and prints the API's JSON reply."""
    model.script({"kind": "ok", "call_id": "cli-prepare-0001"})
    proc = run_cli(env, "prepare", "--from", "+15551230000", "--to", AGENT,
                   "--var", "customer_name=Ada \"Lovelace\"", "--var", "note=a=b;c")
    assert proc.returncode == 0, proc
    printed = json.loads(proc.stdout)
    assert printed["synthflow_call_id"] == "cli-prepare-0001"
    assert printed["call_status"] == "registered"
    (req,) = posts(model)
    assert req.body["from_number"] == "+15551230000" and req.body["to_number"] == AGENT
    assert req.body["custom_variables"] == {"customer_name": 'Ada "Lovelace"', "note": "a=b;c"}
    assert TOKEN not in proc.stdout + proc.stderr


def test_prepare_api_error_is_one_line_error(model, env):
    """prepare against a failing API exits non-zero with a one-line error."""
    model.script({"kind": "status", "code": 500})
    proc = run_cli(env, "prepare", "--from", "+15551230000", "--to", AGENT)
    assert_one_line_error(proc)


def test_prepare_invalid_number_is_one_line_error(model, env):
    """prepare with an unusable number exits non-zero, one line, and makes no POST."""
    proc = run_cli(env, "prepare", "--from", "not-a-number", "--to", AGENT)
    assert_one_line_error(proc)
    assert posts(model) == []


@pytest.mark.parametrize("program", [[str(CLI), "agi"], [str(BIN / "synthflow.agi")]],
                         ids=["synthflow-agi agi", "installed synthflow.agi"])
def test_other_entries_speak_the_same_agi(model, env, program):
    """`synthflow-agi agi` and the pip-installed synthflow.agi behave like agi-bin/synthflow.agi."""
    model.script({"kind": "ok", "call_id": "entry-point-0001"})
    r = AgiPeer(program=program).run(env=env)
    assert_basics(r)
    assert r.status == "SUCCESS"
    assert r.execs == [("Transfer", "PJSIP/<sip:%s@sip.us.synthflow.ai:32681?X-EI=S.entry-point-0001%%3BE.1700000000.42%%3B>"
                        % AGENT)]
