"""dial_mode: Asterisk bridges the customer to Synthflow, X-EI on the INVITE."""
import csv
import time

import pytest

from lab_run import AGENT, CUSTOMER_UAS, SYNTHFLOW

CALL_ID = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00003"  # also in sipp/agent_requires_xei.xml
# Values a naive AGI or dialplan would mangle: quotes, backslash, semicolon, comma,
# parentheses, dollar, percent, unicode.
TRICKY_NAME = 'Zoë "Bobby" O\'Brien \\ back; slash, (50%) $HOME'
TRICKY_NOTE = "漢字 ✓ a=b&c=d"


@pytest.mark.e2e
def test_dial_mode_bridges_with_x_ei_and_exact_custom_variables(call):
    """Dial mode bridges to the Synthflow UAS with X-EI: S.<id>; after one POST holding E.164 numbers and exact variables."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    agent = call.sipp("agent", "agent_requires_xei.xml", SYNTHFLOW)
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_UAS)
    call.originate("e2e-dial-mode", {
        "CUSTOMER_NUMBER": "(212) 555-0199",  # national format: the program makes it E.164
        "SYNTHFLOW_AGENT_NUMBER": "415-555-0123",
        "SYNTHFLOW_VARIABLES": "note",
        "customer_name": TRICKY_NAME,
        "note": TRICKY_NOTE,
    })
    agent.assert_passed()
    customer.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    (post,) = call.posts()
    assert post["body"]["from_number"] == "+12125550199"
    assert post["body"]["to_number"] == AGENT
    assert post["body"]["custom_variables"] == {"customer_name": TRICKY_NAME, "note": TRICKY_NOTE,
                                                "campaign": "spring"}


def cdr_rows(call, timeout=10):
    """The rows cdr_custom wrote to synthflow.csv (the CDR is written once the channels are gone)."""
    path = call.asterisk.log_dir / "cdr-custom" / "synthflow.csv"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
            if any(CALL_ID in row for row in rows):
                return rows
        time.sleep(0.2)
    return list(csv.reader(path.read_text(encoding="utf-8").splitlines())) if path.exists() else []


@pytest.mark.e2e
def test_the_cdr_row_carries_the_call_id_and_the_status(call):
    """Asterisk's own CDR (cdr_custom, the shipped mapping) holds synthflow_call_id and synthflow_status."""
    call.model.script({"kind": "ok", "call_id": CALL_ID})
    agent = call.sipp("agent", "agent_requires_xei.xml", SYNTHFLOW)
    customer = call.sipp("customer", "customer_answers.xml", CUSTOMER_UAS)
    call.originate("e2e-dial-mode", {"CUSTOMER_NUMBER": "+12125550199"})
    agent.assert_passed()
    customer.assert_passed()
    assert call.result()["status"] == "SUCCESS"
    rows = [row for row in cdr_rows(call) if CALL_ID in row]
    assert rows, cdr_rows(call)
    assert all(row[-2:] == [CALL_ID, "SUCCESS"] for row in rows), rows
