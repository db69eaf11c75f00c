"""Benchmark of the hand-off: ``python bench/run.py [--calls N] [--quick] [--out DIR]``.

Runs the E2E lab's real Asterisk with SIPp in dial mode and measures, per call, the time
from the customer's ACK leaving to the agent's INVITE arriving, for four variants side by
side (floor, dialplan CURL peer, classic AGI, FastAGI) under two API models (instant HTTP,
HTTPS with a modelled 30 ms WAN); then FastAGI's sustained rate, its concurrency with a
1 s API, and its RSS; then the memory each bridged call holds (classic AGI's shell waiter
and its Python predecessor, FastAGI, Asterisk itself; bench/memory.py).  Prints a table with the targets and writes table.txt, calls.csv,
results.json and bench.png into the output folder.  It is not a test; see bench/README.md.
"""
import argparse
import os
import random
import secrets
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "tests" / "e2e"))

import breaker  # noqa: E402
import failover  # noqa: E402
import memory  # noqa: E402
import sipp_runs  # noqa: E402
import stats  # noqa: E402
import tls  # noqa: E402
from api_model import BenchModel  # noqa: E402
from benchlab import REFERENCE_IMPORTS, BenchLab  # noqa: E402
from lab_build import ensure_lab_image, say  # noqa: E402
from lab_lock import LAB_LOCK  # noqa: E402
from lab_run import FASTAGI_PORT  # noqa: E402
from sampler import Sampler, proc_status  # noqa: E402

VARIANTS = ("floor", "curl", "agi", "fastagi")
WAN_RTT = 0.030
API_DELAY = 1.0  # the concurrency run's API answer time


def plan(quick, calls):
    """Sizes of every loop, all bounded; --quick trades precision for ~4 minutes."""
    return {
        "rounds": calls or (15 if quick else 60),  # measured calls per variant per API model
        "warmup_rounds": 2,
        "reference_runs": 15 if quick else 40,
        "probe_rates": [50, 75, 100] if quick else [50, 75, 100, 150],
        "fallback_rates": [35, 25, 15],
        "probe_seconds": 8 if quick else 15,
        "confirm_seconds": 20 if quick else 60,
        "concurrency_target": 550,  # aim above the 500 of P4/P5
        "concurrency_rate": 50,
        "concurrency_steady_seconds": 6 if quick else 10,
    }


# ---------------------------------------------------------------------------- latency
def latency_phase(name, model, ctx, cfg):
    """All four variants interleaved (a random order per round), one call at a time."""
    folder = ctx["out"] / name
    rng = random.Random(name)
    order = []
    for _ in range(cfg["warmup_rounds"] + cfg["rounds"]):
        order += rng.sample(VARIANTS, len(VARIANTS))
    model.start()
    lab = BenchLab(ctx["engine"], ctx["image"], folder, model.base_url, ctx["token"], ctx["ca_dir"])
    result = {"model": name}
    try:
        lab.start()
        if name == "instant":  # P3's reference, in the same image, while nothing else runs
            say("timing `python -c \"%s\"` in the image" % REFERENCE_IMPORTS)
            result["reference_ms"] = lab.time_python(REFERENCE_IMPORTS, cfg["reference_runs"])
            result["python_pass_ms"] = lab.time_python("pass", cfg["reference_runs"])
        model.reset_counts()
        injection = sipp_runs.write_injection(folder / "variants.csv", ["bench-" + v for v in order])
        budget = 30 + 3 * len(order)
        say("%s API: %d calls (%d warm-up), one at a time" % (name, len(order), cfg["warmup_rounds"] * len(VARIANTS)))
        agent = sipp_runs.agent(folder, "agent", len(order), budget).start()
        customer = sipp_runs.customer(folder, "customer", len(order), rate=10, limit=1, timeout=budget,
                                      injection=injection).start()
        result["customer_exit"] = customer.wait(budget + 10)
        result["agent_exit"] = agent.wait(15)
        rows = stats.join(stats.parse_acks(customer.text()), stats.parse_invites(agent.text()))
        warm = cfg["warmup_rounds"] * len(VARIANTS)
        result["calls"] = [{"call": c, "variant": v.replace("bench-", ""), "ms": ms, "xei_ok": ok, "warmup": i < warm}
                           for i, (c, v, ms, ok) in enumerate(rows)]
        result["api"] = model.snapshot()
        result["unsound_bodies"] = model.bad_samples
        result["lost"] = sum(1 for row in result["calls"] if row["ms"] is None or not row["xei_ok"])
    finally:
        lab.stop()
        model.stop()
    return result


