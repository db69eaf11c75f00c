"""The pure hand-off core, driven through an in-memory Channel and API."""

from __future__ import annotations

import itertools

import pytest

from synthflow_agi._call import CallInfo, PreparedCall
from synthflow_agi._errors import ApiTimeoutError, ChannelHungUp
from synthflow_agi._handoff import Edges, hand_off
from synthflow_agi._settings import Base
from synthflow_agi._status import Status

CALL_ID = "ebe4bd96-dcb1-4abd-9aa5-686877dab061"
BASE = Base({
    "api_url": "https://api.example/v2", "api_token": "tok-secret", "api_token_file": "", "model_id": "m",
    "workspace_id": "w", "agent_number": "+15551234567", "from_number": "", "default_region": "US",
    "sip_host": "sip.example", "sip_port": "", "sip_transport": "udp", "mode": "transfer",
    "dial_technology": "pjsip", "dial_endpoint": "synthflow", "dial_timeout": "30", "predial_handler": "synthflow-predial^s^1",
    "variables": "", "timeout": "4", "retries": "2", "log": "stderr", "cluster": "us", "allow_insecure_http": "no",
})


class MemoryChannel:
    """A channel whose Transfer/Dial outcomes are scripted; records every effect."""

    def __init__(self, variables=None, transfer="SUCCESS", dial="ANSWER", hangup_on_exec=None, protocol="603"):
        self.variables = {"CHANNEL(state)": "Up", "CHANNEL(linkedid)": "L1", **(variables or {})}
        self.transfer, self.dial, self.hangup_on_exec, self.protocol = transfer, dial, hangup_on_exec, protocol
        self.execs = []
        self.verbose_lines = []

    def get_variable(self, name):
        return self.variables.get(name, "")

    def get_variables(self, names):
        return {name: self.get_variable(name) for name in names}

    def set_variable(self, name, value):
        self.variables[name] = value

    def exec(self, application, arguments):
        self.execs.append((application, arguments))
        if application == "Transfer":
            self.variables.update(TRANSFERSTATUS=self.transfer, TRANSFERSTATUSPROTOCOL=self.protocol)
        if application == "Dial":
            self.variables["DIALSTATUS"] = self.dial
        if self.hangup_on_exec == application:
            raise ChannelHungUp("result=-1")
        return 0

    def verbose(self, message, level=1):
        self.verbose_lines.append(message)


class MemoryApi:
    """Returns a fixed id, or raises a given error; counts calls."""

    def __init__(self, error=None, call_id=CALL_ID):
        self.error, self.call_id, self.requests = error, call_id, []

    def prepare(self, request, timeout):
        self.requests.append(request)
        if self.error:
            raise self.error
        return PreparedCall(self.call_id, {})


def run(channel, api=None, technology="PJSIP", base=None, arguments=()):
    api = api or MemoryApi()
    ticks = itertools.count()
    edges = Edges(api_for=lambda settings: api, to_e164=lambda raw, region, role: raw if raw.startswith("+") else "+1" + raw,
                  clock=lambda: next(ticks) / 1000.0)
    call = CallInfo("U1", technology, "2025550143", arguments)
    return hand_off(channel, call, BASE if base is None else base, edges), api


def test_transfer_success_publishes_every_output():
    """A refused-nothing transfer ends SUCCESS with id, empty error and the target."""
    channel = MemoryChannel()
    outcome, api = run(channel)
    assert outcome.status is Status.SUCCESS
    assert channel.execs == [("Transfer", f"PJSIP/<sip:+15551234567@sip.example:32681?X-EI=S.{CALL_ID}%3BE.L1%3B>")]
    assert channel.variables["PJSIP_HEADER(add,X-EI)"] == f"S.{CALL_ID};E.L1;"
    assert {k: channel.variables[k] for k in ("SYNTHFLOW_STATUS", "SYNTHFLOW_CALL_ID", "SYNTHFLOW_ERROR", "SYNTHFLOW_TARGET")} == {
        "SYNTHFLOW_STATUS": "SUCCESS", "SYNTHFLOW_CALL_ID": CALL_ID, "SYNTHFLOW_ERROR": "",
        "SYNTHFLOW_TARGET": "sip:+15551234567@sip.example:32681"}
    assert api.requests[0].from_number == "+12025550143"
    assert channel.verbose_lines == [f"synthflow-agi: SUCCESS call_id={CALL_ID}"]


def test_a_hangup_after_an_accepted_refer_is_still_success():
    """The caller's leg ending as the REFER completes does not turn success into HANGUP."""
    channel = MemoryChannel(hangup_on_exec="Transfer")
    assert run(channel)[0].status is Status.SUCCESS


def test_hangup_during_a_failed_transfer_is_hangup():
    """A caller who leaves while the REFER fails gives HANGUP, not TRANSFER_FAILED."""
    channel = MemoryChannel(transfer="FAILURE", hangup_on_exec="Transfer")
    assert run(channel)[0].status is Status.HANGUP


def test_auto_falls_back_to_dial_with_the_same_id():
    """Auto mode dials after a REFER refused as a method, with the id from the single API call."""
    channel = MemoryChannel({"SYNTHFLOW_MODE": "auto"}, transfer="FAILURE", protocol="501")
    outcome, api = run(channel)
    assert outcome.status is Status.SUCCESS and outcome.mode == "auto:dial"
    assert [app for app, _ in channel.execs] == ["Transfer", "Dial"]
    assert channel.variables["_SYNTHFLOW_XEI"] == f"S.{CALL_ID};E.L1;"
    assert len(api.requests) == 1


