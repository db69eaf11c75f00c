"""What travels to the agent in SIP headers: the X-EI tokens and the ``X-<key>`` context headers.

Synthflow reads ``X-EI`` as a list of ``(S|E|O).<value>;`` tokens (S: its call
id, E: your external id, returned in the post-call webhook, O: the original
called number) and turns any other ``X-*`` header on the INVITE into an agent
variable.  Every value is checked here before it goes near SIP: a token value
that cannot be carried is refused, never trimmed; a context header that cannot
be carried is left out (the value still reaches the agent in custom_variables).
"""

from __future__ import annotations

import re
from typing import List, Mapping, NamedTuple, Sequence, Tuple
from urllib.parse import quote

from ._errors import ConfigError
from ._sip import validate_call_id
from ._text import describe_text

MAX_TOKEN_VALUE = 128
# A header line far beyond this is refused or cut by SIP stacks and proxies on the way.
MAX_HEADER_VALUE_BYTES = 512
MAX_HEADERS = 32
_HEADER_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
# A backslash is refused too: chan_sip's SIPAddHeader decodes escapes such as \r\n, which
# would let a value start a header line of its own.
_UNSAFE_IN_HEADER = frozenset("\r\n\x00\\")


class Header(NamedTuple):
    """One header to send: its full name and its value."""

    name: str
    value: str


def x_ei(call_id: str = "", external_id: str = "", diversion: str = "") -> str:
    """Return the X-EI value with the tokens that have a value, S first.

    >>> x_ei('ebe4bd96-dcb1-4abd-9aa5-686877dab061', '1700000000.42', '+14155550100')
    'S.ebe4bd96-dcb1-4abd-9aa5-686877dab061;E.1700000000.42;O.+14155550100;'
    >>> x_ei(external_id='crm-77')
    'E.crm-77;'
    >>> x_ei(external_id='a;b')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: external_id cannot go into X-EI (3 characters, holds ';'): refused, not trimmed
    """
    tokens = []
    if call_id:
        tokens.append(f"S.{validate_call_id(call_id)};")
    if external_id:
        tokens.append(f"E.{token_value('external_id', external_id)};")
    if diversion:
        tokens.append(f"O.{token_value('diversion', diversion)};")
    return "".join(tokens)


def token_value(key: str, value: str) -> str:
    """Return an E. or O. token value, or raise ConfigError describing why it cannot be one."""
    problem = ""
    if ";" in value:
        problem = "holds ';'"
    elif "\\" in value:
        problem = "holds a backslash"
    elif not value.isprintable():
        problem = "holds control characters"
    elif len(value) > MAX_TOKEN_VALUE:
        problem = f"longer than {MAX_TOKEN_VALUE}"
    if problem:
        raise ConfigError(f"{key} cannot go into X-EI ({len(value)} characters, {problem}): refused, not trimmed")
    return value


def context_headers(keys: str, custom: Mapping[str, str]) -> Tuple[List[Header], List[str]]:
    """Pick the custom variables named by ``keys`` (a comma list, or ``*``) as ``X-<key>`` headers.

    Returns the headers and, for each key left out, why (described, never quoted).

    >>> context_headers('*', {'customer_name': 'Jane "JD" Doe', 'CALLERID(name)': 'x', 'note': 'a\\nb'})
    ([Header(name='X-customer_name', value='Jane "JD" Doe')], ['CALLERID(name): not a header name (X-[A-Za-z0-9_-]+)', 'note: value cannot be carried in SIP (3 characters, with control characters)'])
    >>> context_headers('lead, missing', {'lead': 'L-7'})
    ([Header(name='X-lead', value='L-7')], ['missing: not a custom variable of this call'])
    """
    wanted: Sequence[str] = list(custom) if keys.strip() == "*" else [k.strip() for k in keys.split(",") if k.strip()]
    headers: List[Header] = []
    skipped: List[str] = []
    for key in dict.fromkeys(wanted):
        label = key if _HEADER_KEY.match(key) or len(key) <= 64 and key.isprintable() else describe_text(key)
        if key not in custom:
            skipped.append(f"{label}: not a custom variable of this call")
        elif not _HEADER_KEY.match(key):
            skipped.append(f"{label}: not a header name (X-[A-Za-z0-9_-]+)")
        elif set(custom[key]) & _UNSAFE_IN_HEADER or len(custom[key].encode("utf-8")) > MAX_HEADER_VALUE_BYTES:
            shape = describe_text(custom[key]) + (", with a backslash" if "\\" in custom[key] else "")
            skipped.append(f"{key}: value cannot be carried in SIP ({shape})")
        elif len(headers) >= MAX_HEADERS:
            skipped.append(f"{key}: more than {MAX_HEADERS} headers")
        else:
            headers.append(Header(f"X-{key}", custom[key]))
    return headers, skipped


def uri_headers(xei: str, headers: Sequence[Header]) -> str:
    """Return the ``?name=value&…`` part of a Refer-To URI, every value percent-encoded.

    Encoding everything but unreserved characters also keeps ``,`` and ``"`` out
    of the dialplan argument that carries the URI.

    >>> uri_headers('S.abc-1234;E.77;', [Header('X-note', 'a&b?c%d "q", ü')])
    '?X-EI=S.abc-1234%3BE.77%3B&X-note=a%26b%3Fc%25d%20%22q%22%2C%20%C3%BC'
    >>> uri_headers('', [])
    ''
    """
    pairs = ([("X-EI", xei)] if xei else []) + [(h.name, h.value) for h in headers]
    if not pairs:
        return ""
    return "?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in pairs)


def dial_variables(xei: str, headers: Sequence[Header]) -> List[Tuple[str, str]]:
    """The inheritable channel variables the sample's pre-dial handler turns into headers.

    >>> dial_variables('S.abc-1234;', [Header('X-lead', 'L-7')])
    [('_SYNTHFLOW_XEI', 'S.abc-1234;'), ('_SYNTHFLOW_HEADERS', '1'), ('_SYNTHFLOW_HEADER_NAME_1', 'X-lead'), ('_SYNTHFLOW_HEADER_VALUE_1', 'L-7')]
    """
    values = [("_SYNTHFLOW_XEI", xei)]
    if headers:
        values.append(("_SYNTHFLOW_HEADERS", str(len(headers))))
    for index, header in enumerate(headers, 1):
        values += [(f"_SYNTHFLOW_HEADER_NAME_{index}", header.name), (f"_SYNTHFLOW_HEADER_VALUE_{index}", header.value)]
    return values
