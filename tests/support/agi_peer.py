"""A scripted Asterisk channel that runs the real ``agi-bin/synthflow.agi`` over classic AGI.

Why a model and not a transcript: a transcript breaks whenever the program reorders two
harmless GET VARIABLEs, while a model of the channel (variables, applications, hangup)
answers whatever is asked the way res_agi would, and the tests assert on outcomes and on
the exact wire where the wire is the contract.

Usage::

    peer = AgiPeer(variables={"SYNTHFLOW_MODE": "dial"}, args=["customer_name"])
    result = peer.run(env={"SYNTHFLOW_API_URL": model.base_url, ...})
    assert result.variables["SYNTHFLOW_STATUS"] == "SUCCESS"
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

REPO = Path(__file__).resolve().parents[2]
AGI_SCRIPT = REPO / "agi-bin" / "synthflow.agi"
MAX_LINE = 8192  # res_agi reads a command into a buffer of this size
DEAD_MSG = "511 Command Not Permitted on a dead channel or intercept routine"
KNOWN = ("EXEC", "GET VARIABLE", "GET FULL", "SET VARIABLE", "VERBOSE", "NOOP", "ANSWER")
DEAD_OK = ("EXEC", "GET VARIABLE", "GET FULL", "SET VARIABLE", "VERBOSE", "NOOP")
# A matcher picks a command: its 0-based index, a case-insensitive prefix of the parsed
# words joined by spaces (e.g. "EXEC Transfer"), or a predicate on the parsed words.
Matcher = Union[int, str, Callable[[List[str]], bool], None]
Trigger = Union[threading.Event, Callable[[], Any], None]


def parse_args(line: str) -> List[str]:
    r"""Split one command line exactly as res_agi's ``parse_args`` does.

    Whitespace separates words; an unescaped ``"`` toggles quoting and is dropped, and
    after whitespace it starts a new (possibly empty) word; ``\x`` gives ``x``.

    >>> parse_args('GET VARIABLE "CHANNEL(state)"')
    ['GET', 'VARIABLE', 'CHANNEL(state)']
    >>> parse_args('SET VARIABLE "PJSIP_HEADER(add,X-EI)" "S.abc;"')
    ['SET', 'VARIABLE', 'PJSIP_HEADER(add,X-EI)', 'S.abc;']
    >>> parse_args('SET VARIABLE "SYNTHFLOW_ERROR" ""')
    ['SET', 'VARIABLE', 'SYNTHFLOW_ERROR', '']
    >>> parse_args(r'SET VARIABLE "X" "say \"hi\" C:\\dir"')
    ['SET', 'VARIABLE', 'X', 'say "hi" C:\\dir']
    >>> parse_args('SET VARIABLE X say "hi"')
    ['SET', 'VARIABLE', 'X', 'say', 'hi']
    >>> parse_args('SET VARIABLE X a"b c"d')
    ['SET', 'VARIABLE', 'X', 'ab cd']
    >>> parse_args(r'VERBOSE a\ b  1')
    ['VERBOSE', 'a b', '1']
    >>> parse_args('EXEC Dial "PJSIP/synthflow/sip:+15557654321@h:5060,30,b(p^s^1)"')
    ['EXEC', 'Dial', 'PJSIP/synthflow/sip:+15557654321@h:5060,30,b(p^s^1)']
    >>> parse_args('SET VARIABLE "A" "x" ""')
    ['SET', 'VARIABLE', 'A', 'x', '']
    """
    words: List[str] = []
    cur: List[str] = []
    in_word = quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                words.append("")
                in_word = True
            continue
        if ch in " \t" and not quoted and not escaped:
            if in_word:
                words[-1] += "".join(cur)
                cur = []
            in_word = False
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if not in_word:
            words.append("")
            in_word = True
        cur.append(ch)
        escaped = False
    if in_word:
        words[-1] += "".join(cur)
    return words


def _matches(matcher: Matcher, index: int, words: List[str]) -> bool:
    if matcher is None:
        return False
    if isinstance(matcher, int):
        return index == matcher
    if isinstance(matcher, str):
        return " ".join(words).upper().startswith(matcher.upper())
    return bool(matcher(words))


def substitute(template: str, lookup: Callable[[str], Optional[str]]) -> str:
    """Asterisk's ``${...}`` substitution: inner expressions first, a value is never read again.

    Only what GET FULL VARIABLE needs here: variables, dialplan functions looked up by
    their full text (``CHANNEL(state)``), and ``LEN``, which counts bytes like strlen().

    >>> substitute("${LEN(${A})}:${A}|${B}", {"A": "Zoë ${B}"}.get)
    '9:Zoë ${B}|'
    """
    out, i = [], 0
    while i < len(template):
        if not template.startswith("${", i):
            out.append(template[i])
            i += 1
            continue
        depth, j = 1, i + 2
        while j < len(template) and depth:
            depth += {"{": 1, "}": -1}.get(template[j], 0)
            j += 1
        expression = substitute(template[i + 2:j - 1], lookup)
        if expression.startswith("LEN(") and expression.endswith(")"):
            out.append(str(len(expression[4:-1].encode("utf-8", "surrogateescape"))))
        else:
            out.append(lookup(expression) or "")
        i = j
    return "".join(out)


def command_name(words: List[str]) -> str:
    """The command's own words, upper-cased: ``SET VARIABLE``, ``EXEC``, ..."""
    up = [w.upper() for w in words[:2]]
    return " ".join(up) if up[:1] in (["GET"], ["SET"]) else (up[0] if up else "")


