"""Memory each bridged dial-mode call holds: the classic AGI, FastAGI, and Asterisk itself.

In dial mode a call stays inside ``EXEC Dial`` for the whole AI conversation.  This phase
bridges N concurrent calls in the lab's real Asterisk (the SIPp agent holds each one for
some seconds) and, while all N are bridged, reads from the host's /proc:

- classic AGI: ``smaps_rollup`` of every AGI process (Private_Clean + Private_Dirty, and
  Pss), once with the shell waiter (the default) and once with
  ``SYNTHFLOW_DIAL_WAITER=python`` in Asterisk's environment, which keeps the wait in Python
  (the program as it was before the waiter);
- FastAGI: (RSS with N bridged calls - idle RSS) / N;
- Asterisk: (RSS with N bridged calls - RSS before the calls) / N, for the same calls.

Each configuration gets a fresh container, so that Asterisk's and FastAGI's heaps have not
already grown for earlier calls (freed memory that malloc keeps would hide the growth).
It is a benchmark, not a test: nothing here judges the figures.  See bench/README.md.
"""
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "tests" / "e2e"))  # the lab harness

import sipp_runs  # noqa: E402
import stats  # noqa: E402
from api_model import BenchModel  # noqa: E402
from benchlab import BenchLab  # noqa: E402
from lab_build import say  # noqa: E402
from lab_run import FASTAGI_PORT  # noqa: E402
from sampler import established, find_in_namespace, proc_status  # noqa: E402

SIZES = (20, 50)
# (label, dialplan variant, value of SYNTHFLOW_DIAL_WAITER or None)
CONFIGS = (("classic AGI, shell waiter", "agi", None),
           ("classic AGI, Python waits", "agi", "python"),
           ("FastAGI", "fastagi", None))
# Calls/s while the N calls are placed.  At 10/s the classic AGI's Python starts saturate
# this 2-core host (ACK to agent INVITE grew to 6-11 s at N = 50); at 4/s they do not.
RAMP_RATE = 4
SETTLE_MAX_S = 15  # after the last call is placed, how long all N may take to be bridged
STEADY_S = 10  # how long all N calls then stay bridged together, at least
WARMUP_CALLS = 2
SAMPLES = 3
WAITER_WORD = "synthflow-agi-dial"  # argv[0] of the shell waiter's script
PYTHON_WORDS = ("synthflow.agi", "bench_variant=agi")  # the Python program, before any execv


def parse_rollup(text):
    """{field: kB} of a /proc/PID/smaps_rollup text (the header line is skipped).

    >>> parse_rollup("55d0-7ffd ---p 00000000 00:00 0  [rollup]\\nRss:  1536 kB\\nPss:   310 kB\\n")
    {'Rss': 1536, 'Pss': 310}
    """
    fields = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            fields[key.strip()] = int(parts[0])
    return fields


def private_kb(fields):
    """Memory only this process holds: Private_Clean + Private_Dirty (kB).

    >>> private_kb({'Private_Clean': 40, 'Private_Dirty': 212, 'Pss': 300})
    252
    """
    return fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def rollup(pid):
    """parse_rollup of a live process, or None when it is gone."""
    try:
        return parse_rollup(Path("/proc/%d/smaps_rollup" % pid).read_text())
    except OSError:
        return None


def count_bridged(bridge_show_all):
    """Two-party bridges in the output of Asterisk's ``bridge show all``.

    Columns: Bridge-ID, Name (may be empty), Chans, Type, Technology,
    Duration; Chans is therefore the fourth token from the end.

    >>> count_bridged("Bridge-ID                            Name  Chans Type   Technology    Duration\\n"
    ...               "1f0e6c1e-9d8e-4a35-8bd2-0c6f0b0a1d55           2 basic  native_rtp    00:00:03\\n"
    ...               "5a5a6c1e-9d8e-4a35-8bd2-0c6f0b0a1d55  dial     1 basic  simple_bridge 00:00:01\\n")
    1
    """
    count = 0
    for line in bridge_show_all.splitlines():
        parts = line.split()
        if len(parts) >= 5 and len(parts[0]) == 36 and parts[0].count("-") == 4 and parts[-4] == "2":
            count += 1
    return count


def spread(values):
    """median and max of a list, or Nones.

    >>> spread([3, 1, 2]), spread([])
    ({'median': 2, 'max': 3}, {'median': None, 'max': None})
    """
    if not values:
        return {"median": None, "max": None}
    return {"median": statistics.median(values), "max": max(values)}


def parent_pid(pid):
    try:
        raw = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2:].split()[1])


