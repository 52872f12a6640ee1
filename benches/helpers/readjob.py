#!/usr/bin/env python3
"""The dataset job: reads every file of a list completely (1 MiB reads, in
the list's order) under ROOT and prints one JSON line: digest (see
gen_data.list_digest), files, bytes, seconds.

  readjob.py ROOT LIST [--thaw-rss-out FILE [--thaw-comm NAME]]

--thaw-rss-out: run under `thaw run`; writes the summed peak RSS (VmHWM,
KiB) of the nearest ancestor process named NAME (default thaw) and its
descendants of that name, i.e. the serving daemon, once the job is done.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import zlib


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def thaw_rss(name):
    pid = os.getppid()
    while pid > 1 and comm(pid) != name:
        pid = ppid(pid)
    if pid <= 1:
        raise SystemExit(f"readjob: no {name!r} process among my ancestors")
    children = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                children.setdefault(ppid(int(p)), []).append(int(p))
            except (OSError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        if comm(p) == name:
            total += hwm_kib(p)
        todo.extend(children.get(p, []))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("list")
    ap.add_argument("--thaw-rss-out")
    ap.add_argument("--thaw-comm", default="thaw", help="process name of the thaw binary")
    a = ap.parse_args()
    with open(a.list) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    total = 0
    t0 = time.monotonic()
    for rel in paths:
        crc, size = 0, 0
        with open(os.path.join(a.root, rel), "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                crc = zlib.crc32(view[:n], crc)
                size += n
        total += size
        h.update(f"{rel} {size} {crc:08x}\n".encode())
    seconds = time.monotonic() - t0
    if a.thaw_rss_out:
        with open(a.thaw_rss_out, "w") as f:
            f.write(f"{thaw_rss(a.thaw_comm[:15])}\n")
    json.dump({"digest": h.hexdigest(), "files": len(paths), "bytes": total, "seconds": seconds}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
