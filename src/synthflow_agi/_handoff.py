"""The hand-off of one answered call: the pure core shared by classic AGI and FastAGI.

It talks to Asterisk only through ``Channel`` and to the outside world only
through ``Edges``; it imports neither pyst2, requests nor phonenumbers.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Callable, Dict, List, NamedTuple, Optional, Protocol, Sequence, Tuple

from . import _headers, _sip
from ._agent_transfer import AFTER_DIAL, agent_transfer
from ._call import CallInfo, Outcome, PreparedCall, PrepareRequest
from ._errors import ApiError, ChannelHungUp, ConfigError, HandoffError, NotAnsweredError, SynthflowAgiError
from ._refer import transfer_failure
from ._settings import PER_CALL_KEYS, Base, Settings, resolve
from ._status import Status
from ._text import printable, redact

# Dialplan variable names, or a function call such as CALLERID(name).
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\([A-Za-z0-9_,.-]*\))?\Z")
_LITERAL_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
MAX_ERROR_LENGTH = 240
_CALL_READS = ("CHANNEL(linkedid)", "CHANNEL(state)") + tuple(f"SYNTHFLOW_{key.upper()}" for key in PER_CALL_KEYS)
_LOG = logging.getLogger("synthflow_agi")


class Channel(Protocol):
    """What the core asks of an Asterisk channel: read and set variables, run applications, log."""

    def get_variable(self, name: str) -> str: ...

    def get_variables(self, names: Sequence[str]) -> Dict[str, str]: ...

    def set_variable(self, name: str, value: str) -> None: ...

    def exec(self, application: str, arguments: str) -> int: ...

    def verbose(self, message: str, level: int = 1) -> None: ...


class PrepareApi(Protocol):
    """Registers a call at Synthflow."""

    def prepare(self, request: PrepareRequest, timeout: float) -> PreparedCall: ...


@dataclasses.dataclass(frozen=True)
class Edges:
    """The impure parts the core is handed: the API, number parsing and a clock."""

    api_for: Callable[[Settings], PrepareApi]
    to_e164: Callable[[str, str, str], str]
    clock: Callable[[], float]
    # True when the caller will run a prepared Dial in a lighter process (classic AGI).
    delegate_dial: bool = False


def hand_off(channel: Channel, call: CallInfo, base: Base, edges: Edges) -> Outcome:
    """Run one hand-off and publish its outcome on the channel; never raises."""
    started = edges.clock()
    outcome = Outcome()

    def run() -> None:
        _run(channel, call, base, edges, outcome)
        outcome.status = Status.SUCCESS
        if not outcome.degraded:
            outcome.error = ""

    _settle(run, outcome, base.secrets)
    outcome.total_ms = (edges.clock() - started) * 1000.0
    if outcome.status is Status.SUCCESS and outcome.pending_dial:
        return outcome
    outcome.pending_dial = ""
    publish(channel, outcome)
    return outcome


def finish_dial(channel: Channel, outcome: Outcome, edges: Edges, call: Optional[CallInfo] = None) -> Outcome:
    """Run a Dial that ``hand_off`` left pending, in this process, and publish the outcome."""
    started = edges.clock() - outcome.total_ms / 1000.0
    _settle(lambda: _run_dial(channel, outcome.pending_dial, call, outcome), outcome, ())
    outcome.pending_dial = ""
    outcome.total_ms = (edges.clock() - started) * 1000.0
    publish(channel, outcome)
    return outcome


def _settle(step: Callable[[], None], outcome: Outcome, secrets: Sequence[str]) -> None:
    """Run a step of the hand-off; whatever ends it becomes the outcome's status and a clean error."""
    try:
        step()
    except ChannelHungUp as exc:
        outcome.status, outcome.error = Status.HANGUP, str(exc)
    except SynthflowAgiError as exc:
        outcome.status, outcome.error = exc.status, exc.reason
    except Exception as exc:  # noqa: BLE001 - a bug must still leave the dialplan a status
        _LOG.exception("internal error during the hand-off")
        outcome.status, outcome.error = Status.INTERNAL_ERROR, f"internal error ({type(exc).__name__})"
    # Redact before cutting: a cut could leave a prefix of the token that no longer matches.
    outcome.error = printable(redact(outcome.error, secrets))[:MAX_ERROR_LENGTH]


def _run(channel: Channel, call: CallInfo, base: Base, edges: Edges, outcome: Outcome) -> None:
    settings, request, context = _plan(channel, call, base, edges, outcome)
    # Registering a call that will never arrive costs the customer at Synthflow.
    _require_caller(channel, "before the API call")
    xei = _register(channel, request, settings, edges, outcome) + context.xei
    _require_caller(channel, "before the hand-off")
    if settings.mode == "dial" or (settings.mode == "auto" and not _sip.can_transfer(call.technology)):
        _dial(channel, call, settings, outcome, xei, context.headers, edges.delegate_dial)
        return
    try:
        _transfer(channel, call, outcome, xei, context.headers)
    except HandoffError as exc:
        if settings.mode != "auto" or not exc.refused:
            raise
        outcome.mode = "auto:dial"
        _dial(channel, call, settings, outcome, xei, context.headers, edges.delegate_dial)


