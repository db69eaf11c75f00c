"""Settings: defaults < INI file < SYNTHFLOW_* environment < per-call channel variables.

Reading the sources is the only I/O here; merging and validating is pure, so
the same base serves every call and a FastAGI reload swaps it whole.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from typing import Dict, Mapping, Optional, Tuple

from ._errors import ConfigError
from ._sip import TRANSPORTS, validate_host

DEFAULT_CONFIG_PATH = "/etc/asterisk/synthflow.conf"
CONFIG_PATH_VARIABLE = "SYNTHFLOW_CONFIG"
SECTION = "general"

DEFAULTS: Mapping[str, str] = {
    "api_url": "https://api.synthflow.ai/v2",
    "api_token": "",
    "api_token_file": "",
    "model_id": "",
    "workspace_id": "",
    "agent_number": "",
    "from_number": "",
    "default_region": "US",
    "sip_host": "sip.synthflow.ai",
    "sip_port": "",
    "sip_transport": "udp",
    "mode": "transfer",
    "dial_technology": "pjsip",
    "dial_endpoint": "synthflow",
    "dial_timeout": "30",
    "predial_handler": "synthflow-predial^s^1",
    "variables": "",
    "timeout": "4",
    "retries": "2",
    "log": "stderr",
}

# Keys a dialplan may override for one call through SYNTHFLOW_<KEY>. The API
# URL and token are deliberately absent: a channel variable must never be
# able to send the token somewhere else. Retries belong to the shared
# HTTP adapter, so they are process-wide too.
PER_CALL_KEYS: Tuple[str, ...] = (
    "model_id", "workspace_id", "agent_number", "from_number", "default_region",
    "sip_host", "sip_port", "sip_transport", "mode", "dial_technology", "dial_endpoint", "dial_timeout",
    "predial_handler", "variables", "timeout",
)

MODES = ("transfer", "dial", "auto")
DIAL_TECHNOLOGIES = ("pjsip", "sip")
LOG_TARGETS = ("stderr", "syslog", "both")
MIN_TOKEN_LENGTH = 8
_REQUIRED = ("api_token", "model_id", "workspace_id", "agent_number")
_SAFE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_SAFE_HANDLER = _SAFE_NAME | {"^", "+"}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated settings for one call."""

    api_url: str
    api_token: str = dataclasses.field(repr=False)
    model_id: str
    workspace_id: str
    agent_number: str
    from_number: str
    default_region: str
    sip_host: str
    sip_port: int
    sip_transport: str
    mode: str
    dial_technology: str
    dial_endpoint: str
    dial_timeout: int
    predial_handler: str
    variables: Tuple[str, ...]
    timeout: float
    retries: int
    log: str

    def public_items(self) -> Tuple[Tuple[str, str], ...]:
        """Return (key, value) pairs safe to print: the token shows only as set or not."""
        items = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "api_token":
                value = f"<set, {len(value)} characters>" if value else "<not set>"
            elif isinstance(value, tuple):
                value = ",".join(value)
            items.append((field.name, str(value)))
        return tuple(items)


def config_path(environ: Mapping[str, str]) -> Tuple[str, bool]:
    """Return the INI path to read and whether the user named it explicitly."""
    named = environ.get(CONFIG_PATH_VARIABLE, "")
    return (named, True) if named else (DEFAULT_CONFIG_PATH, False)


def load_sources(environ: Mapping[str, str]) -> Dict[str, str]:
    """Merge defaults, the INI file and the environment into raw string settings."""
    raw = dict(DEFAULTS)
    path, named = config_path(environ)
    raw.update(_read_ini(path, required=named))
    for key in DEFAULTS:
        value = environ.get(f"SYNTHFLOW_{key.upper()}", "")
        if value:
            raw[key] = value
    if not raw["api_token"] and raw["api_token_file"]:
        raw["api_token"] = _read_token_file(raw["api_token_file"])
    return raw


