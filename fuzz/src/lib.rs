//! What the fuzz targets share: a two-node mesh in memory (a at 10.100.0.1, b at 10.100.0.2,
//! b also routing 192.168.50.0/24) and the plumbing to pass datagrams between them.

use meshd::api::framing::{Framed, Frames};
use meshd::api::snapshot::Snapshot;
use meshd_core::config;
use meshd_core::key::PrivateKey;
use meshd_core::node::{slot_size, Batch, HandshakeWork, Node, MAX_DATAGRAM, NO_ADDR};
use meshd_core::plan::{Identity, NodePlan};
use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime};

/// a's endpoint, as b knows it.
pub const A: &str = "192.0.2.1:51820";
/// b's endpoint, as a knows it.
pub const B: &str = "192.0.2.2:51820";
/// Somewhere on the internet that is no peer.
pub const STRANGER: &str = "198.51.100.7:40000";
/// The same, over IPv6.
pub const STRANGER6: &str = "[2001:db8::7]:40000";

/// Fixed private keys: runs are repeatable, and the seeds' macs stay valid.
const KEY_A: &str = "mJ5mR0eYUvGrG0mU8MQzsJk3QDvJOgBSzfGS8vJlB1Y=";
const KEY_B: &str = "0LXDVHsIH2Yb7mJlwF2xkAvsv0cJxKpBeLu5wQrI+XM=";

#[track_caller]
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a fixed address")
}

/// The source address a fuzz input picks by one byte.
pub fn source(pick: u8) -> SocketAddr {
    addr(match pick % 3 {
        0 => A,
        1 => STRANGER,
        _ => STRANGER6,
    })
}

pub struct Pair {
    pub plan_a: NodePlan,
    pub a: Node,
    pub b: Node,
    pub key_a: PrivateKey,
    pub key_b: PrivateKey,
}

fn mesh_yaml(a: &PrivateKey, b: &PrivateKey) -> String {
    format!(
        "nodes:\n\
         \x20 - name: a\n    public_key: \"{}\"\n    address: 10.100.0.1/24\n    endpoint: {A}\n\
         \x20 - name: b\n    public_key: \"{}\"\n    address: 10.100.0.2/24\n    endpoint: {B}\n\
         \x20   routes: [192.168.50.0/24]\n\
         policy:\n  - from: a\n    to: b\n    allow: [any]\n",
        a.public_key().to_base64(),
        b.public_key().to_base64(),
    )
}

fn key(text: &str) -> PrivateKey {
    PrivateKey::from_base64(text).expect("fixed key")
}

impl Pair {
    /// Two nodes that have not met.
    pub fn new() -> Pair {
        let (key_a, key_b) = (key(KEY_A), key(KEY_B));
        let mesh = config::parse("mesh.yaml", &mesh_yaml(&key_a, &key_b)).expect("fixed mesh");
        let plan = |k: &PrivateKey| {
            let who = Identity::Key {
                public_key: k.public_key(),
                name: None,
            };
            NodePlan::new(&mesh, &who).expect("fixed plan")
        };
        let plan_a = plan(&key_a);
        Pair {
            a: Node::new(&plan_a, &key_a),
            plan_a,
            b: Node::new(&plan(&key_b), &key_b),
            key_a,
            key_b,
        }
    }

    /// Two nodes with a session: a initiated, b answered, a's first packet reached b.
    pub fn connected() -> Pair {
        let pair = Pair::new();
        let hello = ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"hello");
        let init = pair.a_sends(&hello);
        let response = deliver(&pair.b, &init, addr(A)).1;
        let flushed = deliver(&pair.a, &response, addr(B)).1;
        let (tun, _) = deliver(&pair.b, &flushed, addr(A));
        assert!(
            tun.iter().any(|(p, _)| p == hello.as_slice()),
            "the fixed pair connects"
        );
        pair
    }

    /// What a's control and UAPI sockets would show now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.plan_a, &self.a, SystemTime::now(), Instant::now())
    }

    /// What a sends for one packet read from its device.
    pub fn a_sends(&self, packet: &[u8]) -> Batch {
        let mut input = Batch::new(1, MAX_DATAGRAM);
        input.push(packet, NO_ADDR);
        let mut out = batch();
        send(&self.a, &input, &mut out);
        out
    }
}

impl Default for Pair {
    fn default() -> Self {
        Pair::new()
    }
}

/// Slots as the daemon sizes them for a 1420-byte device.
pub fn batch() -> Batch {
    Batch::new(16, slot_size(1420))
}

/// Passes `datagrams`, as if from `from`, through `node`'s data path and then its handshake
/// worker; returns what it wrote to its device and to the network.
pub fn deliver(node: &Node, datagrams: &Batch, from: SocketAddr) -> (Batch, Batch) {
    let mut inbound = Batch::new(datagrams.len().max(1), MAX_DATAGRAM);
    for (d, _) in datagrams.iter() {
        inbound.push(d, from);
    }
    let mut to_tun = Batch::new(inbound.len(), MAX_DATAGRAM);
    let mut work = HandshakeWork::default();
    node.handle_datagrams(Instant::now(), &inbound, &mut to_tun, &mut work);
    (to_tun, work_off(node, &work, false))
}

/// Into `out`, what `node` sends for `packets` read from its device: through the data path
/// and, for peers without a session yet, the handshake worker.
pub fn send(node: &Node, packets: &Batch, out: &mut Batch) {
    let mut work = HandshakeWork::default();
    node.handle_tun_packets(Instant::now(), packets.packets(), out, &mut work);
    for (d, to) in work_off(node, &work, false).iter() {
        out.push(d, to);
    }
}

/// What the handshake worker sends for `work`.
pub fn work_off(node: &Node, work: &HandshakeWork, under_load: bool) -> Batch {
    let mut to_net = batch();
    for (m, from) in work.messages.iter() {
        if to_net.is_full() {
            break;
        }
        node.handle_handshake(Instant::now(), m, from, under_load, &mut to_net);
    }
    for &slot in &work.initiate {
        if to_net.is_full() {
            break;
        }
        node.initiate(Instant::now(), slot, &mut to_net);
    }
    for &slot in &work.start {
        node.start(Instant::now(), slot, &mut to_net);
    }
    to_net
}

/// A minimal IPv4 UDP packet.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Whether `packet`, delivered by b to its device, came from an address a may use.
pub fn from_a(packet: &[u8]) -> bool {
    match meshd_core::packet::addresses(packet) {
        Some((IpAddr::V4(src), _)) => src.octets() == [10, 100, 0, 1],
        _ => false,
    }
}

/// Splits fuzz input into records: a tag byte, a length byte, then that many bytes (or what
/// is left).
pub fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = data.split_first()?;
        let (&len, rest) = rest.split_first().unwrap_or((&0, rest));
        let len = if len == 0 {
            rest.len()
        } else {
            len as usize * 8
        }
        .min(rest.len());
        let (body, rest) = rest.split_at(len);
        data = rest;
        Some((tag, body))
    })
}

/// Feeds `stream` to a new connection in pieces of `chunk` bytes (at least 1), calling `check`
/// on every request or error it yields; returns them all as text, for comparing chunkings.
pub fn feed_chunked<F: Frames>(
    stream: &[u8],
    chunk: usize,
    mut check: impl FnMut(&Result<F::Item, F::Error>),
) -> Vec<String>
where
    F::Item: std::fmt::Debug,
    F::Error: std::fmt::Debug,
{
    let mut conn = Framed::<F>::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        for item in conn.feed(piece) {
            check(&item);
            out.push(format!("{item:?}"));
        }
        if conn.is_closed() {
            break;
        }
    }
    out
}