class Command:
    """One command as read from the program, with the reply the peer sent."""

    def __init__(self, raw: str, words: List[str]):
        self.raw, self.words, self.reply = raw, words, ""

    @property
    def name(self) -> str:
        return command_name(self.words)

    def __repr__(self) -> str:
        return "Command(%r -> %r)" % (self.raw, self.reply)


class AgiResult:
    """What one run produced; every field is plain data for assertions."""

    def __init__(self) -> None:
        self.returncode: Optional[int] = None
        self.commands: List[Command] = []
        self.wire: List[Tuple[str, str]] = []  # ("<", line from program) / (">", line to it)
        self.stdout = b""
        self.stderr = ""
        self.variables: Dict[str, str] = {}
        self.sets: List[Tuple[str, str]] = []  # every SET VARIABLE, names as sent (e.g. "_X")
        self.execs: List[Tuple[str, ...]] = []  # (app, arg[, extra words...])
        self.verboses: List[str] = []
        self.timed_out = False
        self.sighup_sent = False
        self.seconds = 0.0  # wall time of the whole run, for generous hang-catching bounds

    @property
    def status(self) -> Optional[str]:
        return self.variables.get("SYNTHFLOW_STATUS")

    def __repr__(self) -> str:
        return ("AgiResult(rc=%r status=%r timed_out=%r\n  commands=%r\n  stderr=%r)"
                % (self.returncode, self.status, self.timed_out, self.commands, self.stderr[-2000:]))


