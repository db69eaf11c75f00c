"""The hand-off core's texts and counts pinned exactly: dial results, hangups, degraded hand-offs, timings."""

from __future__ import annotations

import itertools
import logging

import pytest

from synthflow_agi._agent_transfer import FILTERED_EXTEN, RAW_LENGTH
from synthflow_agi._call import CallInfo, Outcome
from synthflow_agi._errors import ApiError, ApiUnavailableError, ChannelHungUp, ConfigError
from synthflow_agi._handoff import MAX_ERROR_LENGTH, Edges, custom_variable_sources, finish_dial, hand_off, publish
from synthflow_agi._status import Status
from tests.unit.test_handoff import BASE, CALL_ID, MemoryApi, MemoryChannel

TARGET = "sip:+15551234567@sip.example:32681"
DIAL_ARGS = "PJSIP/synthflow/%s,30,b(synthflow-predial^s^1)" % TARGET


class _Collect(logging.Handler):
    def __init__(self, into):
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record):
        self.into.append(record)


@pytest.fixture
def log_records():
    """Every record of the synthflow_agi logger during the test.

    caplog listens on the root logger, which sees nothing once an earlier test has run
    the program's own logging set-up (it stops propagation), so this listens on the logger.
    """
    records, logger = [], logging.getLogger("synthflow_agi")
    handler, level = _Collect(records), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)



