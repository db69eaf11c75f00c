"""The Channel, spoken over AGI with pyst2 as the codec (an edge of the core).

pyst2 0.5.1 sends the commands and reads the environment block. Three of its
habits do not fit a library and are replaced here (docs/asterisk-notes.md#pyst2):
- ``AGI()`` installs a SIGHUP handler, which only a main thread may do, so
  the entry point owns signals instead;
- it echoes every line to stderr, so its stderr is discarded;
- ``_quote`` escapes neither ``"`` nor ``\\``, and ``get_result`` crashes on
  FastAGI's bare ``HANGUP`` line and takes a variable whose value is
  ``hangup`` for a hangup, so both come from ``_wire``.
"""

from __future__ import annotations

import io
from typing import IO, Dict, Sequence

from asterisk import agi as pyst2

from . import _wire
from ._errors import AgiError, AgiUsageError, ChannelHungUp


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


class _Pyst2Codec(pyst2.AGI):
    """pyst2's AGI without its signal handler, its stderr echo and its reply parser."""

    def __init__(self, stdin: IO[str], stdout: IO[str]) -> None:
        # pyst2's __init__ is skipped on purpose: it would call signal.signal().
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = _Discard()
        self._got_sighup = False
        self.hangup_notice_seen = False
        self.env: Dict[str, str] = {}
        self._get_agi_env()

    def test_hangup(self) -> None:
        # GET/SET VARIABLE and VERBOSE still work on a dead channel, and the
        # final status must get through, so hangup is decided by AgiChannel.
        return None

    def _quote(self, string: object) -> str:
        return _wire.quote(string)

    def get_result(self, stdin: object = None) -> dict:
        line = self._read_line()
        while _wire.is_hangup_notice(line):
            self.hangup_notice_seen = True
            line = self._read_line()
        try:
            reply = _wire.parse_reply(line)
        except AgiUsageError:
            self._skip_usage_block(line)
            raise
        return {"result": (reply.result, reply.data)}

    def _read_line(self) -> str:
        line = self.stdin.readline()
        return line.decode("utf-8", "replace") if isinstance(line, bytes) else line

    def _skip_usage_block(self, first: str) -> None:
        line = first
        while first.startswith("520-") and line and not _wire.ends_usage_block(line):
            line = self._read_line()


class AgiChannel:
    """A Channel over an AGI text stream pair (classic pipes or a FastAGI socket)."""

    def __init__(self, stdin: IO[str], stdout: IO[str]) -> None:
        self._codec = _Pyst2Codec(stdin, stdout)
        self.env: Dict[str, str] = dict(self._codec.env)
        self._hangup_reason = ""

    def mark_hung_up(self, reason: str) -> None:
        """Record a hangup learnt outside the reply stream (SIGHUP)."""
        self._hangup_reason = self._hangup_reason or reason

    @property
    def hung_up(self) -> bool:
        """Whether Asterisk has told us the caller is gone."""
        return bool(self._hangup_reason) or self._codec.hangup_notice_seen

    def get_variable(self, name: str) -> str:
        """Return the variable's value, '' when unset."""
        return self._call(self._codec.get_variable, name)

    def get_variables(self, names: Sequence[str]) -> Dict[str, str]:
        """Read several variables in one round trip; '' for unset ones."""
        if not names:
            return {}
        text = self._call(self._codec.get_full_variable, _wire.batch_expression(names))
        values = _wire.split_batch(text, len(names))
        if values is None:
            # Cut short or not UTF-8: the batch cannot be trusted, one read each can.
            return {name: self.get_variable(name) for name in names}
        return dict(zip(names, values))

    def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable (or a writable function such as PJSIP_HEADER)."""
        self._call(self._codec.set_variable, name, value)

    def exec(self, application: str, arguments: str) -> int:
        """Run a dialplan application; refuse to start one on a channel already hung up."""
        if self.hung_up:
            raise ChannelHungUp(self._hangup_reason or "caller hung up (HANGUP notice)", before_exec=True)
        return int(self._call(self._codec.appexec, application, arguments))

    def verbose(self, message: str, level: int = 1) -> None:
        """Write a line to the Asterisk console."""
        self._call(self._codec.verbose, message, level)

    def _call(self, method, *args):
        try:
            return method(*args)
        except pyst2.AGIHangup as exc:
            raise ChannelHungUp(f"caller hung up ({type(exc).__name__})") from exc
        except pyst2.AGIAppError as exc:
            raise AgiError(str(exc)) from exc
        except OSError as exc:
            raise ChannelHungUp(f"AGI connection lost ({exc.strerror or type(exc).__name__})") from exc
