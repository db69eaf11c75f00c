"""Pure helpers: parse the two SIPps' logs, join ACK to INVITE, summarise, judge the targets.

Both timestamps come from gettimeofday() in SIPp processes on this host, so they share one
clock (bench/README.md).  Doctests: ``.venv/bin/python -m pytest --doctest-modules bench/stats.py``.
"""
import re
import statistics

ACK_LINE = re.compile(r"^ACK\s+(\S+)\s+(\S+)\s+([0-9.]+)\s+([0-9.]+)\s*$", re.M)
INVITE_LINE = re.compile(r"^INVITE\s+(\S+)\s+([0-9.]+)\s+([0-9.]+)\s+X-EI:(.*)$", re.M)
# The agent's own check (bench/sipp/agent.xml) and the product's call-id rule (_sip.py).
# S. first, then any E./O. tokens the program adds (E.<linkedid> by default).
VALID_XEI = re.compile(r"^ *S\.[A-Za-z0-9][A-Za-z0-9_-]{7,127};(?:[EO]\.[^;]+;)*$")


def _seconds(sec, usec):
    return float(sec) + float(usec) / 1e6


def parse_acks(text):
    """{call id: (variant, ACK time in s)} from the customer's log.

    >>> parse_acks("ACK 1-7@127.0.0.1 bench-floor 1700000000.000000 250000.000000\\n")
    {'1-7@127.0.0.1': ('bench-floor', 1700000000.25)}
    """
    return {m.group(1): (m.group(2), _seconds(m.group(3), m.group(4))) for m in ACK_LINE.finditer(text)}


def parse_invites(text):
    """{call id: (INVITE time in s, X-EI valid?)} from the agent's log.

    >>> parse_invites("INVITE  1-7@127.0.0.1 1700000000.000000 262500.000000 X-EI: S.abcdefgh-1;\\n")
    {'1-7@127.0.0.1': (1700000000.2625, True)}
    >>> parse_invites("INVITE  1-8@x 1700000000.000000 0.000000 X-EI: S.;\\n")['1-8@x'][1]
    False
    >>> parse_invites("INVITE  1-9@x 1700000000.000000 0.000000 X-EI: S.abcdefgh-1;E.1700.3;\\n")['1-9@x'][1]
    True
    """
    return {m.group(1): (_seconds(m.group(2), m.group(3)), bool(VALID_XEI.match(m.group(4).rstrip())))
            for m in INVITE_LINE.finditer(text)}


def join(acks, invites):
    """Rows (call id, variant, ms from ACK to INVITE or None, X-EI valid) in ACK order.

    >>> join({'a': ('v', 10.0), 'b': ('v', 11.0)}, {'a': (10.5125, True)})
    [('a', 'v', 512.5, True), ('b', 'v', None, False)]
    """
    rows = []
    for call, (variant, acked) in sorted(acks.items(), key=lambda item: item[1][1]):
        invite = invites.get(call)
        if invite is None:
            rows.append((call, variant, None, False))
        else:
            rows.append((call, variant, round((invite[0] - acked) * 1000.0, 3), invite[1]))
    return rows


def percentile(values, q):
    """Linear-interpolated percentile, q in 0..100.

    >>> percentile([1, 2, 3, 4], 50), percentile([1, 2, 3, 4], 90), percentile([5], 99)
    (2.5, 3.7, 5)
    """
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return round(data[low] + (data[high] - data[low]) * (pos - low), 3)


def summary(values):
    """n, median, p25, p75, p90, p99 of a list of ms (None when empty).

    >>> summary([10, 20, 30])['median'], summary([])
    (20, None)
    """
    if not values:
        return None
    return {"n": len(values), "median": statistics.median(values), "p25": percentile(values, 25),
            "p75": percentile(values, 75), "p90": percentile(values, 90), "p99": percentile(values, 99)}


def overheads(medians, floor="floor"):
    """Each variant's median minus the floor's median (ms).

    >>> overheads({'floor': 510.0, 'curl': 514.5, 'agi': 700.0})
    {'floor': 0.0, 'curl': 4.5, 'agi': 190.0}
    """
    base = medians[floor]
    return {name: round(value - base, 3) for name, value in medians.items()}


def ratio(numerator, denominator):
    """numerator / denominator, or None when it means nothing (denominator <= 0).

    >>> ratio(3.0, 6.0), ratio(1.0, 0.0)
    (0.5, None)
    """
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return round(numerator / denominator, 3)


def verdict(value, goal, higher_is_better=False):
    """'met' / 'not met' / 'not measured' against a goal.

    >>> verdict(0.4, 0.5), verdict(0.6, 0.5), verdict(40, 50, higher_is_better=True), verdict(None, 1)
    ('met', 'not met', 'not met', 'not measured')
    """
    if value is None:
        return "not measured"
    good = value >= goal if higher_is_better else value <= goal
    return "met" if good else "not met"


def load_outcome(rows, expected):
    """Count a load run: calls placed, handed off with a valid X-EI, lost (anything else).

    >>> load_outcome([('a', 'v', 5.0, True), ('b', 'v', None, False)], 3)
    {'expected': 3, 'acked': 2, 'handed_off': 1, 'lost': 2}
    """
    good = sum(1 for row in rows if row[2] is not None and row[3])
    return {"expected": expected, "acked": len(rows), "handed_off": good, "lost": expected - good}
