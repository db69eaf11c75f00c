"""Settings: defaults < INI file < SYNTHFLOW_* environment < per-call channel variables.

Reading the sources is the only I/O here; merging and validating is pure, so
the same base serves every call and a FastAGI reload swaps it whole.  Settings
that cannot be used are a value too (``Base`` with a reason), never an
exception kept and re-raised for every call.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from typing import Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from . import _checks as checks
from ._clusters import CLUSTERS, mismatch
from ._errors import ConfigError
from ._sip import TRANSPORTS, validate_host

DEFAULT_CONFIG_PATH = "/etc/asterisk/synthflow.conf"
CONFIG_PATH_VARIABLE = "SYNTHFLOW_CONFIG"
SECTION = "general"

DEFAULTS: Mapping[str, str] = {
    "cluster": "us",
    "api_url": "",
    "allow_insecure_http": "no",
    "api_token": "",
    "api_token_file": "",
    "model_id": "",
    "workspace_id": "",
    "agent_number": "",
    "from_number": "",
    "default_region": "US",
    "sip_host": "",
    "sip_port": "",
    "sip_transport": "udp",
    "mode": "dial",
    "dial_technology": "pjsip",
    "dial_endpoint": "synthflow",
    "dial_timeout": "30",
    "predial_handler": "synthflow-predial^s^1",
    "variables": "",
    "external_id": "",
    "diversion": "",
    "headers": "",
    "on_api_failure": "fallback",
    "timeout": "4",
    "retries": "2",
    "log": "stderr",
    "breaker_failures": "5",
    "breaker_cooldown": "30",
    "state_dir": "/run/synthflow-agi",
}

# Keys a dialplan may override for one call through SYNTHFLOW_<KEY>. The API
# URL and token are deliberately absent: a channel variable must never be
# able to send the token somewhere else. Retries belong to the shared
# HTTP adapter, so they are process-wide too.
PER_CALL_KEYS: Tuple[str, ...] = (
    "model_id", "workspace_id", "agent_number", "from_number", "default_region",
    "sip_host", "sip_port", "sip_transport", "mode", "dial_technology", "dial_endpoint", "dial_timeout",
    "predial_handler", "variables", "external_id", "diversion", "headers", "on_api_failure", "timeout",
)

MODES = ("transfer", "dial", "auto")
API_FAILURE_ACTIONS = ("fallback", "direct")
LOG_TARGETS = ("stderr", "syslog", "both")
# Bounds on what is read from disk: a config file and a token are small.
MAX_CONFIG_BYTES = 256 * 1024
MAX_TOKEN_BYTES = 4096
_REQUIRED = ("api_token", "model_id", "workspace_id", "agent_number")
_SAFE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_SAFE_HANDLER = _SAFE_NAME | {"^", "+"}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated settings for one call."""

    cluster: str
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
    external_id: str
    diversion: str
    headers: str
    on_api_failure: str
    allow_insecure_http: bool
    timeout: float
    retries: int
    log: str
    # The circuit breaker (docs/circuit-breaker.md): process-wide, never per call.
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    state_dir: str = "/run/synthflow-agi"

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


@dataclasses.dataclass(frozen=True)
class Base:
    """The process-wide settings as loaded: the raw values, or why they cannot be used."""

    raw: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    error: str = ""

    @property
    def usable(self) -> bool:
        """Whether calls can run on these settings (a per-call override may still be wrong)."""
        return not self.error

    @property
    def secrets(self) -> Tuple[str, ...]:
        """The token as configured and as trimmed, for log redaction."""
        token = self.raw.get("api_token", "")
        return tuple(dict.fromkeys(form for form in (token, token.strip()) if form))

    @property
    def log(self) -> str:
        """Where the log goes; stderr for settings that cannot be used."""
        value = self.raw.get("log", "stderr").strip().lower()
        return value if value in LOG_TARGETS else "stderr"


def load_base(environ: Mapping[str, str]) -> Base:
    """Load and fully validate the process-wide settings; a failure is a ``Base`` with a reason."""
    try:
        raw = load_sources(environ)
    except ConfigError as exc:
        return Base({}, exc.reason)
    try:
        validate_base(raw)
    except ConfigError as exc:
        # The raw values stay, unused, so that the token is still redacted from the log.
        return Base(raw, exc.reason)
    return Base(raw)


