//! The WireGuard cross-platform userspace API (<https://www.wireguard.com/xplatform/>), the
//! read-only part of it: enough for `wg show <iface>` and `wg show <iface> dump` to work
//! against meshd as they do against wireguard-go. Pure: [`UapiConn`] frames the bytes read
//! from one connection into requests, [`reply`] and [`UapiError::reply`] give the bytes to
//! write back; the socket itself belongs to the daemon.
//!
//! What differs from wireguard-go, on purpose:
//! - `get=1` never prints `private_key` (a private key never leaves its file). `wg`
//!   derives the interface's public key from that line, so `wg show` prints no `public key:`
//!   line for the interface and `wg show <iface> dump` prints `(none)` in both key columns;
//!   the peers are complete. `meshd peers` and the control socket's `status` show the key.
//! - `set=1` is refused with `errno=-1` (EPERM): the mesh is configured from mesh.yaml only.
//! - An unknown operation gets `errno=-22` (EINVAL) before the connection is closed, where
//!   wireguard-go closes it silently; so does a `get=1` not ended by a blank line.
//! - A request may not exceed [`MAX_REQUEST`] bytes (wireguard-go sets no bound).

use super::framing::{Framed, Frames};
use super::snapshot::Snapshot;
use std::fmt::{self, Display, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the UAPI socket of interface `iface` is (where `wg` looks for it).
pub fn socket_path(iface: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/var/run/wireguard/{iface}.sock"))
}

/// The largest request accepted, its terminating blank line included. `wg set` with every
/// peer of a large mesh would not fit, but `set` is refused anyway; `get=1\n\n` is 7 bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// `errno=` values, negative as on the wire (wireguard-go's `ipc.IpcError*`).
pub const ERRNO_EPERM: i32 = -1;
pub const ERRNO_EINVAL: i32 = -22;

const GET: &[u8] = b"get=1\n";
const SET: &[u8] = b"set=1\n";

/// A well-formed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `get=1` and a blank line: answer with [`format_get`].
    Get,
    /// `set=1`, key=value lines and a blank line (the lines are discarded): refused.
    Set,
}

/// A request meshd cannot frame. Each one ends the connection: reply with
/// [`UapiError::reply`], then close ([`UapiConn::is_closed`] is already true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UapiError {
    /// The first line is neither `get=1` nor `set=1` (includes non-UTF-8 bytes and garbage).
    UnknownOperation,
    /// `get=1` followed by something other than the blank line that ends it.
    TrailingGet,
    /// No complete request within [`MAX_REQUEST`] bytes.
    TooLong,
}

impl UapiError {
    /// The negative errno sent back: all of them are EINVAL, as wireguard-go's
    /// `IpcErrorInvalid`.
    pub fn errno(self) -> i32 {
        ERRNO_EINVAL
    }

    /// The bytes to write back before closing.
    pub fn reply(self) -> String {
        status(self.errno())
    }
}

impl Display for UapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UapiError::UnknownOperation => f.write_str("UAPI request is neither get=1 nor set=1"),
            UapiError::TrailingGet => f.write_str("UAPI get=1 not followed by a blank line"),
            UapiError::TooLong => write!(f, "UAPI request longer than {MAX_REQUEST} bytes"),
        }
    }
}

impl std::error::Error for UapiError {}

/// The reading side of one UAPI connection: bytes in, requests out, in order, however the
/// bytes were chunked. Buffers at most [`MAX_REQUEST`] bytes.
pub type UapiConn = Framed<Requests>;

/// Requests ended by a blank line (`get=1` by its newline and one more).
#[derive(Debug, Default)]
pub struct Requests {
    /// How far a `set` body has been searched for its blank line without finding it.
    scanned: usize,
}

impl Frames for Requests {
    type Item = Request;
    type Error = UapiError;
    const CAP: usize = MAX_REQUEST;

