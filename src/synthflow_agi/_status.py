"""The one outcome the dialplan branches on."""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """Values of ``SYNTHFLOW_STATUS``; each value is exactly what the dialplan tests."""

    SUCCESS = "SUCCESS"
    NOT_ANSWERED = "NOT_ANSWERED"
    INVALID_NUMBER = "INVALID_NUMBER"
    CONFIG_ERROR = "CONFIG_ERROR"
    API_AUTH_FAILED = "API_AUTH_FAILED"
    API_ERROR = "API_ERROR"
    API_TIMEOUT = "API_TIMEOUT"
    TRANSFER_FAILED = "TRANSFER_FAILED"
    HANGUP = "HANGUP"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    def __str__(self) -> str:
        return self.value
