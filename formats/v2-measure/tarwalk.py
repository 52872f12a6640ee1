"""Walks a tar file into members: (start, header_len, size, padded, name, typeflag).

A member's header_len counts its PAX/GNU long-name prefix records too, so
start + header_len is the first data byte (the v1 `data_offset`). The end
marker and anything after the last member is returned as `tail_start`.
Used by the v2 design measurements (formats/v2-design.md); not production code.
"""
import sys


def octal(b):
    if b[0] & 0x80:  # GNU base-256
        n = b[0] & 0x7F
        for x in b[1:]:
            n = (n << 8) | x
        return n
    s = b.split(b"\0", 1)[0].strip()
    return int(s, 8) if s else 0


def walk(data):
    """Returns (members, tail_start). data: bytes of the whole tar."""
    out = []
    pos = 0
    n = len(data)
    start = None
    longname = None
    while pos + 512 <= n:
        h = data[pos:pos + 512]
        if h == b"\0" * 512:
            break
        if start is None:
            start = pos
        t = h[156:157]
        size = octal(h[124:136])
        padded = (size + 511) // 512 * 512
        body = data[pos + 512:pos + 512 + size]
        if t in (b"L", b"K", b"x", b"g"):
            if t == b"L":
                longname = body.rstrip(b"\0")
            pos += 512 + padded
            continue
        name = longname if longname is not None else h[0:100].split(b"\0", 1)[0]
        prefix = h[345:500].split(b"\0", 1)[0] if h[257:263] == b"ustar\0" else b""
        if prefix and longname is None:
            name = prefix + b"/" + name
        longname = None
        hdr_len = pos + 512 - start
        dsize = size if t in (b"0", b"\0", b"7") else 0
        dpad = (dsize + 511) // 512 * 512
        out.append((start, hdr_len, dsize, dpad, name, t))
        pos += 512 + dpad
        start = None
    return out, pos


if __name__ == "__main__":
    d = open(sys.argv[1], "rb").read()
    m, tail = walk(d)
    files = [x for x in m if x[2] > 0 or x[5] in (b"0", b"\0")]
    print(f"members {len(m)} files {len(files)} tail {tail} len {len(d)}")
