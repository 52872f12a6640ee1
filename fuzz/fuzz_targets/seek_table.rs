//! Bytes as the last bytes of a file: the footer parse, the seek table
//! decode and frame lookups. Oracle: no panic; an accepted table agrees with
//! its footer, re-encodes to the input (bits 0-1 of the descriptor are
//! "unused, ignored" in the seekable format), and every lookup lands in the
//! frame that holds the offset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thaw::archive::seek_table::{SeekTable, FOOTER_LEN};

fuzz_target!(|data: &[u8]| {
    let claimed = SeekTable::frame_len_from_footer(data);
    // The reader hands decode the last `claimed` bytes; do the same when they fit.
    if let Ok(n) = claimed {
        if n <= data.len() as u64 {
            check(&data[data.len() - n as usize..]);
        }
    }
    check(data);
});

fn check(frame: &[u8]) {
    let Ok(t) = SeekTable::decode(frame) else { return };
    let footer = SeekTable::frame_len_from_footer(frame).expect("decode accepted a table whose footer the reader refuses");
    assert_eq!(footer, frame.len() as u64, "footer and frame disagree on the length");
    let mut want = frame.to_vec();
    want[frame.len() - FOOTER_LEN + 4] &= !0x03;
    assert_eq!(t.encode(), want, "re-encoding differs from the input");
    lookups(&t);
}

fn lookups(t: &SeekTable) {
    let (mut c, mut d) = (0u64, 0u64);
    for (i, f) in t.frames().iter().enumerate() {
        assert_eq!((t.compressed_offset(i), t.stream_offset(i)), (c, d));
        c += u64::from(f.compressed);
        d += u64::from(f.decompressed);
    }
    assert_eq!((t.compressed_len(), t.stream_len()), (c, d));
    let len = t.stream_len();
    if len == 0 {
        assert_eq!(t.frames_for(0, 0), 0..0);
        return;
    }
    let holds = |off: u64| {
        let i = t.frame_at(off);
        let (start, size) = (t.stream_offset(i), u64::from(t.frame(i).decompressed));
        assert!(start <= off && off < start + size, "frame_at({off}) = {i}, which holds [{start}, {})", start + size);
        i
    };
    // Probe every frame's edges (at most 4096 frames, to keep execs fast).
    for i in (0..t.len()).take(4096) {
        let f = t.frame(i);
        if f.decompressed == 0 {
            continue;
        }
        let (first, last) = (t.stream_offset(i), t.stream_offset(i) + u64::from(f.decompressed) - 1);
        assert_eq!(holds(first), i);
        assert_eq!(holds(last), i);
        let r = t.frames_for(first, len - first);
        assert_eq!((r.start, r.end), (i, holds(len - 1) + 1));
        let r = t.frames_for(0, last + 1);
        assert_eq!((r.start, r.end), (holds(0), i + 1));
    }
}
