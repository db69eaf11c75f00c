"""The benchmark's outputs: the printed table with the targets, calls.csv, results.json, bench.png."""
import csv
import json
import statistics

import breaker
import failover
import memory
import stats

VARIANT_NAMES = {"floor": "1 floor (static X-EI)", "curl": "2 dialplan CURL peer",
                 "agi": "3 classic AGI", "fastagi": "4 FastAGI"}
GOALS = {"P1": 0.5, "P2": 2.0, "P3": 1.0, "P4_rate": 50, "P4_concurrent": 500, "P5": 60.0}


def _matplotlib():
    """matplotlib from the bench extra (``make bench`` installs it), or None."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def measured(phase):
    """{variant: [ms]} of the phase's measured (not warm-up) calls that reached the agent."""
    values = {v: [] for v in VARIANT_NAMES}
    for row in phase["calls"]:
        if not row["warmup"] and row["ms"] is not None:
            values[row["variant"]].append(row["ms"])
    return values


def analyse(results):
    """Derive medians, overheads, ratios and the target verdicts from the raw results."""
    derived = {}
    for name in ("instant", "wan"):
        phase = results[name]
        summaries = {v: stats.summary(ms) for v, ms in measured(phase).items()}
        medians = {v: s["median"] for v, s in summaries.items() if s}
        derived[name] = {"summary": summaries, "overhead": stats.overheads(medians) if "floor" in medians else {}}
    inst, wan = derived["instant"]["overhead"], derived["wan"]["overhead"]
    reference = statistics.median(results["instant"]["reference_ms"])
    derived["reference_ms"] = reference
    derived["python_pass_ms"] = statistics.median(results["instant"]["python_pass_ms"])
    targets = {
        "P1": stats.ratio(wan.get("fastagi"), wan.get("curl")),
        "P2": stats.ratio(inst.get("fastagi"), inst.get("curl")),
        "P3": stats.ratio(inst.get("agi"), reference),
    }
    load = results.get("load") or {}
    conc = load.get("concurrency") or {}
    in_flight = conc.get("peak_calls")
    targets["P4_rate"] = load.get("sustained_rate")
    targets["P4_concurrent"] = in_flight if conc.get("ok") else None
    rss = conc.get("rss_kb_at_peak")
    targets["P5"] = round(rss / 1024.0, 1) if rss and in_flight and in_flight >= GOALS["P4_concurrent"] else None
    derived["targets"] = targets
    derived["concurrent"] = in_flight
    return derived


def _fmt(value, unit="", digits=1):
    if value is None:
        return "-"
    return ("%.*f%s" % (digits, value, unit)) if isinstance(value, float) else "%s%s" % (value, unit)


