//! Bytes a local client writes to the control socket (`meshd peers`, `whois`, `status`,
//! `reload`), in any chunking.
//!
//! - The first byte is the chunk size (0: all at once); the rest is the stream.
//!
//! Holds: no panic; the requests do not depend on how the bytes were chunked; every answer
//! (an error's, a query's) is one line of JSON with its `ok`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshd::api::control::{answer, error_line, Lines, Request};
use meshd::api::snapshot::Snapshot;
use meshd_fuzz::{feed_chunked, Pair};
use std::sync::OnceLock;

static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();

/// One line of JSON whose `ok` is `ok`.
fn json_line(line: &[u8], ok: bool) {
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    let v: serde_json::Value = serde_json::from_slice(line).expect("reply is not JSON");
    assert_eq!(v["ok"], serde_json::Value::Bool(ok), "{v}");
}

fn parsed(stream: &[u8], chunk: usize, snapshot: &Snapshot) -> Vec<String> {
    feed_chunked::<Lines>(stream, chunk, |item| {
        match item {
            Err(e) => json_line(&error_line(e), false),
            // A whois for an address no node holds is a clean error too.
            Ok(Request::Query(q)) => {
                let line = answer(*q, snapshot);
                let v: serde_json::Value =
                    serde_json::from_slice(&line).expect("reply is not JSON");
                json_line(&line, v["ok"] == serde_json::Value::Bool(true));
            }
            Ok(Request::Reload) => {}
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
