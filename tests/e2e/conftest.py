"""E2E fixtures: each scenario runs in every lab of LABS, peers are per test.

A lab is an Asterisk container (22 or 16) plus the API model, reaching the program by
classic AGI or through the FastAGI server; tests are grouped so each lab starts once.

The lab never skips: if it cannot be built or started, every E2E test fails with the
reason.  After each test, Asterisk's log and stderr must hold no Python traceback and no
API token.
"""
import contextlib
import secrets
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the lab_* modules

import lab_sip_log  # noqa: E402
from lab_build import CACHE  # noqa: E402
from lab_carrier import Carrier  # noqa: E402
from lab_peers import Sipp, start_lab  # noqa: E402
from lab_pjsua import PjsuaPeer  # noqa: E402
from lab_run import ASTERISK_SIP_PORT, CUSTOMER, CUSTOMER_UAC  # noqa: E402


@contextlib.contextmanager
def uncaptured(config):
    """Let progress lines of long set-up steps reach the terminal while pytest captures."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


class Lab:
    def __init__(self, name, suite, agi, asterisk, model, run_dir, token):
        self.name = name
        self.suite = suite
        self.agi = agi
        self.asterisk = asterisk
        self.model = model
        self.run_dir = run_dir
        self.token = token


# Every scenario runs in each of these labs: (Debian suite, how the dialplan reaches the
# program).  sid gives Asterisk 22 with Python 3.14, bullseye Asterisk 16.28 with Python 3.9.
LABS = {
    "ast22-agi": ("sid", "classic"),
    "ast22-fastagi": ("sid", "fastagi"),
    "ast16-agi": ("bullseye", "classic"),
    "ast16-fastagi": ("bullseye", "fastagi"),
}
# chan_sip exists only up to Asterisk 20: tests marked chan_sip run in the Asterisk 16 labs
# alone (they are not generated for 22, rather than generated and skipped).
CHAN_SIP_SUITES = ("bullseye",)


def pytest_generate_tests(metafunc):
    if "lab" not in metafunc.fixturenames:
        return
    ids = list(LABS)
    if metafunc.definition.get_closest_marker("chan_sip"):
        ids = [name for name in ids if LABS[name][0] in CHAN_SIP_SUITES]
    metafunc.parametrize("lab", ids, indirect=True, scope="session")


@pytest.hookimpl(trylast=True)  # after pytest has grouped the tests by lab
def pytest_collection_modifyitems(items):
    """Tests with a lab of their own (failover/) run before the first test of the shared labs.

    The last shared lab lives until the session ends, holding Asterisk's ports and the lab lock.
    """
    own = [item for item in items if "failover" in getattr(item, "fixturenames", ())]
    rest = [item for item in items if item not in own]
    first = next((n for n, item in enumerate(rest) if "lab" in getattr(item, "fixturenames", ())), len(rest))
    items[:] = rest[:first] + own + rest[first:]


@pytest.fixture(scope="session")
def lab(pytestconfig, request):
    name = request.param
    suite, agi = LABS[name]
    token = "e2e-secret-" + secrets.token_hex(12)
    run_dir = CACHE / "run-pytest" / name
    shutil.rmtree(str(run_dir), ignore_errors=True)
    failure = None
    try:
        with uncaptured(pytestconfig):
            asterisk, model = start_lab(run_dir, token, suite=suite, agi=agi)
    except Exception as exc:  # noqa: BLE001 - any set-up failure is the E2E suite failing
        failure = "E2E lab %s could not start (never skipped): %s" % (name, exc)
    if failure:  # outside the except: no "during handling of the above exception" noise
        pytest.fail(failure, pytrace=False)
    try:
        yield Lab(name, suite, agi, asterisk, model, run_dir, token)
        if agi == "fastagi":
            asterisk.stop_fastagi()  # drains, logs its summary and exits: the sweep sees all of it
        # Whole-session sweep too: output between tests (e.g. a late traceback) counts.
        problems = asterisk.hygiene_problems({}, [token])
        problems += asterisk.agi_route_problems({}, agi)
    finally:
        asterisk.stop()
        model.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


class Call:
    """What one test needs: its peers, its slice of the log, the API model's record."""

    def __init__(self, lab, scenario_dir, test_name):
        self.lab = lab
        self.asterisk = lab.asterisk
        self.model = lab.model
        self.scenario_dir = scenario_dir
        self.test_name = test_name
        self.peers = []
        self.mark = lab.asterisk.mark()

    def sipp(self, name, xml, port, remote=None, transport="udp", **kw):
        """Start a SIPp from this scenario's sipp/ folder (a UAC when remote is given)."""
        peer = Sipp(self.lab.run_dir / self.test_name, name, self.scenario_dir / "sipp" / xml, port,
                    remote=remote, transport=transport, **kw)
        self.peers.append(peer)
        return peer.start()

    def pjsua(self, name, port):
        """Start pjsua2 (a real SIP stack that follows REFER) on 127.0.0.1:port."""
        peer = PjsuaPeer(self.lab.run_dir / self.test_name, name, port)
        self.peers.append(peer)
        return peer.start()

    def originate(self, context, variables, endpoint="customer", number=CUSTOMER, technology="PJSIP"):
        self.asterisk.originate("%s/%s@%s" % (technology, number, endpoint), context, variables)

    def inbound(self, xml, mode="", api_timeout="", number="+14155550100"):
        """A SIPp customer calling in; X-Lab-* headers carry per-call overrides."""
        return self.sipp("caller", xml, CUSTOMER_UAC, remote="127.0.0.1:%d" % ASTERISK_SIP_PORT,
                         service=number, keys={"mode": mode, "api_timeout": api_timeout})

    def sip_messages(self):
        return lab_sip_log.parse(self.log())

    def result(self, timeout=20):
        return self.asterisk.result(self.mark, timeout)

    def posts(self):
        return [r for r in self.model.requests() if r.get("method") == "POST"
                and str(r.get("path", "")).endswith("/prepare_inbound")]

    def log(self):
        return self.asterisk.since(self.mark)

    def close(self):
        for peer in self.peers:
            peer.stop()


@pytest.fixture
def carrier(lab):
    """A second Asterisk in the lab container that follows REFER as a carrier does."""
    return Carrier(lab.asterisk).start()


@pytest.fixture
def call(lab, request):
    scenario_dir = Path(str(request.fspath)).parent
    if not lab.model.proc or lab.model.proc.poll() is not None:
        lab.model.start()  # a previous test took the API down
    lab.model.reset()
    current = Call(lab, scenario_dir, request.node.name)
    try:
        yield current
    finally:
        current.close()
    problems = lab.asterisk.hygiene_problems(current.mark, [lab.token])
    problems += lab.asterisk.agi_route_problems(current.mark, lab.agi)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
