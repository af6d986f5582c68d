//! The data path: thin async loops that move batches between the kernel and the core.
//!
//! Each direction runs on its own task with its own reused batches: TUN → encrypt → UDP, and
//! per socket UDP → decrypt → TUN. A loop waits for one packet, then drains whatever else is
//! ready (up to a batch) without waiting, hands the batch to the core, and writes the results.
//! The timer task drives handshakes and keepalives and turns core events into log lines.

use super::udp::Sockets;
use meshd_core::node::{Batch, Event, Node, MAX_DATAGRAM};
use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tun_rs::AsyncDevice;

/// Packets handled per wake-up.
pub(crate) const BATCH: usize = 64;
/// How often the timers run; boringtun's own timers have one-second granularity.
const TICK: Duration = Duration::from_millis(100);

pub(crate) struct Shared {
    pub(crate) node: Node,
    pub(crate) device: AsyncDevice,
    pub(crate) sockets: Sockets,
    pub(crate) stride: usize,
}

/// Sends every datagram of `out` from the socket of its address family. A datagram the kernel
/// refuses (no route to the endpoint, say) is lost like any UDP datagram; the session's timers
/// retry handshakes.
async fn send_all(sockets: &Sockets, out: &Batch) {
    for (datagram, to) in out.iter() {
        let Some(socket) = sockets.for_addr(&to) else {
            tracing::debug!(%to, "no socket for this address family");
            continue;
        };
        let sent = match socket.try_send_to(datagram, to) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => socket.send_to(datagram, to).await,
            other => other,
        };
        if let Err(e) = sent {
            tracing::debug!(%to, "send failed: {e}");
        }
    }
}

pub(crate) async fn tun_to_net(shared: Arc<Shared>) -> anyhow::Result<()> {
    let mut packets = Batch::new(BATCH, shared.stride);
    let mut out = Batch::new(BATCH, shared.stride);
    loop {
        packets.clear();
        out.clear();
        let n = shared.device.recv(packets.next_slot()).await?;
        packets.commit_packet(n);
        while !packets.is_full() {
            match shared.device.try_recv(packets.next_slot()) {
                Ok(n) => packets.commit_packet(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        shared
            .node
            .handle_tun_packets(Instant::now(), &packets, &mut out);
        send_all(&shared.sockets, &out).await;
    }
}

/// Errors of one datagram (an ICMP error reported on the socket), not of the socket.
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::Interrupted
    )
}

pub(crate) async fn net_to_tun(shared: Arc<Shared>, v6: bool) -> anyhow::Result<()> {
    let socket: &UdpSocket = match (v6, &shared.sockets.v6) {
        (false, _) => &shared.sockets.v4,
        (true, Some(s)) => s,
        (true, None) => return Ok(()),
    };
    // Datagrams from a peer may be larger than our own MTU allows: receive whatever UDP can
    // carry rather than truncate it into a decryption failure.
    let mut datagrams = Batch::new(BATCH, MAX_DATAGRAM);
    let mut to_tun = Batch::new(BATCH, MAX_DATAGRAM);
    let mut to_net = Batch::new(BATCH, shared.stride);
    loop {
        datagrams.clear();
        to_tun.clear();
        to_net.clear();
        match socket.recv_from(datagrams.next_slot()).await {
            Ok((n, from)) => datagrams.commit(n, from),
            Err(e) if transient(&e) => {
                tracing::debug!("udp receive: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        while !datagrams.is_full() {
            match socket.try_recv_from(datagrams.next_slot()) {
                Ok((n, from)) => datagrams.commit(n, from),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if transient(&e) => tracing::debug!("udp receive: {e}"),
                Err(e) => return Err(e.into()),
            }
        }
        shared
            .node
            .handle_datagrams(Instant::now(), &datagrams, &mut to_tun, &mut to_net);
        for (packet, _) in to_tun.iter() {
            if let Err(e) = shared.device.send(packet).await {
                tracing::debug!("tun write: {e}");
            }
        }
        send_all(&shared.sockets, &to_net).await;
    }
}

pub(crate) async fn timers(shared: Arc<Shared>) -> anyhow::Result<()> {
    let mut out = Batch::new(BATCH, shared.stride);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_up: HashSet<usize> = HashSet::new();
    loop {
        tick.tick().await;
        out.clear();
        shared.node.update_timers(Instant::now(), &mut out);
        send_all(&shared.sockets, &out).await;
        log_events(&shared.node, &mut seen_up, shared.node.take_events());
    }
}

/// One line per event, except roaming: a peer whose source flaps between addresses would
/// otherwise log a line per datagram, so its moves within one tick become one line.
fn log_events(node: &Node, seen_up: &mut HashSet<usize>, events: Vec<Event>) {
    let name = |i: usize| node.peers().get(i).map_or("?", |p| p.name.as_str());
    let mut moves: HashMap<usize, (Option<SocketAddr>, SocketAddr, usize)> = HashMap::new();
    for event in events {
        match event {
            Event::EndpointChanged { peer, from, to } => {
                let entry = moves.entry(peer).or_insert((from, to, 0));
                entry.1 = to;
                entry.2 += 1;
            }
            Event::HandshakeCompleted { peer, initiator } => {
                let role = if initiator { "initiator" } else { "responder" };
                if seen_up.insert(peer) {
                    tracing::info!("peer up peer={} role={role}", name(peer));
                } else {
                    tracing::debug!("handshake peer={} role={role}", name(peer));
                }
            }
        }
    }
    for (peer, (from, to, n)) in moves {
        let times = if n > 1 {
            format!(" changes={n}")
        } else {
            String::new()
        };
        match from {
            Some(from) => {
                tracing::info!(
                    "endpoint changed peer={} from={from} to={to}{times}",
                    name(peer)
                )
            }
            None => tracing::info!("endpoint learned peer={} to={to}", name(peer)),
        }
    }
}
