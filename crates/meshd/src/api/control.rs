//! meshd's control protocol (the socket `/run/meshd/<iface>.sock`): newline-delimited JSON, one
//! request object per line, one reply object per line. Pure: no socket, no clock.
//!
//! - Both sides live here, so the schema lives in one place.
//! - The daemon parses with [`ControlConn`] / [`parse_request`] and answers with [`answer`].
//! - `meshd peers` and `meshd whois` write [`Request::to_line`] and read the reply with
//!   [`parse_reply`] into [`PeersReply`], [`WhoisReply`] or [`StatusReply`].
//! - docs/control-protocol.md is the reference for users.

use super::framing::{Framed, Frames};
use super::snapshot::{Owner, PeerSnapshot, Snapshot};
use ipnet::IpNet;
use meshd_core::key::PublicKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::net::{IpAddr, SocketAddr};
use std::time::UNIX_EPOCH;

/// Where the control socket of interface `iface` is.
pub fn socket_path(iface: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/run/meshd/{iface}.sock"))
}

/// The longest request line accepted, its newline not counted. Requests are tiny; the cap
/// only bounds what one connection can make the daemon hold.
pub const MAX_LINE: usize = 4096;

/// What a client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Answered from a snapshot by [`answer`].
    Query(Query),
    /// `{"cmd":"reload"}`: re-read mesh.yaml, as SIGHUP does. Answered by the daemon itself,
    /// with [`ok_line`] (`{"ok":true}` at least) or [`error_line`] when the config is refused.
    Reload,
}

/// A read-only request, answered from a [`Snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `{"cmd":"peers"}`
    Peers,
    /// `{"cmd":"whois","address":"10.100.0.3"}`
    Whois(IpAddr),
    /// `{"cmd":"status"}`
    Status,
}

/// The request as it is on the wire. Empty struct variants, not unit ones: serde ignores
/// `deny_unknown_fields` for unit variants of an internally tagged enum, and
/// `{"cmd":"peers","verbose":true}` should be refused rather than half understood.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
enum WireRequest {
    Peers {},
    Whois { address: String },
    Status {},
    Reload {},
}

const COMMANDS: [&str; 4] = ["peers", "whois", "status", "reload"];

impl Request {
    /// The request line a client writes, newline included.
    pub fn to_line(self) -> Vec<u8> {
        let wire = match self {
            Request::Query(Query::Peers) => WireRequest::Peers {},
            Request::Query(Query::Whois(address)) => WireRequest::Whois {
                address: address.to_string(),
            },
            Request::Query(Query::Status) => WireRequest::Status {},
            Request::Reload => WireRequest::Reload {},
        };
        json_line(&wire)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// A request line over [`MAX_LINE`] bytes. The daemon replies, then closes the connection.
    TooLong,
    NotUtf8,
    BadJson(String),
    NotAnObject,
    MissingCommand,
    UnknownCommand(String),
    /// Known command, wrong fields (unknown, missing or of the wrong type).
    BadRequest(String),
    /// `whois` with an `address` that is not an IP address.
    BadAddress(String),
    /// `whois`: neither this node nor any of its peers owns the address.
    NotFound {
        address: IpAddr,
        interface: String,
    },
    /// Client side: the daemon answered `{"ok":false,"error":...}`.
    Daemon(String),
    /// Client side: the reply line is not a reply of the expected kind.
    BadReply(String),
}

impl ControlError {
    /// After this error the daemon closes the connection: the stream can no longer be
    /// trusted to be where a line starts.
    pub fn closes_connection(&self) -> bool {
        matches!(self, ControlError::TooLong)
    }
}

impl Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::TooLong => write!(f, "request line longer than {MAX_LINE} bytes"),
            ControlError::NotUtf8 => f.write_str("request is not UTF-8"),
            ControlError::BadJson(e) => write!(f, "request is not valid JSON: {e}"),
            ControlError::NotAnObject => {
                f.write_str(r#"request is not a JSON object such as {"cmd":"peers"}"#)
            }
            ControlError::MissingCommand => f.write_str(r#"request has no "cmd" string"#),
            ControlError::UnknownCommand(cmd) => write!(
                f,
                "unknown command {cmd:?} (known: peers, whois, status, reload)"
            ),
            ControlError::BadRequest(e) => write!(f, "bad request: {e}"),
            ControlError::BadAddress(a) => write!(f, "{a:?} is not an IP address"),
            ControlError::NotFound { address, interface } => write!(
                f,
                "{address} belongs to no node known to {interface}: it is not this node's \
                 address and no peer's AllowedIPs contain it"
            ),
            ControlError::Daemon(e) => f.write_str(e),
            ControlError::BadReply(e) => write!(f, "unexpected reply from meshd: {e}"),
        }
    }
}

