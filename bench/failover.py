"""Failover under load (``--only failover``): the E2E failover lab (tests/e2e/failover) with long plans.

Two FastAGI servers of the production image behind hagi:// (DNS SRV from dnsmasq) or
HAProxy, the lab's Asterisk 22 in front.  For each mechanism: 20 calls/s for 30 s with
server agi-a SIGKILLed at 10 s and started again at 20 s; then the same load with agi-a
drained by SIGTERM at 10 s.  Every call is counted where it ended: the agent, the humans
(the sample's fallback), or neither.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
E2E = HERE.parent / "tests" / "e2e"
for folder in (E2E, E2E / "failover", E2E / "fastagi_image"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from failover_lab import FailoverLab, Plan  # noqa: E402

MECHANISMS = ("hagi", "haproxy")
# A 0.3 s API and a 5 s conversation: about 110 calls in flight, half of them on the victim.
LOAD = {"calls": 600, "rate": 20, "hold_ms": 5000, "api_delay": 0.3, "fault_at": 10.0, "restart_at": 20.0}
QUICK = {"calls": 200, "rate": 20, "hold_ms": 3000, "api_delay": 0.3, "fault_at": 4.0, "restart_at": 7.0}


def failover_phase(ctx, quick=False):
    load = QUICK if quick else LOAD
    lab = FailoverLab(ctx["out"] / "failover", ctx["token"], quiet=True)
    runs = []
    try:
        lab.start()
        for mechanism in MECHANISMS:
            for fault in ("kill", "term"):
                result = lab.run(Plan(mechanism, fault, **load), "%s-%s" % (mechanism, fault))
                result.pop("calls")
                result.pop("victim_log_before_restart", None)
                runs.append(result)
    finally:
        lab.stop()
    return {"load": load, "runs": runs}


def _ms(summary, key):
    return "-" if not summary or summary.get(key) is None else "%.0f" % summary[key]


def table(phase):
    load = phase["load"]
    lines = ["Failover: two FastAGI servers (docker/fastagi.Dockerfile) behind hagi:// (dnsmasq SRV) or HAProxy "
             "(tcp, leastconn, /healthz); %d calls at %d/s; API %.1f s; agent holds %.0f s; agi-a hit at %.0f s, "
             "started again at %.0f s" % (load["calls"], load["rate"], load["api_delay"], load["hold_ms"] / 1000.0,
                                          load["fault_at"], load["restart_at"]),
             "",
             "%-8s %-5s %5s %6s %6s %7s %9s %14s %9s %16s %10s %18s" % (
                 "via", "fault", "calls", "agent", "humans", "neither", "in-flight", "new affected", "window s",
                 "hand-off p50 ms", "max after", "agi-a after")]
    for run in phase["runs"]:
        mechanism, fault = run["label"].split("-")
        lines.append("%-8s %-5s %5d %6d %6d %7d %9s %14s %9s %16s %10s %18s" % (
            mechanism, fault, run["plan"]["calls"],
            run["agent"], run["humans"], run["neither"],
            "-" if run.get("in_flight_at_fault") is None else "%.0f" % run["in_flight_at_fault"],
            "%s of %s" % (run.get("new_calls_affected", "-"), run.get("new_calls", "-")), run.get("affected_window_s", "-"),
            "%s / %s" % (_ms(run["handoff_ms_before"], "p50"), _ms(run.get("handoff_ms_after_fault_5s"), "p50")),
            _ms(run.get("handoff_ms_after_fault_5s"), "max"),
            "%s, first +%ss" % (run.get("victim_calls_after_restart", "-"), run.get("victim_first_call_s", "?"))))
    lines += ["in-flight: calls agi-a held when hit (its /metrics gauge); humans: calls that reached the fallback "
              "queue instead of the agent; neither: calls that reached no one (goal: 0).",
              "new affected: calls placed after the fault that did not reach the agent; window: from the fault to "
              "the last such call.  hand-off p50: ACK -> agent INVITE before the fault / in the 5 s after it "
              "(includes Asterisk's ~500 ms post-Answer media wait and the API's %.1f s)." % load["api_delay"],
              "agi-a after: calls agi-a served after it was started again (kill) or after its drain (term), and "
              "when the first of them reached Asterisk (to the second)."]
    return "\n".join(lines)
