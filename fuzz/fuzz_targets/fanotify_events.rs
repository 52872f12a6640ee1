//! Bytes as `read(2)` on a fanotify group returns them → the event decoder.
//! The decoder is pure: it only reports fd numbers, it never closes them (the
//! caller, `Fanotify::read_events`, adopts them), so no fd of the fuzzer is
//! touched. Oracle: no panic or endless loop; on success the events are
//! exactly the ones an independent walk of the buffer frames, with their fds;
//! on error the fds to close are exactly the non-negative fds of every event
//! that can be framed (none leaked, none that is not in the buffer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use thaw::sys::fanotify::decode;

const METADATA_LEN: usize = 24;

/// fds of the events framed from the start of `buf`, and whether the walk
/// reached the end of the buffer (reference framing, from fanotify(7)).
fn framed_fds(buf: &[u8]) -> (Vec<i32>, bool) {
    let mut fds = Vec::new();
    let mut rest = buf;
    while rest.len() >= METADATA_LEN {
        let event_len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
        let metadata_len = u16::from_ne_bytes(rest[6..8].try_into().unwrap()) as usize;
        if rest[4] != 3 || metadata_len < METADATA_LEN || event_len < metadata_len || event_len > rest.len() {
            return (fds, false);
        }
        fds.push(i32::from_ne_bytes(rest[16..20].try_into().unwrap()));
        rest = &rest[event_len..];
    }
    (fds, rest.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let (fds, whole) = framed_fds(data);
    match decode(data) {
        Ok(events) => {
            assert!(whole, "decode accepted a buffer that does not frame to its end");
            assert_eq!(events.iter().map(|e| e.fd).collect::<Vec<_>>(), fds);
            for e in &events {
                if let Some(r) = e.range {
                    assert!(r.end() >= r.offset);
                }
            }
        }
        Err(err) => {
            assert!(err.offset < data.len().max(1), "error offset {} past the buffer", err.offset);
            let mut want: Vec<i32> = fds.into_iter().filter(|&fd| fd >= 0).collect();
            let mut got = err.fds.clone();
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want, "fds to close on error differ from the framed events' fds");
        }
    }
});
