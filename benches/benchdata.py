"""Reading and summarising a results directory written by benches/run.sh.

results.jsonl      one measurement a line: workload, metric, variant, rep, value, unit
comparisons.jsonl  one goal a line: workload, metric, variant, baseline ("-" for an
                   absolute goal), op, target, note
meta.json          machine, kernel, versions, mode
"""

import json
import math
import os
import statistics
from collections import OrderedDict

OPS = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


def _jsonl(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise SystemExit(f"{path}:{n}: bad JSON: {e}")
    return rows


class Results:
    def __init__(self, directory):
        self.dir = directory
        self.meta = json.load(open(os.path.join(directory, "meta.json")))
        self.rows = _jsonl(os.path.join(directory, "results.jsonl"))
        self.goals = _jsonl(os.path.join(directory, "comparisons.jsonl"))
        if not self.rows:
            raise SystemExit(f"{directory}: no results recorded")
        # workload -> metric -> variant -> [values], all in order of first appearance
        self.data = OrderedDict()
        self.units = {}
        for r in self.rows:
            v = float(r["value"])
            if not math.isfinite(v):
                raise SystemExit(f"non-finite value in {r}")
            m = self.data.setdefault(r["workload"], OrderedDict()).setdefault(r["metric"], OrderedDict())
            m.setdefault(r["variant"], []).append(v)
            key = (r["workload"], r["metric"])
            if self.units.setdefault(key, r["unit"]) != r["unit"]:
                raise SystemExit(f"{key}: mixed units {self.units[key]} and {r['unit']}")

    def values(self, workload, metric, variant):
        try:
            return self.data[workload][metric][variant]
        except KeyError:
            raise SystemExit(f"no figures for {workload}/{metric}/{variant}")

    def median(self, workload, metric, variant):
        return statistics.median(self.values(workload, metric, variant))

    def unit(self, workload, metric):
        return self.units[(workload, metric)]

    def reference(self, workload, metric):
        """The baseline a metric's ratios are taken against: its first variant
        that is not thaw's own."""
        for v in self.data[workload][metric]:
            if not v.startswith("thaw"):
                return v
        return None

    def evaluate(self, g):
        """(value shown, met?) for one goal; value is a ratio, or the median
        itself for an absolute goal; met is None for an "info" line."""
        a = self.median(g["workload"], g["metric"], g["variant"])
        if g["baseline"] == "-":
            value = a
        else:
            b = self.median(g["workload"], g["metric"], g["baseline"])
            if b == 0:
                raise SystemExit(f"baseline median is 0 for {g}")
            value = a / b
        if g["op"] == "info":
            return value, None
        return value, OPS[g["op"]](value, float(g["target"]))


def fmt(value, unit):
    """A human figure in the metric's unit."""
    if unit == "s":
        if value < 1e-5:
            return f"{value * 1e6:.2f} µs"
        if value < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if value < 1:
            return f"{value * 1e3:.1f} ms"
        if value < 120:
            return f"{value:.2f} s"
        return f"{int(value // 60)}m{value % 60:04.1f}s"
    if unit == "B":
        for u, s in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if abs(value) >= s:
                return f"{value / s:.2f} {u}"
        return f"{value:.0f} B"
    if unit == "MB/s":
        return f"{value:,.0f} MB/s" if value >= 100 else f"{value:.1f} MB/s"
    if unit == "KB":
        return fmt(value * 1024, "B")
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.4g} {unit}"