def table(results, derived):
    lines = ["ACK leaving the customer -> INVITE reaching the agent, ms (measured calls per cell: n)", ""]
    lines.append("%-24s %-8s %5s %8s %8s %8s %10s %10s" % ("variant", "API", "n", "median", "p90", "p99", "overhead", "conn/call"))
    for name, label in (("instant", "instant"), ("wan", "WAN 30ms")):
        api = results[name]["api"]
        for variant, title in VARIANT_NAMES.items():
            s = derived[name]["summary"].get(variant)
            counts = api.get(variant, {})
            conn = stats.ratio(counts.get("new_connections"), counts.get("requests")) if counts else None
            lines.append("%-24s %-8s %5s %8s %8s %8s %10s %10s" % (
                title, label, s["n"] if s else 0, _fmt(s and s["median"]), _fmt(s and s["p90"]), _fmt(s and s["p99"]),
                _fmt(derived[name]["overhead"].get(variant)), "-" if variant == "floor" else _fmt(conn, digits=2)))
        lost = results[name]["lost"]
        bad = sum(c.get("bad_bodies", 0) for c in api.values())
        lines.append("%-24s %s calls without a valid X-EI: %d; API bodies not sound JSON: %d" % ("", label, lost, bad))
    lines += ["", "P3 reference: venv python -c \"import requests, phonenumbers, asterisk.agi\" in the image: "
              "median %.1f ms (python -c pass: %.1f ms)" % (derived["reference_ms"], derived["python_pass_ms"])]
    load = results.get("load")
    if load:
        lines += ["", "FastAGI load (instant API; 'ok' = every call handed off with a valid X-EI at >= 95% of the rate)",
                  "%-16s %6s %6s %9s %9s %9s %9s  %s" % ("run", "rate", "calls", "lost", "achieved", "p50 ms", "p99 ms", "CPU cores (host of 2; per process)")]
        for run in load["probes"] + load["confirms"] + [load["concurrency"]]:
            lat = run["latency"] or {}
            lines.append("%-16s %6g %6d %9s %9s %9s %9s  %s" % (
                run["label"], run["rate"], run["outcome"]["expected"], run["outcome"]["lost"], _fmt(run["achieved_rate"]),
                _fmt(lat.get("median")), _fmt(lat.get("p99")), " ".join("%s=%s" % kv for kv in sorted(run["cpu"].items()))))
        conc = load["concurrency"]
        lines.append("concurrency run: API %.0f s, agent holds %.1f s: peak %s calls in FastAGI (server's own peak_in_flight=%s), "
                     "RSS %s MB at the peak (idle %s MB, max %s MB)" % (
                         conc["api_delay"], conc["hold_ms"] / 1000.0, derived["concurrent"],
                         load.get("fastagi_summary", {}).get("peak_in_flight", "?"),
                         _fmt(conc["rss_kb_at_peak"] and conc["rss_kb_at_peak"] / 1024.0),
                         _fmt(load["idle_rss_kb"] / 1024.0), _fmt(conc["rss_kb_max"] and conc["rss_kb_max"] / 1024.0)))
        lines.append("FastAGI statuses over the load phase: %s" % load.get("fastagi_statuses"))
    t = derived["targets"]
    inst, wan = derived["instant"]["overhead"], derived["wan"]["overhead"]
    rows = [
        ("P1", "FastAGI / peer overhead, WAN model", "%s / %s ms = %s" % (_fmt(wan.get("fastagi")), _fmt(wan.get("curl")), _fmt(t["P1"], digits=2)), "<= 0.5", stats.verdict(t["P1"], GOALS["P1"])),
        ("P2", "FastAGI / peer overhead, instant API", "%s / %s ms = %s" % (_fmt(inst.get("fastagi")), _fmt(inst.get("curl")), _fmt(t["P2"], digits=2)), "<= 2.0", stats.verdict(t["P2"], GOALS["P2"])),
        ("P3", "classic AGI overhead / import reference", "%s / %s ms = %s" % (_fmt(inst.get("agi")), _fmt(derived["reference_ms"]), _fmt(t["P3"], digits=2)), "<= 1.0", stats.verdict(t["P3"], GOALS["P3"])),
        ("P4", "sustained rate, 0 lost, 60 s" if not results.get("quick") else "sustained rate, 0 lost (quick: 20 s)", "%s calls/s" % _fmt(t["P4_rate"]), ">= 50", stats.verdict(t["P4_rate"], GOALS["P4_rate"], True)),
        ("P4", "concurrent calls, 1 s API, 0 lost", _fmt(t["P4_concurrent"]), ">= 500", stats.verdict(t["P4_concurrent"], GOALS["P4_concurrent"], True)),
        ("P5", "FastAGI RSS at >= 500 concurrent", "%s MB" % _fmt(t["P5"]), "<= 60 MB", stats.verdict(t["P5"], GOALS["P5"])),
    ]
    lines += ["", "%-3s %-40s %-28s %-9s %s" % ("", "target", "figure", "goal", "verdict")]
    lines += ["%-3s %-40s %-28s %-9s %s" % row for row in rows]
    lines.append("\n(overhead = variant median - floor median, measured in the same run; the floor includes "
                 "Asterisk's ~500 ms post-Answer media wait: docs/asterisk-notes.md#media-timing-after-answer.)  "
                 "Run took %s s." % results.get("elapsed_s"))
    return "\n".join(lines)


