#!/usr/bin/env python3
"""summarize.py: the table of runs from raw/ (GNU time -v of the build, of
`thaw run` as a whole, stats.json, per-thread /proc stat of the daemon)."""
import glob, json, os, re, statistics as st
R = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'raw')
def gtime(p):
    d = {}
    for l in open(p):
        l = l.strip()
        if l.startswith('User time'): d['user'] = float(l.split(': ')[1])
        elif l.startswith('System time'): d['sys'] = float(l.split(': ')[1])
        elif l.startswith('Elapsed'):
            v = l.split(': ')[-1].split(':'); d['wall'] = sum(float(x) * 60 ** i for i, x in enumerate(reversed(v)))
        elif l.startswith('Major'): d['majflt'] = int(l.split(': ')[1])
        elif l.startswith('File system inputs'): d['fsin'] = int(l.split(': ')[1])
        elif l.startswith('Voluntary context'): d['vcsw'] = int(l.split(': ')[1])
    return d
rows = []
for p in sorted(glob.glob(R + '/*.time')):
    if p.endswith('.outer.time'): continue
    tag = os.path.basename(p)[:-5]
    r = {'tag': tag, 'variant': tag.split('-')[0], 'perf': tag.endswith('-perf')}
    r.update(gtime(p))
    if 'wall' in r and os.path.exists(f'{R}/{tag}.outer.time') and os.path.getsize(f'{R}/{tag}.outer.time'):
        o = gtime(f'{R}/{tag}.outer.time')
        r['outer_cpu_minus_build'] = round(o['user'] + o['sys'] - r['user'] - r['sys'], 2)
    if os.path.exists(f'{R}/{tag}.stats.json'):
        s = json.load(open(f'{R}/{tag}.stats.json'))
        for k in ('events', 'event_time_us', 'frames_decoded', 'bytes_decoded', 'bytes_written', 'files_completed'):
            r[k] = s[k]
    if os.path.exists(f'{R}/{tag}.daemon_threads.stat'):
        th = {}
        for l in open(f'{R}/{tag}.daemon_threads.stat'):
            m = re.match(r'(\d+) \((.*?)\) \S+ ' + r'(\S+) ' * 10 + r'(\d+) (\d+)', l)
            if m:
                name = re.sub(r'-\d+$', '-N', m.group(2))
                th[name] = th.get(name, 0) + (int(m.group(13)) + int(m.group(14))) / 100
        r['daemon_threads_cpu'] = {k: round(v, 2) for k, v in th.items()}
        r['daemon_cpu'] = round(sum(th.values()), 2)
    if 'wall' in r: rows.append(r)
json.dump(rows, open(os.path.join(os.path.dirname(R), 'runs.json'), 'w'), indent=1)
def med(v, f): 
    xs = [r[f] for r in rows if r['variant'] == v and not r['perf'] and f in r]
    return (st.median(xs), min(xs), max(xs), len(xs)) if xs else None
print('| run | wall s | user s | sys s | daemon CPU s (proc) | thaw-run CPU − build CPU s | events | event_time_us | frames | bytes_decoded | bytes_written |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
for r in rows:
    print(f"| {r['tag']} | {r['wall']:.2f} | {r['user']:.2f} | {r['sys']:.2f} | {r.get('daemon_cpu','—')} | {r.get('outer_cpu_minus_build','—')} | {r.get('events','—')} | {r.get('event_time_us','—')} | {r.get('frames_decoded','—')} | {r.get('bytes_decoded','—')} | {r.get('bytes_written','—')} |")
print()
print('| figure | extracted median (min–max, n) | thaw median (min–max, n) | thaw/extracted | thaw − extracted |')
print('|---|---|---|---|---|')
for f in ('wall', 'user', 'sys'):
    b, t = med('base', f), med('thaw', f)
    if b and t:
        print(f'| {f} s | {b[0]:.2f} ({b[1]:.2f}–{b[2]:.2f}, {b[3]}) | {t[0]:.2f} ({t[1]:.2f}–{t[2]:.2f}, {t[3]}) | {t[0]/b[0]:.3f}× | {t[0]-b[0]:+.2f} |')
b1, t1 = [r['user'] + r['sys'] for r in rows if r['variant'] == 'base' and not r['perf']], [r['user'] + r['sys'] for r in rows if r['variant'] == 'thaw' and not r['perf']]
if b1 and t1:
    print(f'| user+sys s | {st.median(b1):.2f} | {st.median(t1):.2f} | {st.median(t1)/st.median(b1):.3f}× | {st.median(t1)-st.median(b1):+.2f} |')
dc = [r['daemon_cpu'] for r in rows if r['variant'] == 'thaw' and not r['perf'] and 'daemon_cpu' in r]
if dc: print(f'| daemon CPU s | — | {st.median(dc):.2f} ({min(dc):.2f}–{max(dc):.2f}) | | |')
