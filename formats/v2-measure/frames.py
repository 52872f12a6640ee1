"""Compressed size of a tar under frame-cut policies (v2 design study).

usage: nice -n 19 python3 frames.py TAR EXPERIMENT...
experiments: sizes levels mixed v2 order dict speed
Prints one TSV line per configuration:
  experiment  policy  level  frames  compressed_bytes  ratio_vs_baseline  compress_s
The baseline is one zstd frame of the whole tar at level 3 (what
`tar | zstd -3` writes); ratio = frames' total / baseline. Single-threaded.
Needs `pip install zstandard`.
"""
import os
import sys
import time

import zstandard as zs

sys.path.insert(0, os.path.dirname(__file__))
import tarwalk  # noqa: E402

KiB, MiB = 1024, 1024 * 1024


def cuts_fixed(n, f):
    return [(a, min(a + f, n)) for a in range(0, n, f)]


def cuts_entries(members, tail, n, small, piece):
    """v1's rule with the small-file target `small` and the large-file piece
    size `piece` (v1: small == piece == F): entries share a frame up to
    `small`; a file whose header+data exceed `piece` cuts before its data and
    is then cut every `piece` bytes of its data."""
    cuts = []
    cur = 0  # start of the open frame
    for (start, hl, size, pad, name, t) in members:
        end_h = start + hl
        if hl + pad > piece:
            # header joins the open frame, which is cut
            cuts.append((cur, end_h))
            cur = end_h
            # full pieces
            k = end_h
            while end_h + size - k >= piece:
                cuts.append((k, k + piece))
                k += piece
            cur = k
        else:
            if end_h + pad - cur > small and start > cur:
                cuts.append((cur, start))
                cur = start
        if start + hl + pad - cur >= small:
            cuts.append((cur, start + hl + pad))
            cur = start + hl + pad
    if n > cur:
        cuts.append((cur, n))
    return [(a, b) for a, b in cuts if b > a]


def compress(data, cuts, level, dict_data=None, large=None, level_large=None):
    cs = {}

    def comp(lv):
        if lv not in cs:
            kw = dict(level=lv, write_checksum=True, write_content_size=True)
            if dict_data is not None:
                kw["dict_data"] = dict_data
            cs[lv] = zs.ZstdCompressor(**kw)
        return cs[lv]

    total = 0
    t0 = time.process_time()
    mv = memoryview(data)
    for i, (a, b) in enumerate(cuts):
        lv = level
        if large is not None and large[i]:
            lv = level_large
        total += len(comp(lv).compress(mv[a:b]))
    return total, time.process_time() - t0


def reorder(data, members, tail, key):
    """The tar with members in another order (end marker kept)."""
    parts = sorted(members, key=key)
    out = bytearray()
    new = []
    for (start, hl, size, pad, name, t) in parts:
        new.append((len(out), hl, size, pad, name, t))
        out += data[start:start + hl + pad]
    ntail = len(out)
    out += data[tail:]
    return bytes(out), new, ntail


def ext_of(name):
    base = name.rsplit(b"/", 1)[-1]
    return base.rsplit(b".", 1)[-1] if b"." in base else b""


