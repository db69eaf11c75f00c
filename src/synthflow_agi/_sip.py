"""Where the call goes and how X-EI travels with it: pure string building.

Every piece that ends up in a SIP message or a dialplan application argument
is validated here first, so nothing from the API or a channel variable can
add a header, a parameter or an argument of its own.
"""

from __future__ import annotations

import re

from ._errors import ApiError, ConfigError, HandoffError

# Synthflow ids are UUIDs today; allow any id made only of URI-unreserved
# characters that cannot end the header (";"), the URI (">") or the line.
_CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{7,127}\Z")
_ID_CHARACTERS = re.compile(r"[A-Za-z0-9_-]*\Z")
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
_IPV6_REFERENCE = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}\Z")

TRANSPORTS = ("udp", "tcp", "tls")
TECH_PJSIP = "PJSIP"
TECH_CHAN_SIP = "SIP"


def validate_call_id(value: object) -> str:
    r"""Return the call id if it is safe to put into SIP, else raise ApiError describing its shape.

    The id came from the network, so the error names the rule it broke and
    never repeats the text itself.

    >>> validate_call_id('ebe4bd96-dcb1-4abd-9aa5-686877dab061')
    'ebe4bd96-dcb1-4abd-9aa5-686877dab061'
    >>> validate_call_id('abc;def-123')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ApiError: synthflow_call_id is unsafe for SIP: 11 characters, holds characters other than letters, digits, '-' and '_'
    >>> validate_call_id('abcdefgh1\n')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ApiError: synthflow_call_id is unsafe for SIP: 10 characters, holds characters other than letters, digits, '-' and '_'
    """
    if isinstance(value, str) and _CALL_ID.match(value):
        return value
    raise ApiError(f"synthflow_call_id is unsafe for SIP: {describe_id_shape(value)}")


def describe_id_shape(value: object) -> str:
    """Say what is wrong with an id without repeating it.

    >>> describe_id_shape(12345678)
    'a JSON int, not a string'
    >>> describe_id_shape('ab')
    '2 characters, fewer than 8'
    >>> describe_id_shape('-abcdefgh')
    '9 characters, starts with a character other than a letter or digit'
    """
    if not isinstance(value, str):
        return f"a JSON {type(value).__name__}, not a string"
    if not value:
        return "empty"
    size = f"{len(value)} characters"
    if len(value) < 8:
        return f"{size}, fewer than 8"
    if len(value) > 128:
        return f"{size}, more than 128"
    if not _ID_CHARACTERS.match(value):
        return f"{size}, holds characters other than letters, digits, '-' and '_'"
    return f"{size}, starts with a character other than a letter or digit"


def validate_host(host: str) -> str:
    """Return a SIP host (name, IPv4 or bracketed IPv6) or raise ConfigError.

    >>> validate_host('sip.synthflow.ai')
    'sip.synthflow.ai'
    >>> validate_host('[::1]')
    '[::1]'
    >>> validate_host('evil.example;maddr=10.0.0.1')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: sip_host 'evil.example;maddr=10.0.0.1' is not a host name or address
    """
    if _HOSTNAME.match(host) or _IPV6_REFERENCE.match(host):
        return host
    raise ConfigError(f"sip_host {host[:80]!r} is not a host name or address")


def agent_uri(number: str, host: str, port: int, transport: str) -> str:
    """Build the agent's SIP URI; the transport parameter only when not UDP.

    >>> agent_uri('+15551234567', 'sip.synthflow.ai', 32681, 'udp')
    'sip:+15551234567@sip.synthflow.ai:32681'
    >>> agent_uri('+15551234567', '127.0.0.1', 32681, 'tcp')
    'sip:+15551234567@127.0.0.1:32681;transport=tcp'
    """
    if not _E164.match(number):
        raise ConfigError(f"agent number {number!r} is not E.164")
    if transport not in TRANSPORTS:
        raise ConfigError(f"sip_transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
    params = "" if transport == "udp" else f";transport={transport}"
    return f"sip:{number}@{validate_host(host)}:{int(port)}{params}"


def can_transfer(technology: str) -> bool:
    """Tell whether this program knows how to REFER a channel of this technology."""
    return technology in (TECH_PJSIP, TECH_CHAN_SIP)


def require_transfer(technology: str) -> None:
    """Raise HandoffError, before any API call, for a channel that cannot be REFERred.

    >>> require_transfer('IAX2')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.HandoffError: cannot REFER a IAX2 channel: transfer mode needs PJSIP or SIP (use mode=dial)
    """
    if not can_transfer(technology):
        raise HandoffError(
            f"cannot REFER a {technology or 'unknown'} channel: transfer mode needs PJSIP or SIP (use mode=dial)"
        )


def transfer_destination(technology: str, uri: str, headers: str) -> str:
    """Build the ``Transfer()`` argument that carries the headers inside the Refer-To URI.

    PJSIP uses the text after ``PJSIP/`` verbatim, so it needs the angle
    brackets; chan_sip adds ``<sip:…>`` itself (docs/asterisk-notes.md#chan_sip-forms).
    ``headers`` is the percent-encoded ``?name=value&…`` part.

    >>> transfer_destination('PJSIP', 'sip:+15551234567@h:32681', '?X-EI=S.abcdef12-3456%3B')
    'PJSIP/<sip:+15551234567@h:32681?X-EI=S.abcdef12-3456%3B>'
    >>> transfer_destination('SIP', 'sip:+15551234567@h:32681', '?X-EI=S.abcdef12-3456%3B')
    'SIP/+15551234567@h:32681?X-EI=S.abcdef12-3456%3B'
    """
    require_transfer(technology)
    if technology == TECH_PJSIP:
        return f"PJSIP/<{uri}{headers}>"
    return f"SIP/{uri[len('sip:'):]}{headers}"


def dial_arguments(technology: str, endpoint: str, uri: str, timeout: int, handler: str) -> str:
    """Build the ``Dial()`` argument for the agent URI, with the pre-dial handler that adds X-EI.

    PJSIP sends from an endpoint to the full URI.  chan_sip takes ``user@host:port`` and
    makes a peer for that host on the fly (its dial string has no room for an endpoint and
    a URI both, and ``;transport=`` is refused earlier, in the settings).

    >>> dial_arguments('pjsip', 'synthflow', 'sip:+15551234567@h:32681', 30, 'synthflow-predial^s^1')
    'PJSIP/synthflow/sip:+15551234567@h:32681,30,b(synthflow-predial^s^1)'
    >>> dial_arguments('sip', 'synthflow', 'sip:+15551234567@h:32681', 30, 'synthflow-predial^s^1')
    'SIP/+15551234567@h:32681,30,b(synthflow-predial^s^1)'
    """
    if technology == "sip":
        if ";" in uri:
            raise ConfigError(f"chan_sip cannot dial {uri!r}: a URI parameter does not fit its dial string")
        return f"SIP/{uri[len('sip:'):]},{int(timeout)},b({handler})"
    return f"PJSIP/{endpoint}/{uri},{int(timeout)},b({handler})"
