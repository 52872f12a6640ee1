#!/usr/bin/env python3
"""The dataset job: reads every file of a list completely (1 MiB reads, in
the list's order) under ROOT and prints one JSON line: digest (see
gen_data.list_digest), files, bytes, seconds.

  readjob.py ROOT LIST
"""

import argparse
import hashlib
import json
import os
import sys
import time
import zlib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("list")
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
    json.dump({"digest": h.hexdigest(), "files": len(paths), "bytes": total, "seconds": seconds}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
