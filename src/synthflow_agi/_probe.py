"""``synthflow-agi probe-refer``: does a trunk keep headers embedded in a Refer-To URI?

Transfer mode delivers X-EI only if the party that receives the REFER copies the
Refer-To URI's headers onto the INVITE it sends, and ``Transfer()`` reports SUCCESS
either way (it means "the REFER was accepted").  The probe measures it without calling
Synthflow: it originates a test call through the trunk (``asterisk -rx "channel
originate ..."`` on the PBX), and once it is answered the sample's
``[synthflow-refer-probe]`` context REFERs it back to this PBX with a known
``X-EI=E.probe-<token>;`` in the Refer-To.  ``[synthflow-refer-probe-return]`` stores the
X-EI of the INVITE that comes back in astdb (family ``synthflow_probe``), which this
command polls.  Every wait is bounded; the verdict logic is pure (``judge``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from ._errors import ConfigError
from ._sip import validate_host

FAMILY = "synthflow_probe"
PROBE_CONTEXT = "synthflow-refer-probe"
RETURN_CONTEXT = "synthflow-refer-probe-return"
# `channel originate` gives up after 30 s of ringing; a little more covers the set-up.
RING_SECONDS = 35.0
# After a refused REFER, how long a late INVITE may still prove the trunk followed it.
REFUSAL_GRACE_SECONDS = 2.0
POLL_SECONDS = 0.25

KEEPS = "keeps Refer-To headers"
DROPS = "drops them"
REFUSES = "refuses REFER"
NO_ANSWER = "no answer"
NO_RETURN = "no call came back"

ADVICE = {
    KEEPS: "mode = transfer is safe for this trunk",
    DROPS: "mode = dial (transfer mode would report SUCCESS while the agent gets no X-EI)",
    REFUSES: "mode = dial (auto dials only after a REFER refused as a method: 405, 420, 489 or 501)",
    NO_ANSWER: "nothing yet: call a number that answers (--number) and run the probe again",
    NO_RETURN: "mode = dial until a probe says otherwise; check that --return-host reaches this PBX "
               "and that the trunk's inbound context sends '%s' to [%s]" % (PROBE_CONTEXT, RETURN_CONTEXT),
}

_TRUNK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_NUMBER = re.compile(r"\+?[0-9]{2,20}\Z")
_USER = re.compile(r"[A-Za-z0-9+][A-Za-z0-9+_.-]{0,63}\Z")
_DB_VALUE = re.compile(r"^Value: ?(.*)$", re.M)


@dataclass(frozen=True)
class Observation:
    """What astdb held when the probe stopped waiting (None: never written)."""

    answered: bool
    refer: Optional[str] = None      # "<TRANSFERSTATUS> <TRANSFERSTATUSPROTOCOL>"
    returned: Optional[str] = None   # "X-EI:<value of the returned INVITE's X-EI, maybe empty>"


def new_token() -> str:
    """Twelve random digits: the probe's extension, astdb key and X-EI value."""
    import secrets  # here, not at the top: `synthflow-agi agi` builds this parser on every call

    return "".join(str(secrets.randbelow(10)) for _ in range(12))


def probe_xei(token: str) -> str:
    """
    >>> probe_xei('123456789012')
    'E.probe-123456789012;'
    """
    return "E.probe-%s;" % token


def refer_to(user: str, host: str, token: str, transport: str = "udp") -> str:
    """The Refer-To, angle brackets included (a URI with headers needs them).

    >>> refer_to('synthflow-refer-probe', '203.0.113.5:5060', '123456789012')
    '<sip:synthflow-refer-probe@203.0.113.5:5060?X-EI=E.probe-123456789012%3B>'
    >>> refer_to('probe', 'pbx.example', '1', 'tcp')
    '<sip:probe@pbx.example;transport=tcp?X-EI=E.probe-1%3B>'
    """
    params = "" if transport == "udp" else ";transport=%s" % transport
    return "<sip:%s@%s%s?X-EI=%s>" % (user, host, params, probe_xei(token).replace(";", "%3B"))


def validate_options(trunk: str, number: str, return_host: str, return_user: str) -> None:
    """Refuse anything that could add an argument to a CLI command or a URI.

    >>> validate_options('customer-trunk', '+15551230000', '[2001:db8::1]:5060', 'synthflow-refer-probe')
    >>> validate_options('trunk extension x@y', '+1555', 'pbx', 'u')
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: --trunk 'trunk extension x@y' is not a PJSIP endpoint name
    """
    if not _TRUNK.match(trunk):
        raise ConfigError("--trunk %r is not a PJSIP endpoint name" % trunk[:70])
    if not _NUMBER.match(number):
        raise ConfigError("--number %r is not a phone number (digits, optional +)" % number[:30])
    if not _USER.match(return_user):
        raise ConfigError("--return-user %r is not a plain SIP user part" % return_user[:70])
    host, port = split_host_port(return_host)
    validate_host(host)
    if port is not None and not 0 < port < 65536:
        raise ConfigError("--return-host port %d is out of range" % port)


