"""Kernel-tree extras: entry order within a directory, and level 4, at the v2 cut policy
(small-file runs 4 MiB, large files in 1 MiB pieces). usage: nice -n 19 python3 kernel_extra.py linux.tar"""
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
import tarwalk, frames
MiB = 1 << 20
d = open(sys.argv[1], "rb").read()
m, t = tarwalk.walk(d)
base = 199779072 if "linux" in sys.argv[1] else None
import zstandard as zs
base = base or len(zs.ZstdCompressor(level=3).compress(d))
c = frames.cuts_entries(m, t, len(d), 4 * MiB, MiB)
for lv in (4,):
    s, tt = frames.compress(d, c, lv)
    print(f"level\tsmall 4096K piece 1024K\t{lv}\t{len(c)}\t{s}\t{s / base:.4f}\t{tt:.2f}", flush=True)
s, tt = frames.compress(d, c, 3)
print(f"level\tsmall 4096K piece 1024K\t3\t{len(c)}\t{s}\t{s / base:.4f}\t{tt:.2f}", flush=True)
key = lambda x: (x[4].rsplit(b"/", 1)[0] if b"/" in x[4] else b"", x[5] != b"5", frames.ext_of(x[4]), x[4])
d2, m2, t2 = frames.reorder(d, m, t, key)
del d
c = frames.cuts_entries(m2, t2, len(d2), 4 * MiB, MiB)
s, tt = frames.compress(d2, c, 3)
print(f"order\tdir,ext,name small 4096K piece 1024K\t3\t{len(c)}\t{s}\t{s / base:.4f}\t{tt:.2f}", flush=True)
