"""Logs go to stderr and/or syslog, never stdout (stdout is the AGI protocol)."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Iterable, Optional

from ._call import CallInfo, Outcome
from ._text import redact

LOGGER = logging.getLogger("synthflow_agi")
SYSLOG_SOCKET = "/dev/log"


class RedactingFilter(logging.Filter):
    """Replace secrets in every record, whatever code formatted it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(secret for secret in secrets if secret)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self._secrets):
            record.msg, record.args = redact(message, self._secrets), ()
        if record.exc_info and not record.exc_text:
            # Tracebacks print locals' reprs nowhere, but exception messages
            # can carry text; format now so the redaction covers it too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        return True


def configure(target: str = "stderr", secrets: Iterable[str] = (), stream=None) -> None:
    """Send this package's log to ``target`` (stderr, syslog or both), redacting ``secrets``."""
    LOGGER.handlers.clear()
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    redacting = RedactingFilter(secrets)
    handlers = []
    if target in ("syslog", "both"):
        syslog = _syslog_handler()
        if syslog is not None:
            handlers.append(syslog)
    if target in ("stderr", "both") or not handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter(f"synthflow-agi[{os.getpid()}] %(levelname)s %(message)s"))
        handlers.append(handler)
    for handler in handlers:
        handler.addFilter(redacting)
        LOGGER.addHandler(handler)


def _syslog_handler() -> Optional[logging.Handler]:
    # Imported here: logging.handlers pulls in pickle and queue, a cost every
    # classic AGI process would pay for a syslog it may not use.
    import logging.handlers

    if not os.path.exists(SYSLOG_SOCKET):
        return None
    try:
        handler = logging.handlers.SysLogHandler(address=SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_LOCAL0)
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(f"synthflow-agi[{os.getpid()}]: %(message)s"))
    return handler


def call_line(call: CallInfo, outcome: Outcome) -> str:
    """Format the one structured (logfmt) line logged per call.

    >>> call_line(CallInfo('1700.1', 'PJSIP', '+1555', ()), Outcome(call_id='abc', api_ms=12.34, total_ms=20))
    'uniqueid=1700.1 linkedid="" status=API_ERROR mode="" call_id=abc api_ms=12.3 total_ms=20.0 error=""'
    """
    fields = (
        ("uniqueid", call.uniqueid), ("linkedid", outcome.linkedid), ("status", outcome.status.value),
        ("mode", outcome.mode), ("call_id", outcome.call_id),
        ("api_ms", "" if outcome.api_ms is None else f"{outcome.api_ms:.1f}"),
        ("total_ms", f"{outcome.total_ms:.1f}"), ("error", outcome.error),
    )
    return " ".join(f"{key}={logfmt(value)}" for key, value in fields)


def call_line_parts(call: CallInfo, outcome: Outcome) -> "tuple[str, str]":
    """The call line's fields before and after ``status``, for a process that learns the status later."""
    line = call_line(call, outcome)
    head, _, rest = line.partition(f" status={outcome.status.value} ")
    tail = rest.partition(" total_ms=")[0]
    return head, tail


def logfmt(value: str) -> str:
    """Format one logfmt value: bare when plain, JSON-quoted otherwise."""
    if value and all(c.isalnum() or c in "._:+-/" for c in value):
        return value
    return json.dumps(value, ensure_ascii=False)
