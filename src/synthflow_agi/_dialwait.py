"""Classic AGI in dial mode: hand the long wait inside ``Dial`` to a tiny shell process.

In dial mode the AGI waits inside ``EXEC Dial`` for the whole AI
conversation.  A classic AGI process with requests, phonenumbers and pyst2
loaded holds ~18 MB of private memory, so fifty bridged calls would pin
close to 1 GB.  Once the call is prepared, the Python process replaces
itself (``execv``, same PID, same AGI pipes, so Asterisk notices nothing)
with ``/bin/sh`` running the script below, which holds a few hundred KB.

The script speaks exactly the lines the Python program would: ``EXEC Dial``,
the length-prefixed read of ``DIALSTATUS``, then ``SYNTHFLOW_STATUS``, ``SYNTHFLOW_ERROR``
and one ``VERBOSE``, and it writes the one log line of the call.  Every text
it prints is either prepared and quoted here or a ``DIALSTATUS`` word it
checks against ``[A-Z]``, so nothing from the channel reaches the wire raw.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from typing import Mapping

from . import _wire
from ._agent_transfer import AFTER_DIAL
from ._logging import logfmt

SHELL = "/bin/sh"

# Arguments: $1 the quoted Dial argument, $2 the call id, $3 and $4 the log
# line's fields before and after its status, $5 the start time in ms since the
# epoch, $6 the log target, $7 the SYNTHFLOW_ERROR for a SUCCESS (set when the
# call went to the agent without a prepared call) quoted for AGI, $8 unquoted,
# $9 as a logfmt value, $10 the quoted GET FULL VARIABLE expression read after
# Dial (DIALSTATUS, then what tells an agent's transfer: _agent_transfer.py),
# $11 and $12 the context and extension the AGI ran in.  The shell's own error
# texts hold no quote or backslash.
SCRIPT = r"""
trap '' HUP
# Lengths are bytes (LEN is strlen), whatever the shell and the locale.
LC_ALL=C
export LC_ALL
reply() {
  IFS= read -r line || exit 0
  line=${line%"$CR"}
}
CR=$(printf '\r')
printf 'EXEC Dial %s\n' "$1"
reply
hung_up=0
case $line in "200 result=-1"*) hung_up=1 ;; "200 "*) ;; *) hung_up=1 ;; esac
printf 'GET FULL VARIABLE %s\n' "${10}"
reply
rest=
case $line in
  "200 result=1 ("*")") rest=${line#"200 result=1 ("}; rest=${rest%")"} ;;
esac
# Each value comes length-prefixed, as the Python reader asks for it: "6:ANSWER...".
take() {
  value= n=${rest%%:*}
  case $n in ''|*[!0-9]*) rest=; return 1 ;; esac
  rest=${rest#*:}
  value=$(printf "%.${n}s" "$rest")
  [ "${#value}" = "$n" ] || { rest=; return 1; }
  rest=${rest#"$value"}
}
if take; then dialstatus=$value; else dialstatus=UNREADABLE; fi
case $dialstatus in *[!A-Z]*) dialstatus=UNREADABLE ;; esac
[ ${#dialstatus} -le 20 ] || dialstatus=UNREADABLE
agent_transfer=
if take && blind=$value && take && context=$value && take && raw_length=$value && take && exten=$value &&
   [ -n "$blind" ] && ! { [ "$context" = "${11}" ] && [ "$exten" = "${12}" ]; }; then
  case $exten in 0875704225*) agent_transfer=warm ;; *) agent_transfer=cold ;; esac
  case $exten in
    ''|*[!0-9A-Za-z+*#._]*) ;;
    *) [ "${#exten}" -gt 64 ] || [ "$raw_length" != "${#exten}" ] || agent_transfer="$agent_transfer $exten" ;;
  esac
fi
if [ "$dialstatus" = ANSWER ]; then
  status=SUCCESS error=$8
elif [ $hung_up = 1 ]; then
  status=HANGUP error="caller hung up during Dial (DIALSTATUS=${dialstatus:-unset})"
elif [ -n "$dialstatus" ]; then
  status=TRANSFER_FAILED error="Dial $dialstatus"
else
  status=TRANSFER_FAILED error="Dial gave no DIALSTATUS"
fi
printf 'SET VARIABLE "SYNTHFLOW_STATUS" "%s"\n' "$status"
reply
if [ "$status" = SUCCESS ]; then
  printf 'SET VARIABLE "SYNTHFLOW_ERROR" %s\n' "$7"
else
  printf 'SET VARIABLE "SYNTHFLOW_ERROR" "%s"\n' "$error"
fi
reply
if [ "$status" = SUCCESS ] && [ -n "$agent_transfer" ]; then
  printf 'SET VARIABLE "SYNTHFLOW_AGENT_TRANSFER" "%s"\n' "$agent_transfer"
  reply
fi
printf 'SET VARIABLE "CDR(synthflow_status)" "%s"\n' "$status"
reply
summary="synthflow-agi: $status call_id=$2"
[ -z "$error" ] || summary="$summary ($error)"
[ "$status" != SUCCESS ] || [ -z "$agent_transfer" ] || summary="$summary (agent transfer: $agent_transfer)"
printf 'VERBOSE "%s" 1\n' "$summary"
reply
now=$(date +%s%3N 2>/dev/null)
case $now in *[!0-9]*|'') total=0 ;; *) total=$((now - $5)) ;; esac
logged_error="\"$error\""
[ "$status" != SUCCESS ] || logged_error=$9
record="$3 status=$status $4 total_ms=$total.0 error=$logged_error"
case $6 in
  syslog|both) logger -t "synthflow-agi[$$]" -p local0.info -- "$record" 2>/dev/null || [ "$6" = both ] ||
                 printf '%s\n' "synthflow-agi[$$] INFO $record" >&2 ;;
esac
case $6 in syslog) ;; *) printf '%s\n' "synthflow-agi[$$] INFO $record" >&2 ;; esac
exit 0
"""


@dataclasses.dataclass(frozen=True)
class DialWait:
    """Everything the shell needs to finish a prepared dial-mode call."""

    arguments: str
    call_id: str
    log_head: str
    log_tail: str
    started_ms: int
    log_target: str
    success_error: str = ""
    context: str = ""
    extension: str = ""

    def argv(self) -> list:
        """The shell's argument vector; the Dial argument is quoted as the AGI wire needs."""
        return [SHELL, "-c", SCRIPT, "synthflow-agi-dial", _wire.quote(self.arguments), self.call_id,
                self.log_head, self.log_tail, str(self.started_ms), self.log_target,
                _wire.quote(self.success_error), self.success_error, logfmt(self.success_error),
                '"%s"' % _wire.batch_expression(AFTER_DIAL), self.context, self.extension]


def usable(environ: Mapping[str, str]) -> bool:
    """Whether this host can run the waiter (a POSIX shell where we expect it)."""
    return environ.get("SYNTHFLOW_DIAL_WAITER", "sh") != "python" and os.access(SHELL, os.X_OK)


def become_waiter(wait: DialWait) -> None:
    """Replace this process with the shell waiter; returns only if exec failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    # SIGHUP is Asterisk's hangup notice to a classic AGI; the default action would
    # kill the shell before it sets the status, and an ignored signal stays ignored.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.execv(SHELL, wait.argv())


def started_ms(elapsed_seconds: float) -> int:
    """The wall-clock start of the call in ms, from the time it has taken so far."""
    return int((time.time() - elapsed_seconds) * 1000)