    /// Rejects a wrong operation as soon as its first bytes show it, without waiting for a
    /// newline.
    fn next(&mut self, buf: &mut Vec<u8>) -> Option<Result<Request, UapiError>> {
        let head = buf.get(..GET.len()).unwrap_or(buf);
        if head.is_empty() {
            return None;
        }
        let request = if GET.starts_with(head) {
            Request::Get
        } else if SET.starts_with(head) {
            Request::Set
        } else {
            return Some(Err(UapiError::UnknownOperation));
        };
        if head.len() < GET.len() {
            return None;
        }
        let end = match request {
            // wireguard-go reads exactly one more byte and wants it to be the blank line.
            Request::Get => match buf.get(GET.len()) {
                None => return None,
                Some(b'\n') => GET.len() + 1,
                Some(_) => return Some(Err(UapiError::TrailingGet)),
            },
            Request::Set => self.blank_line_end(buf)?,
        };
        buf.drain(..end);
        self.scanned = 0;
        Some(Ok(request))
    }

    /// Every framing error ends the connection.
    fn fatal(_: &UapiError) -> bool {
        true
    }

    fn too_long() -> UapiError {
        UapiError::TooLong
    }
}

impl Requests {
    /// The end of the blank line closing a `set=1` body (`set=1\n\n` being the shortest).
    /// Remembers how far it searched, so trickled bytes are not searched again.
    fn blank_line_end(&mut self, buf: &[u8]) -> Option<usize> {
        let start = self.scanned.max(SET.len() - 1);
        let rest = buf.get(start..)?;
        match rest.windows(2).position(|w| w == b"\n\n") {
            Some(i) => Some(start + i + 2),
            None => {
                // The last byte may be the first half of the "\n\n".
                self.scanned = buf.len().saturating_sub(1).max(start);
                None
            }
        }
    }
}

/// The answer to a well-formed request.
pub fn reply(request: Request, snapshot: &Snapshot) -> String {
    match request {
        Request::Get => format_get(snapshot),
        Request::Set => status(ERRNO_EPERM),
    }
}

/// What wireguard-go writes for `get=1`, minus `private_key`: `listen_port`, then per peer
/// `public_key`, `preshared_key` (zeros: meshd uses none), `protocol_version=1`, `endpoint`
/// (when known), the latest handshake as Unix seconds and nanoseconds (0 and 0 for never),
/// `tx_bytes`/`rx_bytes` (UDP payload bytes, handshakes and keepalives included, as WireGuard
/// counts them), `persistent_keepalive_interval` (0 for off) and one `allowed_ip` per
/// prefix; then `errno=0` and the blank line.
pub fn format_get(s: &Snapshot) -> String {
    let mut out = String::with_capacity(32 + s.peers.len() * 400);
    if s.listen_port != 0 {
        line(&mut out, "listen_port", s.listen_port);
    }
    for p in &s.peers {
        line(&mut out, "public_key", Hex(&p.public_key));
        line(&mut out, "preshared_key", Hex(&[0; 32]));
        line(&mut out, "protocol_version", 1);
        if let Some(endpoint) = p.endpoint {
            // `1.2.3.4:51820`, `[2001:db8::1]:51820`: Go's netip.AddrPort format.
            line(&mut out, "endpoint", endpoint);
        }
        let (sec, nsec) = unix_time(p.last_handshake);
        line(&mut out, "last_handshake_time_sec", sec);
        line(&mut out, "last_handshake_time_nsec", nsec);
        line(&mut out, "tx_bytes", p.counts.tx.wire_bytes);
        line(&mut out, "rx_bytes", p.counts.rx.wire_bytes);
        line(
            &mut out,
            "persistent_keepalive_interval",
            p.keepalive.unwrap_or(0),
        );
        for net in &p.allowed_ips {
            // The AllowedIPs trie of wireguard-go and the kernel keeps masked prefixes.
            line(&mut out, "allowed_ip", net.trunc());
        }
    }
    out.push_str(&status(0));
    out
}

/// `errno=N` and the blank line that ends every reply.
fn status(errno: i32) -> String {
    format!("errno={errno}\n\n")
}

fn line(out: &mut String, key: &str, value: impl Display) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{key}={value}");
}

fn unix_time(t: Option<SystemTime>) -> (u64, u32) {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()))
}

/// Lower-case hex, as the UAPI writes keys.
struct Hex<'a>(&'a [u8; 32]);