def main():
    path = sys.argv[1]
    exps = sys.argv[2:] or ["sizes"]
    data = open(path, "rb").read()
    n = len(data)
    members, tail = tarwalk.walk(data)
    t0 = time.process_time()
    base = len(zs.ZstdCompressor(level=3, write_checksum=True).compress(data))
    print(f"# {path}: {n} bytes, {len(members)} members, baseline zstd -3 one frame {base} "
          f"({time.process_time() - t0:.2f}s)", flush=True)

    def row(exp, pol, lv, cuts, size, secs):
        print(f"{exp}\t{pol}\t{lv}\t{len(cuts)}\t{size}\t{size / base:.4f}\t{secs:.2f}", flush=True)

    if "sizes" in exps:
        for f in (256 * KiB, 512 * KiB, MiB, 2 * MiB, 4 * MiB, 8 * MiB):
            c = cuts_fixed(n, f)
            s, t = compress(data, c, 3)
            row("sizes", f"fixed {f // KiB}K", 3, c, s, t)
            c = cuts_entries(members, tail, n, f, f)
            s, t = compress(data, c, 3)
            row("sizes", f"entry {f // KiB}K", 3, c, s, t)
    if "levels" in exps:
        for f in (MiB, 2 * MiB, 4 * MiB):
            c = cuts_entries(members, tail, n, f, f)
            for lv in (1, 5, 7):
                s, t = compress(data, c, lv)
                row("levels", f"entry {f // KiB}K", lv, c, s, t)
    if "mixed" in exps:
        # small-file frames of S, large files in 1 MiB pieces, level per class
        for small in (2 * MiB, 4 * MiB):
            c = cuts_entries(members, tail, n, small, MiB)
            # a frame is "large" when it is one whole piece of a file
            large = [(b - a) == MiB for a, b in c]
            for ls, ll in ((3, 3), (5, 3), (7, 3)):
                s, t = compress(data, c, ls, large=large, level_large=ll)
                row("mixed", f"small {small // KiB}K piece 1024K", f"{ls}/{ll}", c, s, t)
    if "v2" in exps:
        # v1 at 1 MiB, then the v2 policy: small-file runs up to S, large files in 1 MiB pieces
        c = cuts_entries(members, tail, n, MiB, MiB)
        s, t = compress(data, c, 3)
        row("v2", "v1 rule 1024K", 3, c, s, t)
        for small in (2 * MiB, 4 * MiB, 8 * MiB):
            c = cuts_entries(members, tail, n, small, MiB)
            s, t = compress(data, c, 3)
            row("v2", f"small {small // KiB}K piece 1024K", 3, c, s, t)
    if "order" in exps:
        variants = {
            "dir,ext,name": lambda m: (m[4].rsplit(b"/", 1)[0] if b"/" in m[4] else b"", m[5] != b"5", ext_of(m[4]), m[4]),
            "ext,path": lambda m: (m[5] != b"5", ext_of(m[4]), m[4]),
            "size-desc in dir": lambda m: (m[4].rsplit(b"/", 1)[0] if b"/" in m[4] else b"", -m[2], m[4]),
        }
        for name, key in variants.items():
            d2, m2, t2 = reorder(data, members, tail, key)
            b2 = len(zs.ZstdCompressor(level=3).compress(d2))
            print(f"# order {name}: one-frame zstd -3 {b2} ({b2 / base:.4f} of baseline)", flush=True)
            for f in (MiB, 2 * MiB, 4 * MiB):
                c = cuts_entries(m2, t2, len(d2), f, f)
                s, t = compress(d2, c, 3)
                row("order", f"{name} entry {f // KiB}K", 3, c, s, t)
    if "dict" in exps:
        import random
        rnd = random.Random(1)
        files = [m for m in members if m[2] > 0]
        sample = [data[m[0] + m[1]:m[0] + m[1] + m[2]] for m in rnd.sample(files, 4000)]
        for dsize in (112640,):
            t0 = time.process_time()
            d = zs.train_dictionary(dsize, sample, level=3)
            tt = time.process_time() - t0
            raw = d.as_bytes()
            print(f"# dict {len(raw)} bytes, trained in {tt:.1f}s on 4000 files", flush=True)
            for f in (64 * KiB, 256 * KiB, MiB):
                c = cuts_entries(members, tail, n, f, f)
                s, t = compress(data, c, 3, dict_data=d)
                row("dict", f"entry {f // KiB}K +dict", 3, c, s + len(raw), t)
                s, t = compress(data, c, 3)
                row("dict", f"entry {f // KiB}K", 3, c, s, t)
    if "speed" in exps:
        # decode cost of the prefix of a frame (early stop) vs the whole frame
        for f in (MiB, 4 * MiB):
            c = cuts_entries(members, tail, n, f, f)
            cc = zs.ZstdCompressor(level=3, write_checksum=True, write_content_size=True)
            frames = [cc.compress(data[a:b]) for a, b in c[:200]]
            dd = zs.ZstdDecompressor()
            t0 = time.perf_counter()
            out = 0
            for fr in frames:
                out += len(dd.decompress(fr))
            dt = time.perf_counter() - t0
            print(f"speed\tentry {f // KiB}K\t3\t{len(frames)}\tdecode {out / dt / MiB:.0f} MiB/s\t"
                  f"{dt / len(frames) * 1000:.2f} ms/frame\t", flush=True)
            # early stop: decode only the first 64 KiB of each frame
            t0 = time.perf_counter()
            for fr in frames:
                r = dd.stream_reader(fr)
                r.read(64 * KiB)
                r.close()
            dt = time.perf_counter() - t0
            print(f"speed\tentry {f // KiB}K prefix 64K\t3\t{len(frames)}\t\t{dt / len(frames) * 1000:.3f} ms/frame\t", flush=True)


if __name__ == "__main__":
    main()
