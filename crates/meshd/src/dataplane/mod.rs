//! The data plane: plain threads, no async runtime, between the TUN device, the UDP sockets
//! and the sans-IO core ([`meshd_core::node::Node`]).
//!
//! - Data thread (`data_thread.rs`): one `epoll_wait` on the device and every socket; each
//!   ready descriptor gets one batch: TUN → encrypt → UDP (`outbound.rs`) or UDP → decrypt →
//!   TUN (`inbound.rs`).
//! - Timers thread (`timers.rs`): handshakes, keepalives, and core events as log lines.
//! - Handshake worker (`handshake_worker.rs`): every Diffie-Hellman computation.
//! - Each thread notes its progress for the systemd watchdog (`health.rs`).

mod activity;
pub(crate) mod data_thread;
pub(crate) mod device;
pub(crate) mod handshake_queue;
pub(crate) mod handshake_worker;
pub(crate) mod health;
mod inbound;
mod outbound;
mod peer_sockets;
mod placement;
mod poller;
mod send;
mod socket_filter;
pub(crate) mod timers;
pub(crate) mod udp;

use arc_swap::ArcSwap;
use handshake_queue::HandshakeQueue;
use health::Health;
use meshd_core::config::QuietCpu;
use meshd_core::node::Node;
use std::time::Duration;
use tun_rs::SyncDevice;
use udp::ListeningSockets;

/// Packets handed to the core at once.
pub(crate) const BATCH: usize = 128;

/// What the data plane's threads share with each other and with the daemon.
pub(crate) struct DataPlane {
    /// The node of the running plan; a reload swaps in the next one, and a batch runs on
    /// the one it loaded.
    pub(crate) node: ArcSwap<Node>,
    pub(crate) device: SyncDevice,
    /// The device carries virtio headers: read with `recv_multiple`, write with GRO.
    pub(crate) tun_offload: bool,
    pub(crate) sockets: ListeningSockets,
    pub(crate) stride: usize,
    /// Progress of the data path's threads, for the systemd watchdog.
    pub(crate) health: Health,
    /// How long the data thread busy-polls after a round before it sleeps.
    pub(crate) busy_poll: Duration,
    /// The data thread connects a socket to each endpoint it sends to (`peer_sockets.rs`).
    pub(crate) connect_peers: bool,
    /// The CPU the data thread keeps to while traffic is light (`placement.rs`).
    pub(crate) quiet_cpu: QuietCpu,
    /// Handshake messages on their way to the handshake worker (`handshake_worker.rs`).
    pub(crate) handshakes: HandshakeQueue,
}
