"""What ``Transfer()``'s result says about the REFER, and whether a Dial may follow.

Asterisk reports a REFER refused by the far end and a REFER accepted (202)
whose transfer failed later through the same two variables: chan_pjsip puts
the SIP code of either the REFER's final response or the NOTIFY's sipfrag
into ``TRANSFERSTATUSPROTOCOL``, and chan_sip reports every failure as 1.
No variable shows that a 202 arrived (docs/asterisk-notes.md#transfer-results).  A Dial after an accepted REFER would send Synthflow a second
INVITE for one prepared call, so a Dial may follow only results that cannot
come after a 202.
"""

from __future__ import annotations

from ._errors import HandoffError
from ._sip import TECH_PJSIP

# Responses that refuse REFER as a method or an extension.  A transferee that
# accepted the REFER does not report these in its NOTIFY, so they mean "no 202".
REFER_NOT_SUPPORTED = frozenset({405, 420, 489, 501})


def transfer_failure(status: str, protocol: str, technology: str) -> HandoffError:
    """Turn a failed ``Transfer()`` into the error the dialplan sees; ``refused`` allows a Dial.

    >>> transfer_failure('UNSUPPORTED', '0', 'PJSIP').refused
    True
    >>> e = transfer_failure('FAILURE', '501', 'PJSIP'); (e.refused, e.reason)
    (True, 'the far end does not take REFER (SIP 501)')
    >>> e = transfer_failure('FAILURE', '603', 'PJSIP'); (e.refused, e.reason)
    (False, 'Transfer FAILURE (SIP 603): Asterisk reports a refused REFER and a transfer that failed after a 202 alike, so no Dial follows')
    >>> e = transfer_failure('FAILURE', '0', 'PJSIP'); (e.refused, e.reason)
    (False, 'REFER outcome unknown: the call ended before a final NOTIFY (SIP 0); the agent may have the call')
    >>> transfer_failure('FAILURE', '1', 'SIP').refused
    False
    """
    if status == "UNSUPPORTED":
        # The channel driver has no transfer: no REFER was ever sent.
        return HandoffError("the channel cannot transfer (TRANSFERSTATUS=UNSUPPORTED)", refused=True)
    if not status:
        return HandoffError("Transfer gave no TRANSFERSTATUS")
    code = int(protocol) if protocol.isdigit() and len(protocol) <= 3 else None
    if code is None:
        return HandoffError(f"Transfer {_word(status)} with an unreadable TRANSFERSTATUSPROTOCOL")
    if code == 0:
        return HandoffError(f"REFER outcome unknown: the call ended before a final NOTIFY (SIP {code}); "
                            "the agent may have the call")
    if technology == TECH_PJSIP and code in REFER_NOT_SUPPORTED:
        return HandoffError(f"the far end does not take REFER (SIP {code})", refused=True)
    return HandoffError(f"Transfer {_word(status)} (SIP {code}): Asterisk reports a refused REFER and a "
                        "transfer that failed after a 202 alike, so no Dial follows")


def _word(status: str) -> str:
    return status if status.isalpha() and status.isupper() and len(status) <= 20 else "failed"