impl std::error::Error for ControlError {}

/// One request line (a trailing `\n` or `\r\n` is allowed).
pub fn parse_request(line: &[u8]) -> Result<Request, ControlError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE {
        return Err(ControlError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| ControlError::NotUtf8)?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| ControlError::BadJson(e.to_string()))?;
    // Checked by hand first, for errors that say what is wrong in words.
    let cmd = match value
        .as_object()
        .ok_or(ControlError::NotAnObject)?
        .get("cmd")
    {
        Some(Value::String(cmd)) => cmd,
        _ => return Err(ControlError::MissingCommand),
    };
    if !COMMANDS.contains(&cmd.as_str()) {
        return Err(ControlError::UnknownCommand(cmd.clone()));
    }
    let wire: WireRequest =
        serde_json::from_value(value).map_err(|e| ControlError::BadRequest(e.to_string()))?;
    Ok(match wire {
        WireRequest::Peers {} => Request::Query(Query::Peers),
        WireRequest::Whois { address } => match address.parse() {
            Ok(ip) => Request::Query(Query::Whois(ip)),
            Err(_) => return Err(ControlError::BadAddress(address)),
        },
        WireRequest::Status {} => Request::Query(Query::Status),
        WireRequest::Reload {} => Request::Reload,
    })
}

/// The reading side of one control connection: bytes in, requests out, in order, however
/// the bytes were chunked. Blank lines are skipped. Buffers at most `MAX_LINE + 1` bytes; an
/// over-long line is the one error that closes the connection.
pub type ControlConn = Framed<Lines>;

/// Newline-delimited requests.
#[derive(Debug, Default)]
pub struct Lines {
    /// How much of the buffer is known to hold no newline.
    scanned: usize,
}

impl Frames for Lines {
    type Item = Request;
    type Error = ControlError;
    const CAP: usize = MAX_LINE + 1;

    fn next(&mut self, buf: &mut Vec<u8>) -> Option<Result<Request, ControlError>> {
        loop {
            let rest = buf.get(self.scanned..)?;
            let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                self.scanned = buf.len();
                return None;
            };
            let line: Vec<u8> = buf.drain(..self.scanned + i + 1).collect();
            self.scanned = 0;
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(parse_request(&line));
            }
        }
    }

    fn fatal(e: &ControlError) -> bool {
        e.closes_connection()
    }

    fn too_long() -> ControlError {
        ControlError::TooLong
    }
}

/// A peer's state, from the age of its latest handshake (`UP_WITHIN`, 180 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeState {
    /// Handshake under 180 s old: the session can carry data.
    Up,
    /// Handshake older: a new one is needed before data flows.
    Stale,
    /// No handshake since meshd started.
    Never,
}

impl HandshakeState {
    pub fn of(peer: &PeerSnapshot) -> Self {
        match peer.state() {
            "up" => HandshakeState::Up,
            "stale" => HandshakeState::Stale,
            _ => HandshakeState::Never,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeState::Up => "up",
            HandshakeState::Stale => "stale",
            HandshakeState::Never => "never",
        }
    }
}

/// `{"cmd":"peers"}`, and `meshd peers --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeersReply {
    pub interface: String,
    /// This node's name.
    pub node: String,
    /// In config order.
    pub peers: Vec<PeerEntry>,
}

