"""The Channel, spoken over AGI with pyst2 as the codec (an edge of the core).

pyst2 0.5.1 formats and sends every command. Its habits that do not fit a
library are replaced here (docs/asterisk-notes.md#pyst2):
- ``AGI()`` installs a SIGHUP handler, which only a main thread may do, so
  the entry point owns signals instead;
- it echoes every line to stderr, so its stderr is discarded;
- ``_quote`` escapes neither ``"`` nor ``\\``;
- it strips the spaces and a trailing CR of environment values (arguments
  must pass exactly), reads with an unbounded ``readline``, takes a value
  holding a line break for two replies, crashes on FastAGI's bare ``HANGUP``
  line and takes a variable whose value is ``hangup`` for a hangup.
So the environment and the replies are read by ``AgiReader`` with ``_wire``'s
bounded parsers, and every value is read by its length.
"""

from __future__ import annotations

import io
import os
import secrets
import select
from typing import IO, Callable, Dict, Optional, Sequence, Tuple

from asterisk import agi as pyst2

from . import _wire
from ._errors import AgiError, ChannelHungUp
from ._wire import AgiProtocolError

# How far to look for the marker that brings the stream back in step after a
# reply that could not be read; beyond it, the link is given up.
RESYNC_BYTES = 1024 * 1024
CHUNK_BYTES = 4096
# res_agi writes a reply in one go: once it has begun, the rest follows at
# once. A reply that stops short (a value said to be longer than it is) would
# otherwise wait for bytes that never come.
REPLY_REST_SECONDS = 2.0


class EmptyConnection(ChannelHungUp):
    """The peer closed before sending a single byte: a health check, not a call."""


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


class AgiReader:
    """The bytes Asterisk sends, read in bounded pieces and kept in one small buffer.

    ``receive(n)`` returns up to n bytes (b'' at the end); ``wait(seconds)``
    tells whether ``receive`` would return within that time.
    """

    def __init__(self, receive: Callable[[int], bytes], wait: Callable[[float], bool]) -> None:
        self._receive = receive
        self._wait = wait
        self._buffer = bytearray()
        self.received_any = False
        self.closed = False
        self.hangup_notices = 0

    def _fill(self) -> bool:
        data = self._receive(CHUNK_BYTES)
        if not data:
            self.closed = True
            return False
        self.received_any = True
        self._buffer += data
        return True

    def read_line(self, limit: int = _wire.MAX_LINE_BYTES) -> bytes:
        """One line with its LF; b'' when the stream ends first. Longer than ``limit``: refused."""
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if 0 <= end < limit:
                line = bytes(self._buffer[:end + 1])
                del self._buffer[:end + 1]
                return line
            if end >= limit or len(self._buffer) >= limit:
                raise _wire.AgiEnvironmentError(f"line longer than {limit} bytes")
            start = len(self._buffer)
            if not self._fill():
                return b""

    def read_environment(self) -> Dict[str, str]:
        """The environment block, bounded in line length, line count and size."""

        def lines():
            while True:
                line = self.read_line()
                if not line:
                    if not self.received_any:
                        raise EmptyConnection("connection closed before the AGI environment")
                    raise _wire.AgiEnvironmentError("connection closed inside the environment block")
                yield line

        return _wire.parse_env_block(lines())

    def read_reply(self, values: int = 0) -> _wire.ReplyDecoder:
        """Read one whole reply (``values``: a batch of that many length-prefixed values)."""
        decoder = _wire.ReplyDecoder(values)
        while True:
            if self._buffer:
                used = decoder.feed(self._buffer)
                del self._buffer[:used]
            if decoder.done:
                break
            if decoder.started and not self._wait(REPLY_REST_SECONDS):
                decoder.cut_short(f"AGI reply stopped short for {REPLY_REST_SECONDS:g}s")
                break
            if not self._fill():
                raise ChannelHungUp("AGI connection closed")
        self.hangup_notices += decoder.hangup_notices
        return decoder

    def skip_to_line(self, wanted: bytes, budget: int) -> bool:
        """Discard lines until one equals ``wanted``; False if ``budget`` bytes pass first."""
        line = bytearray()
        while budget > 0:
            if not self._buffer and not self._fill():
                return False
            end = self._buffer.find(b"\n")
            stop = len(self._buffer) if end < 0 else end + 1
            if len(line) <= len(wanted):
                line += self._buffer[:stop]
            budget -= stop
            del self._buffer[:stop]
            if end >= 0:
                if bytes(line) == wanted:
                    return True
                line.clear()
        return False

    @property
    def buffered(self) -> int:
        """Bytes already received and not yet consumed."""
        return len(self._buffer)

    def hangup_pending(self) -> bool:
        """Whether a ``HANGUP`` line (or the end of the stream) waits, looked at without blocking.

        Only what has already arrived is read, into the buffer, so a reply
        that follows is kept for its command.
        """
        while (not self.closed and len(self._buffer) < len(_wire.HANGUP_NOTICE) + 1
               and self._wait(0) and self._fill()):
            pass
        while self._buffer.startswith(b"HANGUP\n"):
            del self._buffer[:len(_wire.HANGUP_NOTICE) + 1]
            self.hangup_notices += 1
        return bool(self.hangup_notices) or self.closed


def wait_readable(descriptor, seconds: float) -> bool:
    """Whether the descriptor (or socket) has data or its end within ``seconds``.

    poll, not select: select cannot watch a descriptor above 1023.
    """
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    return bool(poller.poll(max(0, int(seconds * 1000))))


def descriptor_reader(descriptor: int) -> AgiReader:
    """An AgiReader straight on a file descriptor, with no hidden buffer in between."""
    return AgiReader(lambda size: os.read(descriptor, size), lambda seconds: wait_readable(descriptor, seconds))


