//! The typed mesh configuration: what `mesh.yaml` means once it has been parsed and validated.
//!
//! - Every value here is already checked; positions are kept where later stages report errors.
//! - Beside each type: its defaults, the bounds of its values, and the keys it takes in YAML.

use crate::key::PublicKey;
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A place in the config file, 1-based as editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// The whole mesh, as described by one `mesh.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshConfig {
    pub interface: InterfaceConfig,
    pub admin: AdminConfig,
    pub nodes: Vec<NodeConfig>,
    pub policy: Vec<PolicyRule>,
}

/// The keys of the top level.
pub(super) const TOP_KEYS: &[&str] = &["interface", "admin", "nodes", "policy"];

#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceConfig {
    /// TUN device name, 1..=15 bytes. Default `meshd0`.
    pub name: String,
    /// UDP port of the WireGuard endpoint. Default 51820.
    pub listen_port: u16,
    /// MTU of the TUN device. Default 1420.
    pub mtu: u16,
    /// Prometheus endpoint. Default `127.0.0.1:9586`.
    pub metrics: Metrics,
    /// Seconds between lookups of a DNS endpoint while its peer has no recent handshake.
    /// Default 30.
    pub dns_refresh: u32,
    /// Microseconds the data path keeps polling (yielding the CPU to anything else that wants
    /// it) after a round of packets before it sleeps, so that an answer arriving within that
    /// time costs no wake-up. 0 turns it off. Default 100.
    pub busy_poll: u32,
    /// The CPU the data path keeps to while traffic is light. Default `auto`.
    pub quiet_cpu: QuietCpu,
    /// Which metrics carry a `peer` label. Default `node`.
    pub metrics_detail: MetricsDetail,
}

impl Default for InterfaceConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_INTERFACE_NAME.to_string(),
            listen_port: DEFAULT_LISTEN_PORT,
            mtu: DEFAULT_MTU,
            metrics: Metrics::Listen(DEFAULT_METRICS),
            dns_refresh: DEFAULT_DNS_REFRESH,
            busy_poll: DEFAULT_BUSY_POLL,
            quiet_cpu: QuietCpu::Auto,
            metrics_detail: MetricsDetail::Node,
        }
    }
}

/// Default TUN device name.
pub(super) const DEFAULT_INTERFACE_NAME: &str = "meshd0";
/// Default UDP port of the WireGuard endpoint.
pub(super) const DEFAULT_LISTEN_PORT: u16 = 51820;
/// Default MTU of the TUN device: 1500 minus the WireGuard overhead over IPv6 (80 bytes).
pub(super) const DEFAULT_MTU: u16 = 1420;
/// Seconds between lookups of a DNS endpoint while its peer has no recent handshake.
pub(super) const DEFAULT_DNS_REFRESH: u32 = 30;
/// Microseconds the data path keeps polling after each round of packets before it sleeps.
pub(super) const DEFAULT_BUSY_POLL: u32 = 100;
/// The longest busy-poll accepted: past a millisecond it is spinning, not lingering.
pub(super) const MAX_BUSY_POLL: u32 = 1000;
/// The highest CPU number `quiet_cpu` takes (the kernel's affinity masks hold 1024 by default).
pub(super) const MAX_QUIET_CPU: u16 = 1023;
/// Default Prometheus endpoint.
pub(super) const DEFAULT_METRICS: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9586);
/// Smallest MTU accepted at all (the IPv4 minimum datagram size every host must accept).
pub(super) const MIN_MTU: u16 = 576;
/// Smallest MTU when IPv6 travels through the mesh: the least link MTU IPv6 allows.
pub(super) const MIN_MTU_IPV6: u16 = 1280;

/// The keys of `interface`, in the order messages list them.
pub(super) const INTERFACE_KEYS: &[&str] = &[
    "name",
    "listen_port",
    "mtu",
    "metrics",
    "dns_refresh",
    "busy_poll",
    "quiet_cpu",
    "metrics_detail",
];