/// One peer in [`PeersReply`]. Byte counts are totals since meshd started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerEntry {
    pub name: String,
    /// Base64, as `wg` prints it.
    pub public_key: String,
    /// Overlay address.
    pub address: IpAddr,
    #[serde(with = "as_strings")]
    pub allowed_ips: Vec<IpNet>,
    /// Where its packets go now (roaming follows it); null until known.
    pub endpoint: Option<SocketAddr>,
    /// Unix time (seconds) of the latest completed handshake.
    pub latest_handshake_unix: Option<u64>,
    /// Its age, in whole seconds, when the reply was made.
    pub latest_handshake_age_seconds: Option<u64>,
    pub state: HandshakeState,
    /// UDP payload bytes (data, handshakes, keepalives): what WireGuard counts.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Inner IP packet bytes.
    pub rx_payload_bytes: u64,
    pub tx_payload_bytes: u64,
    /// Inner IP packets.
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Persistent keepalive interval; null when off.
    pub keepalive_seconds: Option<u16>,
    /// The latest handshake this node initiated: initiation sent to response received.
    pub handshake_duration_seconds: Option<f64>,
}

/// `{"cmd":"reload"}`: what the reload changed, as its log line says it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReply {
    pub reloaded: String,
}

/// `{"cmd":"whois","address":...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoisReply {
    /// The address asked about.
    pub address: IpAddr,
    /// The node that owns it.
    pub node: String,
    pub public_key: String,
    /// The AllowedIPs prefix that matched (longest prefix); for this node, its address as
    /// a host prefix.
    #[serde(with = "as_string")]
    pub matched: IpNet,
    /// True when the address is this node's own.
    #[serde(rename = "self")]
    pub is_self: bool,
}

/// `{"cmd":"status"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    /// meshd's version.
    pub version: String,
    pub interface: String,
    pub node: String,
    /// Overlay address with the mesh prefix length.
    #[serde(with = "as_string")]
    pub address: IpNet,
    pub public_key: String,
    pub listen_port: u16,
    pub peer_count: usize,
    /// Peers in state `up`.
    pub peers_up: usize,
    /// Dropped packets by reason (`meshd_dropped_packets_total`), every reason.
    pub drops: BTreeMap<String, u64>,
}

/// A successful answer to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Peers(PeersReply),
    Whois(WhoisReply),
    Status(StatusReply),
}

impl Reply {
    /// `{"ok":true, ...}` and a newline.
    pub fn to_line(&self) -> Vec<u8> {
        match self {
            Reply::Peers(r) => ok_line(r),
            Reply::Whois(r) => ok_line(r),
            Reply::Status(r) => ok_line(r),
        }
    }
}

/// Answers a query from a snapshot.
pub fn respond(query: Query, s: &Snapshot) -> Result<Reply, ControlError> {
    Ok(match query {
        Query::Peers => Reply::Peers(peers_reply(s)),
        Query::Whois(address) => Reply::Whois(whois_reply(s, address)?),
        Query::Status => Reply::Status(status_reply(s)),
    })
}

/// The reply line for a query: [`respond`], written out, errors included.
pub fn answer(query: Query, s: &Snapshot) -> Vec<u8> {
    match respond(query, s) {
        Ok(reply) => reply.to_line(),
        Err(e) => error_line(&e),
    }
}

pub fn peers_reply(s: &Snapshot) -> PeersReply {
    PeersReply {
        interface: s.interface.clone(),
        node: s.node.clone(),
        peers: s.peers.iter().map(peer_entry).collect(),
    }
}

fn peer_entry(p: &PeerSnapshot) -> PeerEntry {
    PeerEntry {
        name: p.name.clone(),
        public_key: PublicKey(p.public_key).to_base64(),
        address: p.address,
        allowed_ips: p.allowed_ips.clone(),
        endpoint: p.endpoint,
        latest_handshake_unix: p
            .last_handshake
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        latest_handshake_age_seconds: p.since_last_handshake.map(|d| d.as_secs()),
        state: HandshakeState::of(p),
        rx_bytes: p.counts.rx.wire_bytes,
        tx_bytes: p.counts.tx.wire_bytes,
        rx_payload_bytes: p.counts.rx.payload_bytes,
        tx_payload_bytes: p.counts.tx.payload_bytes,
        rx_packets: p.counts.rx.packets,
        tx_packets: p.counts.tx.packets,
        keepalive_seconds: p.keepalive.filter(|&k| k > 0),
        handshake_duration_seconds: p.last_handshake_duration.map(|d| d.as_secs_f64()),
    }
}

