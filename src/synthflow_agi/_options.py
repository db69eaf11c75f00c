"""The FastAGI server's command-line values, checked before anything starts.

Each bad value is one ``ConfigError`` line (the CLI prints it and exits 2),
never a traceback from deep inside socketserver.
"""

from __future__ import annotations

import re
from typing import Tuple

from ._errors import ConfigError

DEFAULT_PORT = 4573
MAX_CONNECTIONS_LIMIT = 10000
MAX_SECONDS = 86400.0
_LISTEN_HOST = re.compile(r"[A-Za-z0-9._:%-]{0,253}\Z")


def parse_listen(text: str, flag: str = "--listen", default_port: int = DEFAULT_PORT) -> Tuple[str, int]:
    """Parse ``host:port``, ``[v6]:port`` or ``host`` (port 4573, or ``default_port``); port 0 picks a free one.

    >>> parse_listen('127.0.0.1:4573'), parse_listen('[::1]:4600'), parse_listen('localhost'), parse_listen(':4600')
    (('127.0.0.1', 4573), ('::1', 4600), ('localhost', 4573), ('127.0.0.1', 4600))
    >>> parse_listen('127.0.0.1:70000')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: --listen '127.0.0.1:70000': the port must be 0 to 65535
    >>> parse_listen('[::1')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: --listen '[::1' is not host:port, [v6]:port or host
    """
    shown = f"{flag} {text[:60]!r}"
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ConfigError(f"{shown} is not host:port, [v6]:port or host")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, None
    if not _LISTEN_HOST.match(host) or (port is not None and not port.isdigit()) or (port is not None and len(port) > 5):
        raise ConfigError(f"{shown} is not host:port, [v6]:port or host")
    number = int(port) if port is not None else default_port
    if number > 65535:
        raise ConfigError(f"{shown}: the port must be 0 to 65535")
    return host or "127.0.0.1", number


def check_options(max_connections: str, read_timeout: str, grace: str, summary_interval: str) -> Tuple[int, float, float, float]:
    """Validate the numeric flags before anything starts; each bad one is a one-line ConfigError.

    >>> check_options('500', '30', '30', '300')
    (500, 30.0, 30.0, 300.0)
    >>> check_options('0', '30', '30', '300')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: --max-connections '0' must be a whole number from 1 to 10000
    >>> check_options('5', 'nan', '30', '300')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: --read-timeout 'nan' must be a number of seconds above 0 and at most 86400
    """
    text = max_connections.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_CONNECTIONS_LIMIT:
        raise ConfigError(f"--max-connections {max_connections[:20]!r} must be a whole number from 1 to {MAX_CONNECTIONS_LIMIT}")
    seconds = []
    for flag, value in (("--read-timeout", read_timeout), ("--grace", grace), ("--summary-interval", summary_interval)):
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not 0 < number <= MAX_SECONDS:  # also refuses nan and inf
            raise ConfigError(f"{flag} {value[:20]!r} must be a number of seconds above 0 and at most {MAX_SECONDS:g}")
        seconds.append(number)
    return (int(text), seconds[0], seconds[1], seconds[2])
