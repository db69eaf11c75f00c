"""ReplyDecoder and the environment parser on literal res_agi bytes, however the bytes are split."""
from __future__ import annotations

import doctest

import pytest

from synthflow_agi import _options, _wire
from synthflow_agi._errors import AgiInvalidCommandError, AgiUsageError, ChannelHungUp
from synthflow_agi._wire import AgiEnvironmentError, AgiProtocolError, ReplyDecoder


def feed_in_pieces(decoder: ReplyDecoder, data: bytes, size: int) -> int:
    """Feed ``data`` ``size`` bytes at a time, as a socket might deliver it; return the bytes used."""
    used = 0
    while used < len(data) and not decoder.done:
        piece = data[used:used + size]
        taken = decoder.feed(piece)
        used += taken
        if taken < len(piece):
            break
    return used


@pytest.mark.parametrize("size", [1, 2, 3, 7, 4096])
def test_values_split_anywhere_decode_the_same(size):
    """A reply with LF, CRLF and reply-like lines inside values decodes the same for any split of its bytes."""
    values = [b"Up", b"a\nb", b"", b"200 result=0\n", b"x\r\n)\n", "Zoë".encode()]
    body = b"".join(b"%d:%s" % (len(v), v) for v in values)
    wire = b"HANGUP\n" + _wire.VALUE_HEAD + body + b")\n" + b"200 result=1\n"
    decoder = ReplyDecoder(values=len(values))
    used = feed_in_pieces(decoder, wire, size)
    assert decoder.done and decoder.in_step
    assert wire[used:] == b"200 result=1\n"  # the next reply is left for its command
    assert decoder.values == values and decoder.hangup_notices == 1
    assert decoder.result() == _wire.Reply(200, "1", "")


def test_a_value_over_the_budget_is_skipped_by_its_length_not_kept():
    """A 1 MB value is counted past, not stored; the decoder stays in step and leaves the next reply alone."""
    big = b"z\n" * 500_000
    wire = _wire.VALUE_HEAD + b"2:Up%d:%s)\n200 result=1\n" % (len(big), big)
    decoder = ReplyDecoder(values=2)
    used = feed_in_pieces(decoder, wire, 65536)
    assert decoder.done and decoder.in_step and wire[used:] == b"200 result=1\n"
    assert decoder.values == [b"Up", None] and decoder.lengths == [2, 1_000_000]
    with pytest.raises(_wire.AgiValueError, match="channel variable B holds 1000000 bytes"):
        _wire.decode_values(["A", "B"], decoder.values, decoder.lengths)


@pytest.mark.parametrize("wire,error", [
    (b"510 Invalid or unknown command\n", AgiInvalidCommandError),
    (b"511 Command Not Permitted on a dead channel or intercept routine\n", ChannelHungUp),
    (b"200 result=-1\n", ChannelHungUp),
    (b"200 result=0\n", AgiProtocolError),
    (b"hello\n", AgiProtocolError),
    (b"520-Invalid command syntax.  Proper usage follows:\nUsage: x\n520 End of proper usage.\n", AgiUsageError),
], ids=["510", "511", "minus_one", "no_value", "garbage", "520_block"])
def test_error_replies_to_a_value_read_are_typed_and_consumed_whole(wire, error):
    """Every error reply to GET FULL VARIABLE raises its own type and leaves the stream right after it."""
    decoder = ReplyDecoder(values=1)
    assert decoder.feed(wire + b"NEXT") == len(wire)
    assert decoder.in_step
    with pytest.raises(error):
        decoder.result()


@pytest.mark.parametrize("wire", [
    _wire.VALUE_HEAD + b"x" * 9000,
    _wire.VALUE_HEAD + b"3:ab)\n",
    _wire.VALUE_HEAD + b"12345678901:",
    b"2" * 8193,
], ids=["not_a_length", "length_too_long", "eleven_digits", "line_over_8192"])
def test_replies_that_do_not_add_up_are_refused_and_marked_out_of_step(wire):
    """A reply whose lengths are wrong or whose line is over 8192 bytes is an AgiProtocolError, out of step."""
    decoder = ReplyDecoder(values=1)
    decoder.feed(wire)
    assert decoder.done and not decoder.in_step
    with pytest.raises(AgiProtocolError):
        decoder.result()


@pytest.mark.parametrize("lines,reason", [
    ([b"agi_arg_1: " + b"x" * 70000 + b"\n", b"\n"], "larger than 65536 bytes"),
    ([b"agi_a: b\n"] * 257 + [b"\n"], "longer than 256 lines"),
    ([b"agi_a: b\n", b"continued line of an argument\n", b"\n"], "not an AGI environment line"),
    ([b"agi_a b\n", b"\n"], "not an AGI environment line"),
])
def test_environment_blocks_out_of_bounds_or_shape_are_refused(lines, reason):
    """A block over 64 KiB or 256 lines, or a line not shaped ``agi_name: value``, is refused."""
    with pytest.raises(AgiEnvironmentError, match=reason):
        _wire.parse_env_block(lines)


def test_fastagi_option_examples_pass():
    """The listen and flag parsing examples of the FastAGI server's options hold."""
    result = doctest.testmod(_options)
    assert result.attempted > 0 and result.failed == 0