/// How much of the metrics is per peer (`interface.metrics_detail`): a node of a large mesh
/// would otherwise export thousands of series per scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsDetail {
    /// Per peer only bytes each way, latest handshake and up; the rest summed over the node.
    Node,
    /// Every peer metric per peer.
    Peer,
}

/// Where the data path's thread runs while traffic is light: kept to one CPU it is woken on a
/// vCPU that is awake rather than on one the host must wake first (docs/performance.md);
/// while traffic is heavy it runs on every CPU meshd may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuietCpu {
    /// The first CPU meshd may run on.
    Auto,
    /// Never kept to one CPU.
    Off,
    /// This CPU.
    Cpu(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metrics {
    Off,
    Listen(SocketAddr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Who may reach tcp/22 from outside the mesh. Default empty (with a warning).
    pub ssh_from: Vec<IpNet>,
    /// Echo-request rate limit. Default 5/second.
    pub icmp_rate: Rate,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            ssh_from: Vec::new(),
            icmp_rate: DEFAULT_ICMP_RATE,
        }
    }
}

/// Default echo-request rate limit.
pub(super) const DEFAULT_ICMP_RATE: Rate = Rate {
    count: 5,
    per: RateUnit::Second,
};

/// The keys of `admin`.
pub(super) const ADMIN_KEYS: &[&str] = &["ssh_from", "icmp_rate"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: RateUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    Second,
    Minute,
    Hour,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub name: String,
    pub public_key: PublicKey,
    /// Overlay address with the mesh prefix length, e.g. 10.100.0.2/24.
    pub address: IpNet,
    pub endpoint: Option<Endpoint>,
    /// Subnets this node routes for (extra AllowedIPs), normalised (no host bits).
    pub routes: Vec<IpNet>,
    /// Persistent keepalive in seconds; `None` when absent or 0.
    pub keepalive: Option<u16>,
    /// Public ports of this node's host firewall (tcp/udp only).
    pub open: Vec<PortSpec>,
    /// Where the node's entry starts in the file.
    pub pos: Pos,
}

/// The keys of a node.
pub(super) const NODE_KEYS: &[&str] = &[
    "name",
    "public_key",
    "address",
    "endpoint",
    "routes",
    "keepalive",
    "open",
];

/// Where a peer can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Addr(SocketAddr),
    /// A DNS name, resolved by the daemon.
    Host {
        host: String,
        port: u16,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(a) => write!(f, "{a}"),
            Endpoint::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    pub from: Selector,
    pub to: Selector,
    /// Never empty.
    pub allow: Vec<Allow>,
    pub pos: Pos,
}

/// The keys of a policy rule.
pub(super) const RULE_KEYS: &[&str] = &["from", "to", "allow"];

/// A set of nodes in a policy rule. Names are checked to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    All,
    Nodes(Vec<String>),
}

impl Selector {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Selector::All => true,
            Selector::Nodes(names) => names.iter().any(|n| n == name),
        }
    }
}

/// What a policy rule lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allow {
    Port(PortSpec),
    Icmp,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// `tcp/443`, `udp/53`, `tcp/8000-8100`: 1 <= low <= high <= 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortSpec {
    pub protocol: Protocol,
    pub low: u16,
    pub high: u16,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}/{}", self.protocol, self.low)
        } else {
            write!(f, "{}/{}-{}", self.protocol, self.low, self.high)
        }
    }
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allow::Port(p) => write!(f, "{p}"),
            Allow::Icmp => f.write_str("icmp"),
            Allow::Any => f.write_str("any"),
        }
    }
}

impl MeshConfig {
    /// Problems that do not make the config invalid but that an operator must hear about.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.admin.ssh_from.is_empty() {
            out.push(
                "admin.ssh_from is empty: the host firewall will refuse SSH from outside the mesh"
                    .to_string(),
            );
        }
        out
    }

    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
