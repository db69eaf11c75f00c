"""Text meant for humans (the dialplan, the console, the log): secrets out, control characters out."""

from __future__ import annotations

from typing import Sequence


def redact(text: str, secrets: Sequence[str]) -> str:
    """Remove every form of a secret from text meant for humans, longest form first.

    >>> redact('token abc123 leaked', ('abc123',))
    'token *** leaked'
    >>> redact('key= abc123 ;', (' abc123 ', 'abc123'))
    'key=***;'
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def printable(text: str) -> str:
    r"""Make text safe for one dialplan variable or log line: control characters become spaces.

    >>> printable('a\rb\nc\x00d')
    'a b c d'
    """
    return "".join(ch if ch.isprintable() else " " for ch in text)


def describe_text(text: str) -> str:
    r"""Describe untrusted text by its shape, never by its content.

    >>> describe_text('synthflow2')
    '10 characters'
    >>> describe_text('a\nb')
    '3 characters, with control characters'
    >>> describe_text('')
    'empty'
    """
    if not text:
        return "empty"
    shape = f"{len(text)} characters"
    if not text.isprintable():
        shape += ", with control characters"
    return shape