def _agi_processes(asterisk_pid):
    """{'waiter': [pid], 'python': [pid]}: the classic AGI processes in Asterisk's container.

    A shell's ``$(...)`` forks a short-lived copy with the same command line: not a call.
    """
    waiters = find_in_namespace(asterisk_pid, WAITER_WORD)
    waiters = [pid for pid in waiters if parent_pid(pid) not in waiters]
    pythons = [pid for pid in find_in_namespace(asterisk_pid, *PYTHON_WORDS) if pid not in waiters]
    return {"waiter": waiters, "python": pythons}


def _held(variant, asterisk_pid):
    """How many calls the program under test holds right now."""
    if variant == "fastagi":
        return established(FASTAGI_PORT)
    found = _agi_processes(asterisk_pid)
    return len(found["waiter"]) + len(found["python"])


def _calls(lab, ctx, folder, name, variant, calls, hold_ms, rate, limit):
    """Start the agent and the customer SIPps for ``calls`` calls of one variant."""
    hold = hold_ms / 1000.0
    budget = int(calls / rate + hold + 60)
    injection = sipp_runs.write_injection(folder / ("%s.csv" % name), ["bench-" + variant])
    agent = sipp_runs.agent(folder, name + "-agent", calls, budget, hold_ms=hold_ms, recv_timeout=30 + hold).start()
    customer = sipp_runs.customer(folder, name + "-customer", calls, rate=rate, limit=limit, timeout=budget,
                                  injection=injection, recv_timeout=30 + hold).start()
    return agent, customer, budget


def _snapshot(variant, asterisk_pid, fastagi_pid):
    """One reading of everything, as close together in time as /proc allows."""
    snap = {"t": time.time(), "asterisk_rss_kb": (proc_status(asterisk_pid) or {}).get("rss_kb"),
            "asterisk_private_kb": private_kb(rollup(asterisk_pid) or {}),
            "fastagi_rss_kb": (proc_status(fastagi_pid) or {}).get("rss_kb"), "agi": []}
    if variant == "agi":
        for kind, pids in _agi_processes(asterisk_pid).items():
            for pid in pids:
                fields = rollup(pid)
                if fields:
                    snap["agi"].append({"kind": kind, "pid": pid, "private_kb": private_kb(fields),
                                        "pss_kb": fields.get("Pss"), "rss_kb": fields.get("Rss")})
    return snap


def memory_run(ctx, label, variant, waiter, n):
    """One fresh lab: N calls of ``variant`` bridged together, measured while all are up."""
    folder = ctx["out"] / "memory" / ("%s-%s-%d" % (variant, waiter or "default", n))
    model = BenchModel(ctx["token"]).start()
    env = {"SYNTHFLOW_DIAL_WAITER": waiter} if waiter else {}
    lab = BenchLab(ctx["engine"], ctx["image"], folder, model.base_url, ctx["token"], ctx["ca_dir"], env=env)
    result = {"label": label, "variant": variant, "waiter": waiter or "default", "n": n}
    try:
        lab.start()
        asterisk_pid, fastagi_pid = lab.asterisk_pid(), lab.fastagi_pid()
        # A few calls first: modules and code paths that load on the first call are not per-call memory.
        agent, customer, budget = _calls(lab, ctx, folder, "warmup", variant, WARMUP_CALLS, 0, 2, 1)
        result["warmup_exit"] = (customer.wait(budget + 10), agent.wait(15))
        time.sleep(2)
        before = []
        for _ in range(SAMPLES):
            before.append(proc_status(asterisk_pid)["rss_kb"])
            time.sleep(0.2)
        result["asterisk_private_kb_before"] = private_kb(rollup(asterisk_pid) or {})
        idle = proc_status(fastagi_pid)
        result["asterisk_rss_kb_before"] = statistics.median(before)
        result["fastagi_rss_kb_idle"] = idle["rss_kb"]
        ramp = n / float(RAMP_RATE)
        hold_ms = int((ramp + SETTLE_MAX_S + STEADY_S) * 1000)
        say("memory: %s, %d calls bridged together (placed at %d/s, held %.0f s)" % (label, n, RAMP_RATE, hold_ms / 1000.0))
        agent, customer, budget = _calls(lab, ctx, folder, "calls", variant, n, hold_ms, RAMP_RATE, n)
        placed = time.time()
        deadline = placed + ramp + SETTLE_MAX_S
        held = bridged = 0
        while time.time() < deadline:
            held = _held(variant, asterisk_pid)
            if held >= n:
                bridged = count_bridged(lab.asterisk.cli("bridge show all"))
                if bridged >= n:
                    break
            time.sleep(0.5)
        result["all_up_after_s"] = round(time.time() - placed, 1)
        time.sleep(1.0)  # let the last call's Dial settle
        snaps = []
        for _ in range(SAMPLES):
            snaps.append(_snapshot(variant, asterisk_pid, fastagi_pid))
            time.sleep(0.5)
        result["bridged_before"] = bridged
        result["bridge_show_all"] = lab.asterisk.cli("bridge show all")  # kept for diagnosis
        result["bridged_after"] = count_bridged(result["bridge_show_all"])
        result["held_before"] = held
        result["snapshots"] = snaps
        result["customer_exit"] = customer.wait(budget + 10)
        result["agent_exit"] = agent.wait(20)
        rows = stats.join(stats.parse_acks(customer.text()), stats.parse_invites(agent.text()))
        result["outcome"] = stats.load_outcome(rows, n)
        # ACK to agent INVITE: seconds here would mean the host was saturated while the calls came in.
        result["ack_to_invite_ms"] = stats.summary([row[2] for row in rows if row[2] is not None])
    finally:
        try:
            lab.stop()
        finally:
            model.stop()
    result.update(derive(result))
    return result


