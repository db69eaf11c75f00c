"""The AGI wire format, as pure functions.

Everything here works on literal lines as res_agi writes and reads them, so
the doctests below are the protocol's own examples.
"""

from __future__ import annotations

import re
from typing import List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ._errors import AgiError, AgiInvalidCommandError, AgiUsageError, ChannelHungUp

# res_agi reads a command into an 8 KiB buffer; anything longer is cut off.
MAX_COMMAND_BYTES = 8192

HANGUP_NOTICE = "HANGUP"

_LENGTH_PREFIX = re.compile(rb"(\d{1,6}):")
_REPLY = re.compile(r"(?P<code>\d{3})(?P<sep>[ -])?(?P<text>.*)\Z", re.DOTALL)
_RESULT = re.compile(r"result=(?P<result>-?\d+)(?:\s+\((?P<data>.*)\))?")


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
        raise AgiError(f"unreadable AGI reply {text[:80]!r}")
    code, rest = int(match["code"]), match["text"].strip()
    if code == 200:
        result = _RESULT.match(rest)
        if result is None:
            raise AgiError(f"unreadable AGI reply {text[:80]!r}")
        if result["result"] == "-1":
            raise ChannelHungUp("command ended by a hangup (result=-1)")
        return Reply(code, result["result"], result["data"] or "")
    if code == 511:
        raise ChannelHungUp(f"dead channel: {text}")
    if code == 510:
        raise AgiInvalidCommandError(f"510 {rest}")
    if code == 520:
        raise AgiUsageError(f"520 {rest}")
    raise AgiError(f"unexpected AGI reply {text[:80]!r}", code)


def batch_expression(names: Sequence[str]) -> str:
    """Build one ``GET FULL VARIABLE`` expression that reads every name, each value length-prefixed.

    One round trip instead of one per variable.  ``LEN`` counts bytes, so any value,
    even one holding ``:`` or digits, splits back exactly (``split_batch``).

    >>> batch_expression(['CHANNEL(state)', 'SYNTHFLOW_MODE'])
    '${LEN(${CHANNEL(state)})}:${CHANNEL(state)}${LEN(${SYNTHFLOW_MODE})}:${SYNTHFLOW_MODE}'
    """
    return "".join("${LEN(${%s})}:${%s}" % (name, name) for name in names)


def split_batch(text: str, count: int) -> Optional[List[str]]:
    """Split the value of a ``batch_expression`` back into ``count`` values.

    Returns None when the text does not add up exactly: a reply cut short by
    res_agi's buffer, or a value that was not UTF-8 (its length no longer matches).

    >>> split_batch('2:Up0:7:a:1;b()', 3)
    ['Up', '', 'a:1;b()']
    >>> split_batch('2:Up5:ab', 2) is None
    True
    >>> split_batch('4:Zoë', 1)  # LEN counts bytes
    ['Zoë']
    """
    if "\ufffd" in text:
        return None
    data, values, position = text.encode("utf-8"), [], 0
    for _ in range(count):
        prefix = _LENGTH_PREFIX.match(data, position)
        if prefix is None:
            return None
        start = prefix.end()
        end = start + int(prefix.group(1))
        if end > len(data):
            return None
        values.append(data[start:end].decode("utf-8", "replace"))
        position = end
    return values if position == len(data) else None


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
