#!/usr/bin/env python3
"""fold.py PERF_SCRIPT_TXT: fold a system-wide `perf record -a -g` (cpu-clock
+ sched_switch + sched_waking) of one build into the buckets of report.md.
Reads `perf script -F comm,tid,time,event,trace,ip,sym` output on stdin.
Prints JSON."""
import sys, re, json, collections

DAEMON = re.compile(r'^thaw')          # thaw, thaw-serve, thaw-event-N, thaw-signals
IDLE = {'swapper'}
FSN = re.compile(r'fsnotify|fanotify')
RA = re.compile(r'page_cache_ra_|page_cache_sync_ra|page_cache_async_ra|ondemand_readahead|do_page_cache_ra|force_page_cache_ra|read_pages$')
ZSTD = re.compile(r'ZSTD|zstd|HUF_|FSE_|BIT_')

def daemon_bucket(stack):
    leaf = stack[0] if stack else '?'
    s = ' '.join(stack)
    if ZSTD.search(leaf):
        return 'decode (zstd, user)'
    if 'pwrite64' in s:
        return 'pwrite into stub (kernel)'
    if re.search(r'fanotify_read|fanotify_write|copy_event_to_user|fanotify_poll|do_sys_poll|do_poll|ep_poll|__x64_sys_ppoll|__x64_sys_poll', s):
        return 'fanotify read/respond/poll (kernel)'
    if re.search(r'fanotify_mark|do_fanotify_mark|fsnotify_add_mark|fsnotify_recalc', s):
        return 'fanotify_mark (ignore marks, kernel)'
    if re.search(r'xattr|newfstat|vfs_fstat|statx|sys_fstat', s):
        return 'stub lookup: fstat/xattr (kernel)'
    if re.search(r'readlink|proc_fd_link|d_path|sys_openat|do_filp_open|proc_', s):
        return 'paths and /proc (kernel)'
    if re.search(r'sys_close|__fput|fput|task_work_run|filp_close', s):
        return 'closing event fds (kernel)'
    if re.search(r'sys_pread64|ksys_pread64', s):
        return 'archive pread (kernel)'
    if re.search(r'futex|schedule|finish_task_switch|try_to_wake_up', s):
        return 'threads: futex/scheduling (kernel)'
    if re.search(r'utimensat|futimens|vfs_utimes', s):
        return 'mtime restore (kernel)'
    if re.search(r'entry_SYSCALL|do_syscall_64|irq|asm_', s):
        return 'other kernel'
    if re.search(r'memcpy|memmove', leaf):
        return 'memcpy (user)'
    if re.search(r'malloc|free|realloc|_int_|cfree', leaf):
        return 'malloc/free (user)'
    return 'other user (thaw, std)'

samples = collections.Counter()
dbucket = collections.Counter(); dsym = collections.Counter()
bsym = collections.Counter()             # build processes: leaf kernel+user symbols
build_fsn = build_ra = build_total = build_kernel = 0
build_fsn_sym = collections.Counter()
blocked_out = {}                         # tid -> switch-out time (in a fanotify wait)
blocked = []; blocked_who = []; waits_total = 0
hdr = re.compile(r'^\s*(\S.*?)\s+(\d+)\s+(\d+\.\d+):\s+(\S+):\s*(.*)$')

def flush(rec):
    global build_fsn, build_ra, build_total, build_kernel
    if rec is None: return
    comm, tid, t, ev, trace, stack = rec
    if ev.startswith('cpu-clock'):
        if comm in IDLE: samples['idle'] += 1; return
        if DAEMON.match(comm):
            samples['daemon'] += 1
            b = daemon_bucket(stack); dbucket[b] += 1
            dsym[stack[0] if stack else '?'] += 1
            return
        if comm.startswith('perf'): samples['perf'] += 1; return
        samples['build'] += 1; build_total += 1
        kern = any(s.startswith(('entry_SYSCALL', 'asm_', 'do_syscall_64')) for s in stack)
        if kern: build_kernel += 1
        bsym[stack[0] if stack else '?'] += 1
        if any(FSN.search(s) for s in stack):
            build_fsn += 1
            f = next(s for s in stack if FSN.search(s)); build_fsn_sym[f] += 1
        if any(RA.search(s) for s in stack): build_ra += 1
    elif ev.startswith('sched:sched_switch'):
        m = re.search(r'prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+)', trace)
        if m and m.group(2) != 'R' and m.group(2) != 'R+':
            if any('fanotify_get_response' in s or 'fsnotify_pre_content' in s or 'fanotify_handle_event' in s for s in stack):
                blocked_out[int(m.group(1))] = (t, comm)
    elif ev.startswith('sched:sched_waking'):
        m = re.search(r' pid=(\d+)', trace)
        if m:
            p = int(m.group(1))
            if p in blocked_out:
                t0c = blocked_out.pop(p); blocked.append(t - t0c[0]); blocked_who.append((round(1000 * (t - t0c[0]), 2), t0c[1], round(t0c[0], 3)))

rec = None
for line in sys.stdin:
    if not line.strip():
        flush(rec); rec = None; continue
    if line[0] in ' \t' and rec is not None and re.match(r'^\s+[0-9a-f]+\s', line):
        parts = line.split(None, 2)
        sym = parts[1] if len(parts) > 1 else '?'
        sym = re.sub(r'\+0x[0-9a-f]+$', '', sym)
        rec[5].append(sym); continue
    m = hdr.match(line)
    if m:
        flush(rec)
        rec = (m.group(1).strip(), int(m.group(2)), float(m.group(3)), m.group(4), m.group(5), [])
flush(rec)

hz = 1999.0
out = {
    'samples': dict(samples),
    'seconds': {k: round(v / hz, 3) for k, v in samples.items()},
    'daemon_buckets_s': {k: round(v / hz, 3) for k, v in dbucket.most_common()},
    'daemon_top_syms': [(k, round(v / hz, 3)) for k, v in dsym.most_common(25)],
    'build_total_s': round(build_total / hz, 3),
    'build_kernel_s': round(build_kernel / hz, 3),
    'build_fsnotify_s': round(build_fsn / hz, 3),
    'build_fsnotify_pct_of_build': round(100 * build_fsn / max(build_total, 1), 3),
    'build_fsnotify_entry_syms': [(k, round(v / hz, 3)) for k, v in build_fsn_sym.most_common(12)],
    'build_readahead_s': round(build_ra / hz, 3),
    'build_readahead_pct_of_build': round(100 * build_ra / max(build_total, 1), 3),
    'build_top_syms': [(k, round(v / hz, 3)) for k, v in bsym.most_common(30)],
    'fanotify_waits': len(blocked),
    'fanotify_blocked_s': round(sum(blocked), 4),
    'fanotify_blocked_ms_p50_p90_p99_max': ([round(1000 * sorted(blocked)[int(q * (len(blocked) - 1))], 3) for q in (0.5, 0.9, 0.99)] + [round(1000 * max(blocked), 3)]) if blocked else [],
    'unmatched_switch_outs': len(blocked_out),
    'longest_waits_ms_comm_t': sorted(blocked_who, reverse=True)[:15],
    'blocked_s_by_comm': {c: round(sum(w for w, cc, _ in blocked_who if cc == c) / 1000, 3) for c in set(c for _, c, _ in blocked_who)},
    'waits_over_10ms': sum(1 for b in blocked if b > 0.01), 'blocked_s_in_waits_over_10ms': round(sum(b for b in blocked if b > 0.01), 3),
}
json.dump(out, sys.stdout, indent=1)
