"""Whether the agent handed a dial-mode caller on, by REFER, while our Dial ran.

In dial mode the agent's leg is Asterisk's own call.  When Synthflow transfers the caller
(a warm transfer REFERs to ``0875704225<id>``, which the dialplan dials back to Synthflow;
a cold one REFERs to the human's number), res_pjsip_refer blind-transfers the bridged
customer: ``Dial`` returns with ``DIALSTATUS=ANSWER``, Asterisk sets ``BLINDTRANSFER`` on
the customer's channel and has already moved it to the REFER's extension, where it goes on
once the AGI ends.  Seen the same way on Asterisk 16.28 and 22.

The extension is the far end's text: it is read through ``FILTER()`` (so no line break can
reach the AGI stream), its raw length beside it, and named only when it passed both.
"""

from __future__ import annotations

import re
from typing import Mapping

WARM_PREFIX = "0875704225"
TARGET_CHARACTERS = "0-9A-Za-z+*#._"
_TARGET = re.compile(r"[0-9A-Za-z+*#._]{1,64}\Z")
RAW_LENGTH = "LEN(${EXTEN})"
FILTERED_EXTEN = "FILTER(%s,${EXTEN})" % TARGET_CHARACTERS
# What the program reads after Dial, in one GET FULL VARIABLE (the shell waiter reads the same).
AFTER_DIAL = ("DIALSTATUS", "BLINDTRANSFER", "CONTEXT", RAW_LENGTH, FILTERED_EXTEN)


def agent_transfer(values: Mapping[str, str], context: str, extension: str) -> str:
    """``warm <target>``, ``cold <target>`` (or the kind alone) after a REFER, '' otherwise.

    ``context`` and ``extension`` are where the AGI ran: a BLINDTRANSFER left over from an
    earlier transfer of the same channel, which did not move it, is not the agent's.

    >>> moved = {"BLINDTRANSFER": "PJSIP/synthflow-00000001", "CONTEXT": "from-synthflow"}
    >>> agent_transfer({**moved, RAW_LENGTH: "18", FILTERED_EXTEN: "0875704225f3a9c1e7"}, "in", "s")
    'warm 0875704225f3a9c1e7'
    >>> agent_transfer({**moved, RAW_LENGTH: "12", FILTERED_EXTEN: "+14155550199"}, "in", "s")
    'cold +14155550199'
    >>> agent_transfer({**moved, RAW_LENGTH: "14", FILTERED_EXTEN: "+14155550199"}, "in", "s")
    'cold'
    >>> agent_transfer({"BLINDTRANSFER": "", "CONTEXT": "in", RAW_LENGTH: "1", FILTERED_EXTEN: "s"}, "in", "s")
    ''
    >>> agent_transfer({"BLINDTRANSFER": "PJSIP/x-1", "CONTEXT": "in", RAW_LENGTH: "1", FILTERED_EXTEN: "s"}, "in", "s")
    ''
    """
    if not values["BLINDTRANSFER"]:
        return ""
    target = values[FILTERED_EXTEN]
    if values["CONTEXT"] == context and target == extension:
        return ""
    kind = "warm" if target.startswith(WARM_PREFIX) else "cold"
    if _TARGET.match(target) and values[RAW_LENGTH] == str(len(target)):
        return f"{kind} {target}"
    return kind
