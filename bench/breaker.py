"""The circuit breaker under an outage (``--only breaker``): seconds from a call's start to its fallback status.

No Asterisk is needed: the classic AGI runs against the tests' scripted AGI peer and the
FastAGI server against the scripted FastAGI peer, both speaking the real wire format, with
the API model on loopback never answering (``hang``).  ``timeout = 4``, ``retries = 0`` and
``breaker_failures = 3``: the first three calls wait out the timeout, then the circuit is
open and each call falls back without a request.  Today's alternative, no breaker, is the
first rows' figure for every call of an outage.
"""
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from tests.contract._helpers import AGENT, TOKEN  # noqa: E402
from tests.contract.test_breaker import StatusTimedFastPeer, StatusTimedPeer  # noqa: E402
from tests.support.fastagi_peer import FastAgiServerProcess  # noqa: E402
from tests.support.synthflow_model import SynthflowModel  # noqa: E402

CALLS = 10
FAILURES = 3
TIMEOUT = 4


def _env(model, folder):
    ini = Path(folder) / "synthflow.conf"
    ini.write_text("[general]\n")
    state = Path(folder) / "state"
    state.mkdir()
    return {"SYNTHFLOW_CONFIG": str(ini), "SYNTHFLOW_API_URL": model.base_url, "SYNTHFLOW_API_TOKEN": TOKEN,
            "SYNTHFLOW_MODEL_ID": "model-1", "SYNTHFLOW_WORKSPACE_ID": "ws-1", "SYNTHFLOW_AGENT_NUMBER": AGENT,
            "SYNTHFLOW_LOG": "stderr", "SYNTHFLOW_TIMEOUT": str(TIMEOUT), "SYNTHFLOW_RETRIES": "0",
            "SYNTHFLOW_BREAKER_FAILURES": str(FAILURES), "SYNTHFLOW_STATE_DIR": str(state)}


def _run(program):
    with tempfile.TemporaryDirectory() as folder, SynthflowModel(token=TOKEN) as model:
        model.script(*[{"kind": "hang"}] * CALLS)
        env = _env(model, folder)
        seconds, statuses = [], []
        if program == "classic":
            for i in range(CALLS):
                peer = StatusTimedPeer(uniqueid="1700000300.%d" % i)
                statuses.append(peer.run(env=env, timeout=TIMEOUT + 10).status)
                seconds.append(peer.seconds_to_status)
        else:
            with FastAgiServerProcess(env) as server:
                for i in range(CALLS):
                    peer = StatusTimedFastPeer(server.port, uniqueid="1700000300.%d" % i)
                    statuses.append(peer.run(timeout=TIMEOUT + 10).status)
                    seconds.append(peer.seconds_to_status)
        posts = len([r for r in model.requests if r.path.endswith("/prepare_inbound")])
    return {"program": program, "seconds": seconds, "statuses": statuses, "posts": posts}


def breaker_phase():
    return {"calls": CALLS, "failures": FAILURES, "timeout": TIMEOUT,
            "runs": [_run("classic"), _run("fastagi")]}


def table(phase):
    lines = ["Circuit breaker during an outage (API never answers; timeout %d s, retries 0, breaker_failures %d; "
             "%d calls one after another; seconds from the AGI environment to SYNTHFLOW_STATUS)"
             % (phase["timeout"], phase["failures"], phase["calls"]), "",
             "%-9s %24s %28s %6s  %s" % ("program", "before it opens (min-max)", "circuit open (median / max)",
                                       "POSTs", "statuses")]
    for run in phase["runs"]:
        before, after = run["seconds"][:phase["failures"]], run["seconds"][phase["failures"]:]
        counts = {status: run["statuses"].count(status) for status in sorted(set(run["statuses"]))}
        lines.append("%-9s %24s %28s %6d  %s" % (
            run["program"], "%.2f-%.2f s" % (min(before), max(before)),
            "%.1f / %.1f ms" % (statistics.median(after) * 1000.0, max(after) * 1000.0), run["posts"],
            " ".join("%s=%d" % item for item in counts.items())))
    return "\n".join(lines)
