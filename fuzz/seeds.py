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


def get_var(b, at):
    v = shift = 0
    while True:
        x = b[at]
        at += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return v, at


def v2_parts(data):
    """Format 2 archive: (index frame, header bytes, raw directory, [(record, compressed block)])."""
    n, desc, _ = struct.unpack("<IBI", data[-9:])
    seek_len = 8 + n * (12 if desc & 0x80 else 8) + 9
    idx_end = len(data) - seek_len
    idx_len = struct.unpack("<Q", data[idx_end - 16:idx_end - 8])[0]
    idx = data[idx_end - idx_len:idx_end]
    hdr = idx[-144:-16]
    assert hdr[:8] == b"THAWHDR\0", "not a format 2 archive"
    blocks_len, dir_clen, dir_rlen = struct.unpack("<QII", hdr[56:72])
    dir_c = idx[24 + blocks_len:24 + blocks_len + dir_clen]
    raw_dir = subprocess.run(["zstd", "-dcq"], input=dir_c, capture_output=True, check=True).stdout
    assert len(raw_dir) == dir_rlen
    recs, at, off = [], 0, 24
    while at < len(raw_dir):
        c_len, at = get_var(raw_dir, at)
        r_len, at = get_var(raw_dir, at)
        count, at = get_var(raw_dir, at)
        at += 8
        plen, at = get_var(raw_dir, at)
        first = raw_dir[at:at + plen]
        at += plen
        recs.append(((c_len, r_len, count, first), idx[off:off + c_len]))
        off += c_len
    return idx, hdr, raw_dir, recs


def v2_tail_seeds(name, data, seeds):
    idx, hdr, raw_dir, _ = v2_parts(data)
    seeds[f"{name}-tail"] = b"\0" + idx
    seeds[f"{name}-raw-dir"] = b"\1" + hdr[:120] + raw_dir
    if len(data) <= 256 << 10:
        seeds[f"{name}-archive"] = b"\2" + data


def v2_block_seeds(name, data, seeds):
    _, hdr, _, recs = v2_parts(data)
    stream_len, _, piece = struct.unpack("<QII", hdr[40:56])
    shift = (piece // 4096).bit_length() - 1
    for i, ((_c_len, r_len, count, first), block) in enumerate(recs):
        raw = subprocess.run(["zstd", "-dcq"], input=block, capture_output=True, check=True).stdout
        assert len(raw) == r_len
        if count >= 65536:
            continue  # not expressible in the target's input
        head = struct.pack("<BQHH", shift, stream_len, count, len(first)) + first
        nxt = recs[i + 1][0][3] if i + 1 < len(recs) else None
        seeds[f"{name}-b{i}-raw"] = b"\0" + head + raw
        seeds[f"{name}-b{i}-zst"] = b"\1" + head + block
        if nxt is not None:
            seeds[f"{name}-b{i}-next"] = b"\2" + head + struct.pack("<H", len(nxt)) + nxt + raw


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


def v2_fixture(fixture):
    return os.path.join(os.path.dirname(fixture), "small-v2.tar.zst")


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
    elif target == "index_v2_tail":
        v2_tail_seeds("fixture", open(v2_fixture(fixture), "rb").read(), seeds)
    elif target == "index_v2_block":
        v2_block_seeds("fixture", open(v2_fixture(fixture), "rb").read(), seeds)
    elif target == "fanotify_events":
        seeds.update(fanotify())
    else:
        sys.exit(f"seeds.py: no seeds for target {target!r}")
    for name, b in seeds.items():
        with open(os.path.join(out, f"seed-{name}"), "wb") as f:
            f.write(b)


if sys.argv[1] == "v2-archive":
    # seeds.py v2-archive TARGET ARCHIVE OUTDIR: seeds from one more format 2 archive.
    target, path, out = sys.argv[2:5]
    seeds = {}
    name = os.path.basename(path).split(".")[0]
    (v2_tail_seeds if target == "index_v2_tail" else v2_block_seeds)(name, open(path, "rb").read(), seeds)
    for n, b in seeds.items():
        with open(os.path.join(out, f"seed-{n}"), "wb") as f:
            f.write(b)
else:
    main()
