"""answer_smoke: the lab itself works (container, PJSIP, call files, SIPp on loopback)."""
import re

import pytest

from lab_build import REPO
from lab_run import CUSTOMER_UAS


@pytest.mark.e2e
def test_originated_call_is_answered_by_sipp(call):
    """Asterisk originates to the SIPp customer, which answers and then receives Asterisk's BYE."""
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_UAS)
    call.originate("e2e-answer-smoke", {})
    call.asterisk.wait_for(r"E2E_SMOKE answered PJSIP/customer-\S+ state=Up", call.mark)
    customer.assert_passed()


@pytest.mark.e2e
def test_every_line_of_the_sample_dialplan_is_loaded(lab):
    """Each exten/same line of extensions.conf.sample is in Asterisk 22's running dialplan, without config warnings."""
    sample = REPO / "extensions.conf.sample"
    expected, contexts = set(), set()
    context = None
    for number, line in enumerate(sample.read_text().splitlines(), 1):
        found = re.match(r"\[([\w-]+)\]", line)
        if found:
            context = found.group(1)
            contexts.add(context)
        elif re.match(r"\s*(exten|same)\s*=>", line):
            expected.add(number)
    shown = "".join(lab.asterisk.cli("dialplan show %s" % name) for name in sorted(contexts))
    loaded = {int(n) for n in re.findall(r"\[extensions\.conf\.sample:(\d+)\]", shown)}
    assert expected - loaded == set(), shown
    warnings = [line for line in lab.asterisk.read("full").splitlines()
                if re.search(r"WARNING|ERROR", line) and "extensions.conf" in line]
    assert warnings == []
    for application in ("AGI", "AMD", "Queue", "Transfer", "Dial", "UserEvent"):
        assert "-= Info about Application '%s' =-" % application in lab.asterisk.cli(
            "core show application %s" % application)
