//! A plain copy of the node's state at one instant: what `meshd peers`, `meshd whois`, the
//! WireGuard UAPI and the metrics show. Taking one reads the counters (relaxed loads) and
//! holds each peer's lock only to copy its endpoint and handshake times.

use ipnet::IpNet;
use meshd_core::config::MetricsDetail;
use meshd_core::counters::{HistogramSnapshot, PeerCounters, Traffic};
use meshd_core::node::Node;
use meshd_core::plan::NodePlan;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

/// A peer is "up" while its latest handshake is younger than this (WireGuard's reject-after
/// time: past it, the session can no longer carry data without a new handshake).
pub const UP_WITHIN: Duration = Duration::from_secs(180);

/// A plain copy of a peer's counters (or of what retired peers counted, the node's
/// [`Snapshot::retired`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Counts {
    pub tx: Traffic,
    pub rx: Traffic,
    pub handshake_initiations: u64,
    pub handshakes_as_initiator: u64,
    pub handshakes_as_responder: u64,
    pub endpoint_changes: u64,
    pub handshake_durations: HistogramSnapshot,
}

impl Counts {
    fn of(c: &PeerCounters) -> Self {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        Self {
            tx: c.tx.snapshot(),
            rx: c.rx.snapshot(),
            handshake_initiations: load(&c.handshake_initiations),
            handshakes_as_initiator: load(&c.handshakes_as_initiator),
            handshakes_as_responder: load(&c.handshakes_as_responder),
            endpoint_changes: load(&c.endpoint_changes),
            handshake_durations: c.handshake_duration.snapshot(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerSnapshot {
    pub name: String,
    pub public_key: [u8; 32],
    /// Overlay address.
    pub address: IpAddr,
    pub allowed_ips: Vec<IpNet>,
    pub endpoint: Option<SocketAddr>,
    /// Wall-clock time of the latest completed handshake.
    pub last_handshake: Option<SystemTime>,
    /// Age of the latest completed handshake at the time of the snapshot.
    pub since_last_handshake: Option<Duration>,
    pub last_handshake_duration: Option<Duration>,
    pub keepalive: Option<u16>,
    pub counts: Counts,
}

impl PeerSnapshot {
    /// `up` (handshake under 180 s old), `stale` (older) or `never`.
    pub fn state(&self) -> &'static str {
        match self.since_last_handshake {
            None => "never",
            Some(age) if age < UP_WITHIN => "up",
            Some(_) => "stale",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Device name, e.g. `meshd0`.
    pub interface: String,
    /// This node's name in the mesh.
    pub node: String,
    pub public_key: [u8; 32],
    /// This node's overlay address with the mesh prefix length.
    pub address: IpNet,
    pub listen_port: u16,
    /// When the snapshot was taken.
    pub taken: SystemTime,
    pub peers: Vec<PeerSnapshot>,
    /// Drops by reason label, every reason, zeros included.
    pub drops: Vec<(&'static str, u64)>,
    /// Which metrics carry a `peer` label (`interface.metrics_detail`).
    pub metrics_detail: MetricsDetail,
    /// Counted by peers reloads removed or replaced (node-wide sums include it).
    pub retired: Counts,
}

impl Snapshot {
    /// `now` is the wall clock (for Unix times), `mono` the monotonic one (for ages).
    pub fn take(plan: &NodePlan, node: &Node, now: SystemTime, mono: Instant) -> Self {
        let peers = node
            .peers()
            .iter()
            .map(|p| {
                let status = p.status(mono);
                PeerSnapshot {
                    name: p.plan.name.clone(),
                    public_key: p.plan.public_key.0,
                    address: p.plan.address,
                    allowed_ips: p.plan.allowed_ips.clone(),
                    endpoint: status.endpoint,
                    last_handshake: status
                        .since_last_handshake
                        .and_then(|age| now.checked_sub(age)),
                    since_last_handshake: status.since_last_handshake,
                    last_handshake_duration: status.last_handshake_duration,
                    keepalive: p.plan.keepalive,
                    counts: Counts::of(&p.counters),
                }
            })
            .collect();
        Self {
            interface: plan.interface.name.clone(),
            node: plan.me.name.clone(),
            public_key: plan.me.public_key.0,
            address: plan.me.address,
            listen_port: plan.interface.listen_port,
            metrics_detail: plan.interface.metrics_detail,
            retired: Counts::of(node.retired()),
            taken: now,
            peers,
            drops: node
                .drops()
                .snapshot()
                .into_iter()
                .map(|(r, n)| (r.as_str(), n))
                .collect(),
        }
    }

    /// The node that owns `addr`: this node for its own address, else the peer whose
    /// AllowedIPs hold it (longest prefix, as cryptokey routing decides).
    pub fn whois(&self, addr: IpAddr) -> Option<Owner<'_>> {
        if self.address.addr() == addr {
            return Some(Owner::Me);
        }
        self.peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter().map(move |net| (net, p)))
            .filter(|(net, _)| net.contains(&addr))
            .max_by_key(|(net, _)| net.prefix_len())
            .map(|(net, p)| Owner::Peer(p, *net))
    }
}

/// Who owns an overlay address.
#[derive(Debug, PartialEq)]
pub enum Owner<'a> {
    Me,
    /// The peer and the AllowedIPs prefix that matched.
    Peer(&'a PeerSnapshot, IpNet),
}
