"""Normalising numbers to E.164 with phonenumbers."""

import pytest

from synthflow_agi._errors import ConfigError, InvalidNumberError
from synthflow_agi._numbers import to_e164


@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("+1 (202) 555-0143", "US", "+12025550143"),
        ("2025550143", "US", "+12025550143"),
        ("12025550143", "US", "+12025550143"),
        ("011 44 20 7946 0958", "US", "+442079460958"),
        ("0044 20 7946 0958", "DE", "+442079460958"),
        ("020 7946 0958", "gb", "+442079460958"),
        ("tel:+15551234567", "US", "+15551234567"),
    ],
)
def test_numbers_become_e164(raw, region, expected):
    """National, international and dialled-prefix forms all normalise."""
    assert to_e164(raw, region, "caller") == expected


@pytest.mark.parametrize("raw", ["", "anonymous", "Unknown", "abc", "123", "+1234567890123456789", "sip:bob@host"])
def test_unusable_numbers_are_invalid(raw):
    """Missing, withheld, too short, too long or non-numeric input is INVALID_NUMBER."""
    with pytest.raises(InvalidNumberError):
        to_e164(raw, "US", "caller")


def test_unknown_region_is_a_configuration_error():
    """A default_region phonenumbers does not know is the operator's mistake, not the caller's."""
    with pytest.raises(ConfigError, match="default_region"):
        to_e164("2025550143", "XX", "caller")
