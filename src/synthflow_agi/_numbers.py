"""Phone numbers to E.164, through phonenumbers (an edge of the core)."""

from __future__ import annotations

import phonenumbers

from ._errors import ConfigError, InvalidNumberError
from ._text import describe_text

# What Asterisk and carriers put in CALLERID(num) when there is no number.
_NO_NUMBER = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})


def to_e164(raw: str, region: str, role: str) -> str:
    """Return ``raw`` in E.164, reading national forms in ``region``; ``role`` names it in errors.

    >>> to_e164('(202) 555-0143', 'US', 'caller')
    '+12025550143'
    >>> to_e164('030 1234567', 'DE', 'caller')
    '+49301234567'
    >>> to_e164('anonymous', 'US', 'caller')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.InvalidNumberError: caller number is missing (anonymous or empty)
    >>> to_e164('"Eve" <+1555>', 'US', 'caller')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.InvalidNumberError: caller number has an impossible length (13 characters)

    The number came from the channel, so errors describe its shape, not its text.
    """
    text = raw.strip()
    if text.lower().startswith("tel:"):
        text = text[len("tel:"):]
    if text.lower() in _NO_NUMBER:
        raise InvalidNumberError(f"{role} number is missing (anonymous or empty)")
    region_code = region.strip().upper()
    if region_code not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"default_region ({describe_text(region)}) is not a region phonenumbers knows")
    try:
        parsed = phonenumbers.parse(text, region_code)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumberError(f"{role} number is not a phone number ({describe_text(raw)})") from exc
    # Possible, not valid: a valid-number check rejects new ranges the
    # metadata does not know yet, and the carrier is the final judge anyway.
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumberError(f"{role} number has an impossible length ({describe_text(raw)})")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
