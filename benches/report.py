#!/usr/bin/env python3
"""Writes report.md and results.csv for a results directory of benches/run.sh.

usage: report.py RESULTS_DIR
"""

import csv
import os
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ in benches/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchdata import Results, fmt  # noqa: E402

TITLES = {
    "archive": "Archive commands on the Linux 6.1 source (issue #2)",
    "read_at": "Random 4 KiB `Archive::read_at` (criterion, issue #2)",
    "kernel": "Kernel build: full extraction vs `thaw run` (issue #4, workload 1)",
    "dataset": "Dataset: random reads of 1 % / 10 % of the files (issue #4, workload 2)",
    "seqread": "Cold sequential read of one large file (issue #4, workload 3)",
    "hotread": "Hot reads after hydration vs native (issue #4, workload 4)",
    "ci": "CI artifact restore: cargo `target/`, then a no-op build (issue #4, workload 5)",
    "profile": "Access profiles, dehydrate and the disk budget (issue #12)",
}


def cell(text):
    """Table cells may hold variant names such as `tar | zstd`."""
    return str(text).replace("|", "\\|")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    res = Results(sys.argv[1])
    m = res.meta
    out = []
    w = out.append
    w(f"# thaw benchmarks — {m['date'][:10]} ({m['mode']} run)\n")
    w("| | |\n|---|---|")
    w(f"| machine | {m['cpu']}, {m['cores']} cores, {m['memory']} RAM |")
    w(f"| kernel | {m['kernel']} |")
    w(f"| OS | {m['os']} |")
    w(f"| work filesystem | {m['work_fs']} |")
    w(f"| repetitions | {m['reps']} per variant, baseline and thaw alternating (ABBA order) |")
    w(f"| kernel config | {m['kernel_config']} |")
    for k, v in m["versions"].items():
        w(f"| {k} | {cell(v)} |")
    w("")
    w("Figures are medians over the repetitions; *spread* is min – max; *ratio* is "
      "the variant's median over the baseline's median measured in the same run. "
      "*Cold* means the page cache was dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) "
      "right before the timed step.\n")

    if res.goals:
        w("## Goals\n")
        w("| workload | figure | measured | baseline | ratio / value | goal | met |")
        w("|---|---|---|---|---|---|---|")
        failed = counted = 0
        for g in res.goals:
            unit = res.unit(g["workload"], g["metric"])
            value, ok = res.evaluate(g)
            if ok is not None:
                counted += 1
                failed += not ok
            a = fmt(res.median(g["workload"], g["metric"], g["variant"]), unit)
            if g["baseline"] == "-":
                base, shown, goal = "—", fmt(value, unit), f"{g['op']} {fmt(g['target'], unit)}"
            else:
                base = f"{g['baseline']}: {fmt(res.median(g['workload'], g['metric'], g['baseline']), unit)}"
                shown, goal = f"{value:.3f}×", f"{g['op']} {g['target']}×"
            if ok is None:
                goal, met = "(no goal)", "—"
            else:
                met = "yes" if ok else "**no**"
            note = f" ({g['note']})" if g.get("note") else ""
            w(f"| {g['workload']} | {cell(g['metric'] + note)} | {cell(g['variant'])}: {a} | {cell(base)} | {shown} | "
              f"{goal} | {met} |")
        w(f"\n{counted - failed} of {counted} goals met.\n")

    for wl, metrics in res.data.items():
        w(f"## {TITLES.get(wl, wl)}\n")
        if os.path.exists(os.path.join(res.dir, f"{wl}.png")):
            w(f"![{wl}]({wl}.png)\n")
        w("| figure | variant | median | spread (min – max) | n | ratio |")
        w("|---|---|---|---|---|---|")
        for metric, variants in metrics.items():
            unit = res.unit(wl, metric)
            ref = res.reference(wl, metric)
            ref_med = statistics.median(variants[ref]) if ref else None
            for variant, vals in variants.items():
                med = statistics.median(vals)
                spread = f"{fmt(min(vals), unit)} – {fmt(max(vals), unit)}" if len(vals) > 1 else "—"
                if ref is None or variant == ref:
                    ratio = "—"
                elif ref_med == 0:
                    ratio = "n/a"
                else:
                    ratio = f"{med / ref_med:.3f}× {ref}"
                w(f"| {metric} | {cell(variant)} | {fmt(med, unit)} | {spread} | {len(vals)} | {cell(ratio)} |")
        w("")

    if os.path.exists(os.path.join(res.dir, "goals.png")):
        w("## Goals at a glance\n\n![goals](goals.png)\n")
    w("Raw figures: `results.jsonl` (one measurement a line), `results.csv`; goals: `comparisons.jsonl`.")

    with open(os.path.join(res.dir, "report.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    with open(os.path.join(res.dir, "results.csv"), "w", newline="") as f:
        cw = csv.writer(f)
        cw.writerow(["workload", "metric", "variant", "rep", "value", "unit"])
        for r in res.rows:
            cw.writerow([r["workload"], r["metric"], r["variant"], r["rep"], r["value"], r["unit"]])


if __name__ == "__main__":
    main()