impl Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_support::{net, sample};
    use proptest::prelude::*;
    use std::net::SocketAddr;

    #[test]
    fn get_prints_what_wireguard_go_prints_without_the_private_key() {
        let expected = "listen_port=51820\n\
            public_key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\
            preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n\
            protocol_version=1\n\
            last_handshake_time_sec=0\n\
            last_handshake_time_nsec=0\n\
            tx_bytes=0\n\
            rx_bytes=0\n\
            persistent_keepalive_interval=0\n\
            allowed_ip=10.100.0.3/32\n\
            public_key=fefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefe\n\
            preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n\
            protocol_version=1\n\
            endpoint=[2001:db8::4]:51820\n\
            last_handshake_time_sec=1699999988\n\
            last_handshake_time_nsec=250000000\n\
            tx_bytes=1268924\n\
            rx_bytes=532\n\
            persistent_keepalive_interval=25\n\
            allowed_ip=10.100.0.4/32\n\
            allowed_ip=192.168.50.0/24\n\
            errno=0\n\n";
        assert_eq!(format_get(&sample()), expected);
        assert_eq!(reply(Request::Get, &sample()), expected);
        assert!(!expected.contains("private_key"));
    }

    #[test]
    fn get_with_no_peers_and_ipv4_endpoint() {
        let mut s = sample();
        s.peers.truncate(2);
        s.peers.remove(0);
        s.peers[0].endpoint = Some(SocketAddr::from(([192, 0, 2, 4], 51821)));
        assert!(format_get(&s).contains("\nendpoint=192.0.2.4:51821\n"));
        s.peers.clear();
        assert_eq!(format_get(&s), "listen_port=51820\nerrno=0\n\n");
        s.listen_port = 0;
        assert_eq!(format_get(&s), "errno=0\n\n");
    }

    #[test]
    fn allowed_ips_are_printed_masked() {
        let mut s = sample();
        s.peers[0].allowed_ips = vec![net([192, 168, 50, 7], 24)];
        assert!(format_get(&s).contains("\nallowed_ip=192.168.50.0/24\n"));
    }

    #[test]
    fn several_requests_in_one_feed() {
        let mut conn = UapiConn::new();
        let got = conn.feed(b"get=1\n\nset=1\nlisten_port=1\n\nget=1\n\n");
        assert_eq!(
            got,
            vec![Ok(Request::Get), Ok(Request::Set), Ok(Request::Get)]
        );
        assert_eq!(conn.buffered(), 0);
        assert!(!conn.is_closed());
    }

    #[test]
    fn a_request_split_over_many_feeds() {
        let stream = b"set=1\npublic_key=00\nallowed_ip=10.0.0.1/32\n\nget=1\n\n";
        let mut conn = UapiConn::new();
        let mut got = Vec::new();
        for byte in stream {
            got.extend(conn.feed(&[*byte]));
        }
        assert_eq!(got, vec![Ok(Request::Set), Ok(Request::Get)]);
        // Half a request waits for the rest.
        assert_eq!(conn.feed(b"get=1\n"), vec![]);
        assert_eq!(conn.buffered(), 6);
        assert_eq!(conn.feed(b"\n"), vec![Ok(Request::Get)]);
    }

    #[test]
    fn set_is_refused_with_eperm_and_the_connection_stays_open() {
        let mut conn = UapiConn::new();
        assert_eq!(conn.feed(b"set=1\n\n"), vec![Ok(Request::Set)]);
        assert_eq!(reply(Request::Set, &sample()), "errno=-1\n\n");
        assert!(!conn.is_closed());
        assert_eq!(conn.feed(b"get=1\n\n"), vec![Ok(Request::Get)]);
    }

    #[test]
    fn unknown_operation_is_einval_and_closes() {
        let mut conn = UapiConn::new();
        let got = conn.feed(b"get=1\n\nfoo=1\n\nget=1\n\n");
        assert_eq!(
            got,
            vec![Ok(Request::Get), Err(UapiError::UnknownOperation)]
        );
        assert_eq!(UapiError::UnknownOperation.reply(), "errno=-22\n\n");
        assert!(conn.is_closed());
        assert_eq!(conn.buffered(), 0);
        assert_eq!(conn.feed(b"get=1\n\n"), vec![]);
    }

    #[test]
    fn a_wrong_operation_is_seen_before_its_newline() {
        for bad in [&b"x"[..], b"get=2", b"GET", b"\n", b"set=1x", b"get=1\r"] {
            let mut conn = UapiConn::new();
            assert_eq!(
                conn.feed(bad),
                vec![Err(UapiError::UnknownOperation)],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn get_must_end_with_a_blank_line() {
        let mut conn = UapiConn::new();
        assert_eq!(
            conn.feed(b"get=1\nlisten_port=1\n\n"),
            vec![Err(UapiError::TrailingGet)]
        );
        assert_eq!(UapiError::TrailingGet.reply(), "errno=-22\n\n");
        assert!(conn.is_closed());
    }

    #[test]
    fn oversized_request_is_refused_without_buffering_more() {
        let mut conn = UapiConn::new();
        let mut body = b"set=1\n".to_vec();
        while body.len() < MAX_REQUEST + 1000 {
            body.extend_from_slice(b"allowed_ip=10.0.0.1/32\n");
        }
        let got = conn.feed(&body);
        assert_eq!(got, vec![Err(UapiError::TooLong)]);
        assert!(conn.is_closed());
        assert_eq!(conn.buffered(), 0);
    }

    #[test]
    fn a_request_of_exactly_the_cap_passes() {
        let mut body = b"set=1\n".to_vec();
        body.resize(MAX_REQUEST - 2, b'a');
        body.extend_from_slice(b"\n\n");
        let mut conn = UapiConn::new();
        assert_eq!(conn.feed(&body), vec![Ok(Request::Set)]);
        // One byte more is too long, fed in pieces too.
        body.insert(7, b'a');
        let mut conn = UapiConn::new();
        let got: Vec<_> = body.chunks(1000).flat_map(|c| conn.feed(c)).collect();
        assert_eq!(got, vec![Err(UapiError::TooLong)]);
    }

    #[test]
    fn invalid_utf8_is_an_error_reply_not_a_panic() {
        let mut conn = UapiConn::new();
        assert_eq!(
            conn.feed(b"\xff\xfe\n\n"),
            vec![Err(UapiError::UnknownOperation)]
        );
        // Inside a set body it is only part of what gets refused.
        let mut conn = UapiConn::new();
        assert_eq!(conn.feed(b"set=1\nk=\xff\n\n"), vec![Ok(Request::Set)]);
    }

    proptest! {
        #[test]
        fn arbitrary_chunks_never_panic_nor_overfill(
            chunks in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..64),
                    Just(b"get=1\n\n".to_vec()),
                    Just(b"set=1\nx=y\n".to_vec()),
                    Just(b"\n".to_vec()),
                    proptest::collection::vec(Just(b'a'), 0..20_000),
                ],
                0..40,
            )
        ) {
            let mut conn = UapiConn::new();
            for chunk in &chunks {
                let got = conn.feed(chunk);
                prop_assert!(conn.buffered() <= MAX_REQUEST);
                // An error is always last, and closes.
                if let Some(i) = got.iter().position(Result::is_err) {
                    prop_assert_eq!(i, got.len() - 1);
                    prop_assert!(conn.is_closed());
                }
            }
        }

        #[test]
        fn chunking_does_not_change_the_requests(
            requests in proptest::collection::vec(
                prop_oneof![
                    Just(&b"get=1\n\n"[..]),
                    Just(&b"set=1\n\n"[..]),
                    Just(&b"set=1\npublic_key=ab\nendpoint=[::1]:1\n\n"[..]),
                ],
                0..10,
            ),
            cuts in proptest::collection::vec(1usize..9, 0..60),
        ) {
            let stream = requests.concat();
            let mut whole = UapiConn::new();
            let expected = whole.feed(&stream);
            let mut pieces = UapiConn::new();
            let mut got = Vec::new();
            let mut rest = &stream[..];
            for cut in cuts.iter().chain(std::iter::repeat(&usize::MAX)) {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at((*cut).min(rest.len()));
                got.extend(pieces.feed(now));
                rest = later;
            }
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(expected.len(), requests.len());
            prop_assert!(expected.iter().all(Result::is_ok));
        }
    }
}
