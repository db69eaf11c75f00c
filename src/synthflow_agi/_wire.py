"""The AGI wire format, as pure functions.

Everything here works on literal lines as res_agi writes and reads them, so
the doctests below are the protocol's own examples. Nothing here does I/O:
``ReplyDecoder`` is fed bytes and says how many belong to the reply.

Bounds (res_agi itself reads a command into an 8 KiB buffer):
- an environment or reply line is at most ``MAX_LINE_BYTES``;
- an environment block is at most ``MAX_ENV_LINES`` lines and ``MAX_ENV_BYTES``;
- the values of one reply hold at most ``MAX_VALUE_BYTES`` together; a longer
  value is skipped by its length, so the stream stays in step, and refused.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ._errors import AgiError, AgiInvalidCommandError, AgiUsageError, ChannelHungUp

MAX_LINE_BYTES = 8192
MAX_ENV_LINES = 256
MAX_ENV_BYTES = 64 * 1024
MAX_VALUE_BYTES = 64 * 1024
MAX_USAGE_LINES = 64
# Ten digits cover any length this program would keep; more is not a length.
_MAX_LENGTH_DIGITS = 10

HANGUP_NOTICE = "HANGUP"
VALUE_HEAD = b"200 result=1 ("
_VALUE_TAIL = b")\n"

_REPLY = re.compile(r"(?P<code>\d{3})(?P<sep>[ -])?(?P<text>.*)\Z", re.DOTALL)
_RESULT = re.compile(r"result=(?P<result>-?\d+)(?:\s+\((?P<data>.*)\))?")
_ENV_LINE = re.compile(rb"(agi_[A-Za-z0-9_]{1,64}):[ ]?(.*)\n\Z", re.DOTALL)


class AgiProtocolError(AgiError):
    """What Asterisk sent cannot be read as AGI: a reply that does not add up, a line too long."""


class AgiEnvironmentError(AgiProtocolError):
    """The environment block is not one Asterisk would send, or exceeds the bounds."""


class AgiValueError(AgiError):
    """A channel value cannot be passed on exactly (not UTF-8, or longer than this program reads)."""


class Reply(NamedTuple):
    """A parsed ``200`` reply: the result number and the text in parentheses."""

    code: int
    result: str
    data: str


def quote(value: object) -> str:
    r"""Quote one command argument so res_agi reads it back unchanged.

    res_agi's ``parse_args`` drops an unescaped ``"`` (it toggles quoting) and
    turns ``\x`` into ``x``; escaping both keeps every other byte as sent.
    A line break would end the command, so it becomes a space.

    >>> quote('S.abc;')
    '"S.abc;"'
    >>> quote('say "hi"')
    '"say \\"hi\\""'
    >>> quote('C:\\dir')
    '"C:\\\\dir"'
    >>> quote('two\r\nlines')
    '"two  lines"'
    >>> quote('')
    '""'
    """
    text = str(value).replace("\r", " ").replace("\n", " ")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def is_hangup_notice(line: str) -> bool:
    """Tell whether a line is FastAGI's bare hangup notice, which is no reply.

    >>> is_hangup_notice('HANGUP\\n')
    True
    >>> is_hangup_notice('200 result=1 (HANGUP)')
    False
    """
    return line.strip() == HANGUP_NOTICE


def parse_env_line(line: bytes) -> Tuple[str, str]:
    r"""Split one environment line; the value is every byte after ``": "`` but the final LF.

    res_agi writes ``agi_<name>: <value>\n`` and nothing else, so spaces and a
    trailing CR belong to the value (an argument such as ``" padded \r"``).
    Bytes that are not UTF-8 become U+FFFD: an argument cannot be read again.

    >>> parse_env_line(b'agi_callerid: +15551230000\n')
    ('agi_callerid', '+15551230000')
    >>> parse_env_line(b'agi_arg_1:  padded \r\n')
    ('agi_arg_1', ' padded \r')
    >>> parse_env_line(b'agi_arg_2: a: b\n')
    ('agi_arg_2', 'a: b')
    >>> parse_env_line(b'agi_accountcode: \n')
    ('agi_accountcode', '')
    >>> parse_env_line(b'agi_arg_3: caf\xe9\n')
    ('agi_arg_3', 'caf\ufffd')
    >>> parse_env_line(b'GET / HTTP/1.1\r\n')
    Traceback (most recent call last):
    ...
    synthflow_agi._wire.AgiEnvironmentError: not an AGI environment line (16 bytes)
    """
    match = _ENV_LINE.match(line)
    if match is None:
        raise AgiEnvironmentError(f"not an AGI environment line ({len(line)} bytes)")
    return match.group(1).decode("ascii"), match.group(2).decode("utf-8", "replace")


def parse_env_block(lines: Iterable[bytes]) -> Dict[str, str]:
    r"""Read the environment block, up to and without its blank line, within its bounds.

    >>> parse_env_block([b'agi_network: yes\n', b'agi_arg_1:  x \n', b'\n'])
    {'agi_network': 'yes', 'agi_arg_1': ' x '}
    >>> parse_env_block([b'agi_type: PJSIP\n'] * 300)
    Traceback (most recent call last):
    ...
    synthflow_agi._wire.AgiEnvironmentError: environment block longer than 256 lines
    >>> parse_env_block([b'agi_type: PJSIP\n'])
    Traceback (most recent call last):
    ...
    synthflow_agi._wire.AgiEnvironmentError: environment block ended without its blank line
    """
    env: Dict[str, str] = {}
    count = size = 0
    for line in lines:
        if line == b"\n":
            return env
        count, size = count + 1, size + len(line)
        if count > MAX_ENV_LINES:
            raise AgiEnvironmentError(f"environment block longer than {MAX_ENV_LINES} lines")
        if size > MAX_ENV_BYTES:
            raise AgiEnvironmentError(f"environment block larger than {MAX_ENV_BYTES} bytes")
        key, value = parse_env_line(line)
        env[key] = value
    raise AgiEnvironmentError("environment block ended without its blank line")


def parse_reply(line: str) -> Reply:
    """Parse the first line of a reply, raising the error its code stands for.

    ``result=-1`` means the channel went away while the command ran, for the
    commands this program sends (EXEC, GET/SET VARIABLE, VERBOSE).

    >>> parse_reply('200 result=1 (+15551234567)\\n')
    Reply(code=200, result='1', data='+15551234567')
    >>> parse_reply('200 result=1 (a (nested) value)')
    Reply(code=200, result='1', data='a (nested) value')
    >>> parse_reply('200 result=0')
    Reply(code=200, result='0', data='')
    >>> parse_reply('200 result=-1')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ChannelHungUp: command ended by a hangup (result=-1)
    >>> parse_reply('511 Command Not Permitted on a dead channel or intercept routine')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ChannelHungUp: dead channel: 511 Command Not Permitted on a dead channel or intercept routine
    >>> parse_reply('510 Invalid or unknown command')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.AgiInvalidCommandError: 510 Invalid or unknown command
    >>> parse_reply('520-Invalid command syntax.  Proper usage follows:')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.AgiUsageError: 520 Invalid command syntax.  Proper usage follows:
    >>> parse_reply('hello')
    Traceback (most recent call last):
    ...
    synthflow_agi._wire.AgiProtocolError: unreadable AGI reply (5 characters)
    >>> parse_reply('')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ChannelHungUp: AGI connection closed
    """
    text = line.rstrip("\r\n")
    if not text:
        raise ChannelHungUp("AGI connection closed")
    if is_hangup_notice(text):
        raise ChannelHungUp("caller hung up (HANGUP notice)")
    match = _REPLY.match(text)
    if match is None:
        raise AgiProtocolError(f"unreadable AGI reply ({len(text)} characters)")
    code, rest = int(match["code"]), match["text"].strip()
    if code == 200:
        result = _RESULT.match(rest)
        if result is None:
            raise AgiProtocolError(f"unreadable AGI reply ({len(text)} characters)")
        if result["result"] == "-1":
            raise ChannelHungUp("command ended by a hangup (result=-1)")
        return Reply(code, result["result"], result["data"] or "")
    if code == 511:
        raise ChannelHungUp(f"dead channel: {text[:120]}")
    if code == 510:
        raise AgiInvalidCommandError(f"510 {rest[:120]}")
    if code == 520:
        raise AgiUsageError(f"520 {rest[:120]}")
    raise AgiError(f"unexpected AGI reply code {code}", code)


def batch_expression(names: Sequence[str]) -> str:
    """Build one ``GET FULL VARIABLE`` expression that reads every name, each value length-prefixed.

    res_agi sends a value raw, line breaks included, so only a length tells
    where it ends. ``LEN`` counts bytes (strlen), the same on Asterisk 16 and 22.

    >>> batch_expression(['CHANNEL(state)', 'SYNTHFLOW_MODE'])
    '${LEN(${CHANNEL(state)})}:${CHANNEL(state)}${LEN(${SYNTHFLOW_MODE})}:${SYNTHFLOW_MODE}'
    """
    return "".join("${LEN(${%s})}:${%s}" % (name, name) for name in names)


class ReplyDecoder:
    r"""Read one reply from the bytes res_agi sends, without doing any I/O.

    ``feed`` takes what has arrived and returns how many bytes belong to this
    reply; the rest (the next reply, a ``HANGUP`` line) is the caller's to keep.
    With ``values=N`` the reply is that of ``GET FULL VARIABLE`` of a
    ``batch_expression`` of N names: each value is read by its length, so a
    value holding LF or CRLF spans lines without ending the reply.

    >>> d = ReplyDecoder(values=2)
    >>> d.feed(b'HANGUP\n200 result=1 (2:Up5:a\r\nb')
    31
    >>> d.done
    False
    >>> d.feed(b'c)\n200 result=1\n')
    3
    >>> d.done, d.hangup_notices, d.values
    (True, 1, [b'Up', b'a\r\nbc'])
    >>> d = ReplyDecoder()
    >>> d.feed(b'520-Invalid command syntax.  Proper usage follows:\nUsage: ...\n520 End of proper usage.\n')
    87
    >>> d.result()
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.AgiUsageError: 520 Invalid command syntax.  Proper usage follows:
    >>> d = ReplyDecoder(values=1)
    >>> d.feed(b'200 result=1 (3:ab)\n')
    20
    >>> d.done, d.in_step
    (True, False)
    >>> d.result()
    Traceback (most recent call last):
    ...
    synthflow_agi._wire.AgiProtocolError: the value reply does not add up (a length is wrong)
    """

    def __init__(self, values: int = 0) -> None:
        self._expected = values
        self._state = self._feed_line
        self._line = bytearray()
        self._digits = bytearray()
        self._value = bytearray()
        self._need = 0
        self._keep = True
        self._budget = MAX_VALUE_BYTES
        self._usage_lines = 0
        self._reply: Optional[Reply] = None
        self._error: Optional[BaseException] = None
        self.values: List[Optional[bytes]] = []  # None: longer than the budget, skipped
        self.lengths: List[int] = []
        self.hangup_notices = 0
        self.in_step = True  # False once the end of the reply can no longer be known
        self.done = False

    @property
    def started(self) -> bool:
        """Whether part of the reply itself (not a HANGUP line) has been read."""
        return bool(self._line) or self._state != self._feed_line or bool(self._usage_lines)

    def feed(self, data: bytes) -> int:
        """Consume the bytes of ``data`` that belong to this reply; return their count."""
        used = 0
        while used < len(data) and not self.done:
            used += self._state(data, used)
        return used

    def cut_short(self, reason: str) -> None:
        """End a reply whose remaining bytes did not come; where it ends is unknown."""
        if not self.done:
            self._lost(reason)

    def result(self) -> Reply:
        """Return the reply once done, or raise the error it stands for."""
        if self._error is not None:
            raise self._error
        assert self._reply is not None, "result() before the reply is complete"
        return self._reply

    def _finish(self, reply: Optional[Reply] = None, error: Optional[BaseException] = None,
                in_step: bool = True) -> None:
        self._reply, self._error, self.in_step, self.done = reply, error, in_step, True

    def _lost(self, reason: str) -> None:
        self._finish(error=AgiProtocolError(reason), in_step=False)

    def _feed_line(self, data: bytes, at: int) -> int:
        end = data.find(b"\n", at)
        stop = len(data) if end < 0 else end + 1
        if self._expected and not self._usage_lines:
            have = bytes(self._line) + bytes(data[at:at + len(VALUE_HEAD)])
            if have.startswith(VALUE_HEAD):
                taken = len(VALUE_HEAD) - len(self._line)
                self._line.clear()
                self._state = self._feed_length
                return taken
        if len(self._line) + (stop - at) > MAX_LINE_BYTES:
            self._lost(f"AGI reply line longer than {MAX_LINE_BYTES} bytes")
            return stop - at
        self._line += data[at:stop]
        if end >= 0:
            line = bytes(self._line).decode("utf-8", "replace")
            self._line.clear()
            self._on_line(line)
        return stop - at

    def _on_line(self, line: str) -> None:
        if is_hangup_notice(line):
            self.hangup_notices += 1
        elif self._usage_lines:
            self._usage_lines += 1
            if ends_usage_block(line):
                self._finish(error=self._error)
            elif self._usage_lines > MAX_USAGE_LINES:
                self._lost(f"520 usage text longer than {MAX_USAGE_LINES} lines")
        else:
            try:
                reply = parse_reply(line)
            except AgiUsageError as exc:
                if line.startswith("520-"):
                    self._usage_lines, self._error = 1, exc
                    return
                self._finish(error=exc)
            except (AgiError, ChannelHungUp) as exc:
                self._finish(error=exc)
            else:
                if self._expected:
                    self._finish(error=AgiProtocolError(f"GET FULL VARIABLE answered result={reply.result} without a value"))
                else:
                    self._finish(reply)

    def _feed_length(self, data: bytes, at: int) -> int:
        byte = data[at:at + 1]
        if byte == b":" and self._digits:
            length = int(self._digits)
            self._digits.clear()
            self.lengths.append(length)
            self._keep = length <= self._budget
            self._budget -= length if self._keep else 0
            self._need = length
            self._state = self._feed_value
            if not length:
                self._end_value()
        elif byte.isdigit() and len(self._digits) < _MAX_LENGTH_DIGITS:
            self._digits += byte
        else:
            self._lost("the value reply does not add up (a length is wrong)")
        return 1

    def _feed_value(self, data: bytes, at: int) -> int:
        taken = min(self._need, len(data) - at)
        if self._keep:
            self._value += data[at:at + taken]
        self._need -= taken
        if not self._need:
            self._end_value()
        return taken

    def _end_value(self) -> None:
        self.values.append(bytes(self._value) if self._keep else None)
        self._value.clear()
        self._state = self._feed_tail if len(self.values) == self._expected else self._feed_length

    def _feed_tail(self, data: bytes, at: int) -> int:
        self._line += data[at:at + 1]
        if not _VALUE_TAIL.startswith(bytes(self._line)):
            self._lost("the value reply does not add up (a length is wrong)")
        elif len(self._line) == len(_VALUE_TAIL):
            self._finish(Reply(200, "1", ""))
        return 1


def decode_values(names: Sequence[str], values: Sequence[Optional[bytes]],
                  lengths: Sequence[int]) -> Dict[str, str]:
    """Pair names with the values a ``ReplyDecoder`` read, refusing what cannot pass exactly.

    >>> decode_values(['A', 'B'], [b'Zo\\xc3\\xab', b''], [4, 0])
    {'A': 'Zoë', 'B': ''}
    >>> decode_values(['NAME'], [b'caf\\xe9'], [4])
    Traceback (most recent call last):
    ...
    synthflow_agi._wire.AgiValueError: channel variable NAME is not UTF-8 text (4 bytes)
    >>> decode_values(['BIG'], [None], [70000])
    Traceback (most recent call last):
    ...
    synthflow_agi._wire.AgiValueError: channel variable BIG holds 70000 bytes, more than the 65536 read
    """
    decoded = {}
    for name, raw, length in zip(names, values, lengths):
        if raw is None:
            raise AgiValueError(f"channel variable {name} holds {length} bytes, more than the {MAX_VALUE_BYTES} read")
        try:
            decoded[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AgiValueError(f"channel variable {name} is not UTF-8 text ({length} bytes)") from None
    return decoded


def ends_usage_block(line: str) -> bool:
    """Tell whether a line closes a multi-line ``520-`` usage reply.

    >>> ends_usage_block('520 End of proper usage.')
    True
    >>> ends_usage_block(' Usage: SET VARIABLE <variablename> <value>')
    False
    """
    return line.startswith("520 ")


def script_arguments(env: Mapping[str, str]) -> Tuple[str, ...]:
    """Return ``agi_arg_1`` .. ``agi_arg_N`` in order, stopping at the first gap.

    >>> script_arguments({'agi_arg_2': 'b', 'agi_arg_1': 'a', 'agi_arg_4': 'd'})
    ('a', 'b')
    """
    arguments = []
    index = 1
    while f"agi_arg_{index}" in env:
        arguments.append(env[f"agi_arg_{index}"])
        index += 1
    return tuple(arguments)
