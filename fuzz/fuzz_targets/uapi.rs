//! Bytes a local client (`wg`) writes to the UAPI socket, in any chunking, and meshd's
//! answers to the requests they make.
//!
//! - The first byte is the chunk size (0: all at once); the rest is the stream.
//!
//! Holds: no panic; the requests do not depend on how the bytes were chunked; `set` is always
//! refused; `get` never shows a private key and ends as wireguard-go's does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshd::api::snapshot::Snapshot;
use meshd::api::uapi::{reply, Request, Requests};
use meshd_fuzz::{feed_chunked, Pair};
use std::sync::OnceLock;

static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();

fn parsed(stream: &[u8], chunk: usize, snapshot: &Snapshot) -> Vec<String> {
    feed_chunked::<Requests>(stream, chunk, |item| {
        if let Ok(request) = item {
            let answer = reply(*request, snapshot);
            match request {
                Request::Set => assert_eq!(answer, "errno=-1\n\n"),
                Request::Get => {
                    assert!(!answer.contains("private_key"));
                    assert!(answer.ends_with("errno=0\n\n"));
                }
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let snapshot = SNAPSHOT.get_or_init(|| Pair::connected().snapshot());
    let whole = parsed(stream, stream.len(), snapshot);
    let pieces = parsed(stream, chunk as usize, snapshot);
    assert_eq!(whole, pieces, "chunking changed the requests");
});