def split_host_port(text: str) -> Tuple[str, Optional[int]]:
    """
    >>> split_host_port('203.0.113.5:5060'), split_host_port('[::1]:5062'), split_host_port('pbx.example')
    (('203.0.113.5', 5060), ('[::1]', 5062), ('pbx.example', None))
    """
    if text.startswith("["):
        host, _, rest = text.partition("]")
        if rest[:1] == ":" and rest[1:].isdigit():
            return host + "]", int(rest[1:])
        return text, None
    head, sep, tail = text.rpartition(":")
    if sep and tail.isdigit() and ":" not in head:
        return head, int(tail)
    return text, None


def parse_db_get(output: str) -> Optional[str]:
    """The value `database get` printed, or None for a missing key.

    >>> parse_db_get('Value: X-EI:E.probe-1;\\n'), parse_db_get('Value: X-EI:\\n')
    ('X-EI:E.probe-1;', 'X-EI:')
    >>> print(parse_db_get('Database entry not found.\\n'))
    None
    """
    found = _DB_VALUE.search(output)
    return found.group(1)[:512] if found else None


def judge(seen: Observation, token: str) -> Tuple[str, str]:
    """The verdict and one line of evidence.  The returned INVITE decides when there is one.

    >>> judge(Observation(True, 'SUCCESS 200', 'X-EI:E.probe-42;'), '42')[0]
    'keeps Refer-To headers'
    >>> print('; '.join(judge(Observation(True, 'SUCCESS 200', 'X-EI:'), '42')))  # doctest: +NORMALIZE_WHITESPACE
    drops them; the INVITE that came back through the trunk had no X-EI header;
    the REFER was accepted (TRANSFERSTATUS=SUCCESS)
    >>> judge(Observation(True, 'FAILURE 603'), '42')
    ('refuses REFER', 'the trunk answered the REFER with TRANSFERSTATUS=FAILURE, SIP code 603')
    >>> judge(Observation(False), '42')[0], judge(Observation(True, 'SUCCESS 200'), '42')[0]
    ('no answer', 'no call came back')
    """
    refer_status, _, code = (seen.refer or "").partition(" ")
    accepted = "the REFER was accepted (TRANSFERSTATUS=SUCCESS)" if refer_status == "SUCCESS" else \
        "TRANSFERSTATUS=%s" % (refer_status or "not yet known")
    if seen.returned is not None:
        value = seen.returned[len("X-EI:"):] if seen.returned.startswith("X-EI:") else seen.returned
        if value == probe_xei(token):
            return KEEPS, "the INVITE that came back through the trunk carried X-EI: %s intact" % probe_xei(token)
        if not value:
            return DROPS, "the INVITE that came back through the trunk had no X-EI header; %s" % accepted
        return DROPS, ("the INVITE that came back carried a changed X-EI (%d characters, expected %s); %s"
                       % (len(value), probe_xei(token), accepted))
    if not seen.answered:
        return NO_ANSWER, "the test call was not answered within %d s" % RING_SECONDS
    if seen.refer is not None and refer_status != "SUCCESS":
        return REFUSES, "the trunk answered the REFER with TRANSFERSTATUS=%s, SIP code %s" % (
            refer_status or "(empty)", code or "unknown")
    return NO_RETURN, "the trunk answered (%s) but no INVITE reached [%s]" % (accepted, RETURN_CONTEXT)


def settled(seen: Observation, refused_for: float) -> bool:
    """Whether waiting longer can change the verdict.

    >>> settled(Observation(True, 'SUCCESS 200'), 0), settled(Observation(True, 'FAILURE 603'), 2.5)
    (False, True)
    """
    if seen.returned is not None:
        return True
    refused = seen.refer is not None and not seen.refer.startswith("SUCCESS")
    return refused and refused_for >= REFUSAL_GRACE_SECONDS


