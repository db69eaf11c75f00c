"""refer_probe: `synthflow-agi probe-refer` on the PBX gives the right verdict for each kind of carrier."""
import re
import time

import pytest

from lab_run import ASTERISK_SIP_PORT, CUSTOMER

PJSUA2_PORT, SIPP_CARRIER_PORT = 15075, 15076  # docker/asterisk/pjsip-refer-recipients.conf
PROBE = "/opt/synthflow-agi/bin/synthflow-agi"
TOKEN = re.compile(r"X-EI=E\.probe-([0-9]{12})%3B>")


def probe_refer(call, trunk):
    """Run the probe in the lab container, as an operator runs it on the PBX; (exit, output, seconds)."""
    started = time.monotonic()
    proc = call.asterisk.exec_([PROBE, "probe-refer", "--trunk", trunk, "--number", CUSTOMER,
                                "--return-host", "127.0.0.1:%d" % ASTERISK_SIP_PORT, "--wait", "10"], check=False)
    seconds = time.monotonic() - started
    evidence = call.lab.run_dir / call.test_name
    evidence.mkdir(parents=True, exist_ok=True)
    (evidence / "probe-refer.txt").write_text("exit %d after %.1f s\n%s" % (proc.returncode, seconds, proc.stdout))
    return proc.returncode, proc.stdout, seconds


def returned_invites(call):
    """INVITEs that reached the PBX for the probe's return user."""
    return [m for m in call.sip_messages() if m.direction == "in" and m.is_request and m.label == "INVITE"
            and m.first_line.startswith("INVITE sip:synthflow-refer-probe@")]


def assert_astdb_clean(call):
    assert "0 results found" in call.asterisk.cli("database show synthflow_probe")


@pytest.mark.e2e
def test_probe_through_pjsua2_says_keeps_refer_to_headers(call):
    """pjsua2 follows the probe's REFER with X-EI intact: verdict "keeps Refer-To headers", exit 0."""
    carrier = call.pjsua("carrier", PJSUA2_PORT)
    code, out, seconds = probe_refer(call, "carrier-pjsua2")
    assert code == 0, out + carrier.report()
    assert "verdict: keeps Refer-To headers\n" in out and "set: mode = transfer is safe for this trunk" in out
    token = TOKEN.search(out).group(1)
    (invite,) = returned_invites(call)
    assert invite.header("X-EI") == "E.probe-%s;" % token and invite.header("User-Agent") == "lab-pjsua2"
    assert "E.probe-%s;" % token in out  # the verdict quotes what it sent, not the carrier's text
    assert seconds < 8, out
    assert_astdb_clean(call)


@pytest.mark.e2e
def test_probe_through_an_asterisk_carrier_says_drops_them(call, carrier):
    """The Asterisk carrier follows the REFER without X-EI: verdict "drops them", use mode = dial, exit 1."""
    code, out, seconds = probe_refer(call, "carrier-asterisk")
    assert code == 1, out + carrier.log()[-4000:]
    assert "verdict: drops them\n" in out and "had no X-EI header" in out and "set: mode = dial" in out
    (invite,) = returned_invites(call)
    assert invite.header("X-EI") is None and invite.header("User-Agent") == "lab-carrier-asterisk"
    assert seconds < 8, out
    assert_astdb_clean(call)


@pytest.mark.e2e
def test_probe_through_a_carrier_that_refuses_refer_says_refuses(call):
    """A SIPp carrier answers the probe's REFER with 603: verdict "refuses REFER", exit 1, no call back."""
    carrier = call.sipp("carrier", "carrier_refuses_refer.xml", SIPP_CARRIER_PORT)
    code, out, seconds = probe_refer(call, "carrier-sipp")
    carrier.assert_passed()
    assert code == 1, out
    assert "verdict: refuses REFER\n" in out and "SIP code 603" in out and "set: mode = dial" in out
    assert not returned_invites(call)
    assert 2 <= seconds < 8, out  # the refusal grace (2 s) is waited, and no more than that
    assert_astdb_clean(call)
