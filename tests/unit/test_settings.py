"""Merging and validating settings: defaults < INI < environment < channel variables."""

import pytest

from synthflow_agi._errors import ConfigError
from synthflow_agi._settings import PER_CALL_KEYS, load_sources, resolve

REQUIRED_ENV = {
    "SYNTHFLOW_API_TOKEN": "tok-env-1",
    "SYNTHFLOW_MODEL_ID": "model-env",
    "SYNTHFLOW_WORKSPACE_ID": "ws-env",
    "SYNTHFLOW_AGENT_NUMBER": "+15551234567",
}


@pytest.fixture
def base_env(tmp_path):
    """The required keys, with an empty INI file so no /etc file on this host leaks in."""
    path = tmp_path / "empty.conf"
    path.write_text("[general]\n", encoding="utf-8")
    return {"SYNTHFLOW_CONFIG": str(path), **REQUIRED_ENV}


@pytest.fixture
def ini(tmp_path):
    """Write an INI file and return an environment naming it."""

    def write(text, **env):
        path = tmp_path / "synthflow.conf"
        path.write_text(text, encoding="utf-8")
        return {"SYNTHFLOW_CONFIG": str(path), **env}

    return write


def test_defaults_apply_when_nothing_is_set(base_env):
    """With only the required keys, every other key has its documented default."""
    settings = resolve(load_sources({**base_env, "SYNTHFLOW_UNRELATED": "x"}))
    assert (settings.api_url, settings.sip_host, settings.sip_port, settings.sip_transport) == (
        "https://api.us.synthflow.ai/v2", "sip.us.synthflow.ai", 32681, "udp")
    assert (settings.mode, settings.dial_endpoint, settings.dial_timeout, settings.timeout) == ("dial", "synthflow", 30, 4.0)
    assert (settings.default_region, settings.variables, settings.from_number) == ("US", (), "")


def test_precedence_file_then_environment_then_channel(ini):
    """The environment beats the file, and a channel variable beats both for per-call keys."""
    env = ini("[general]\napi_token = tok-file\nmodel_id = model-file\nworkspace_id = ws-file\n"
              "agent_number = +15550000000\nsip_host = file.example\nmode = dial\n",
              SYNTHFLOW_MODEL_ID="model-env", SYNTHFLOW_SIP_HOST="env.example")
    raw = load_sources(env)
    settings = resolve(raw, {"sip_host": "chan.example", "model_id": "", "api_token": "tok-chan", "api_url": "http://evil"})
    assert settings.model_id == "model-env"
    assert settings.workspace_id == "ws-file"
    assert settings.mode == "dial"
    assert settings.sip_host == "chan.example"
    assert settings.api_token == "tok-file"
    assert settings.api_url == "https://api.us.synthflow.ai/v2"


def test_token_and_url_can_never_come_from_the_channel():
    """The per-call keys exclude everything that could redirect or reveal the token."""
    assert not {"api_token", "api_token_file", "api_url", "log"} & set(PER_CALL_KEYS)


def test_named_missing_file_is_a_config_error(tmp_path):
    """SYNTHFLOW_CONFIG naming a file that is not there is CONFIG_ERROR."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_sources({"SYNTHFLOW_CONFIG": str(tmp_path / "nope.conf")})


@pytest.mark.parametrize(
    "text, message",
    [
        ("[other]\nmode = dial\n", "no \\[general\\] section"),
        ("[general]\nmodle_id = typo\n", "unknown setting"),
        ("not an ini file\n", "cannot read"),
    ],
)
def test_malformed_files_are_config_errors(ini, text, message):
    """A file without [general], with an unknown key or not INI at all is refused, naming why."""
    with pytest.raises(ConfigError, match=message):
        load_sources(ini(text))


def test_token_file_is_read_and_stripped(tmp_path, ini):
    """api_token_file supplies the token when api_token is unset."""
    token_file = tmp_path / "token"
    token_file.write_text("  tok-from-file\n", encoding="utf-8")
    env = ini(f"[general]\napi_token_file = {token_file}\n")
    assert load_sources(env)["api_token"] == "tok-from-file"


def test_unreadable_token_file_names_the_path_not_the_content(tmp_path, ini):
    """A missing token file is CONFIG_ERROR with its path."""
    env = ini(f"[general]\napi_token_file = {tmp_path / 'missing'}\n")
    with pytest.raises(ConfigError, match="api_token_file"):
        load_sources(env)


def test_missing_required_keys_are_listed(ini):
    """Every missing required key is named at once."""
    with pytest.raises(ConfigError, match="api_token, model_id, workspace_id, agent_number"):
        resolve(load_sources(ini("[general]\n")))


def test_tls_defaults_to_port_32682(base_env):
    """TLS without an explicit port uses Synthflow's TLS port."""
    settings = resolve(load_sources(base_env), {"sip_transport": "TLS"})
    assert (settings.sip_transport, settings.sip_port) == ("tls", 32682)


@pytest.mark.parametrize(
    "key, value",
    [("mode", "bridge"), ("sip_transport", "sctp"), ("sip_port", "0"), ("sip_port", "x"), ("timeout", "0"),
     ("timeout", "61"), ("dial_timeout", "1.5"), ("dial_endpoint", "a,b"), ("predial_handler", "h(x)"),
     ("sip_host", "a;b"), ("dial_technology", "iax2")],
)
def test_bad_per_call_values_are_config_errors(base_env, key, value):
    """Values that could break a dialplan argument or make no sense are refused."""
    with pytest.raises(ConfigError, match=key):
        resolve(load_sources(base_env), {key: value})


def test_chan_sip_dial_is_refused_over_tcp(base_env):
    """chan_sip dials a bare host over UDP, so dial_technology=sip with tcp is a clear CONFIG_ERROR."""
    with pytest.raises(ConfigError, match="dial_technology sip"):
        resolve(load_sources(base_env), {"dial_technology": "sip", "sip_transport": "tcp"})
    assert resolve(load_sources(base_env), {"dial_technology": "SIP"}).dial_technology == "sip"


def test_public_items_never_show_the_token(base_env):
    """The printable view of the settings masks the token."""
    settings = resolve(load_sources(base_env))
    shown = dict(settings.public_items())
    assert "tok-env-1" not in repr(settings)
    assert "tok-env-1" not in str(shown)
    assert shown["api_token"] == "<set, 9 characters>"


@pytest.mark.parametrize("token, reason", [("abc", "too short"), ("sk-live 0123456789", "spaces"),
                                           ("sk-live-\x000123456789", "control")])
def test_implausible_tokens_are_config_errors(base_env, token, reason):
    """A token too short to scrub safely from logs, or one that cannot be a header value, is refused."""
    env = dict(base_env, SYNTHFLOW_API_TOKEN=token)
    with pytest.raises(ConfigError, match=reason) as caught:
        resolve(load_sources(env))
    assert token not in str(caught.value)