def resolve(raw: Mapping[str, str], per_call: Optional[Mapping[str, str]] = None) -> Settings:
    """Apply per-call overrides (empty means unset) and validate into Settings."""
    merged = dict(raw)
    for key, value in (per_call or {}).items():
        if key in PER_CALL_KEYS and value:
            merged[key] = value.strip()
    missing = [key for key in _REQUIRED if not merged.get(key, "").strip()]
    if missing:
        raise ConfigError(f"missing required setting(s): {', '.join(missing)}")
    transport = _choice(merged, "sip_transport", TRANSPORTS)
    port_text = merged["sip_port"] or ("32682" if transport == "tls" else "32681")
    return Settings(
        api_url=_api_url(merged["api_url"]),
        api_token=_token(merged["api_token"]),
        model_id=merged["model_id"].strip(),
        workspace_id=merged["workspace_id"].strip(),
        agent_number=merged["agent_number"].strip(),
        from_number=merged["from_number"].strip(),
        default_region=merged["default_region"].strip().upper(),
        sip_host=validate_host(merged["sip_host"].strip()),
        sip_port=_number("sip_port", port_text, int, 1, 65535),
        sip_transport=transport,
        mode=_choice(merged, "mode", MODES),
        dial_technology=_dial_technology(merged, transport),
        dial_endpoint=_safe("dial_endpoint", merged["dial_endpoint"], _SAFE_NAME),
        dial_timeout=_number("dial_timeout", merged["dial_timeout"], int, 1, 3600),
        predial_handler=_safe("predial_handler", merged["predial_handler"], _SAFE_HANDLER),
        variables=tuple(name.strip() for name in merged["variables"].split(",") if name.strip()),
        timeout=_number("timeout", merged["timeout"], float, 0.1, 60.0),
        retries=_number("retries", merged["retries"], int, 0, 10),
        log=_choice(merged, "log", LOG_TARGETS),
    )


def _dial_technology(merged: Mapping[str, str], transport: str) -> str:
    """Return pjsip or sip; chan_sip dials a bare host, so only over its UDP default.

    >>> _dial_technology({"dial_technology": "SIP"}, "udp")
    'sip'
    >>> _dial_technology({"dial_technology": "sip"}, "tcp")
    Traceback (most recent call last):
    synthflow_agi._errors.ConfigError: dial_technology sip (chan_sip) dials sip_host over UDP only; use pjsip for tcp
    """
    technology = _choice(merged, "dial_technology", DIAL_TECHNOLOGIES)
    if technology == "sip" and transport != "udp":
        raise ConfigError(f"dial_technology sip (chan_sip) dials sip_host over UDP only; use pjsip for {transport}")
    return technology


def _token(value: str) -> str:
    """Return the stripped token, or raise ConfigError when it cannot be a real one.

    Beyond catching a half-pasted key: every log line is scrubbed of the token, and a
    one- or two-character "token" would mangle ordinary words in those lines.

    >>> _token("  sk-live-0123456789  ")
    'sk-live-0123456789'
    >>> _token("abc")
    Traceback (most recent call last):
    synthflow_agi._errors.ConfigError: api_token is too short to be a Synthflow API key (3 characters, at least 8)
    """
    token = value.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"api_token is too short to be a Synthflow API key "
                          f"({len(token)} characters, at least {MIN_TOKEN_LENGTH})")
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ConfigError("api_token holds spaces or control characters; it cannot go into an Authorization header")
    return token


def _read_ini(path: str, required: bool) -> Dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} (named by {CONFIG_PATH_VARIABLE}) does not exist") from None
        return {}
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"cannot read config file {path}: {_first_line(exc)}") from exc
    if not parser.has_section(SECTION):
        raise ConfigError(f"config file {path} has no [{SECTION}] section")
    values = dict(parser.items(SECTION))
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return {key: value.strip() for key, value in values.items()}


def _read_token_file(path: str) -> str:
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as handle:
            token = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        # The exception text holds only the path, never the file's content.
        raise ConfigError(f"cannot read api_token_file {path}: {_first_line(exc)}") from exc
    if not token:
        raise ConfigError(f"api_token_file {path} is empty")
    return token


def _api_url(value: str) -> str:
    url = value.strip().rstrip("/")
    if not (url.startswith("https://") or url.startswith("http://")) or any(c.isspace() for c in url):
        raise ConfigError(f"api_url {url[:80]!r} is not an http(s) URL")
    return url


def _choice(merged: Mapping[str, str], key: str, allowed: Tuple[str, ...]) -> str:
    value = merged[key].strip().lower()
    if value not in allowed:
        raise ConfigError(f"{key} {value[:40]!r} is not one of {', '.join(allowed)}")
    return value


def _number(key, text, kind, low, high):
    try:
        value = kind(text.strip())
    except ValueError:
        raise ConfigError(f"{key} {text[:40]!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{key} {value} is outside {low}..{high}")
    return value


def _safe(key: str, value: str, allowed: frozenset) -> str:
    text = value.strip()
    if not text or not set(text) <= allowed:
        raise ConfigError(f"{key} {text[:60]!r} holds characters a dialplan argument cannot carry")
    return text


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]
