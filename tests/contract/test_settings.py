"""Settings precedence: defaults < INI file < environment < channel variable (per-call keys only)."""
from __future__ import annotations

from tests.contract._helpers import TOKEN, call, closed_port, posts, sets_of


def model_id_sent(model):
    reqs = posts(model)
    assert len(reqs) == 1, reqs
    return reqs[0].body["model_id"]


def test_ini_file_supplies_settings(model, env, ini):
    """Values only in the INI file's [general] section are used."""
    ini.write_text("[general]\nmodel_id = ini-model\napi_token = %s\n" % TOKEN)
    del env["SYNTHFLOW_MODEL_ID"], env["SYNTHFLOW_API_TOKEN"]
    r = call(env)
    assert r.status == "SUCCESS"
    assert model_id_sent(model) == "ini-model"


def test_env_beats_ini(model, env, ini):
    """An environment variable overrides the INI file."""
    ini.write_text("[general]\nmodel_id = ini-model\n")
    env["SYNTHFLOW_MODEL_ID"] = "env-model"
    call(env)
    assert model_id_sent(model) == "env-model"


def test_channel_variable_beats_env_and_ini(model, env, ini):
    """A per-call channel variable overrides both the environment and the INI file."""
    ini.write_text("[general]\nmodel_id = ini-model\nworkspace_id = ini-ws\n")
    env["SYNTHFLOW_MODEL_ID"] = "env-model"
    call(env, variables={"SYNTHFLOW_MODEL_ID": "chan-model"})
    reqs = posts(model)
    assert reqs[0].body["model_id"] == "chan-model"
    assert reqs[0].body["workspace_id"] == "ws-1"  # env beats INI for the other key


def test_empty_env_value_is_unset(model, env, ini):
    """An empty environment value falls through to the INI file."""
    ini.write_text("[general]\nmodel_id = ini-model\n")
    env["SYNTHFLOW_MODEL_ID"] = ""
    call(env)
    assert model_id_sent(model) == "ini-model"


def test_empty_channel_variable_is_unset(model, env):
    """An empty channel variable falls through to the environment."""
    call(env, variables={"SYNTHFLOW_MODEL_ID": ""})
    assert model_id_sent(model) == "model-1"


def test_api_url_is_not_per_call(model, env):
    """SYNTHFLOW_API_URL on the channel is ignored: the request still reaches the configured API."""
    r = call(env, variables={"SYNTHFLOW_API_URL": "http://127.0.0.1:%d/v2" % closed_port()})
    assert r.status == "SUCCESS"
    assert len(posts(model)) == 1


def test_token_on_the_channel_never_replaces_the_configured_one(model, env):
    """A channel SYNTHFLOW_API_TOKEN is ignored; the configured token is the one sent."""
    r = call(env, variables={"SYNTHFLOW_API_TOKEN": "sk-channel-token-9"})
    assert r.status == "SUCCESS"
    assert posts(model)[0].header("Authorization") == "Bearer " + TOKEN


def test_api_token_file(model, env, tmp_path):
    """api_token_file names a file whose (stripped) content is the token."""
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    del env["SYNTHFLOW_API_TOKEN"]
    env["SYNTHFLOW_API_TOKEN_FILE"] = str(path)
    r = call(env)
    assert r.status == "SUCCESS"
    assert posts(model)[0].header("Authorization") == "Bearer " + TOKEN


def test_api_token_file_missing_is_config_error(model, env, tmp_path):
    """An api_token_file that does not exist gives CONFIG_ERROR, not a traceback."""
    del env["SYNTHFLOW_API_TOKEN"]
    env["SYNTHFLOW_API_TOKEN_FILE"] = str(tmp_path / "no-token")
    r = call(env)
    assert r.status == "CONFIG_ERROR"
    assert posts(model) == []


def test_retries_are_not_per_call(model, env):
    """SYNTHFLOW_RETRIES on the channel is ignored (process-wide): a 503 is still retried."""
    model.script({"kind": "status", "code": 503}, {"kind": "ok"})
    r = call(env, variables={"SYNTHFLOW_RETRIES": "0"})
    assert r.status == "SUCCESS"
    assert len(posts(model)) == 2


def test_mode_from_ini_and_override_per_call(model, env, ini):
    """mode=transfer in the INI file is used, and a channel variable switches it to dial."""
    env = {key: value for key, value in env.items() if key != "SYNTHFLOW_MODE"}
    ini.write_text("[general]\nmode = transfer ; REFER, for trunks that keep Refer-To headers\n")
    assert [e[0] for e in call(env).execs] == ["Transfer"]
    r = call(env, variables={"SYNTHFLOW_MODE": "dial"})
    assert [e[0] for e in r.execs] == ["Dial"]


def test_default_mode_is_dial(model, env):
    """With no mode anywhere the program dials the agent, so X-EI is on the INVITE."""
    env = {key: value for key, value in env.items() if key != "SYNTHFLOW_MODE"}
    r = call(env)
    assert r.status == "SUCCESS"
    assert [e[0] for e in r.execs] == ["Dial"]
    assert len(sets_of(r, "_SYNTHFLOW_XEI")) == 1