# ---------------------------------------------------------------------------- load
def load_run(lab, model, ctx, label, rate, seconds, hold_ms=0, api_delay=0.0):
    """FastAGI only, at ``rate`` calls/s for ``seconds``: counts, latency, CPU, FastAGI RSS/threads."""
    folder = ctx["out"] / "load" / label
    calls = max(1, int(round(rate * seconds)))
    model.delay = api_delay
    injection = sipp_runs.write_injection(folder / "variants.csv", ["bench-fastagi"])
    hold = hold_ms / 1000.0
    budget = int(seconds + hold + api_delay + 60)
    say("load %s: %g calls/s for %g s (%d calls), API %.1f s, agent holds %.1f s" % (label, rate, seconds, calls, api_delay, hold))
    agent = sipp_runs.agent(folder, "agent", calls, budget, hold_ms=hold_ms, recv_timeout=30 + hold).start()
    customer = sipp_runs.customer(folder, "customer", calls, rate=rate, limit=2000, timeout=budget,
                                  injection=injection, recv_timeout=30 + hold).start()
    pids = {"asterisk": ctx["asterisk_pid"], "fastagi": ctx["fastagi_pid"], "bench+model": ctx["bench_pid"],
            "sipp-customer": customer.proc.pid, "sipp-agent": agent.proc.pid}
    started = time.time()
    with Sampler(pids, interval=0.25, port=FASTAGI_PORT) as sampler:
        customer_exit = customer.wait(budget + 10)
        agent_exit = agent.wait(20 + hold)
    rows = stats.join(stats.parse_acks(customer.text()), stats.parse_invites(agent.text()))
    outcome = stats.load_outcome(rows, calls)
    acks = sorted(stats.parse_acks(customer.text()).values(), key=lambda item: item[1])
    achieved = (len(acks) - 1) / (acks[-1][1] - acks[0][1]) if len(acks) > 1 and acks[-1][1] > acks[0][1] else None
    threads = sampler.series("fastagi", "threads")
    rss = sampler.series("fastagi", "rss_kb")
    # Calls in FastAGI are its open connections: a call parked in Dial holds no thread.
    peak = max(sampler.connections, key=lambda item: item[1]) if sampler.connections else None
    rss_at_peak = next((kb for t, kb in rss if peak and t == peak[0]), None)
    result = {"label": label, "rate": rate, "seconds": seconds, "hold_ms": hold_ms, "api_delay": api_delay,
              "customer_exit": customer_exit, "agent_exit": agent_exit, "sipp_customer": customer.counts(),
              "sipp_agent": agent.counts(), "achieved_rate": round(achieved, 2) if achieved else None,
              "latency": stats.summary([r[2] for r in rows if r[2] is not None]),
              "cpu": sampler.cpu_shares(started + 2, None), "outcome": outcome,
              "peak_calls": peak[1] if peak else None, "peak_threads": max((n for _, n in threads), default=None),
              "rss_kb_at_peak": rss_at_peak,
              "rss_kb_max": max((kb for _, kb in rss), default=None),
              "timeline": [(round(t - started, 2), n, kb) for (t, n), (_, kb) in zip(sampler.connections, rss)]}
    result["ok"] = (outcome["lost"] == 0 and customer_exit == 0 and agent_exit == 0
                    and achieved is not None and achieved >= 0.95 * rate)
    say("  -> %s: handed off %d/%d, achieved %s calls/s, CPU %s" % (
        "ok" if result["ok"] else "FAILED", outcome["handed_off"], calls, result["achieved_rate"], result["cpu"]))
    return result


