"""RTP evidence: where media really went, seen from both ends.

- ``RtpSink`` is the media address a SIPp peer advertises in its SDP: a UDP socket on
  127.0.0.1 that records who sent each RTP packet to it.  SIPp 3.6's ``rtp_stream`` sends
  from its own media port (-mp) to the address in the last SDP it received, so the source
  of a packet tells whether it came from the other peer directly or from Asterisk.
- ``asterisk_rtp_packets`` reads Asterisk's own account: with ``rtp set debug on`` every
  RTP packet its RTP stack receives or relays is logged with the peer's address.
"""
import re
import socket
import struct

# "Got  RTP packet from    127.0.0.1:25070 (type 00, ...)", "Sent RTP packet to ...",
# and "Sent RTP P2P packet to ..." (a local native bridge relaying without decoding).
ASTERISK_RTP_LINE = re.compile(r"\b(Got|Sent)\s+RTP\s+(?:P2P\s+)?packet\s+(?:from|to)\s+(\[?[0-9a-fA-F.:]+\]?):(\d+)\s")
MAX_PACKETS = 5000  # a sink never holds more than this (bounded memory)


class RtpSink:
    """A bound UDP socket on 127.0.0.1:port that keeps (source, RTP sequence, payload type)."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setblocking(False)
        self._packets = []

    def packets(self):
        """Everything received so far: a list of ((host, port), seq, payload_type)."""
        while len(self._packets) < MAX_PACKETS:
            try:
                data, source = self.sock.recvfrom(2048)
            except BlockingIOError:
                break
            self._packets.append(parse_rtp(data, source))
        return list(self._packets)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse_rtp(data, source):
    """
    >>> parse_rtp(bytes([0x80, 0x00, 0x00, 0x07]) + bytes(8) + b"x", ("127.0.0.1", 25070))
    (('127.0.0.1', 25070), 7, 0)
    >>> parse_rtp(b"junk", ("127.0.0.1", 1))
    (('127.0.0.1', 1), None, None)
    """
    if len(data) < 12 or data[0] >> 6 != 2:
        return (source, None, None)
    _, marker_pt, seq = struct.unpack("!BBH", data[:4])
    return (source, seq, marker_pt & 0x7F)


def asterisk_rtp_packets(log_text):
    """Asterisk's RTP debug lines as (direction, host, port): "Got" is received, "Sent" relayed.

    >>> asterisk_rtp_packets("x Got  RTP packet from    127.0.0.1:25070 (type 00, seq 1)\\n"
    ...                      "x Sent RTP P2P packet to   127.0.0.1:42690 (type 00, len 160)")
    [('Got', '127.0.0.1', 25070), ('Sent', '127.0.0.1', 42690)]
    """
    return [(m.group(1), m.group(2), int(m.group(3))) for m in ASTERISK_RTP_LINE.finditer(log_text)]