pub fn whois_reply(s: &Snapshot, address: IpAddr) -> Result<WhoisReply, ControlError> {
    match s.whois(address) {
        Some(Owner::Me) => Ok(WhoisReply {
            address,
            node: s.node.clone(),
            public_key: PublicKey(s.public_key).to_base64(),
            matched: IpNet::from(address),
            is_self: true,
        }),
        Some(Owner::Peer(p, matched)) => Ok(WhoisReply {
            address,
            node: p.name.clone(),
            public_key: PublicKey(p.public_key).to_base64(),
            matched,
            is_self: false,
        }),
        None => Err(ControlError::NotFound {
            address,
            interface: s.interface.clone(),
        }),
    }
}

pub fn status_reply(s: &Snapshot) -> StatusReply {
    StatusReply {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        interface: s.interface.clone(),
        node: s.node.clone(),
        address: s.address,
        public_key: PublicKey(s.public_key).to_base64(),
        listen_port: s.listen_port,
        peer_count: s.peers.len(),
        peers_up: s
            .peers
            .iter()
            .filter(|p| HandshakeState::of(p) == HandshakeState::Up)
            .count(),
        drops: s
            .drops
            .iter()
            .map(|&(reason, n)| (reason.to_owned(), n))
            .collect(),
    }
}

/// `{"ok":true, ...fields of data}` and a newline; `data` must serialise to an object.
pub fn ok_line<T: Serialize>(data: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Success<'a, T> {
        ok: bool,
        #[serde(flatten)]
        data: &'a T,
    }
    json_line(&Success { ok: true, data })
}

/// `{"ok":false,"error":"..."}` and a newline.
pub fn error_line(error: &dyn Display) -> Vec<u8> {
    #[derive(Serialize)]
    struct Failure {
        ok: bool,
        error: String,
    }
    json_line(&Failure {
        ok: false,
        error: error.to_string(),
    })
}

fn json_line<T: Serialize>(value: &T) -> Vec<u8> {
    match serde_json::to_vec(value) {
        Ok(mut line) => {
            line.push(b'\n');
            line
        }
        // Only a type that cannot be JSON fails here: a bug, said rather than hidden.
        Err(e) => {
            let message = serde_json::to_string(&format!("internal error: {e}"))
                .unwrap_or_else(|_| "\"internal error\"".to_owned());
            format!("{{\"ok\":false,\"error\":{message}}}\n").into_bytes()
        }
    }
}

/// Client side: one reply line into the expected reply type, or the daemon's error.
pub fn parse_reply<T: DeserializeOwned>(line: &[u8]) -> Result<T, ControlError> {
    // `ok` and `error` first, skipping the rest: a large reply is not built twice.
    #[derive(Deserialize)]
    struct Envelope {
        ok: Option<bool>,
        error: Option<String>,
    }
    let bad = |e: serde_json::Error| ControlError::BadReply(e.to_string());
    let envelope: Envelope = serde_json::from_slice(line).map_err(bad)?;
    match envelope.ok {
        Some(true) => serde_json::from_slice(line).map_err(bad),
        Some(false) => Err(ControlError::Daemon(envelope.error.unwrap_or_else(|| {
            "meshd refused the request without saying why".to_owned()
        }))),
        None => Err(ControlError::BadReply(r#"no "ok" field"#.to_owned())),
    }
}

/// A value as its `Display` string, read back with `FromStr` (`IpNet` has no serde here).
mod as_string {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub(super) fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| D::Error::custom(format!("{text:?}: {e}")))
    }
}

