//! What a client sends the metrics port, read as the server reads it (up to 1 KiB a read,
//! until a blank line ends the head or it grows past the limit), parsed and answered.
//!
//! Holds: no panic; a head past the limit is refused as too large, never parsed; every
//! refusal is a 4xx response with a well-formed status line; a request the parser accepts is
//! a GET or HEAD of `/` or `/metrics`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshd::api::http::{self, Route, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    let mut buf = Vec::new();
    let mut reads = data.chunks(1024);
    let head = loop {
        if let Some(end) = http::head_end(&buf) {
            break Ok(&buf[..end]);
        }
        if buf.len() > MAX_HEAD {
            break Err(http::TOO_LARGE);
        }
        let Some(read) = reads.next() else {
            break Err(http::BAD_REQUEST);
        };
        buf.extend_from_slice(read);
    };
    if let Ok(head) = head {
        assert!(head.ends_with(b"\r\n\r\n"));
    }
    match head.and_then(http::parse) {
        Err(status) => {
            assert!((400..500).contains(&status.0), "{status:?}");
            let reply = http::error(status);
            let first = format!("HTTP/1.1 {} {}\r\n", status.0, status.1);
            assert!(reply.starts_with(first.as_bytes()));
            assert!(reply.windows(4).any(|w| w == b"\r\n\r\n"));
        }
        Ok(req) => {
            let head = &buf[..http::head_end(&buf).unwrap_or(0)];
            assert!(head.len() <= MAX_HEAD);
            let method = if req.head_only { "HEAD " } else { "GET " };
            assert!(head.starts_with(method.as_bytes()));
            let path = match req.route {
                Route::Metrics => "/metrics",
                Route::Index => "/",
            };
            let target = &head[method.len()..];
            assert!(target.starts_with(path.as_bytes()));
        }
    }
});