def derive(run):
    """Per-call figures of one run, from its snapshots (kB)."""
    n = run["n"]
    last = run["snapshots"][-1]
    asterisk = statistics.median(s["asterisk_rss_kb"] for s in run["snapshots"])
    derived = {"asterisk_rss_kb_during": asterisk,
               "asterisk_kb_per_call": round((asterisk - run["asterisk_rss_kb_before"]) / float(n), 1),
               "asterisk_private_kb_per_call": round((last["asterisk_private_kb"] - run["asterisk_private_kb_before"])
                                                     / float(n), 1)}
    if run["variant"] == "fastagi":
        during = statistics.median(s["fastagi_rss_kb"] for s in run["snapshots"])
        derived["fastagi_rss_kb_during"] = during
        derived["program_kb_per_call"] = round((during - run["fastagi_rss_kb_idle"]) / float(n), 1)
        derived["processes"] = 0
    else:
        procs = last["agi"]
        derived["kinds"] = sorted(set(p["kind"] for p in procs))
        derived["processes"] = len(procs)
        derived["private_kb"] = spread([p["private_kb"] for p in procs])
        derived["pss_kb"] = spread([p["pss_kb"] for p in procs])
        derived["rss_kb"] = spread([p["rss_kb"] for p in procs])
        derived["program_kb_per_call"] = derived["private_kb"]["median"]
    derived["ratio_to_asterisk"] = stats.ratio(derived["program_kb_per_call"], derived["asterisk_kb_per_call"])
    return derived


def memory_phase(ctx, sizes=SIZES):
    runs = []
    for n in sizes:
        for label, variant, waiter in CONFIGS:
            runs.append(memory_run(ctx, label, variant, waiter, n))
    return {"runs": runs, "ramp_rate": RAMP_RATE}


def _kb(value):
    return "-" if value is None else "%.0f" % value


def table(memory):
    """The printed table of the memory phase."""
    lines = ["Memory held per bridged dial-mode call (kB; all N calls bridged while measured; a fresh lab per row)",
             "  classic AGI: per AGI process, Private_Clean+Private_Dirty (smaps_rollup) median / max; Pss and RSS medians",
             "  FastAGI: (server RSS with N bridged - idle RSS) / N;  Asterisk: (RSS with N bridged - RSS before) / N",
             "",
             "%-27s %4s %8s %6s %17s %8s %8s %13s %8s %5s" % (
                 "program", "N", "bridged", "procs", "per call med/max", "Pss med", "RSS med", "Asterisk/call",
                 "ratio", "lost")]
    for run in memory["runs"]:
        if run["variant"] == "fastagi":
            per_call, pss, rss = _kb(run["program_kb_per_call"]), "-", "-"
        else:
            per_call = "%s / %s" % (_kb(run["private_kb"]["median"]), _kb(run["private_kb"]["max"]))
            pss, rss = _kb(run["pss_kb"]["median"]), _kb(run["rss_kb"]["median"])
        lines.append("%-27s %4d %8s %6s %17s %8s %8s %13s %8s %5s" % (
            run["label"], run["n"], "%d/%d" % (min(run["bridged_before"], run["bridged_after"]), run["n"]),
            run["processes"] or "-", per_call, pss, rss, _kb(run["asterisk_kb_per_call"]),
            "-" if run["ratio_to_asterisk"] is None else "%.3f" % run["ratio_to_asterisk"],
            run["outcome"]["lost"]))
    lines.append("ratio = program per call / Asterisk per call (classic AGI: its private median).  Goals: "
                 "classic AGI <= 2048 kB per bridged call; ratio <= 0.1.")
    return "\n".join(lines)
