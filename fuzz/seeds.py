"""Seed inputs for one fuzz target (called by seeds.sh): seeds.py TARGET FIXTURE OUTDIR."""

import io
import os
import struct
import subprocess
import sys
import tarfile

SKIPPABLE = 0x184D2A5E
SEEKABLE = 0x8F92EAB1


def seek_table(frames, desc=0x80):
    body = b"".join(struct.pack("<III", c, d, s) for c, d, s in frames)
    footer = struct.pack("<IBI", len(frames), desc, SEEKABLE)
    return struct.pack("<II", SKIPPABLE, len(body) + len(footer)) + body + footer


def archive_parts(path):
    """(seek table frame, index frame) of a thaw archive."""
    data = open(path, "rb").read()
    n, desc, _ = struct.unpack("<IBI", data[-9:])
    seek_len = 8 + n * (12 if desc & 0x80 else 8) + 9
    seek = data[-seek_len:]
    idx_len = struct.unpack("<Q", data[-seek_len - 16:-seek_len - 8])[0]
    idx = data[-seek_len - idx_len:-seek_len]
    return data, seek, idx


def index_body(idx):
    count, body_len, c_len, stream_len = struct.unpack("<QQQQ", idx[8 + 32:8 + 64])
    body = subprocess.run(["zstd", "-dcq"], input=idx[72:72 + c_len], capture_output=True, check=True).stdout
    assert len(body) == body_len
    return count, stream_len, body


def entry(kind, path, link=b"", size=0, off=0, xattrs=()):
    out = struct.pack("<BIIIqIQQII", kind, 0o644, 0, 0, 0, 0, size, off, 0, 0)
    for b in (path, link, b"root", b"root"):
        out += struct.pack("<I", len(b)) + b
    out += struct.pack("<I", len(xattrs))
    for k, v in xattrs:
        out += struct.pack("<I", len(k)) + k + struct.pack("<I", len(v)) + v
    return out


def tars():
    """Small tar streams covering the member types and the replay rules."""
    def build(fmt, members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
            for info, data in members:
                t.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()

    def m(name, kind=tarfile.REGTYPE, data=None, link="", pax=None, mtime=1700000000):
        i = tarfile.TarInfo(name)
        i.type, i.linkname, i.mtime = kind, link, mtime
        if data is not None:
            i.size = len(data)
        if pax:
            i.pax_headers = pax
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            i.devmajor, i.devminor = 1, 3
        return i, data

    big = bytes(range(256)) * 40  # 10 KiB: spans 4 KiB frames
    yield "basic", build(tarfile.GNU_FORMAT, [
        m("d", tarfile.DIRTYPE), m("d/f", data=b"hello\n"), m("d/big", data=big),
        m("d/l", tarfile.SYMTYPE, link="f"), m("d/h", tarfile.LNKTYPE, link="d/f"),
        m("p", tarfile.FIFOTYPE), m("c", tarfile.CHRTYPE), m("b", tarfile.BLKTYPE), m("empty", data=b""),
    ])
    yield "long", build(tarfile.GNU_FORMAT, [m("x" * 150 + "/" + "y" * 120, data=b"z"), m("s", tarfile.SYMTYPE, link="t" * 200)])
    yield "pax", build(tarfile.PAX_FORMAT, [
        m("./a", data=b"a" * 700, pax={"mtime": "1700000000.123456789", "SCHILY.xattr.user.k": "v", "uname": "me"}),
        m("neg", data=b"", pax={"mtime": "-1.5"}),
    ])
    yield "replay", build(tarfile.GNU_FORMAT, [
        m("f", data=b"old"), m("h1", tarfile.LNKTYPE, link="f"), m("f", data=b"new"),
        m("a", tarfile.SYMTYPE, link="/etc"), m("a/passwd", data=b"x"), m("a", tarfile.DIRTYPE),
        m("i/x", data=b"1"), m("i", data=b"2"), m("ln", tarfile.LNKTYPE, link="a"),
    ])
    yield "hostile", build(tarfile.GNU_FORMAT, [m("../up", data=b"x")])
    yield "ustar", build(tarfile.USTAR_FORMAT, [m("u/v", data=b"w" * 5000)])


def fanotify():
    def event(mask, fd, pid, extra=b""):
        n = 24 + len(extra)
        return struct.pack("=IBBHQii", n, 3, 0, 24, mask, fd, pid) + extra

    def rng(off, count):
        return struct.pack("=BBHI", 6, 0, 24, 0) + struct.pack("=QQ", off, count)

    pre = 0x00080000
    yield "empty", b""
    yield "one", event(pre, 5, 1, rng(0, 4096))
    yield "two", event(pre, 5, 1, rng(4096, 1)) + event(0x00010000, 6, 2)
    yield "overflow", event(0x00004000, -1, 0)
    yield "unknown-info", event(pre, 7, 3, struct.pack("=BBH", 9, 0, 8) + b"\0" * 4 + rng(1, 2))
    yield "bad-after-good", event(pre, 5, 1) + event(pre, 6, 1, struct.pack("=BBH", 6, 0, 4))


def main():
    target, fixture, out = sys.argv[1:4]
    data, seek, idx = archive_parts(fixture)
    seeds = {}
    if target == "seek_table":
        seeds["fixture"] = seek
        seeds["none"] = seek_table([])
        seeds["three"] = seek_table([(10, 100, 1), (20, 0, 2), (5, 7, 3)])
        seeds["nosum"] = seek_table([(1, 1, 0)], desc=0)[:-9 - 4] + struct.pack("<IBI", 1, 0, SEEKABLE)
    elif target == "index_v1":
        count, stream_len, body = index_body(idx)
        seeds["fixture"] = struct.pack("<IQ", count, stream_len) + body
        small = entry(1, b"d") + entry(0, b"d/f", size=5, off=512, xattrs=[(b"user.k", b"v")]) + entry(3, b"h", link=b"d/f")
        seeds["small"] = struct.pack("<IQ", 3, 1024) + small
    elif target == "archive_open":
        seeds["fixture"] = data
    elif target == "tar_walk":
        seeds.update(tars())
        seeds["fixture-stream"] = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True, check=True).stdout
    elif target == "fanotify_events":
        seeds.update(fanotify())
    else:
        sys.exit(f"seeds.py: no seeds for target {target!r}")
    for name, b in seeds.items():
        with open(os.path.join(out, f"seed-{name}"), "wb") as f:
            f.write(b)


main()
