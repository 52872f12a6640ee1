#!/usr/bin/env python3
"""PNG plots for a results directory of benches/run.sh: per workload, one
panel per figure (time, disk, throughput), baseline bars beside thaw's, bar =
median, whisker = min – max; plus goals.png with every goal's ratio.

usage: plot.py RESULTS_DIR
"""

import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.dont_write_bytecode = True  # no __pycache__ in benches/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchdata import Results, fmt  # noqa: E402

# Units worth a panel, and how to scale them for the axis.
SCALES = {"s": (1, "seconds"), "B": (1 / (1 << 20), "MiB"), "MB/s": (1, "MB/s")}
BASE_COLORS = ["#8c8c8c", "#c9a227", "#5b8fd1", "#b35c9e"]
THAW_COLORS = ["#2e8b57", "#7fc49b", "#1f5f3a"]


def plotted(metric, unit, variants):
    """Figures with a baseline beside thaw; user/sys splits, counters and
    thaw-only figures are in the report's tables, not in the plots."""
    return unit in SCALES and len(variants) >= 2 and not metric.endswith(("_user", "_sys"))


def color_for(variant, i_base, i_thaw):
    if variant.startswith("thaw"):
        return THAW_COLORS[i_thaw % len(THAW_COLORS)]
    return BASE_COLORS[i_base % len(BASE_COLORS)]


def workload_figure(res, wl, metrics, path):
    panels = [(m, v) for m, v in metrics.items() if plotted(m, res.unit(wl, m), v)]
    if not panels:
        return False
    cols = min(4, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (metric, variants) in zip(axes.flat, panels):
        unit = res.unit(wl, metric)
        scale, label = SCALES[unit]
        names, meds, lo, hi, colors = [], [], [], [], []
        ib = it = 0
        for variant, vals in variants.items():
            med = statistics.median(vals)
            names.append(variant)
            meds.append(med * scale)
            lo.append((med - min(vals)) * scale)
            hi.append((max(vals) - med) * scale)
            colors.append(color_for(variant, ib, it))
            if variant.startswith("thaw"):
                it += 1
            else:
                ib += 1
        xs = range(len(names))
        ax.bar(xs, meds, yerr=[lo, hi], color=colors, capsize=3, edgecolor="black", linewidth=0.4)
        for x, (variant, vals) in zip(xs, variants.items()):
            ax.annotate(fmt(statistics.median(vals), unit), (x, meds[x]), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=9)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.15)
    fig.suptitle(f"{wl} — {res.meta['date'][:10]}, {res.meta['mode']} run, "
                 f"{res.meta['cores']} cores (bar: median, whisker: min–max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def goals_figure(res, path):
    ratio_goals = [g for g in res.goals if g["baseline"] != "-" and g["op"] != "info"]
    if not ratio_goals:
        return False
    labels, values, targets, colors = [], [], [], []
    for g in ratio_goals:
        value, ok = res.evaluate(g)
        labels.append(f"{g['workload']}: {g['metric']}\n{g['variant']} / {g['baseline']}")
        values.append(value)
        targets.append(float(g["target"]))
        colors.append("#2e8b57" if ok else "#c0392b")
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(values) + 1.2))
    ys = range(len(values))
    ax.barh(ys, values, color=colors, edgecolor="black", linewidth=0.4)
    for y, (v, t, g) in enumerate(zip(values, targets, ratio_goals)):
        ax.plot([t, t], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        ax.annotate(f"{v:.3f}× (goal {g['op']} {t}×)", (v, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ratio thaw / baseline (black tick: goal; green: met)", fontsize=8)
    ax.margins(x=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


#: Workloads whose figures have no baseline, so no bar chart.
UNPLOTTED = {"soak", "fuzz"}


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    res = Results(sys.argv[1])
    made = []
    for wl, metrics in res.data.items():
        p = os.path.join(res.dir, f"{wl}.png")
        if workload_figure(res, wl, metrics, p):
            made.append(p)
    p = os.path.join(res.dir, "goals.png")
    if goals_figure(res, p):
        made.append(p)
    # The soak and fuzz record figures of thaw alone (no baseline to draw beside).
    if not made and set(res.data) <= UNPLOTTED:
        print("nothing to plot: " + ", ".join(sorted(res.data)) + " record figures without a baseline")
        return
    if not made:
        raise SystemExit("no plottable figures")
    for p in made:
        print(p)


if __name__ == "__main__":
    main()