class AsteriskCli:
    """``asterisk -rx`` on this host: the PBX's own CLI, so no AMI credentials are needed."""

    def __init__(self, binary: str = "asterisk", timeout: float = 10.0) -> None:
        self.binary = binary
        self.timeout = timeout

    def __call__(self, command: str) -> str:
        import subprocess

        try:
            proc = subprocess.run([self.binary, "-rx", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, universal_newlines=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError("cannot run %s -rx: %s" % (self.binary, exc)) from exc
        if proc.returncode != 0 or "Unable to connect to remote asterisk" in proc.stdout:
            raise ConfigError("Asterisk's CLI did not answer (%s -rx, exit %d): is Asterisk running here?"
                              % (self.binary, proc.returncode))
        return proc.stdout[:65536]


def run_probe(cli: Callable[[str], str], trunk: str, number: str, return_host: str, return_user: str,
              transport: str, wait: float, say: Callable[[str], None],
              clock: Callable[[], float] = time.monotonic) -> Tuple[str, str]:
    """Place the test call, watch astdb within bounded waits, clean up; return judge()'s answer."""
    validate_options(trunk, number, return_host, return_user)
    for context in (PROBE_CONTEXT, RETURN_CONTEXT):
        if "Context '%s'" % context not in cli("dialplan show %s" % context):
            raise ConfigError("the dialplan has no [%s]: add section 7 of extensions.conf.sample and "
                              "run 'dialplan reload'" % context)
    if "Unable to find" in cli("pjsip show endpoint %s" % trunk):
        raise ConfigError("no PJSIP endpoint named %r" % trunk)
    token = new_token()
    target = refer_to(return_user, return_host, token, transport)
    keys = ("answered", "refer", "return", "target")

    def read(key: str) -> Optional[str]:
        return parse_db_get(cli("database get %s %s-%s" % (FAMILY, token, key)))

    try:
        cli('database put %s %s-target "%s"' % (FAMILY, token, target))
        cli("database put %s pending %s" % (FAMILY, token))
        say("calling %s through PJSIP/%s; once answered, REFER to %s" % (number, trunk, target))
        cli("channel originate PJSIP/%s@%s extension %s@%s" % (number, trunk, token, PROBE_CONTEXT))
        start = clock()
        seen = Observation(False)
        while not seen.answered and clock() - start < RING_SECONDS:
            time.sleep(POLL_SECONDS)
            seen = Observation(read("answered") is not None)
        answered_at, refused_at = clock(), None
        while seen.answered and clock() - answered_at < wait:
            seen = Observation(True, read("refer"), read("return"))
            if refused_at is None and seen.refer is not None and not seen.refer.startswith("SUCCESS"):
                refused_at = clock()
            if settled(seen, 0.0 if refused_at is None else clock() - refused_at):
                break
            time.sleep(POLL_SECONDS)
        return judge(seen, token)
    finally:
        _hang_up_probe_call(cli, token)
        for key in keys:
            cli("database del %s %s-%s" % (FAMILY, token, key))
        if parse_db_get(cli("database get %s pending" % FAMILY)) == token:
            cli("database del %s pending" % FAMILY)


def _hang_up_probe_call(cli: Callable[[str], str], token: str) -> None:
    """End the probe's own call if it is still up (`core show channels concise` lists it)."""
    for line in cli("core show channels concise").splitlines():
        fields = line.split("!")
        if len(fields) > 2 and fields[1] == PROBE_CONTEXT and fields[2] == token:
            cli("channel request hangup %s" % fields[0])


def add_parser(commands) -> None:
    """The ``probe-refer`` subcommand, on the ``synthflow-agi`` command's subparsers."""
    probe = commands.add_parser(
        "probe-refer", help="find out whether a trunk keeps X-EI in a REFER's Refer-To (transfer mode needs it)",
        description="Place a test call through a trunk, REFER it back to this PBX with a known X-EI in the "
                    "Refer-To, and report whether the INVITE that comes back carries it.  Never calls Synthflow. "
                    "Needs section 7 of extensions.conf.sample.")
    probe.add_argument("--trunk", required=True, help="the PJSIP endpoint to call through (the carrier trunk)")
    probe.add_argument("--number", required=True, help="a number that answers, reached through the trunk")
    probe.add_argument("--return-host", required=True, metavar="HOST[:PORT]",
                       help="this PBX's address as the carrier reaches it (the Refer-To's host)")
    probe.add_argument("--return-user", default=PROBE_CONTEXT,
                       help="the Refer-To's user part, routed by the trunk's inbound context to [%s] "
                            "(default %s)" % (RETURN_CONTEXT, PROBE_CONTEXT))
    probe.add_argument("--return-transport", choices=("udp", "tcp", "tls"), default="udp")
    probe.add_argument("--wait", type=float, default=20.0,
                       help="seconds to wait after the answer for the call to come back (at most 50)")
    probe.add_argument("--asterisk", default="asterisk", help="the asterisk binary (default: asterisk on PATH)")
    probe.set_defaults(run=main)


def main(args) -> int:
    """Run the probe; print the verdict and what to set.  Exit 0 only for "keeps"."""
    if not 0 < args.wait <= 50:  # the sample's TIMEOUT(absolute)=60 ends the probe call anyway
        raise ConfigError("--wait must be between 0 and 50 seconds")
    verdict, evidence = run_probe(AsteriskCli(args.asterisk), args.trunk, args.number, args.return_host,
                                  args.return_user, args.return_transport, args.wait,
                                  lambda line: print("probe-refer: " + line, flush=True))
    print("verdict: %s" % verdict)
    print("  %s" % evidence)
    print("set: %s" % ADVICE[verdict])
    return 0 if verdict == KEEPS else 1
