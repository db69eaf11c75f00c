"""Checks of single setting values: each returns the value to use or raises ConfigError saying why.

Pure functions, so ``_settings`` stays about where values come from and how
they merge, and each rule here has its own doctest.
"""

from __future__ import annotations

import ipaddress
from typing import Mapping, Tuple
from urllib.parse import urlsplit

from ._errors import ConfigError

DIAL_TECHNOLOGIES = ("pjsip", "sip")
MIN_TOKEN_LENGTH = 8
_YES, _NO = ("yes", "true", "on", "1"), ("no", "false", "off", "0")


def state_dir(value: str) -> str:
    """Return the circuit breaker's state directory: an absolute path of printable characters.

    >>> state_dir(" /run/synthflow-agi/ ")
    '/run/synthflow-agi'
    >>> state_dir("run/synthflow")
    Traceback (most recent call last):
    synthflow_agi._errors.ConfigError: state_dir 'run/synthflow' is not an absolute path
    """
    path = value.strip()
    if any(not ch.isprintable() for ch in path) or len(path) > 1024:
        raise ConfigError("state_dir holds control characters or is longer than 1024 characters")
    if not path.startswith("/"):
        raise ConfigError(f"state_dir {path[:60]!r} is not an absolute path")
    return path.rstrip("/") or "/"


def dial_technology(merged: Mapping[str, str], transport: str) -> str:
    """Return pjsip or sip; chan_sip dials a bare host, so only over its UDP default.

    >>> dial_technology({"dial_technology": "SIP"}, "udp")
    'sip'
    >>> dial_technology({"dial_technology": "sip"}, "tcp")
    Traceback (most recent call last):
    synthflow_agi._errors.ConfigError: dial_technology sip (chan_sip) dials sip_host over UDP only; use pjsip for tcp
    """
    technology = choice(merged, "dial_technology", DIAL_TECHNOLOGIES)
    if technology == "sip" and transport != "udp":
        raise ConfigError(f"dial_technology sip (chan_sip) dials sip_host over UDP only; use pjsip for {transport}")
    return technology


def token(value: str) -> str:
    """Return the stripped token, or raise ConfigError when it cannot be a real one.

    Beyond catching a half-pasted key: every log line is scrubbed of the token, and a
    one- or two-character "token" would mangle ordinary words in those lines.

    >>> token("  sk-live-0123456789  ")
    'sk-live-0123456789'
    >>> token("abc")
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


def api_url(value: str, allow_insecure: bool) -> str:
    """Return the API base URL without a trailing slash, or raise ConfigError saying what is wrong.

    The token goes in every request's Authorization header, so plain http is
    refused unless the host is this machine, or the operator said otherwise.

    >>> api_url('https://api.us.synthflow.ai/v2/', False)
    'https://api.us.synthflow.ai/v2'
    >>> api_url('http://[127.0.0.1/v2', False)
    Traceback (most recent call last):
    synthflow_agi._errors.ConfigError: api_url is not a valid URL: Invalid IPv6 URL
    >>> api_url('http://api.example.net/v2', False)
    Traceback (most recent call last):
    synthflow_agi._errors.ConfigError: api_url uses plain http to api.example.net, which would send the token in clear text; use https, or set allow_insecure_http = yes
    """
    url = value.strip().rstrip("/")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ConfigError("api_url holds spaces or control characters")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(f"api_url is not a valid URL: {first_line(exc)}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"api_url must start with https:// (scheme {parts.scheme[:10]!r})")
    if not host:
        raise ConfigError("api_url has no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("api_url must not carry a user name or password; the token is the credential")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ConfigError("api_url must not carry a query or fragment")
    if parts.scheme == "http" and not allow_insecure and not _is_loopback(host):
        raise ConfigError(f"api_url uses plain http to {host[:80]}, which would send the token in clear text; "
                          "use https, or set allow_insecure_http = yes")
    return url


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def flag(merged: Mapping[str, str], key: str) -> bool:
    value = merged[key].strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ConfigError(f"{key} {value[:20]!r} is not yes or no")


def choice(merged: Mapping[str, str], key: str, allowed: Tuple[str, ...]) -> str:
    value = merged[key].strip().lower()
    if value not in allowed:
        raise ConfigError(f"{key} {value[:40]!r} is not one of {', '.join(allowed)}")
    return value


def number(key, text, kind, low, high):
    try:
        value = kind(text.strip())
    except ValueError:
        raise ConfigError(f"{key} {text[:40]!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{key} {value} is outside {low}..{high}")
    return value


def safe(key: str, value: str, allowed: frozenset) -> str:
    text = value.strip()
    if not text or not set(text) <= allowed:
        raise ConfigError(f"{key} {text[:60]!r} holds characters a dialplan argument cannot carry")
    return text


def first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]