class _Context(NamedTuple):
    xei: str  # the E. and O. tokens; S. joins once the API has answered
    headers: List[_headers.Header]


def _plan(channel: Channel, call: CallInfo, base: Base, edges: Edges, outcome: Outcome):
    """Read the call, resolve its settings, and check everything that will go near SIP."""
    # Every AGI command is a round trip through the channel's thread: read the
    # call's state and all per-call settings at once.
    values = channel.get_variables(_CALL_READS)
    outcome.linkedid = values["CHANNEL(linkedid)"]
    state = values["CHANNEL(state)"]
    if state != "Up":
        raise NotAnsweredError(f"channel state is {state or 'unknown'}, not Up")
    if not base.usable:
        raise ConfigError(base.error)
    settings = resolve(base.raw, {key: values[f"SYNTHFLOW_{key.upper()}"] for key in PER_CALL_KEYS})
    outcome.mode = settings.mode
    sources = custom_variable_sources(settings.variables, call.arguments)
    from_channel = channel.get_variables([key for key, literal in sources if literal is None])
    custom = {key: from_channel[key] if literal is None else literal for key, literal in sources}
    region = settings.default_region
    caller = edges.to_e164(settings.from_number or call.caller_number, region, "caller")
    agent = edges.to_e164(settings.agent_number, region, "agent")
    outcome.target = _sip.agent_uri(agent, settings.sip_host, settings.sip_port, settings.sip_transport)
    if settings.mode == "transfer" and not _sip.can_transfer(call.technology):
        _sip.require_transfer(call.technology)
    external_id = settings.external_id or _default_external_id(outcome.linkedid, call)
    xei = _headers.x_ei("", external_id, settings.diversion)
    headers, left_out = _headers.context_headers(settings.headers, custom) if settings.headers else ([], [])
    for reason in left_out:
        _LOG.warning("uniqueid=%s header left out: %s", call.uniqueid, reason)
    request = PrepareRequest(caller, agent, settings.model_id, settings.workspace_id, custom)
    return settings, request, _Context(xei, headers)


def _default_external_id(linkedid: str, call: CallInfo) -> str:
    """The linkedid as the E. value; one X-EI cannot carry is left out (logged), not a reason to fail."""
    try:
        return _headers.token_value("linkedid", linkedid) if linkedid else ""
    except ConfigError as exc:
        _LOG.warning("uniqueid=%s no E. token: %s", call.uniqueid, exc.reason)
        return ""


def _register(channel: Channel, request: PrepareRequest, settings: Settings, edges: Edges, outcome: Outcome) -> str:
    """Prepare the call at Synthflow; return its S. token ('' when handing off without one)."""
    api_started = edges.clock()
    try:
        prepared = edges.api_for(settings).prepare(request, settings.timeout)
        outcome.call_id = _sip.validate_call_id(prepared.call_id)
    except ApiError as exc:
        if not (exc.unavailable and settings.on_api_failure == "direct"):
            raise
        # The agent can take the call without the prepared context: the E. token and
        # the X- headers still carry it.  The dialplan and the log can tell.
        outcome.degraded, outcome.error = True, f"handed off without S.: {exc.reason}"
    finally:
        outcome.api_ms = (edges.clock() - api_started) * 1000.0
    channel.set_variable("SYNTHFLOW_CALL_ID", outcome.call_id)
    if not outcome.call_id:
        return ""
    # While the channel is up: cdr_custom, cdr_adaptive_odbc and friends store it.
    channel.set_variable("CDR(synthflow_call_id)", outcome.call_id)
    return _headers.x_ei(outcome.call_id)


def _require_caller(channel: Channel, when: str) -> None:
    if getattr(channel, "hung_up", False):
        raise ChannelHungUp(f"caller hung up {when}")


def _transfer(channel: Channel, call: CallInfo, outcome: Outcome, xei: str, headers) -> None:
    destination = _sip.transfer_destination(call.technology, outcome.target, _headers.uri_headers(xei, headers))
    if call.technology == _sip.TECH_PJSIP and xei:
        # No released Asterisk carries this on the REFER (its transfer module skips
        # header supplements), but users look for it and it is harmless; the
        # Refer-To URI does the work.
        channel.set_variable("PJSIP_HEADER(add,X-EI)", xei)
    hung_up = _run_blocking(channel, "Transfer", destination)
    status = channel.get_variable("TRANSFERSTATUS")
    if status == "SUCCESS":
        return
    failure = transfer_failure(status, channel.get_variable("TRANSFERSTATUSPROTOCOL"), call.technology)
    if hung_up:
        raise ChannelHungUp(f"caller hung up during Transfer ({failure.reason})")
    raise failure