def write_csv(out, results):
    with open(str(out / "calls.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["api_model", "variant", "call_id", "ack_to_invite_ms", "xei_valid", "warmup"])
        for name in ("instant", "wan"):
            for row in results[name]["calls"]:
                writer.writerow([name, row["variant"], row["call"], row["ms"], int(row["xei_ok"]), int(row["warmup"])])


def plot(out, results, derived):
    plt = _matplotlib()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    names = list(VARIANT_NAMES)
    for offset, (phase, label, colour) in enumerate((("instant", "instant HTTP", "#4c72b0"), ("wan", "HTTPS, WAN 30 ms", "#dd8452"))):
        floor = derived[phase]["summary"]["floor"]["median"]
        values = [[ms - floor for ms in measured(results[phase])[v]] for v in names]
        positions = [i * 3 + offset for i in range(len(names))]
        box = axes[0].boxplot(values, positions=positions, widths=0.8, patch_artist=True, showfliers=False)
        for patch in box["boxes"]:
            patch.set_facecolor(colour)
        axes[0].plot([], [], color=colour, linewidth=8, label=label)
    axes[0].set_xticks([i * 3 + 0.5 for i in range(len(names))])
    axes[0].set_xticklabels([VARIANT_NAMES[n] for n in names], rotation=12)
    axes[0].set_ylabel("ms over the floor's median (ACK -> agent INVITE)")
    axes[0].axhline(derived["reference_ms"], color="grey", linestyle=":", label="import reference (P3)")
    axes[0].set_title("hand-off overhead per call")
    axes[0].legend()
    load = results.get("load")
    if load:
        runs = load["probes"] + load["confirms"]
        axes[1].scatter([r["rate"] for r in runs], [(r["latency"] or {}).get("p99") or 0 for r in runs],
                        c=["green" if r["ok"] else "red" for r in runs])
        for r in runs:
            axes[1].annotate(r["label"], (r["rate"], (r["latency"] or {}).get("p99") or 0), fontsize=7)
        axes[1].set_xlabel("offered calls/s (FastAGI, instant API)")
        axes[1].set_ylabel("p99 ACK -> INVITE, ms (green: 0 lost)")
        axes[1].set_title("FastAGI under load")
        timeline = load["concurrency"]["timeline"]
        axes[2].plot([t for t, _, _ in timeline], [n for _, n, _ in timeline], label="calls in FastAGI")
        twin = axes[2].twinx()
        twin.plot([t for t, _, _ in timeline], [kb / 1024.0 for _, _, kb in timeline], color="#c44e52", label="RSS MB")
        twin.set_ylabel("FastAGI RSS, MB")
        axes[2].set_xlabel("s")
        axes[2].set_ylabel("calls in flight")
        axes[2].set_title("concurrency run (1 s API)")
        axes[2].legend(loc="upper left")
        twin.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(str(out / "bench.png"), dpi=110)
    plt.close(fig)
    return True


def write(out, results):
    """Write every output; return the printed table."""
    derived, parts = {}, []
    if "instant" in results:  # absent with --only memory
        derived = analyse(results)
        parts.append(table(results, derived))
        write_csv(out, results)
    if "memory" in results:
        parts.append(memory.table(results["memory"]))
    if "failover" in results:
        parts.append(failover.table(results["failover"]))
    if "breaker" in results:
        parts.append(breaker.table(results["breaker"]))
    text = "\n\n".join(parts)
    (out / "table.txt").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"results": results, "derived": derived}, indent=1, default=str))
    if derived and not plot(out, results, derived):
        text += "\n(no bench.png: matplotlib is missing; pip install -e '.[bench]')"
    return text
