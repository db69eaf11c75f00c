"""The status values the dialplan tests, and which error yields which."""

from synthflow_agi import _errors
from synthflow_agi._errors import NotAnsweredError
from synthflow_agi._status import Status


def test_status_values_are_exactly_the_documented_strings():
    """The enum holds the ten documented values, each equal to its own name."""
    assert [s.value for s in Status] == [
        "SUCCESS", "NOT_ANSWERED", "INVALID_NUMBER", "CONFIG_ERROR", "API_AUTH_FAILED",
        "API_ERROR", "API_TIMEOUT", "TRANSFER_FAILED", "HANGUP", "INTERNAL_ERROR",
    ]
    assert all(s.name == s.value == str(s) for s in Status)


def test_each_error_class_names_its_status():
    """Every failure class maps to the status the README promises."""
    expected = {
        _errors.ConfigError: Status.CONFIG_ERROR,
        _errors.InvalidNumberError: Status.INVALID_NUMBER,
        _errors.ApiError: Status.API_ERROR,
        _errors.ApiAuthError: Status.API_AUTH_FAILED,
        _errors.ApiTimeoutError: Status.API_TIMEOUT,
        _errors.HandoffError: Status.TRANSFER_FAILED,
        NotAnsweredError: Status.NOT_ANSWERED,
        _errors.InternalError: Status.INTERNAL_ERROR,
        _errors.AgiError: Status.INTERNAL_ERROR,
        _errors.UnmappedError: Status.INTERNAL_ERROR,
    }
    for error_class, status in expected.items():
        assert error_class("x").status is status


def test_hangup_is_not_an_error():
    """A hangup cannot be swallowed by an except clause meant for failures."""
    assert not issubclass(_errors.ChannelHungUp, _errors.SynthflowAgiError)