def load_phase(ctx, cfg):
    model = BenchModel(ctx["token"]).start()
    lab = BenchLab(ctx["engine"], ctx["image"], ctx["out"] / "load", model.base_url, ctx["token"], ctx["ca_dir"])
    result = {"probes": [], "confirms": []}
    try:
        lab.start()
        ctx.update(asterisk_pid=lab.asterisk_pid(), fastagi_pid=lab.fastagi_pid(), bench_pid=os.getpid())
        result["idle_rss_kb"] = proc_status(ctx["fastagi_pid"])["rss_kb"]
        passing = []
        for rate in cfg["probe_rates"]:
            run = load_run(lab, model, ctx, "probe-%g" % rate, rate, cfg["probe_seconds"])
            result["probes"].append(run)
            if not run["ok"]:
                break
            passing.append(rate)
        if not passing:
            for rate in cfg["fallback_rates"]:
                run = load_run(lab, model, ctx, "probe-%g" % rate, rate, cfg["probe_seconds"])
                result["probes"].append(run)
                if run["ok"]:
                    passing.append(rate)
                    break
        result["sustained_rate"] = None
        for rate in sorted(passing, reverse=True)[:2]:  # at most two confirmations
            run = load_run(lab, model, ctx, "sustained-%g" % rate, rate, cfg["confirm_seconds"])
            result["confirms"].append(run)
            if run["ok"]:
                result["sustained_rate"] = rate
                break
        rate = min(cfg["concurrency_rate"], result["sustained_rate"] or cfg["concurrency_rate"])
        per_call = API_DELAY + 0.03  # seconds a call spends in FastAGI besides the agent's hold
        hold_ms = max(0, int((cfg["concurrency_target"] / rate - per_call) * 1000))
        seconds = per_call + hold_ms / 1000.0 + cfg["concurrency_steady_seconds"]
        result["concurrency"] = load_run(lab, model, ctx, "concurrency", rate, seconds, hold_ms=hold_ms,
                                         api_delay=API_DELAY)
    finally:
        try:
            lab.stop()
        finally:
            model.stop()
    result["fastagi_summary"] = lab.fastagi_summary()
    result["fastagi_statuses"] = lab.statuses()
    return result


# ---------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=0, help="measured calls per variant per API model (default 60, quick 15)")
    parser.add_argument("--quick", action="store_true", help="short runs (~4 minutes) for iteration")
    parser.add_argument("--out", help="output folder (default .cache/bench/<timestamp>)")
    parser.add_argument("--skip-load", action="store_true", help="latency only (development)")
    parser.add_argument("--only", choices=["memory", "failover", "breaker"],
                        help="run only this phase (memory: ~8 minutes; failover: ~5 minutes; breaker: ~30 s)")
    parser.add_argument("--memory-sizes", help="concurrent bridged calls per memory run, comma-separated "
                        "(default %s; with --quick %d)" % (",".join(str(n) for n in memory.SIZES), memory.SIZES[0]))
    args = parser.parse_args(argv)
    cfg = plan(args.quick, args.calls)
    out = Path(args.out or HERE.parent / ".cache" / "bench" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    import report  # imports matplotlib lazily; fails early if the table cannot be written

    started = time.time()
    ctx = {"out": out, "token": "bench-" + secrets.token_hex(12), "ca_dir": out / "tls"}
    tls.make_ca(ctx["ca_dir"])
    default_sizes = memory.SIZES[:1] if args.quick else memory.SIZES
    sizes = [int(n) for n in (args.memory_sizes or ",".join(map(str, default_sizes))).split(",") if n.strip()]
    if not sizes or min(sizes) < 1 or max(sizes) > 200:
        parser.error("--memory-sizes: 1 to 200 calls per run")
    results = {"plan": cfg, "quick": args.quick}
    with LAB_LOCK:  # one lab per host; held for the whole run so no other run slips in between phases
        ctx["engine"], ctx["image"] = ensure_lab_image("sid")
        if not args.only:
            results["instant"] = latency_phase("instant", BenchModel(ctx["token"]), ctx, cfg)
            wan = BenchModel(ctx["token"], rtt=WAN_RTT, tls=tls.server_context(ctx["ca_dir"]))
            results["wan"] = latency_phase("wan", wan, ctx, cfg)
            if not args.skip_load:
                results["load"] = load_phase(ctx, cfg)
        if args.only == "memory" or (not args.only and not args.skip_load):
            results["memory"] = memory.memory_phase(ctx, sizes)
        if args.only == "failover" or (not args.only and not args.skip_load):
            results["failover"] = failover.failover_phase(ctx, quick=args.quick)
    if args.only == "breaker" or not args.only:
        results["breaker"] = breaker.breaker_phase()  # no lab: the scripted AGI peers
    results["elapsed_s"] = round(time.time() - started, 1)
    text = report.write(out, results)
    print(text)
    print("\nwritten: %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