def validate_base(raw: Mapping[str, str]) -> Settings:
    """Validate every process-wide value, so a reload can refuse a file before swapping it in.

    Required keys that a dialplan may supply per call (model, workspace, agent
    number) are stood in for when absent; every value that is present is checked.
    """
    stand_ins = {"model_id": "per-call", "workspace_id": "per-call", "agent_number": "+10000000000"}
    present = {key: value for key, value in raw.items() if key not in stand_ins or str(value).strip()}
    return resolve({**stand_ins, **present})


def resolve(raw: Mapping[str, str], per_call: Optional[Mapping[str, str]] = None) -> Settings:
    """Apply per-call overrides (empty means unset) and validate into Settings."""
    merged = {**DEFAULTS, **raw}
    for key, value in (per_call or {}).items():
        if key in PER_CALL_KEYS and value:
            merged[key] = value.strip()
    missing = [key for key in _REQUIRED if not merged.get(key, "").strip()]
    if missing:
        raise ConfigError(f"missing required setting(s): {', '.join(missing)}")
    transport = checks.choice(merged, "sip_transport", TRANSPORTS)
    port_text = merged["sip_port"] or ("32682" if transport == "tls" else "32681")
    cluster = checks.choice(merged, "cluster", tuple(CLUSTERS))
    insecure = checks.flag(merged, "allow_insecure_http")
    api_url = checks.api_url(merged["api_url"] or CLUSTERS[cluster].api_url, insecure)
    sip_host = validate_host(merged["sip_host"].strip() or CLUSTERS[cluster].sip_host)
    problem = mismatch(urlsplit(api_url).hostname or "", sip_host)
    if problem:
        raise ConfigError(problem)
    return Settings(
        cluster=cluster,
        api_url=api_url,
        api_token=checks.token(merged["api_token"]),
        model_id=merged["model_id"].strip(),
        workspace_id=merged["workspace_id"].strip(),
        agent_number=merged["agent_number"].strip(),
        from_number=merged["from_number"].strip(),
        default_region=merged["default_region"].strip().upper(),
        sip_host=sip_host,
        sip_port=checks.number("sip_port", port_text, int, 1, 65535),
        sip_transport=transport,
        mode=checks.choice(merged, "mode", MODES),
        dial_technology=checks.dial_technology(merged, transport),
        dial_endpoint=checks.safe("dial_endpoint", merged["dial_endpoint"], _SAFE_NAME),
        dial_timeout=checks.number("dial_timeout", merged["dial_timeout"], int, 1, 3600),
        predial_handler=checks.safe("predial_handler", merged["predial_handler"], _SAFE_HANDLER),
        variables=tuple(name.strip() for name in merged["variables"].split(",") if name.strip()),
        external_id=merged["external_id"].strip(),
        diversion=merged["diversion"].strip(),
        headers=merged["headers"].strip(),
        on_api_failure=checks.choice(merged, "on_api_failure", API_FAILURE_ACTIONS),
        allow_insecure_http=insecure,
        timeout=checks.number("timeout", merged["timeout"], float, 0.1, 60.0),
        retries=checks.number("retries", merged["retries"], int, 0, 10),
        log=checks.choice(merged, "log", LOG_TARGETS),
        breaker_failures=checks.number("breaker_failures", merged["breaker_failures"], int, 0, 1000),
        breaker_cooldown=checks.number("breaker_cooldown", merged["breaker_cooldown"], float, 0.1, 3600.0),
        state_dir=checks.state_dir(merged["state_dir"]),
    )


def _read_ini(path: str, required: bool) -> Dict[str, str]:
    # Asterisk's own .conf files end lines with "; comment", and users copy that
    # habit; configparser keeps such text in the value unless told otherwise.
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__",
                                       comment_prefixes=(";", "#"), inline_comment_prefixes=(";", "#"))
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
        parser.read_string(text, source=path)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} (named by {CONFIG_PATH_VARIABLE}) does not exist") from None
        return {}
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"cannot read config file {path}: {checks.first_line(exc)}") from exc
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
            token = handle.read(MAX_TOKEN_BYTES + 1).strip()
    except (OSError, UnicodeDecodeError) as exc:
        # The exception text holds only the path, never the file's content.
        raise ConfigError(f"cannot read api_token_file {path}: {checks.first_line(exc)}") from exc
    if not token:
        raise ConfigError(f"api_token_file {path} is empty")
    if len(token) > MAX_TOKEN_BYTES:
        raise ConfigError(f"api_token_file {path} holds more than {MAX_TOKEN_BYTES} bytes: not a token")
    return token