class HangingChannel(MemoryChannel):
    """A channel whose caller is gone from the moment ``hung_up_after`` variables have been set."""

    def __init__(self, *args, hung_up_after=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hung_up_after = hung_up_after
        self.sets = 0

    @property
    def hung_up(self):
        return self.hung_up_after is not None and self.sets >= self.hung_up_after

    def set_variable(self, name, value):
        self.sets += 1
        super().set_variable(name, value)


class BeforeExecHangup(MemoryChannel):
    """A channel gone before the application could even start."""

    def exec(self, application, arguments):
        self.execs.append((application, arguments))
        raise ChannelHungUp("channel gone", before_exec=True)


def edges_for(api, delegate=False, step=0.001):
    ticks = itertools.count()
    return Edges(api_for=lambda settings: api, to_e164=lambda raw, region, role: raw if raw.startswith("+") else "+1" + raw,
                 clock=lambda: next(ticks) * step, delegate_dial=delegate)


def run(channel, api=None, technology="PJSIP", delegate=False, base=BASE, arguments=()):
    api = api or MemoryApi()
    call = CallInfo("U1", technology, "2025550143", arguments, context="from-pstn", extension="100")
    return hand_off(channel, call, base, edges_for(api, delegate)), api


def dial_channel(**kwargs):
    variables = kwargs.pop("variables", {})
    return MemoryChannel({"SYNTHFLOW_MODE": "dial", **variables}, **kwargs)


@pytest.mark.parametrize("dial, error", [("BUSY", "Dial BUSY"), ("", "Dial gave no DIALSTATUS")])
def test_dial_failure_texts(dial, error):
    """A Dial that was not answered names its DIALSTATUS, or says there was none."""
    channel = dial_channel(dial=dial)
    outcome, _ = run(channel)
    assert (outcome.status, outcome.error) == (Status.TRANSFER_FAILED, error)
    assert channel.variables["SYNTHFLOW_ERROR"] == error
    assert channel.verbose_lines == ["synthflow-agi: TRANSFER_FAILED call_id=%s (%s)" % (CALL_ID, error)]


@pytest.mark.parametrize("dial, error", [
    ("BUSY", "caller hung up during Dial (DIALSTATUS=BUSY)"),
    ("", "caller hung up during Dial (DIALSTATUS=unset)"),
])
def test_hangup_during_a_failed_dial_texts(dial, error):
    """A caller leaving while the Dial fails gives HANGUP naming the DIALSTATUS."""
    channel = dial_channel(dial=dial, hangup_on_exec="Dial")
    outcome, _ = run(channel)
    assert (outcome.status, outcome.error) == (Status.HANGUP, error)


def test_a_hangup_before_the_dial_started_is_hangup_with_its_text():
    """A channel gone before Dial could start is HANGUP with the channel's own text, not a verdict on DIALSTATUS."""
    channel = BeforeExecHangup({"SYNTHFLOW_MODE": "dial"})
    outcome, _ = run(channel)
    assert (outcome.status, outcome.error) == (Status.HANGUP, "channel gone")
    assert channel.execs == [("Dial", DIAL_ARGS)]


def test_an_answered_dial_records_no_agent_transfer_without_a_blind_transfer():
    """DIALSTATUS=ANSWER with no BLINDTRANSFER is plain SUCCESS, published with its id and no error."""
    channel = dial_channel()
    outcome, _ = run(channel)
    assert (outcome.status, outcome.error, outcome.agent_transfer) == (Status.SUCCESS, "", "")
    assert channel.verbose_lines == ["synthflow-agi: SUCCESS call_id=%s" % CALL_ID]
    assert channel.variables["SYNTHFLOW_TARGET"] == TARGET
    assert channel.variables["CDR(synthflow_status)"] == "SUCCESS"
    assert channel.variables["CDR(synthflow_call_id)"] == CALL_ID


def test_hangup_during_a_failed_transfer_names_the_failure():
    """HANGUP after a refused REFER carries the refusal's text in brackets."""
    channel = MemoryChannel(transfer="FAILURE", hangup_on_exec="Transfer", protocol="0")
    outcome, _ = run(channel)
    assert outcome.status is Status.HANGUP
    assert outcome.error == ("caller hung up during Transfer (REFER outcome unknown: the call ended before a final "
                             "NOTIFY (SIP 0); the agent may have the call)")


@pytest.mark.parametrize("after, error, posts", [
    (0, "caller hung up before the API call", 0),
    (1, "caller hung up before the hand-off", 1),
])
def test_a_caller_gone_before_each_step(after, error, posts):
    """A caller who left before the API call costs no registration; one who left after it gets no hand-off."""
    channel = HangingChannel(hung_up_after=after)
    outcome, api = run(channel)
    assert (outcome.status, outcome.error) == (Status.HANGUP, error)
    assert len(api.requests) == posts
    assert channel.execs == []


@pytest.mark.parametrize("state, error", [("Ringing", "channel state is Ringing, not Up"),
                                          ("", "channel state is unknown, not Up")])
def test_not_answered_texts(state, error):
    """The channel state is named, or called unknown when Asterisk gave none."""
    outcome, _ = run(MemoryChannel({"CHANNEL(state)": state}))
    assert (outcome.status, outcome.error) == (Status.NOT_ANSWERED, error)


def test_a_degraded_dial_publishes_the_reason_and_the_flag():
    """on_api_failure=direct with a 5xx dials without S., SUCCESS with 'handed off without S.: <reason>'."""
    channel = dial_channel(variables={"SYNTHFLOW_ON_API_FAILURE": "direct"})
    outcome, api = run(channel, api=MemoryApi(error=ApiUnavailableError("prepare_inbound answered HTTP 503")))
    assert (outcome.status, outcome.degraded) == (Status.SUCCESS, True)
    assert outcome.error == "handed off without S.: prepare_inbound answered HTTP 503"
    assert channel.variables["SYNTHFLOW_DEGRADED"] == "1"
    assert channel.variables["SYNTHFLOW_CALL_ID"] == ""
    assert channel.variables["_SYNTHFLOW_XEI"] == "E.L1;"
    assert "CDR(synthflow_call_id)" not in channel.variables
    assert channel.variables["SYNTHFLOW_ERROR"] == outcome.error
    assert channel.verbose_lines == ["synthflow-agi: SUCCESS (handed off without S.: prepare_inbound answered HTTP 503)"]


def test_a_degraded_transfer_publishes_the_flag_at_the_end():
    """In transfer mode the degraded flag is published with the outcome, once."""
    channel = MemoryChannel({"SYNTHFLOW_ON_API_FAILURE": "direct"})
    outcome, _ = run(channel, api=MemoryApi(error=ApiUnavailableError("down")))
    assert outcome.status is Status.SUCCESS
    assert channel.variables["SYNTHFLOW_DEGRADED"] == "1"
    assert channel.execs == [("Transfer", "PJSIP/<%s?X-EI=E.L1%%3B>" % TARGET)]


def test_a_refusal_is_never_degraded():
    """A plain API error (not unavailable) stops the call even with on_api_failure=direct."""
    channel = MemoryChannel({"SYNTHFLOW_ON_API_FAILURE": "direct"})
    outcome, _ = run(channel, api=MemoryApi(error=ApiError("prepare_inbound answered HTTP 404")))
    assert (outcome.status, outcome.error, outcome.degraded) == (Status.API_ERROR, "prepare_inbound answered HTTP 404", False)
    assert channel.execs == []
    assert "SYNTHFLOW_DEGRADED" not in channel.variables


def test_errors_are_cut_after_redaction_at_the_limit():
    """An error longer than MAX_ERROR_LENGTH is cut to exactly that many characters, control characters blanked."""
    outcome, _ = run(MemoryChannel(), api=MemoryApi(error=ApiError("a\rb" + "x" * 500)))
    assert outcome.error == ("a b" + "x" * 500)[:MAX_ERROR_LENGTH]
    assert len(outcome.error) == MAX_ERROR_LENGTH == 240


def test_timings_come_from_the_clock():
    """api_ms spans exactly the prepare call and total_ms the whole hand-off, on the given clock."""
    outcome, _ = run(MemoryChannel())
    # The clock ticks 1 ms per reading: start, API start, API end, end.
    assert outcome.api_ms == pytest.approx(1.0)
    assert outcome.total_ms == pytest.approx(3.0)


def test_a_delegated_dial_waits_for_finish_dial():
    """With delegate_dial the Dial is left pending, unpublished; finish_dial runs it and publishes once."""
    channel = dial_channel()
    api = MemoryApi()
    call = CallInfo("U1", "PJSIP", "2025550143", (), context="from-pstn", extension="100")
    edges = edges_for(api, delegate=True)
    outcome = hand_off(channel, call, BASE, edges)
    assert (outcome.status, outcome.pending_dial) == (Status.SUCCESS, DIAL_ARGS)
    assert channel.execs == [] and channel.verbose_lines == []
    assert channel.variables["SYNTHFLOW_TARGET"] == TARGET and channel.variables["SYNTHFLOW_CALL_ID"] == CALL_ID
    total_before = outcome.total_ms
    finished = finish_dial(channel, outcome, edges, call)
    assert finished is outcome and outcome.pending_dial == ""
    assert channel.execs == [("Dial", DIAL_ARGS)]
    assert channel.verbose_lines == ["synthflow-agi: SUCCESS call_id=%s" % CALL_ID]
    assert outcome.total_ms == pytest.approx(total_before + 1.0)


def test_a_delegated_dial_that_fails_is_published_by_finish_dial():
    """finish_dial turns a busy Dial into TRANSFER_FAILED and publishes status and error only."""
    channel = dial_channel(dial="BUSY")
    call = CallInfo("U1", "PJSIP", "2025550143", ())
    edges = edges_for(MemoryApi(), delegate=True)
    outcome = finish_dial(channel, hand_off(channel, call, BASE, edges), edges, call)
    assert (outcome.status, outcome.error) == (Status.TRANSFER_FAILED, "Dial BUSY")
    assert channel.variables["SYNTHFLOW_STATUS"] == "TRANSFER_FAILED"


def test_a_failure_before_a_delegated_dial_is_published_at_once():
    """A hand-off that fails never leaves a Dial pending, even with delegate_dial."""
    channel = dial_channel()
    outcome, _ = run(channel, api=MemoryApi(error=ApiError("no")), delegate=True)
    assert (outcome.status, outcome.pending_dial) == (Status.API_ERROR, "")
    assert channel.variables["SYNTHFLOW_STATUS"] == "API_ERROR"


def test_publish_after_ids_went_out_sets_only_status_and_error():
    """Once SYNTHFLOW_CALL_ID and SYNTHFLOW_TARGET were published before Dial, publish sets status, error, CDR."""
    channel = MemoryChannel()
    publish(channel, Outcome(status=Status.SUCCESS, call_id="c-1", target="t", ids_published=True,
                             agent_transfer="warm 0875704225abc"))
    assert {k: v for k, v in channel.variables.items() if k.startswith(("SYNTHFLOW", "CDR"))} == {
        "SYNTHFLOW_STATUS": "SUCCESS", "SYNTHFLOW_ERROR": "", "SYNTHFLOW_AGENT_TRANSFER": "warm 0875704225abc",
        "CDR(synthflow_status)": "SUCCESS"}
    assert channel.verbose_lines == ["synthflow-agi: SUCCESS call_id=c-1 (agent transfer: warm 0875704225abc)"]


def test_publish_survives_a_channel_that_is_gone():
    """A channel whose link is gone takes no more variables; publish neither raises nor logs a line there."""

    class Gone(MemoryChannel):
        def set_variable(self, name, value):
            raise ChannelHungUp("gone")

    channel = Gone()
    publish(channel, Outcome(status=Status.HANGUP, error="x"))
    assert channel.verbose_lines == []


@pytest.mark.parametrize("item, text", [
    ("bad name", "custom variable 'bad name' is not a channel variable name"),
    ("x" * 50, None),
    ("%s y" % ("v" * 50), "custom variable '%s' is not a channel variable name" % ("v" * 40)),
    ("bad key=1", "custom variable key 'bad key' is not a plain name"),
    ("%s k=1" % ("k" * 50), "custom variable key '%s' is not a plain name" % ("k" * 40)),
])
def test_custom_variable_refusals(item, text):
    """An unusable name or key is refused with its first 40 characters quoted."""
    if text is None:
        assert custom_variable_sources((), (item,)) == [(item, None)]
        return
    with pytest.raises(ConfigError) as caught:
        custom_variable_sources((), (item,))
    assert caught.value.reason == text


def test_an_odd_linkedid_is_left_out_of_x_ei():
    """A linkedid X-EI cannot carry is left out (E. absent) and the call goes on."""
    channel = MemoryChannel({"CHANNEL(linkedid)": "a;b"})
    outcome, _ = run(channel)
    assert outcome.status is Status.SUCCESS
    assert channel.variables["PJSIP_HEADER(add,X-EI)"] == "S.%s;" % CALL_ID


def test_an_explicit_external_id_beats_the_linkedid():
    """SYNTHFLOW_EXTERNAL_ID is the E. value when set."""
    channel = MemoryChannel({"SYNTHFLOW_EXTERNAL_ID": "crm-42"})
    run(channel)
    assert channel.variables["PJSIP_HEADER(add,X-EI)"] == "S.%s;E.crm-42;" % CALL_ID


MOVED = {"BLINDTRANSFER": "PJSIP/synthflow-00000001", "CONTEXT": "from-synthflow",
         RAW_LENGTH: "13", FILTERED_EXTEN: "0875704225abc"}
LEFT_OVER = {"BLINDTRANSFER": "PJSIP/synthflow-00000001", "CONTEXT": "from-pstn", RAW_LENGTH: "3", FILTERED_EXTEN: "100"}


class TransferringChannel(MemoryChannel):
    """A channel that the agent's REFER moves while Dial runs (or that only keeps an old BLINDTRANSFER)."""

    def __init__(self, after, **kwargs):
        super().__init__({"SYNTHFLOW_MODE": "dial"}, **kwargs)
        self.after = after

    def exec(self, application, arguments):
        result = super().exec(application, arguments)
        self.variables.update(self.after)
        return result


@pytest.mark.parametrize("after, expected", [(MOVED, "warm 0875704225abc"), (LEFT_OVER, "")])
def test_an_agent_transfer_is_read_after_the_dial(after, expected):
    """A REFER that moved the caller is published; a BLINDTRANSFER left where the AGI ran is not the agent's."""
    channel = TransferringChannel(after)
    outcome, _ = run(channel)
    assert (outcome.status, outcome.agent_transfer) == (Status.SUCCESS, expected)
    assert channel.variables.get("SYNTHFLOW_AGENT_TRANSFER", "") == expected


def test_an_agent_transfer_is_read_after_a_delegated_dial_too():
    """finish_dial, given the call, reads the agent's transfer the same way."""
    channel = TransferringChannel(MOVED)
    call = CallInfo("U1", "PJSIP", "2025550143", (), context="from-pstn", extension="100")
    edges = edges_for(MemoryApi(), delegate=True)
    outcome = finish_dial(channel, hand_off(channel, call, BASE, edges), edges, call)
    assert outcome.agent_transfer == "warm 0875704225abc"
    assert channel.verbose_lines == ["synthflow-agi: SUCCESS call_id=%s (agent transfer: warm 0875704225abc)" % CALL_ID]


class RecordingChannel(MemoryChannel):
    """Keeps every SET VARIABLE in order, as the AGI wire would carry them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sets = []

    def set_variable(self, name, value):
        self.sets.append((name, value))
        super().set_variable(name, value)


def test_dial_mode_sets_each_variable_once_in_order():
    """In dial mode the id and target go out before Dial and are not set again; then status, error, CDR."""
    channel = RecordingChannel({"SYNTHFLOW_MODE": "dial"})
    run(channel)
    assert channel.sets == [
        ("SYNTHFLOW_CALL_ID", CALL_ID), ("CDR(synthflow_call_id)", CALL_ID),
        ("_SYNTHFLOW_XEI", "S.%s;E.L1;" % CALL_ID), ("DIALSTATUS", ""), ("SYNTHFLOW_TARGET", TARGET),
        ("SYNTHFLOW_STATUS", "SUCCESS"), ("SYNTHFLOW_ERROR", ""), ("CDR(synthflow_status)", "SUCCESS"),
    ]


def test_a_degraded_dial_sets_the_flag_once():
    """SYNTHFLOW_DEGRADED goes out before the Dial and is not repeated in the final publish."""
    channel = RecordingChannel({"SYNTHFLOW_MODE": "dial", "SYNTHFLOW_ON_API_FAILURE": "direct"})
    run(channel, api=MemoryApi(error=ApiUnavailableError("down")))
    assert [name for name, _ in channel.sets].count("SYNTHFLOW_DEGRADED") == 1


@pytest.mark.parametrize("technology, linkedid, expected", [("SIP", "L1", None), ("PJSIP", "", None),
                                                            ("PJSIP", "L1", "E.L1;")])
def test_the_pjsip_header_is_set_only_on_pjsip_with_an_x_ei(technology, linkedid, expected):
    """PJSIP_HEADER is set only for a PJSIP caller, and only when there is an X-EI to carry."""
    channel = MemoryChannel({"CHANNEL(linkedid)": linkedid, "SYNTHFLOW_ON_API_FAILURE": "direct"})
    outcome, _ = run(channel, api=MemoryApi(error=ApiUnavailableError("down")), technology=technology)
    assert outcome.status is Status.SUCCESS
    assert channel.variables.get("PJSIP_HEADER(add,X-EI)") == expected


def test_no_linkedid_means_no_e_token():
    """An empty linkedid adds no E. token to X-EI."""
    channel = MemoryChannel({"CHANNEL(linkedid)": ""})
    run(channel)
    assert channel.variables["PJSIP_HEADER(add,X-EI)"] == "S.%s;" % CALL_ID


def test_an_odd_linkedid_is_logged_by_shape(log_records):
    """The left-out linkedid is logged with the call's uniqueid and a description, never its text."""
    run(MemoryChannel({"CHANNEL(linkedid)": "a;b"}))
    assert [r.getMessage() for r in log_records if "E. token" in r.getMessage()] == [
        "uniqueid=U1 no E. token: linkedid cannot go into X-EI (3 characters, holds ';'): refused, not trimmed"]


class RecordingApi(MemoryApi):
    def __init__(self):
        super().__init__()
        self.timeouts = []

    def prepare(self, request, timeout):
        self.timeouts.append(timeout)
        return super().prepare(request, timeout)


def test_the_api_gets_the_calls_settings_and_timeout():
    """The API is chosen for the call's resolved settings and given the call's own timeout."""
    api = RecordingApi()
    chosen = []
    edges = Edges(api_for=lambda settings: chosen.append(settings) or api, to_e164=lambda raw, region, role: raw,
                  clock=lambda: 0.0)
    channel = MemoryChannel({"SYNTHFLOW_TIMEOUT": "2.5"})
    hand_off(channel, CallInfo("U1", "PJSIP", "+12025550143", ()), BASE, edges)
    assert api.timeouts == [2.5]
    assert [(s.timeout, s.api_url, s.mode) for s in chosen] == [(2.5, "https://api.example/v2", "transfer")]


def test_headers_diversion_and_the_request_reach_their_places(log_records):
    """X- headers and O. ride in the Refer-To, an unfit header is logged by shape, and the request carries the settings."""
    channel = MemoryChannel({"SYNTHFLOW_VARIABLES": "lead,bad", "lead": "L-7", "bad": "a\rb", "SYNTHFLOW_HEADERS": "lead,bad",
                             "SYNTHFLOW_DIVERSION": "+15550001111"})
    outcome, api = run(channel)
    assert (outcome.status, outcome.mode) == (Status.SUCCESS, "transfer")
    assert channel.execs == [("Transfer", "PJSIP/<%s?X-EI=S.%s%%3BE.L1%%3BO.%%2B15550001111%%3B&X-lead=L-7>" % (TARGET, CALL_ID))]
    (request,) = api.requests
    assert (request.from_number, request.to_number, request.model_id, request.workspace_id) == (
        "+12025550143", "+15551234567", "m", "w")
    assert dict(request.custom_variables) == {"lead": "L-7", "bad": "a\rb"}
    assert [r.getMessage() for r in log_records if "header left out" in r.getMessage()] == [
        "uniqueid=U1 header left out: bad: value cannot be carried in SIP (3 characters, with control characters)"]


def test_numbers_are_normalised_with_the_region_and_their_role():
    """The caller and the agent number each go through E.164 parsing with the call's region and their role."""
    seen = []

    def to_e164(raw, region, role):
        seen.append((raw, region, role))
        return "+12025550143" if role == "caller" else "+15551234567"

    edges = Edges(api_for=lambda settings: MemoryApi(), to_e164=to_e164, clock=lambda: 0.0)
    hand_off(MemoryChannel({"SYNTHFLOW_DEFAULT_REGION": "gb"}), CallInfo("U1", "PJSIP", "2025550143", ()), BASE, edges)
    assert seen == [("2025550143", "GB", "caller"), ("+15551234567", "GB", "agent")]


def test_an_unreferable_channel_is_named_in_transfer_mode():
    """Transfer mode on IAX2 names the technology it cannot REFER."""
    outcome, _ = run(MemoryChannel(), technology="IAX2")
    assert outcome.error == "cannot REFER a IAX2 channel: transfer mode needs PJSIP or SIP (use mode=dial)"


@pytest.mark.parametrize("mode, protocol, apps, status", [
    ("transfer", "501", ["Transfer"], Status.TRANSFER_FAILED),
    ("auto", "603", ["Transfer"], Status.TRANSFER_FAILED),
    ("auto", "501", ["Transfer", "Dial"], Status.SUCCESS),
])
def test_only_auto_mode_dials_and_only_after_a_refused_refer(mode, protocol, apps, status):
    """Transfer mode never dials; auto dials only when the REFER was refused as a method (501), not after a 603."""
    channel = MemoryChannel({"SYNTHFLOW_MODE": mode}, transfer="FAILURE", protocol=protocol)
    outcome, _ = run(channel)
    assert [app for app, _ in channel.execs] == apps
    assert outcome.status is status


def test_auto_fallback_reads_the_agent_transfer_and_can_be_delegated():
    """After a refused REFER the Dial is the same as in dial mode: the agent's transfer is read, delegation holds."""
    channel = TransferringChannel(MOVED, transfer="FAILURE", protocol="501")
    channel.variables["SYNTHFLOW_MODE"] = "auto"
    outcome, _ = run(channel)
    assert (outcome.mode, outcome.agent_transfer) == ("auto:dial", "warm 0875704225abc")
    delegated = MemoryChannel({"SYNTHFLOW_MODE": "auto"}, transfer="FAILURE", protocol="501")
    outcome, _ = run(delegated, delegate=True)
    assert (outcome.mode, outcome.pending_dial) == ("auto:dial", DIAL_ARGS)
    assert [app for app, _ in delegated.execs] == ["Transfer"]


def test_total_ms_is_measured_from_the_start_not_from_zero():
    """total_ms is the clock's difference, whatever the clock's origin."""
    ticks = itertools.count()
    edges = Edges(api_for=lambda settings: MemoryApi(), to_e164=lambda raw, region, role: "+15551234567",
                  clock=lambda: 500.0 + next(ticks) * 0.001)
    outcome = hand_off(MemoryChannel(), CallInfo("U1", "PJSIP", "+12025550143", ()), BASE, edges)
    assert outcome.total_ms == pytest.approx(3.0)
    assert outcome.api_ms == pytest.approx(1.0)


def test_an_internal_bug_is_logged_with_its_traceback(log_records):
    """A bug in the hand-off leaves one log record with a fixed text and the traceback."""
    run(MemoryChannel(), api=MemoryApi(error=RuntimeError("bug")))
    (record,) = [r for r in log_records if r.levelname == "ERROR"]
    assert record.getMessage() == "internal error during the hand-off"
    assert record.exc_info[0] is RuntimeError


class VerboseRecordingChannel(RecordingChannel):
    def verbose(self, message, level=1):
        self.sets.append(("VERBOSE", (message, level)))
        super().verbose(message, level)


@pytest.mark.parametrize("variables, sets", [
    ({"CHANNEL(state)": "Ringing"}, [
        ("SYNTHFLOW_STATUS", "NOT_ANSWERED"), ("SYNTHFLOW_CALL_ID", ""),
        ("SYNTHFLOW_ERROR", "channel state is Ringing, not Up"), ("SYNTHFLOW_TARGET", ""),
        ("CDR(synthflow_status)", "NOT_ANSWERED"),
        ("VERBOSE", ("synthflow-agi: NOT_ANSWERED (channel state is Ringing, not Up)", 1))]),
    ({"SYNTHFLOW_ON_API_FAILURE": "direct", "CHANNEL(linkedid)": ""}, [
        ("SYNTHFLOW_CALL_ID", ""),
        ("SYNTHFLOW_STATUS", "SUCCESS"), ("SYNTHFLOW_CALL_ID", ""), ("SYNTHFLOW_ERROR", "handed off without S.: down"),
        ("SYNTHFLOW_TARGET", TARGET), ("SYNTHFLOW_DEGRADED", "1"), ("CDR(synthflow_status)", "SUCCESS"),
        ("VERBOSE", ("synthflow-agi: SUCCESS (handed off without S.: down)", 1))]),
])
def test_publish_sets_exactly_these_variables(variables, sets):
    """Outside dial mode the outcome is published whole: status, id, error, target, degraded flag, CDR, one line."""
    channel = VerboseRecordingChannel(variables)
    run(channel, api=MemoryApi(error=ApiUnavailableError("down")))
    assert channel.sets == sets


def test_an_empty_argument_in_the_middle_is_skipped():
    """Empty items are skipped, not the end of the list."""
    assert custom_variable_sources(("a", ""), ("", "b=1")) == [("a", None), ("b", "1")]
