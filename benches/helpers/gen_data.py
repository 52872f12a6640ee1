#!/usr/bin/env python3
"""Deterministic inputs for the dataset and large-file workloads.

  gen_data.py dataset OUT --files N --seed S   many files of 64 KiB - 4 MiB, plus
      OUT.lists/list-1.txt and list-10.txt (a random 1 % / 10 % of the files, in a
      random order) and OUT.lists/expected.json (the digest readjob.py must print
      for each list, file count and bytes).
  gen_data.py bigfile OUT --size BYTES --seed S  one file; prints its sha256.

Bytes are letters from a 16-symbol alphabet drawn at random: zstd -3 gets
about 2:1 on them, about what real data gives, and nothing repeats across
files (so frames shared by small files do not compress unrealistically).
"""

import argparse
import hashlib
import json
import os
import zlib

import numpy as np

KIB, MIB = 1 << 10, 1 << 20


def content(rng, size):
    return (rng.integers(0, 16, size, dtype=np.uint8) + ord("a")).tobytes()


def sizes(rng, n):
    """93 % of 64-96 KiB, 6 % of 96 KiB-1 MiB, 1 % of 1-4 MiB: about 134 KB a file."""
    kind = rng.random(n)
    lo = np.where(kind < 0.93, 64 * KIB, np.where(kind < 0.99, 96 * KIB, 1 * MIB))
    hi = np.where(kind < 0.93, 96 * KIB, np.where(kind < 0.99, 1 * MIB, 4 * MIB))
    return (lo + (rng.random(n) * (hi - lo))).astype(np.int64)


def list_digest(entries):
    """What readjob.py prints: sha256 over 'path size crc32' lines in list order."""
    h = hashlib.sha256()
    for path, size, crc in entries:
        h.update(f"{path} {size} {crc:08x}\n".encode())
    return h.hexdigest()


def dataset(out, n, seed):
    rng = np.random.default_rng(seed)
    sz = sizes(rng, n)
    files = []
    for i, size in enumerate(sz):
        rel = f"d{i % 256:02x}/f{i:06d}.bin"
        os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)
        data = content(rng, int(size))
        with open(os.path.join(out, rel), "wb") as f:
            f.write(data)
        files.append((rel, len(data), zlib.crc32(data)))
    lists = out.rstrip("/") + ".lists"
    os.makedirs(lists, exist_ok=True)
    expected = {"files": n, "bytes": int(sz.sum())}
    pick = np.random.default_rng(seed + 1)
    for pct in (1, 10):
        k = max(1, n * pct // 100)
        chosen = [files[j] for j in pick.permutation(n)[:k]]
        with open(os.path.join(lists, f"list-{pct}.txt"), "w") as f:
            f.writelines(p + "\n" for p, _, _ in chosen)
        expected[f"list-{pct}"] = {"digest": list_digest(chosen), "files": k,
                                   "bytes": sum(s for _, s, _ in chosen)}
    with open(os.path.join(lists, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(json.dumps({"files": n, "bytes": expected["bytes"]}))


def bigfile(out, size, seed):
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "wb") as f:
        left = size
        while left:
            data = content(rng, min(left, 64 * MIB))
            h.update(data)
            f.write(data)
            left -= len(data)
    print(h.hexdigest())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["dataset", "bigfile"])
    p.add_argument("out")
    p.add_argument("--files", type=int, default=20480)
    p.add_argument("--size", type=int, default=1 << 30)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.what == "dataset":
        dataset(a.out, a.files, a.seed)
    else:
        bigfile(a.out, a.size, a.seed)


if __name__ == "__main__":
    main()