def test_transfer_mode_does_not_fall_back():
    """Plain transfer mode reports the refusal with the SIP code."""
    channel = MemoryChannel(transfer="FAILURE")
    outcome, _ = run(channel)
    assert outcome.status is Status.TRANSFER_FAILED
    assert outcome.error.startswith("Transfer FAILURE (SIP 603): ")
    assert [app for app, _ in channel.execs] == ["Transfer"]


@pytest.mark.parametrize("dial, status", [("ANSWER", Status.SUCCESS), ("BUSY", Status.TRANSFER_FAILED), ("", Status.TRANSFER_FAILED)])
def test_dial_status_decides(dial, status):
    """Only DIALSTATUS=ANSWER is success in dial mode."""
    channel = MemoryChannel({"SYNTHFLOW_MODE": "dial"}, dial=dial)
    assert run(channel)[0].status is status
    assert channel.execs == [("Dial", "PJSIP/synthflow/sip:+15551234567@sip.example:32681,30,b(synthflow-predial^s^1)")]


class DialSnapshotChannel(MemoryChannel):
    """Records what the dialplan would see if the program died while its Dial ran."""

    def exec(self, application, arguments):
        self.at_dial = {k: self.variables.get(k) for k in ("DIALSTATUS", "SYNTHFLOW_TARGET", "SYNTHFLOW_STATUS")}
        return super().exec(application, arguments)


def test_a_stale_dialstatus_is_cleared_before_the_agent_is_dialled():
    """While the agent's Dial runs, DIALSTATUS is empty (not an earlier Dial's ANSWER) and SYNTHFLOW_TARGET is set."""
    channel = DialSnapshotChannel({"SYNTHFLOW_MODE": "dial", "DIALSTATUS": "ANSWER"})
    assert run(channel)[0].status is Status.SUCCESS
    assert channel.at_dial == {"DIALSTATUS": "", "SYNTHFLOW_TARGET": "sip:+15551234567@sip.example:32681",
                               "SYNTHFLOW_STATUS": None}


def test_chan_sip_caller_dials_the_chan_sip_way_when_asked():
    """dial_technology=sip dials SIP/user@host:port and still sets the inheritable X-EI for the handler."""
    channel = MemoryChannel({"SYNTHFLOW_MODE": "dial", "SYNTHFLOW_DIAL_TECHNOLOGY": "sip"})
    assert run(channel, technology="SIP")[0].status is Status.SUCCESS
    assert channel.execs == [("Dial", "SIP/+15551234567@sip.example:32681,30,b(synthflow-predial^s^1)")]
    assert channel.variables["_SYNTHFLOW_XEI"] == "S.%s;E.L1;" % CALL_ID


def test_unreferable_technology_fails_before_the_api_in_transfer_mode():
    """An IAX2 channel in transfer mode costs no Synthflow registration."""
    channel = MemoryChannel()
    outcome, api = run(channel, technology="IAX2")
    assert outcome.status is Status.TRANSFER_FAILED and "use mode=dial" in outcome.error
    assert api.requests == [] and channel.execs == []


def test_auto_mode_dials_straight_away_from_unreferable_technology():
    """Auto mode on a Local channel skips the REFER and dials."""
    channel = MemoryChannel({"SYNTHFLOW_MODE": "auto"})
    assert run(channel, technology="Local")[0].status is Status.SUCCESS
    assert [app for app, _ in channel.execs] == ["Dial"]


def test_not_answered_makes_no_api_call():
    """A channel that is not Up ends NOT_ANSWERED without touching the API."""
    channel = MemoryChannel({"CHANNEL(state)": "Ringing"})
    outcome, api = run(channel)
    assert outcome.status is Status.NOT_ANSWERED and api.requests == []


def test_config_error_is_published():
    """A broken base configuration still leaves the dialplan a status."""
    channel = MemoryChannel()
    outcome, _ = run(channel, base=Base({}, "bad file"))
    assert channel.variables["SYNTHFLOW_STATUS"] == "CONFIG_ERROR"
    assert channel.variables["SYNTHFLOW_ERROR"] == "bad file"


def test_api_errors_are_published_and_redacted():
    """The error text never carries the token, even if an error message held it."""
    channel = MemoryChannel()
    outcome, _ = run(channel, api=MemoryApi(error=ApiTimeoutError("slow tok-secret")))
    assert outcome.status is Status.API_TIMEOUT
    assert channel.variables["SYNTHFLOW_ERROR"] == "slow ***"
    assert channel.execs == []


def test_unsafe_call_id_stops_the_hand_off():
    """An id that fails validation is API_ERROR and nothing is executed."""
    channel = MemoryChannel()
    outcome, _ = run(channel, api=MemoryApi(call_id="abc;def-12345"))
    assert outcome.status is Status.API_ERROR and channel.execs == []


def test_custom_variables_from_setting_and_arguments():
    """Names read channel variables, key=value sends literals, arguments override the setting."""
    channel = MemoryChannel({"SYNTHFLOW_VARIABLES": "lead, account_id", "lead": "L-7", "account_id": "from-chan"})
    _, api = run(channel, arguments=("account_id=A12345", "CALLERID(name)"))
    assert dict(api.requests[0].custom_variables) == {"lead": "L-7", "account_id": "A12345", "CALLERID(name)": ""}


def test_an_internal_bug_still_publishes_a_status():
    """An unexpected exception becomes INTERNAL_ERROR on the channel instead of a silent exit."""
    channel = MemoryChannel()
    outcome, _ = run(channel, api=MemoryApi(error=RuntimeError("bug")))
    assert channel.variables["SYNTHFLOW_STATUS"] == "INTERNAL_ERROR"
    assert outcome.error == "internal error (RuntimeError)"