class AgiPeer:
    """The channel: its variables, its applications' outcomes, and the faults to inject.

    ``hangup_at``: the channel hangs up just before that command is answered; from then on
    the command gets 511 unless it is one res_agi allows on a dead channel, and EXEC gives
    ``200 result=-1``.  ``hangup_sends_sighup`` also signals the process, as Asterisk does.
    ``sighup_on``: an Event or a blocking callable; when it fires, the channel hangs up and
    the process gets SIGHUP (e.g. ``lambda: model.wait_for_request(10)``).
    ``minus_one_at``: reply ``200 result=-1`` to the first command matched; for an EXEC it
    means the caller hung up while the application ran (no TRANSFERSTATUS; DIALSTATUS CANCEL).
    ``force_replies``: ``[(matcher, reply line), ...]``, each used once, e.g. a 511 where
    the program would not otherwise get one.
    ``hangup_after``: the channel hangs up right after answering the first command matched,
    with no command in between: SIGHUP for classic AGI, a ``HANGUP`` line sent with that
    reply over FastAGI (res_agi writes it as soon as it sees the hangup).
    """

    def __init__(self, args: Sequence[str] = (), variables: Optional[Dict[str, str]] = None,
                 agi_type: str = "PJSIP", callerid: str = "+15551230000",
                 uniqueid: str = "1700000000.42", transfer_status: str = "SUCCESS",
                 transfer_protocol: str = "0", dial_status: str = "ANSWER",
                 hangup_at: Matcher = None, hangup_sends_sighup: bool = False,
                 sighup_on: Trigger = None, minus_one_at: Matcher = None,
                 force_replies: Sequence[Tuple[Matcher, str]] = (),
                 program: Optional[Sequence[str]] = None, hangup_after: Matcher = None):
        self.args = list(args)
        self.agi_type = agi_type
        self.callerid = callerid
        self.uniqueid = uniqueid
        self.variables: Dict[str, str] = {"CHANNEL(state)": "Up", "CHANNEL(linkedid)": uniqueid}
        self.variables.update(variables or {})
        self.transfer_status, self.transfer_protocol = transfer_status, transfer_protocol
        self.dial_status = dial_status
        self.hangup_at, self.hangup_sends_sighup = hangup_at, hangup_sends_sighup
        self.sighup_on, self.minus_one_at = sighup_on, minus_one_at
        self.force_replies = list(force_replies)
        self.hangup_after = hangup_after
        self._hangup_due = False
        self.program = list(program) if program else [sys.executable, str(AGI_SCRIPT)]
        self.dead = False
        self._proc: Any = None

    def env_block(self) -> str:
        """The environment block res_agi writes first, in its order, ended by a blank line."""
        chan = "%s/trunk-00000001" % self.agi_type
        pairs = [("request", "synthflow.agi"), ("channel", chan), ("language", "en"),
                 ("type", self.agi_type), ("uniqueid", self.uniqueid), ("version", "22.10.1"),
                 ("callerid", self.callerid), ("calleridname", "unknown"), ("callingpres", "0"),
                 ("callingani2", "0"), ("callington", "0"), ("callingtns", "0"),
                 ("dnid", "unknown"), ("rdnis", "unknown"), ("context", "synthflow-test"),
                 ("extension", "s"), ("priority", "2"), ("enhanced", "0.0"),
                 ("accountcode", ""), ("threadid", "140000000000001")]
        pairs += [("arg_%d" % i, a) for i, a in enumerate(self.args, 1)]
        return "".join("agi_%s: %s\n" % kv for kv in pairs) + "\n"

    # answering ---------------------------------------------------------------------------
    def answer(self, index: int, words: List[str], result: AgiResult) -> str:
        """The reply res_agi would send to one parsed command on this channel."""
        if not self.dead and _matches(self.hangup_at, index, words):
            self.hang_up(result, signal_it=self.hangup_sends_sighup)
        if _matches(self.minus_one_at, index, words):
            self.minus_one_at = None
            if words[:1] and words[0].upper() == "EXEC" and len(words) > 1:
                # The caller hung up while the application ran: it started but never
                # finished, so Transfer leaves no TRANSFERSTATUS and Dial says CANCEL.
                self._record_exec(words, result)
                if words[1].lower() == "dial":
                    self.variables["DIALSTATUS"] = "CANCEL"
            return "200 result=-1"
        for i, (matcher, reply) in enumerate(self.force_replies):
            if _matches(matcher, index, words):
                del self.force_replies[i]
                return reply
        name = command_name(words)
        if name not in KNOWN:
            return "510 Invalid or unknown command"
        if self.dead and name not in DEAD_OK:
            return DEAD_MSG
        if name == "GET VARIABLE":
            if len(words) != 3:
                return self.usage()
            value = self.variables.get(words[2])
            return "200 result=0" if value is None else "200 result=1 (%s)" % value
        if name == "GET FULL":
            if len(words) not in (4, 5) or words[2].upper() != "VARIABLE":
                return self.usage()
            return "200 result=1 (%s)" % substitute(words[3], self.variables.get)
        if name == "SET VARIABLE":
            if len(words) != 4:
                return self.usage()
            result.sets.append((words[2], words[3]))
            self.variables[words[2].lstrip("_")] = words[3]
            return "200 result=1"
        if name == "VERBOSE":
            if len(words) < 2:
                return self.usage()
            result.verboses.append(words[1])
            return "200 result=1"
        if name == "EXEC":
            return self.execute(words, result)
        return "200 result=0"  # NOOP, ANSWER

    @staticmethod
    def _record_exec(words: List[str], result: AgiResult) -> None:
        """res_agi passes only the third word to the application; extra words are kept visibly."""
        result.execs.append(tuple([words[1], words[2] if len(words) > 2 else ""] + words[3:]))

    def execute(self, words: List[str], result: AgiResult) -> str:
        if len(words) < 2:
            return self.usage()
        self._record_exec(words, result)
        app = words[1]
        if self.dead:
            return "200 result=-1"
        if app.lower() == "transfer":
            self.variables["TRANSFERSTATUS"] = self.transfer_status
            self.variables["TRANSFERSTATUSPROTOCOL"] = self.transfer_protocol
            return "200 result=0"
        if app.lower() == "dial":
            self.variables["DIALSTATUS"] = self.dial_status
            return "200 result=0"
        if app.lower() in ("set", "noop", "verbose", "log"):
            return "200 result=0"
        return "200 result=-2"

    @staticmethod
    def usage() -> str:
        return ("520-Invalid command syntax.  Proper usage follows:\n"
                "Usage: (modelled)\n520 End of proper usage.")

    def hang_up(self, result: AgiResult, signal_it: bool) -> None:
        # CHANNEL(state) is left alone: a soft-hung-up channel keeps its state until it
        # is destroyed, and res_agi only marks it dead.
        self.dead = True
        if signal_it:
            self._signal(result)

    # running -----------------------------------------------------------------------------
    def _signal(self, result: AgiResult) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGHUP)
            result.sighup_sent = True

    def run(self, env: Optional[Dict[str, str]] = None, timeout: float = 15.0,
            cwd: Optional[str] = None) -> AgiResult:
        """Run the program to its end; no read waits longer than ``timeout`` seconds.

        The child's environment is ours without any SYNTHFLOW_* (so the host never leaks
        settings in) plus ``env``.  The process is always killed and reaped.
        """
        result = AgiResult()
        started = time.monotonic()
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHFLOW_")}
        child_env.update(env or {})
        proc = subprocess.Popen(self.program, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=child_env, cwd=cwd)
        self._proc = proc
        lines: "queue.Queue[Optional[bytes]]" = queue.Queue()
        raw_out: List[bytes] = []
        err: List[bytes] = []

        def pump_stdout() -> None:
            for line in iter(proc.stdout.readline, b""):
                raw_out.append(line)
                lines.put(line)
            lines.put(None)

        threads = [threading.Thread(target=pump_stdout, daemon=True),
                   threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)]
        if self.sighup_on is not None:
            threads.append(threading.Thread(target=self._watch, args=(result,), daemon=True))
        for t in threads:
            t.start()
        try:
            self._send(proc, result, self.env_block())
            index = 0
            while index < 10000:
                try:
                    line = lines.get(timeout=timeout)
                except queue.Empty:
                    result.timed_out = True
                    break
                if line is None:
                    break
                reply = self.take_command(index, line, result)
                index += 1
                self._send(proc, result, reply + "\n")
                if self.hangup_due():
                    self._signal(result)
            try:
                result.returncode = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                result.timed_out = True
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
            for t in threads[:2]:
                t.join(5)
            self._proc = None
        if result.returncode is None:
            result.returncode = proc.returncode
        result.stdout = b"".join(raw_out)
        result.stderr = b"".join(err).decode("utf-8", "replace")
        result.variables = dict(self.variables)
        result.seconds = time.monotonic() - started
        return result

    def take_command(self, index: int, line: bytes, result: AgiResult) -> str:
        """Record one command line as read from the program and return the reply for it."""
        text = line.decode("utf-8", "surrogateescape")
        text = text[:-1] if text.endswith("\n") else text
        result.wire.append(("<", text))
        cmd = Command(text, parse_args(text))
        cmd.reply = self.answer(index, cmd.words, result)
        result.commands.append(cmd)
        if not self.dead and _matches(self.hangup_after, index, cmd.words):
            self.dead = self._hangup_due = True
        return cmd.reply

    def hangup_due(self) -> bool:
        """Whether ``hangup_after`` fired on the command just answered (reported once)."""
        due, self._hangup_due = self._hangup_due, False
        return due

    def _send(self, proc: Any, result: AgiResult, text: str) -> None:
        for line in text.split("\n")[:-1]:
            result.wire.append((">", line))
        try:
            proc.stdin.write(text.encode("utf-8", "surrogateescape"))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def _watch(self, result: AgiResult) -> None:
        trigger = self.sighup_on
        try:
            fired = trigger.wait(30) if isinstance(trigger, threading.Event) else (trigger() is not False)
        except Exception:  # the trigger timed out: no hangup, and the test sees no SIGHUP
            return
        if fired:
            self.hang_up(result, signal_it=True)


def run_agi(args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
            timeout: float = 15.0, **channel: Any) -> AgiResult:
    """One call: ``run_agi(["customer_name"], env={...}, variables={...}, agi_type="SIP")``."""
    return AgiPeer(args=args, **channel).run(env=env, timeout=timeout)