def _dial(channel: Channel, call: CallInfo, settings: Settings, outcome: Outcome, xei: str, headers,
          delegate: bool) -> None:
    # The pre-dial handler runs on the new channel, so the values must be
    # inheritable: a plain variable arrives empty on the outgoing channel.
    for name, value in _headers.dial_variables(xei, headers):
        channel.set_variable(name, value)
    arguments = _sip.dial_arguments(settings.dial_technology, settings.dial_endpoint, outcome.target,
                                    settings.dial_timeout, settings.predial_handler)
    # Dial sets DIALSTATUS; an older value (from a Dial before this program) is cleared, so
    # that the dialplan can trust "DIALSTATUS=ANSWER with SYNTHFLOW_TARGET set but no status":
    # the agent answered, and this program ended during the call without a verdict.
    channel.set_variable("DIALSTATUS", "")
    channel.set_variable("SYNTHFLOW_TARGET", outcome.target)
    if outcome.degraded:
        channel.set_variable("SYNTHFLOW_DEGRADED", "1")
    outcome.ids_published = True
    if delegate:
        outcome.pending_dial = arguments
        return
    _run_dial(channel, arguments, call, outcome)


def _run_dial(channel: Channel, arguments: str, call: Optional[CallInfo], outcome: Outcome) -> None:
    hung_up = _run_blocking(channel, "Dial", arguments)
    after = channel.get_variables(AFTER_DIAL)
    status = after["DIALSTATUS"]
    if status == "ANSWER":
        if call is not None:
            outcome.agent_transfer = agent_transfer(after, call.context, call.extension)
        return
    if hung_up:
        raise ChannelHungUp(f"caller hung up during Dial (DIALSTATUS={status or 'unset'})")
    raise HandoffError(f"Dial {status or 'gave no DIALSTATUS'}")


def _run_blocking(channel: Channel, application: str, arguments: str) -> bool:
    """Run Transfer or Dial; return whether the caller hung up while it ran.

    A successful hand-off ends with the caller's leg hung up, so a hangup
    here is not yet a verdict: the status variable read afterwards decides.
    """
    try:
        channel.exec(application, arguments)
    except ChannelHungUp as exc:
        if exc.before_exec:
            raise
        return True
    return False


def custom_variable_sources(names: Tuple[str, ...], arguments: Tuple[str, ...]) -> List[Tuple[str, Optional[str]]]:
    """Return (key, literal) pairs; a None literal means "read the channel variable named key".

    >>> custom_variable_sources(('lead_id',), ('customer_name', 'account_id=A12345', 'note=a=b', ''))
    [('lead_id', None), ('customer_name', None), ('account_id', 'A12345'), ('note', 'a=b')]
    >>> custom_variable_sources((), ('bad name',))
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: custom variable 'bad name' is not a channel variable name
    """
    sources: dict = {}
    for item in names + arguments:
        if not item:
            continue
        key, sep, literal = item.partition("=")
        if sep:
            if not _LITERAL_KEY.match(key):
                raise ConfigError(f"custom variable key {key[:40]!r} is not a plain name")
            sources[key] = literal
        elif _VARIABLE_NAME.match(item):
            sources[item] = None
        else:
            raise ConfigError(f"custom variable {item[:40]!r} is not a channel variable name")
    return list(sources.items())


def _set_all(channel: Channel, values) -> None:
    for name, value in values:
        channel.set_variable(name, value)


def publish(channel: Channel, outcome: Outcome) -> None:
    """Set the output variables and one console line, as far as the channel still allows."""
    values = (
        ("SYNTHFLOW_STATUS", outcome.status.value),
        ("SYNTHFLOW_CALL_ID", outcome.call_id),
        ("SYNTHFLOW_ERROR", outcome.error),
        ("SYNTHFLOW_TARGET", outcome.target),
    )
    if outcome.ids_published:
        values = values[0:1] + values[2:3]
    elif outcome.degraded:
        values += (("SYNTHFLOW_DEGRADED", "1"),)
    if outcome.agent_transfer:
        values += (("SYNTHFLOW_AGENT_TRANSFER", outcome.agent_transfer),)
    values += (("CDR(synthflow_status)", outcome.status.value),)
    try:
        _set_all(channel, values)
        summary = f"synthflow-agi: {outcome.status.value}"
        if outcome.call_id:
            summary += f" call_id={outcome.call_id}"
        if outcome.error:
            summary += f" ({outcome.error})"
        if outcome.agent_transfer:
            summary += f" (agent transfer: {outcome.agent_transfer})"
        channel.verbose(summary, 1)
    except (ChannelHungUp, SynthflowAgiError):
        # The AGI link itself is gone; the log line still records the outcome.
        pass
