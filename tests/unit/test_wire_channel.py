"""SocketChannel against literal res_agi bytes on a socket pair: pending HANGUP lines, replies kept, resync."""
from __future__ import annotations

import logging
import re
import socket
import threading
import time

import pytest

from synthflow_agi._fastagi import SocketChannel
from synthflow_agi._wire import AgiProtocolError

ENV = b"agi_network: yes\nagi_network_script: synthflow\nagi_arg_1:  padded \r\n\n"


@pytest.fixture
def pair():
    """(program side, Asterisk side) of a connected socket pair; channels opened on it are closed afterwards."""
    program, asterisk = socket.socketpair()
    asterisk.settimeout(5)
    try:
        yield program, asterisk
    finally:
        while OPENED:
            OPENED.pop().close()
        program.close()
        asterisk.close()


OPENED: list = []


def open_channel(program: socket.socket) -> SocketChannel:
    """A SocketChannel with a 5 s read timeout, closed by the ``pair`` fixture."""
    channel = SocketChannel(program, 5)
    OPENED.append(channel)
    return channel


def commands_sent(asterisk: socket.socket) -> list:
    """The command lines the program has written so far."""
    asterisk.setblocking(False)
    data = b""
    try:
        while True:
            data += asterisk.recv(65536)
    except BlockingIOError:
        pass
    asterisk.settimeout(5)
    return data.decode().splitlines()


def timed(check):
    """Run check(); return (its result, seconds taken)."""
    started = time.monotonic()
    value = check()
    return value, time.monotonic() - started


def test_environment_values_keep_spaces_and_cr(pair):
    """The argument keeps its leading and trailing spaces and its trailing CR."""
    program, asterisk = pair
    asterisk.sendall(ENV)
    channel = open_channel(program)
    assert channel.env["agi_arg_1"] == " padded \r"


def test_a_hangup_line_after_the_last_reply_is_seen_without_a_command(pair):
    """HANGUP written after a value reply makes hung_up true at once, with no further command sent."""
    program, asterisk = pair
    asterisk.sendall(ENV + b"200 result=1 (2:Up4:a\nb:)\nHANGUP\n")
    channel = open_channel(program)
    assert channel.get_variables(["CHANNEL(state)", "X"]) == {"CHANNEL(state)": "Up", "X": "a\nb:"}
    hung_up, seconds = timed(lambda: channel.hung_up)
    assert hung_up is True and seconds < 0.05
    assert commands_sent(asterisk) == ['GET FULL VARIABLE "${LEN(${CHANNEL(state)})}:${CHANNEL(state)}${LEN(${X})}:${X}"']


def test_no_pending_data_is_not_a_hangup_and_does_not_block(pair):
    """With nothing on the socket, hung_up is false and returns at once (the read timeout is 5 s)."""
    program, asterisk = pair
    asterisk.sendall(ENV)
    channel = open_channel(program)
    hung_up, seconds = timed(lambda: channel.hung_up)
    assert hung_up is False and seconds < 0.05


def test_a_reply_already_waiting_is_kept_for_its_command(pair):
    """Looking for HANGUP reads a waiting reply into the buffer, and the next command still gets it."""
    program, asterisk = pair
    asterisk.sendall(ENV + b"200 result=1 (4:kept)\n")
    channel = open_channel(program)
    assert channel.hung_up is False
    assert channel.get_variable("Y") == "kept"


def test_a_closed_peer_counts_as_hung_up(pair):
    """The end of the stream, waiting on the socket, is a hangup too."""
    program, asterisk = pair
    asterisk.sendall(ENV)
    channel = open_channel(program)
    asterisk.shutdown(socket.SHUT_WR)
    time.sleep(0.05)
    assert channel.hung_up is True


def test_after_an_unreadable_reply_the_stream_is_brought_back_in_step(pair):
    """A reply with a wrong length is refused, the rest is skipped up to a fresh marker, and the next reply reads right."""
    program, asterisk = pair
    asterisk.sendall(ENV + b"200 result=1 (9:short)\nleft over\n")
    channel = open_channel(program)
    seen = []

    def asterisk_side():
        lines = asterisk.makefile("rb")
        for line in lines:
            seen.append(line.decode().rstrip("\n"))
            marker = re.fullmatch(r'GET FULL VARIABLE "(synthflow-resync-[0-9a-f]{16})"', seen[-1])
            if marker:
                asterisk.sendall(b"more junk\n200 result=1 (%s)\n" % marker.group(1).encode())
            else:
                asterisk.sendall(b"200 result=1\n")
        lines.close()

    thread = threading.Thread(target=asterisk_side, daemon=True)
    thread.start()
    with pytest.raises(AgiProtocolError, match="does not add up"):
        channel.get_variable("A")
    channel.set_variable("B", "c")  # reads its own "200 result=1", not a line of junk
    assert seen[0].startswith('GET FULL VARIABLE "${LEN(${A})}') and seen[2:] == ['SET VARIABLE "B" "c"']
    assert re.fullmatch(r'GET FULL VARIABLE "synthflow-resync-[0-9a-f]{16}"', seen[1])


def test_handle_error_goes_through_the_redacting_logger(capsys):
    """An unexpected handler error is logged by the package logger with the token redacted, nothing raw on stderr."""
    import io

    from synthflow_agi._fastagi import FastAgiServer
    from synthflow_agi._logging import LOGGER, configure

    stream = io.StringIO()
    configure("stderr", secrets=["sk-live-TOKEN"], stream=stream)
    server = FastAgiServer(("127.0.0.1", 0), {"SYNTHFLOW_CONFIG": "/nonexistent"}, 2)
    try:
        try:
            raise RuntimeError("boom sk-live-TOKEN")
        except RuntimeError:
            server.handle_error(None, ("127.0.0.1", 5))
    finally:
        server.close()
        LOGGER.handlers.clear()
    assert "unexpected error serving a connection from 127.0.0.1" in stream.getvalue()
    assert "boom ***" in stream.getvalue() and "sk-live-TOKEN" not in stream.getvalue()
    assert capsys.readouterr().err == ""
    assert logging.getLogger("synthflow_agi") is LOGGER
