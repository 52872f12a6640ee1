#!/usr/bin/env python3
"""compare.py OLD_DIR[,OLD_DIR...] NEW_DIR[,NEW_DIR...]: every ratio of the quick report, per run (reshape-comparison.md).

  cd benches/results/2026-11-26-quick/reshape-runs && python3 compare.py old1,old2,old3,old4 new1,new2,new3,new4
"""
import json, os, statistics, sys

sys.dont_write_bytecode = True  # no __pycache__ in benches/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.."))
from benchdata import Results, fmt

def ratios(d):
    res = Results(d)
    out = {}
    for g in res.goals:
        v, _ = res.evaluate(g)
        key = ("goal", g["workload"], g["metric"], g["variant"], g["baseline"])
        u = res.unit(g["workload"], g["metric"])
        out[key] = (v, u if g["baseline"] == "-" else "x", res.median(g["workload"], g["metric"], g["variant"]), u)
    for wl, metrics in res.data.items():
        for metric, variants in metrics.items():
            ref = res.reference(wl, metric)
            if ref is None:
                continue
            rm = statistics.median(variants[ref])
            for var, vals in variants.items():
                if var == ref or rm == 0:
                    continue
                out[("figure", wl, metric, var, ref)] = (statistics.median(vals) / rm, "x", statistics.median(vals), res.unit(wl, metric))
    fig = {k[1:] for k in out if k[0] == "figure"}
    return {k: v for k, v in out.items() if k[0] == "figure" or k[1:] not in fig}

olds = [ratios(d) for d in sys.argv[1].split(",")]
news = [ratios(d) for d in sys.argv[2].split(",")]
keys = [k for k in olds[0] if all(k in r for r in olds + news)]
missing = [k for r in olds + news for k in r if k not in keys]
rows = []
for k in keys:
    unit = olds[0][k][1]
    o = [r[k][0] for r in olds]; n = [r[k][0] for r in news]
    mo, mn = statistics.mean(o), statistics.mean(n)
    so = max(o) - min(o); sn = max(n) - min(n)
    d = (mn / mo - 1) * 100 if mo else float("nan")
    overlap = min(max(o), max(n)) >= max(min(o), min(n))
    noise = max(so, sn)
    auto = "same" if len({float(f"{v:.4g}") for v in o + n}) == 1 else "overlap" if overlap else ("≤ spread" if abs(mn - mo) <= noise else "OUT")
    ao = statistics.median(r[k][2] for r in olds); an = statistics.median(r[k][2] for r in news); au = olds[0][k][3]
    rows.append(dict(ao=ao, an=an, au=au, kind=k[0], wl=k[1], metric=k[2], var=k[3], base=k[4], unit=unit, old=o, new=n, d=d, so=so, sn=sn, auto=auto))

f = lambda v, u: f"{v:.3f}" if u == "x" else fmt(v, u)
print("| workload | figure | variant / baseline | OLD runs | NEW runs | Δ mean | spread OLD / NEW | variant median OLD → NEW | auto |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    u = r["unit"]
    print(f"| {r['wl']} | {r['metric']} | {r['var']} / {r['base']} | {', '.join(f(v,u) for v in r['old'])} | "
          f"{', '.join(f(v,u) for v in r['new'])} | {r['d']:+.1f} % | {f(r['so'],u)} / {f(r['sn'],u)} | {fmt(r['ao'],r['au'])} → {fmt(r['an'],r['au'])} | {r['auto']} |".replace(" | zstd", " \\| zstd"))
if missing:
    print("\nnot in every run:", sorted(set(missing)), file=sys.stderr)
