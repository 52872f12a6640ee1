"""Index sizes: v1 (one zstd frame of fixed-width records) vs the proposed v2
(path-sorted entry blocks with varint records, a block directory).

usage: nice -n 19 python3 index_size.py TAR [TAR...]
Reads member metadata with Python's tarfile (headers only). Checksums are
modelled as 8 bytes (their value does not matter for size, but random bytes
are used so zstd cannot squeeze them). Needs `pip install zstandard`.
"""
import os
import sys
import tarfile

import zstandard as zs

P = 1 << 20  # piece size
TYPES = {tarfile.REGTYPE: 0, tarfile.AREGTYPE: 0, tarfile.DIRTYPE: 1, tarfile.SYMTYPE: 2, tarfile.LNKTYPE: 3,
         tarfile.FIFOTYPE: 4, tarfile.CHRTYPE: 5, tarfile.BLKTYPE: 6}


def norm(p):
    return "/".join(c for c in p.split("/") if c not in ("", ".")).encode("utf-8", "surrogateescape")


def var(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zz(n):
    return var((n << 1) ^ (n >> 63))


def members(path):
    out = []
    with tarfile.open(path, "r:") as t:
        for ti in t:
            if ti.type not in TYPES:
                continue
            out.append(ti)
    return out


def v1_record(ti):
    p, link = norm(ti.name), ti.linkname.encode("utf-8", "surrogateescape")
    u, g = ti.uname.encode(), ti.gname.encode()
    return 69 + len(p) + len(link) + len(u) + len(g)


def v2_record(ti, prev):
    p = norm(ti.name)
    shared = 0
    for a, b in zip(p, prev):
        if a != b:
            break
        shared += 1
    t = TYPES[ti.type]
    r = bytearray([t, 0])
    r += var(shared) + var(len(p) - shared) + p[shared:]
    r += var(ti.mode & 0o7777) + var(ti.uid) + var(ti.gid) + zz(int(ti.mtime)) + var(0)
    r += var(len(ti.uname)) + ti.uname.encode() + var(len(ti.gname)) + ti.gname.encode()
    r += var(ti.offset)  # member offset
    if t == 0:
        r += var(ti.size) + var(ti.offset_data - ti.offset) + os.urandom(8)
        if ti.size > P:
            r += os.urandom(8 * ((ti.size + P - 1) // P))
    elif t in (2, 3):
        link = ti.linkname.encode("utf-8", "surrogateescape")
        r += var(len(link)) + link
        if t == 3:
            r += var(0) + var(0) + os.urandom(8)  # copy of the target's size, data offset, checksum
    elif t in (5, 6):
        r += var(ti.devmajor) + var(ti.devminor)
    return bytes(r), p


def main():
    for path in sys.argv[1:]:
        ms = members(path)
        n = len(ms)
        v1_body = sum(v1_record(ti) for ti in ms)
        # v1 body bytes for compression: approximate with the real layout
        body = bytearray()
        for ti in ms:
            p, link = norm(ti.name), ti.linkname.encode("utf-8", "surrogateescape")
            body += bytes([TYPES[ti.type]]) + (ti.mode & 0o7777).to_bytes(4, "little") + ti.uid.to_bytes(4, "little")
            body += ti.gid.to_bytes(4, "little") + int(ti.mtime).to_bytes(8, "little", signed=True) + bytes(4)
            body += ti.size.to_bytes(8, "little") + ti.offset_data.to_bytes(8, "little") + bytes(8)
            for s in (p, link, ti.uname.encode(), ti.gname.encode()):
                body += len(s).to_bytes(4, "little") + s
            body += bytes(4)
        v1c = len(zs.ZstdCompressor(level=9, write_checksum=True).compress(bytes(body)))
        print(f"# {path}: {n} entries; v1 body {len(body)} B ({len(body) / n:.1f} B/entry), "
              f"compressed {v1c} B ({v1c / n:.1f} B/entry)")
        ms.sort(key=lambda ti: norm(ti.name))
        print("target\tblocks\tentries/block\tblock_c_avg\tblock_c_max\tblocks_c_total\tdir_raw\tdir_c\tper_entry_total")
        for target in (16 << 10, 32 << 10, 64 << 10, 128 << 10):
            blocks, cur, prev, first = [], bytearray(), b"", None
            cnt = 0
            for ti in ms:
                rec, p = v2_record(ti, prev)
                if first is None:
                    rec, p = v2_record(ti, b"")
                    first = p
                cur += rec
                prev = p
                cnt += 1
                if len(cur) >= target:
                    blocks.append((bytes(cur), first, cnt))
                    cur, prev, first, cnt = bytearray(), b"", None, 0
            if cur:
                blocks.append((bytes(cur), first, cnt))
            cc = zs.ZstdCompressor(level=9, write_checksum=True)
            csz = [len(cc.compress(b)) for b, _, _ in blocks]
            d = bytearray()
            for (b, f, c), s in zip(blocks, csz):
                d += var(s) + var(len(b)) + var(c) + os.urandom(8) + var(len(f)) + f
            dc = len(cc.compress(bytes(d)))
            tot = sum(csz) + dc
            print(f"{target >> 10}K\t{len(blocks)}\t{n / len(blocks):.0f}\t{sum(csz) / len(csz):.0f}\t{max(csz)}\t"
                  f"{sum(csz)}\t{len(d)}\t{dc}\t{tot / n:.1f}")
        # hash-section alternative: sorted (u64 hash, u32 entry) per entry
        hs = bytearray()
        for h in sorted(os.urandom(8) for _ in range(n)):
            hs += h + os.urandom(4)
        print(f"hash section alternative (u64 hash + u32 entry, sorted): raw {len(hs)} B, "
              f"zstd-9 {len(zs.ZstdCompressor(level=9).compress(bytes(hs)))} B")


if __name__ == "__main__":
    main()
