"""SIP messages as Asterisk saw them (pjsip.conf `debug = yes` logs each one), and a ladder.

>>> text = ("[2026-01-01 10:00:00.001] VERBOSE[1] res_pjsip_logger.c: <--- Transmitting SIP "
...         "request (10 bytes) to UDP:127.0.0.1:15070 --->\\nREFER sip:x SIP/2.0\\nCSeq: 2 REFER\\n\\n"
...         "[2026-01-01 10:00:00.002] VERBOSE[1] res_pjsip_logger.c: <--- Received SIP "
...         "response (10 bytes) from UDP:127.0.0.1:15070 --->\\nSIP/2.0 202 Accepted\\nCSeq: 2 REFER\\n")
>>> [(m.direction, m.peer, m.first_line) for m in parse(text)]
[('out', '127.0.0.1:15070', 'REFER sip:x SIP/2.0'), ('in', '127.0.0.1:15070', 'SIP/2.0 202 Accepted')]
>>> print(ladder(parse(text), {"127.0.0.1:15070": "customer"}))
     Asterisk         customer
        |--REFER-------->|
        |<------202------|  2 REFER
"""
import re

ENTRY = re.compile(r"^\[(\d{4}-\d\d-\d\d [\d:.]+)\] VERBOSE\[\d+\][^ ]* res_pjsip_logger\.c: "
                   r"<--- (Transmitting|Received) SIP (request|response) \(\d+ bytes\) (?:to|from) "
                   r"(\w+):([\d.]+:\d+) --->$", re.M)
NEXT_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d ", re.M)


class SipMessage:
    def __init__(self, when, direction, transport, peer, text):
        self.when = when
        self.direction = direction  # "out": sent by Asterisk, "in": received by Asterisk
        self.transport = transport
        self.peer = peer
        self.text = text
        self.first_line = text.split("\n", 1)[0].strip()

    @property
    def is_request(self):
        return not self.first_line.startswith("SIP/2.0")

    @property
    def label(self):
        """INVITE / REFER / ... for requests, "202" for responses."""
        parts = self.first_line.split()
        return parts[0] if self.is_request else parts[1]

    def header(self, name):
        found = re.search(r"^%s:[ \t]*(.*?)\s*$" % re.escape(name), self.text, re.M | re.I)
        return found.group(1) if found else None


def parse(log_text):
    messages = []
    starts = list(ENTRY.finditer(log_text))
    for entry in starts:
        body_start = entry.end() + 1
        following = NEXT_LOG_LINE.search(log_text, body_start)
        body = log_text[body_start:following.start() if following else len(log_text)]
        direction = "out" if entry.group(2) == "Transmitting" else "in"
        messages.append(SipMessage(entry.group(1), direction, entry.group(4), entry.group(5), body.strip("\n")))
    return messages


def requests_sent(messages, method, peer_port=None):
    return [m for m in messages if m.direction == "out" and m.is_request and m.label == method
            and (peer_port is None or m.peer.endswith(":%d" % peer_port))]


def ladder(messages, names, width=17):
    """A text sequence diagram: Asterisk in the first column, its peers to the right."""
    columns = ["Asterisk"]
    for message in messages:
        name = names.get(message.peer, message.peer)
        if name not in columns:
            columns.append(name)
    lines = ["".join(c.center(width) for c in columns).rstrip()]
    for message in messages:
        col = columns.index(names.get(message.peer, message.peer))
        left, right = width // 2, width // 2 + col * width
        span = right - left - 1
        label = message.label + (" (%s)" % message.transport if message.transport != "UDP" else "")
        if message.direction == "out":
            arrow = "|" + ("--" + label).ljust(span - 1, "-") + ">|"
        else:
            arrow = "|<" + label.center(span - 1, "-") + "|"
        row = [" "] * (left) + list(arrow)
        line = "".join(row)
        for other in range(1, len(columns)):
            pos = width // 2 + other * width
            if pos > right:
                line = line.ljust(pos) + "|"
        note = ""
        if not message.is_request:
            note = "  " + (message.header("CSeq") or "")
        lines.append(line.rstrip() + note)
    return "\n".join(lines)


SIPP_RECEIVED = re.compile(r"^\w+ message received \[\d+\] bytes :\n\n(.*?)(?=^-{20,}|\Z)", re.M | re.S)


def sipp_received(trace_text):
    """The messages a SIPp received, from its -trace_msg file, as SipMessage objects.

    >>> trace = ("----------------------------------------------- 2026-01-01\\n"
    ...          "UDP message received [40] bytes :\\n\\nINVITE sip:+1@h SIP/2.0\\nX-EI: S.abc;\\n\\n"
    ...          "----------------------------------------------- 2026-01-01\\n"
    ...          "UDP message sent (10 bytes):\\n\\nSIP/2.0 200 OK\\n\\n")
    >>> [(m.first_line, m.header("X-EI")) for m in sipp_received(trace)]
    [('INVITE sip:+1@h SIP/2.0', 'S.abc;')]
    """
    return [SipMessage("", "in", "", "", body.strip("\n")) for body in SIPP_RECEIVED.findall(trace_text)]
