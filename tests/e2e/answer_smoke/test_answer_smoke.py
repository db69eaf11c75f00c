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


# What each Debian suite must give: (Asterisk major, the Python the program runs on).
SUITE_VERSIONS = {"sid": ("22", "3.14"), "bullseye": ("16", "3.9")}


@pytest.mark.e2e
def test_lab_runs_the_asterisk_and_python_it_claims(lab):
    """The lab's Asterisk major version and the program's Python are the ones its name promises."""
    asterisk, python = SUITE_VERSIONS[lab.suite]
    assert re.match(r"Asterisk %s\." % asterisk, lab.asterisk.cli("core show version")), lab.name
    shown = lab.asterisk.exec_(["/opt/synthflow-agi/bin/python", "-c", "import sys; print(sys.version)"]).stdout
    assert shown.startswith(python + "."), shown
    assert lab.asterisk.cli("dialplan show globals").count("SYNTHFLOW_AGI=") == 1


@pytest.mark.e2e
def test_every_line_of_the_sample_dialplan_is_loaded(lab):
    """Each exten/same line of extensions.conf.sample is in the running dialplan (16 and 22), without config warnings."""
    sample = REPO / "extensions.conf.sample"
    expected, contexts = set(), set()
    context = None
    for number, line in enumerate(sample.read_text().splitlines(), 1):
        found = re.match(r"\[([\w-]+)\]", line)
        if found and found.group(1) != "globals":
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
        # Asterisk 16 writes "application", 22 "Application"
        assert "-= info about application '%s' =-" % application.lower() in lab.asterisk.cli(
            "core show application %s" % application).lower()