/// A list of values as strings, as [`as_string`].
mod as_strings {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub(super) fn serialize<T: Display, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }

    pub(super) fn deserialize<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|text| {
                text.parse()
                    .map_err(|e| D::Error::custom(format!("{text:?}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::test_support::{ip, net, sample};
    use proptest::prelude::*;
    use serde_json::json;
    use std::net::Ipv6Addr;

    fn parse(line: &str) -> Result<Request, ControlError> {
        parse_request(line.as_bytes())
    }

    fn reply_json(query: Query) -> Value {
        let line = answer(query, &sample());
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        json_of(&line)
    }

    fn json_of(line: &[u8]) -> Value {
        serde_json::from_slice(line).unwrap_or(Value::Null)
    }

    #[test]
    fn requests_parse() {
        assert_eq!(
            parse(r#"{"cmd":"peers"}"#),
            Ok(Request::Query(Query::Peers))
        );
        assert_eq!(
            parse(r#"{"cmd":"status"}"#),
            Ok(Request::Query(Query::Status))
        );
        assert_eq!(parse("{\"cmd\":\"reload\"}\r\n"), Ok(Request::Reload));
        assert_eq!(
            parse(r#" { "address" : "10.100.0.3", "cmd" : "whois" } "#),
            Ok(Request::Query(Query::Whois(ip([10, 100, 0, 3]))))
        );
        assert_eq!(
            parse(r#"{"cmd":"whois","address":"fd00::3"}"#),
            Ok(Request::Query(Query::Whois(IpAddr::from(Ipv6Addr::new(
                0xfd00, 0, 0, 0, 0, 0, 0, 3
            )))))
        );
    }

    #[test]
    fn requests_round_trip_through_their_lines() {
        for request in [
            Request::Query(Query::Peers),
            Request::Query(Query::Status),
            Request::Query(Query::Whois(ip([10, 100, 0, 3]))),
            Request::Reload,
        ] {
            let line = request.to_line();
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(parse_request(&line), Ok(request));
        }
        assert_eq!(
            Request::Query(Query::Whois(ip([10, 100, 0, 3]))).to_line(),
            b"{\"cmd\":\"whois\",\"address\":\"10.100.0.3\"}\n"
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases = [
            ("{\"cmd\":", "request is not valid JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"command":"peers"}"#, r#"no "cmd" string"#),
            (r#"{"cmd":7}"#, r#"no "cmd" string"#),
            (r#"{"cmd":"frob"}"#, r#"unknown command "frob""#),
            (
                r#"{"cmd":"peers","verbose":true}"#,
                "unknown field `verbose`",
            ),
            (r#"{"cmd":"status","x":1}"#, "unknown field `x`"),
            (
                r#"{"cmd":"whois","address":"10.0.0.1","extra":1}"#,
                "unknown field `extra`",
            ),
            (r#"{"cmd":"whois"}"#, "missing field `address`"),
            (r#"{"cmd":"whois","address":3}"#, "invalid type"),
            (
                r#"{"cmd":"whois","address":"10.0.0.300"}"#,
                r#""10.0.0.300" is not an IP address"#,
            ),
            (
                r#"{"cmd":"whois","address":"10.0.0.1/32"}"#,
                "is not an IP address",
            ),
        ];
        for (line, message) in cases {
            let error = parse(line).err();
            let text = error.as_ref().map(ToString::to_string).unwrap_or_default();
            assert!(
                text.contains(message),
                "{line}: {text:?} does not contain {message}"
            );
            assert!(!error.is_some_and(|e| e.closes_connection()));
        }
    }

    #[test]
    fn too_long_and_invalid_utf8() {
        let long = format!(r#"{{"cmd":"peers","pad":"{}"}}"#, "x".repeat(MAX_LINE));
        assert_eq!(parse(&long), Err(ControlError::TooLong));
        assert!(ControlError::TooLong.closes_connection());
        assert_eq!(
            parse_request(b"{\"cmd\":\"\xff\"}"),
            Err(ControlError::NotUtf8)
        );
    }

    #[test]
    fn connection_frames_lines_and_skips_blank_ones() {
        let mut conn = ControlConn::new();
        let got = conn.feed(b"{\"cmd\":\"peers\"}\n\n  \r\n{\"cmd\":\"st");
        assert_eq!(got, vec![Ok(Request::Query(Query::Peers))]);
        assert_eq!(conn.feed(b"atus\"}"), vec![]);
        let got = conn.feed(b"\nnonsense\n{\"cmd\":\"reload\"}\n");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], Ok(Request::Query(Query::Status)));
        assert!(matches!(got[1], Err(ControlError::BadJson(_))));
        assert_eq!(got[2], Ok(Request::Reload));
        assert!(!conn.is_closed());
        assert_eq!(conn.buffered(), 0);
    }

    #[test]
    fn connection_closes_on_a_line_too_long() {
        let mut conn = ControlConn::new();
        let mut got = conn.feed(b"{\"cmd\":\"peers\"}\n");
        for _ in 0..10 {
            got.extend(conn.feed(&[b' '; 1000]));
        }
        assert_eq!(
            got,
            vec![Ok(Request::Query(Query::Peers)), Err(ControlError::TooLong)]
        );
        assert!(conn.is_closed());
        assert_eq!(conn.buffered(), 0);
        assert_eq!(conn.feed(b"{\"cmd\":\"peers\"}\n"), vec![]);
        // A line of exactly MAX_LINE bytes passes.
        let mut line = b"{\"cmd\":\"peers\"}".to_vec();
        line.resize(MAX_LINE, b' ');
        line.push(b'\n');
        let mut conn = ControlConn::new();
        assert_eq!(conn.feed(&line), vec![Ok(Request::Query(Query::Peers))]);
    }

    #[test]
    fn peers_reply_schema() {
        let v = reply_json(Query::Peers);
        assert_eq!(
            v,
            json!({
                "ok": true,
                "interface": "meshd0",
                "node": "db1",
                "peers": [
                    {
                        "name": "app1",
                        "public_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                        "address": "10.100.0.3",
                        "allowed_ips": ["10.100.0.3/32"],
                        "endpoint": null,
                        "latest_handshake_unix": null,
                        "latest_handshake_age_seconds": null,
                        "state": "never",
                        "rx_bytes": 0,
                        "tx_bytes": 0,
                        "rx_payload_bytes": 0,
                        "tx_payload_bytes": 0,
                        "rx_packets": 0,
                        "tx_packets": 0,
                        "keepalive_seconds": null,
                        "handshake_duration_seconds": null
                    },
                    {
                        "name": "edge1",
                        "public_key": "/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v4=",
                        "address": "10.100.0.4",
                        "allowed_ips": ["10.100.0.4/32", "192.168.50.0/24"],
                        "endpoint": "[2001:db8::4]:51820",
                        "latest_handshake_unix": 1_699_999_988,
                        "latest_handshake_age_seconds": 12,
                        "state": "up",
                        "rx_bytes": 532,
                        "tx_bytes": 1_268_924,
                        "rx_payload_bytes": 500,
                        "tx_payload_bytes": 1_200_000,
                        "rx_packets": 1,
                        "tx_packets": 1000,
                        "keepalive_seconds": 25,
                        "handshake_duration_seconds": 0.0015
                    }
                ]
            })
        );
        // The JSON starts with "ok", the client reads back what the daemon wrote.
        let line = answer(Query::Peers, &sample());
        assert!(line.starts_with(b"{\"ok\":true,\"interface\":\"meshd0\""));
        assert_eq!(parse_reply(&line), Ok(peers_reply(&sample())));
    }

    #[test]
    fn peer_states() {
        let mut s = sample();
        s.peers[1].since_last_handshake = Some(std::time::Duration::from_secs(180));
        let r = peers_reply(&s);
        assert_eq!(r.peers[0].state, HandshakeState::Never);
        assert_eq!(r.peers[1].state, HandshakeState::Stale);
        assert_eq!(r.peers[1].state.as_str(), "stale");
        s.peers[1].keepalive = Some(0);
        assert_eq!(peers_reply(&s).peers[1].keepalive_seconds, None);
    }

    #[test]
    fn whois_a_peer_by_address_and_by_route() {
        let v = reply_json(Query::Whois(ip([10, 100, 0, 4])));
        assert_eq!(
            v,
            json!({
                "ok": true,
                "address": "10.100.0.4",
                "node": "edge1",
                "public_key": "/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v4=",
                "matched": "10.100.0.4/32",
                "self": false
            })
        );
        let v = reply_json(Query::Whois(ip([192, 168, 50, 9])));
        assert_eq!(v["node"], "edge1");
        assert_eq!(v["matched"], "192.168.50.0/24");
        let line = answer(Query::Whois(ip([192, 168, 50, 9])), &sample());
        let back = parse_reply::<WhoisReply>(&line).map(|r| r.matched);
        assert_eq!(back, Ok(net([192, 168, 50, 0], 24)));
    }

    #[test]
    fn whois_this_node() {
        let v = reply_json(Query::Whois(ip([10, 100, 0, 2])));
        assert_eq!(v["node"], "db1");
        assert_eq!(v["self"], true);
        assert_eq!(v["matched"], "10.100.0.2/32");
        assert_eq!(v["public_key"], PublicKey([7; 32]).to_base64());
    }

    #[test]
    fn whois_unknown_address_is_an_error_reply() {
        let line = answer(Query::Whois(ip([10, 100, 0, 9])), &sample());
        let v = json_of(&line);
        assert_eq!(v["ok"], false);
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("10.100.0.9 belongs to no node known to meshd0"));
        assert_eq!(
            parse_reply::<WhoisReply>(&line),
            Err(ControlError::Daemon(error.to_owned()))
        );
    }

    #[test]
    fn status_reply_schema() {
        let v = reply_json(Query::Status);
        assert_eq!(
            v,
            json!({
                "ok": true,
                "version": env!("CARGO_PKG_VERSION"),
                "interface": "meshd0",
                "node": "db1",
                "address": "10.100.0.2/24",
                "public_key": PublicKey([7; 32]).to_base64(),
                "listen_port": 51820,
                "peer_count": 2,
                "peers_up": 1,
                "drops": {"allowed_ips": 0, "no_route": 3}
            })
        );
        assert_eq!(
            parse_reply(&answer(Query::Status, &sample())),
            Ok(status_reply(&sample()))
        );
    }

    #[test]
    fn error_lines_and_bad_replies() {
        let line = error_line(&ControlError::UnknownCommand("x\"y".into()));
        let v = json_of(&line);
        assert_eq!(
            v,
            json!({"ok": false, "error": "unknown command \"x\\\"y\" (known: peers, whois, status, reload)"})
        );
        assert!(matches!(
            parse_reply::<PeersReply>(b"not json"),
            Err(ControlError::BadReply(_))
        ));
        assert!(matches!(
            parse_reply::<PeersReply>(b"{\"interface\":\"x\"}"),
            Err(ControlError::BadReply(_))
        ));
        assert!(matches!(
            parse_reply::<PeersReply>(b"{\"ok\":true,\"interface\":\"x\"}"),
            Err(ControlError::BadReply(_))
        ));
        assert_eq!(ok_line(&json!({})), b"{\"ok\":true}\n");
        // A newer daemon may add fields: an older client ignores them.
        let status = parse_reply::<StatusReply>(&ok_line(&json!({
            "version": "9", "interface": "m", "node": "n", "address": "10.0.0.1/24",
            "public_key": "k", "listen_port": 1, "peer_count": 0, "peers_up": 0,
            "drops": {}, "new_field": [1, 2]
        })));
        assert!(status.is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
            let _ = parse_request(&bytes);
        }

        #[test]
        fn json_looking_lines_never_panic(
            cmd in prop_oneof![
                Just("peers".to_owned()),
                Just("whois".to_owned()),
                Just("status".to_owned()),
                Just("reload".to_owned()),
                ".{0,8}",
            ],
            key in prop_oneof![Just("address".to_owned()), Just("cmd".to_owned()), "[a-z]{0,6}"],
            value in ".{0,40}",
        ) {
            let line = json!({"cmd": cmd, key: value}).to_string();
            let _ = parse_request(line.as_bytes());
        }

        #[test]
        fn arbitrary_chunks_never_overfill(
            chunks in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..300),
                    Just(b"{\"cmd\":\"peers\"}\n".to_vec()),
                    Just(b"\n".to_vec()),
                ],
                0..60,
            )
        ) {
            let mut conn = ControlConn::new();
            for chunk in &chunks {
                let got = conn.feed(chunk);
                prop_assert!(conn.buffered() <= MAX_LINE + 1);
                if let Some(i) = got.iter().position(|r| r.as_ref().is_err_and(ControlError::closes_connection)) {
                    prop_assert_eq!(i, got.len() - 1);
                    prop_assert!(conn.is_closed());
                }
            }
        }

        #[test]
        fn whois_lines_round_trip(octets in any::<[u8; 16]>(), v4 in any::<bool>()) {
            let address: IpAddr = if v4 {
                IpAddr::from([octets[0], octets[1], octets[2], octets[3]])
            } else {
                IpAddr::from(octets)
            };
            let request = Request::Query(Query::Whois(address));
            prop_assert_eq!(parse_request(&request.to_line()), Ok(request));
        }
    }
}
