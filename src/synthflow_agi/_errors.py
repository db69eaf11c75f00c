"""The exception tree.

Every failure the hand-off can meet is one of these, and each class names
the ``Status`` the dialplan sees::

    SynthflowAgiError
    ├── NotAnsweredError       NOT_ANSWERED     the channel is not Up
    ├── ConfigError            CONFIG_ERROR     settings missing or malformed
    ├── InvalidNumberError     INVALID_NUMBER   a number phonenumbers cannot use
    ├── ApiError               API_ERROR        prepare_inbound failed
    │   ├── ApiAuthError       API_AUTH_FAILED  401 or 403
    │   ├── ApiUnavailableError                 5xx or unreachable: Synthflow's side
    │   └── ApiTimeoutError    API_TIMEOUT      the deadline passed (Synthflow's side too)
    ├── HandoffError           TRANSFER_FAILED  Transfer/Dial did not reach the agent
    └── InternalError          INTERNAL_ERROR   this program or the AGI link is at fault
        ├── AgiError                            the AGI peer refused a command or was unreadable
        │   ├── AgiInvalidCommandError   510
        │   └── AgiUsageError            520
        └── UnmappedError                       a third-party exception no mapping table knows

``API_ERROR`` is kept for what the API did; ``INTERNAL_ERROR`` sends the
operator to this program and its AGI link, not to Synthflow.

A hangup is not an error: it is ``ChannelHungUp``, which sits outside this
tree so that no ``except SynthflowAgiError`` can swallow it by accident.

Third-party exceptions (requests, urllib3, phonenumbers, pyst2) never cross
the module that calls the library; they are mapped there, ``from`` the
original.
"""

from __future__ import annotations

from ._status import Status


class SynthflowAgiError(Exception):
    """Base of every failure that ends in a non-SUCCESS status."""

    status = Status.INTERNAL_ERROR

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotAnsweredError(SynthflowAgiError):
    """The channel is not up, so there is nobody to hand over."""

    status = Status.NOT_ANSWERED


class ConfigError(SynthflowAgiError):
    """The settings are missing, unreadable or malformed."""

    status = Status.CONFIG_ERROR


class InvalidNumberError(SynthflowAgiError):
    """A number cannot be turned into E.164."""

    status = Status.INVALID_NUMBER


class ApiError(SynthflowAgiError):
    """prepare_inbound did not give a usable call id.

    ``unavailable`` says the failure lies on Synthflow's side (5xx, timeout,
    unreachable), as opposed to a request it refused or an answer it got wrong.
    """

    status = Status.API_ERROR
    unavailable = False


class ApiAuthError(ApiError):
    """Synthflow refused the token (401 or 403)."""

    status = Status.API_AUTH_FAILED


class ApiUnavailableError(ApiError):
    """Synthflow answered 5xx or could not be reached: its side is unhealthy, not the request."""

    unavailable = True


class ApiTimeoutError(ApiError):
    """The API step ran out of its deadline."""

    status = Status.API_TIMEOUT
    unavailable = True


class HandoffError(SynthflowAgiError):
    """Transfer or Dial did not hand the call to the agent.

    ``refused`` is true when the far end declined the REFER, which is what
    lets auto mode fall back to Dial.
    """

    status = Status.TRANSFER_FAILED

    def __init__(self, reason: str, refused: bool = False) -> None:
        super().__init__(reason)
        self.refused = refused


class InternalError(SynthflowAgiError):
    """A failure of this program or of its AGI link, not of Synthflow or the settings."""

    status = Status.INTERNAL_ERROR


class UnmappedError(InternalError):
    """A third-party exception that no mapping table names: a bug to fix at the edge."""


class AgiError(InternalError):
    """Asterisk answered an AGI command with an error code, or with something unreadable."""

    code = 0

    def __init__(self, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.code = code or type(self).code


class AgiInvalidCommandError(AgiError):
    """510: Asterisk does not know the command."""

    code = 510


class AgiUsageError(AgiError):
    """520: the command's arguments were wrong."""

    code = 520


class ChannelHungUp(Exception):
    """The caller is gone: SIGHUP, ``HANGUP``, ``result=-1`` or 511.

    Deliberately not a ``SynthflowAgiError``: a hangup is an outcome, not a
    failure of this program. ``before_exec`` marks an application that was
    never started because the caller had already left.
    """

    def __init__(self, reason: str, before_exec: bool = False) -> None:
        super().__init__(reason)
        self.before_exec = before_exec