class _Pyst2Codec(pyst2.AGI):
    """pyst2's AGI for sending commands; replies come from an ``AgiReader``."""

    def __init__(self, reader: AgiReader, stdout: IO[str]) -> None:
        # pyst2's __init__ is skipped on purpose: it would call signal.signal()
        # and read the environment with its own (stripping, unbounded) parser.
        self.stdin = None
        self.stdout = stdout
        self.stderr = _Discard()
        self._got_sighup = False
        self.env: Dict[str, str] = {}
        self.reader = reader
        self._values = 0

    def test_hangup(self) -> None:
        # GET/SET VARIABLE and VERBOSE still work on a dead channel, and the
        # final status must get through, so hangup is decided by AgiChannel.
        return None

    def _quote(self, string: object) -> str:
        return _wire.quote(string)

    def get_result(self, stdin: object = None) -> dict:
        values, self._values = self._values, 0
        decoder = self.reader.read_reply(values)
        reply = decoder.result()
        return {"result": (reply.result, decoder if values else reply.data)}

    def exec_reply(self, application: str) -> str:
        """The second half of ``appexec``: the reply to an EXEC sent earlier."""
        res = self.get_result()["result"][0]
        if res == "-2":
            raise pyst2.AGIAppError(f"Unable to find application: {application}")
        return res

    def read_values(self, names: Sequence[str]) -> Dict[str, str]:
        """Read the names with one ``GET FULL VARIABLE``, each value by its length."""
        self._values = len(names)
        decoder = self.get_full_variable(_wire.batch_expression(names))
        return _wire.decode_values(names, decoder.values, decoder.lengths)


class AgiChannel:
    """A Channel over an AGI byte stream (classic pipes or a FastAGI socket).

    ``source`` is a binary stream with a descriptor (classic stdin) or an ``AgiReader``.
    """

    def __init__(self, source, stdout: IO[str]) -> None:
        reader = source if isinstance(source, AgiReader) else descriptor_reader(source.fileno())
        self.env: Dict[str, str] = reader.read_environment()
        self._reader = reader
        self._codec = _Pyst2Codec(reader, stdout)
        self._hangup_reason = ""
        self._broken = ""
        self._sent_exec: Optional[Tuple[str, str]] = None

    def mark_hung_up(self, reason: str) -> None:
        """Record a hangup learnt outside the reply stream (SIGHUP)."""
        self._hangup_reason = self._hangup_reason or reason

    @property
    def hung_up(self) -> bool:
        """Whether Asterisk has told us the caller is gone (SIGHUP, or a HANGUP line already sent)."""
        if self._hangup_reason or self._reader.hangup_notices:
            return True
        try:
            return self._reader.hangup_pending()
        except OSError:
            return True

    def get_variable(self, name: str) -> str:
        """Return the variable's value, '' when unset."""
        return self.get_variables([name])[name]

    def get_variables(self, names: Sequence[str]) -> Dict[str, str]:
        """Read several variables in one round trip; '' for unset ones."""
        if not names:
            return {}
        return self._call(self._codec.read_values, list(names))

    def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable (or a writable function such as PJSIP_HEADER)."""
        self._call(self._codec.set_variable, name, value)

    def exec(self, application: str, arguments: str) -> int:
        """Run a dialplan application; refuse to start one on a channel already hung up.

        After ``send_exec`` of the same application and arguments, only its reply is read:
        the application has already started, whatever happened to the caller since.
        """
        if self._sent_exec == (application, arguments):
            self._sent_exec = None
            return int(self._call(self._codec.exec_reply, application))
        if self.hung_up:
            raise ChannelHungUp(self._hangup_reason or "caller hung up (HANGUP notice)", before_exec=True)
        return int(self._call(self._codec.appexec, application, arguments))

    def send_exec(self, application: str, arguments: str) -> None:
        """Send an EXEC without waiting for its reply; the next ``exec`` of it reads the reply."""
        if self.hung_up:
            raise ChannelHungUp(self._hangup_reason or "caller hung up (HANGUP notice)", before_exec=True)
        self._call(self._codec.send_command, "EXEC", application, self._codec._quote(arguments))
        self._sent_exec = (application, arguments)

    @property
    def reply_waiting(self) -> bool:
        """Whether bytes of a reply have already been read into the buffer (no need to wait for the socket)."""
        return bool(self._reader.buffered)

    def verbose(self, message: str, level: int = 1) -> None:
        """Write a line to the Asterisk console."""
        self._call(self._codec.verbose, message, level)

    def _call(self, method, *args):
        if self._broken:
            raise AgiProtocolError(f"AGI stream out of step since: {self._broken}")
        try:
            return method(*args)
        except AgiProtocolError as exc:
            self._resync(exc)
            raise
        except pyst2.AGIHangup as exc:
            raise ChannelHungUp(f"caller hung up ({type(exc).__name__})") from exc
        except pyst2.AGIAppError as exc:
            raise AgiError(str(exc)[:120]) from exc
        except OSError as exc:
            raise ChannelHungUp(f"AGI connection lost ({exc.strerror or type(exc).__name__})") from exc

    def _resync(self, cause: AgiProtocolError) -> None:
        """Bring the stream back in step after an unreadable reply, or give the link up.

        The rest of that reply is unknown, so ask for a marker nobody else can
        know and drop everything up to its echo.
        """
        marker = "synthflow-resync-" + secrets.token_hex(8)
        try:
            self._codec.send_command("GET FULL VARIABLE", _wire.quote(marker))
            if self._reader.skip_to_line(f"200 result=1 ({marker})\n".encode(), RESYNC_BYTES):
                return
        except OSError:
            pass
        self._broken = cause.reason
