//! The timers thread: boringtun's timers (handshake retries, keepalives, expiry) every
//! [`TICK`], and the core's events as log lines.

use super::send::send_all;
use super::{DataPlane, BATCH};
use meshd_core::node::{Batch, Event, Node};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the timers run; boringtun's own timers have one-second granularity.
const TICK: Duration = Duration::from_millis(100);

/// The timers thread: every [`TICK`], the node's timers, what they send, and its events.
pub(crate) fn run(plane: Arc<DataPlane>) -> anyhow::Result<Infallible> {
    let mut out = Batch::new(BATCH, plane.stride);
    let mut seen_up: HashSet<usize> = HashSet::new();
    let mut scratch = Vec::new();
    loop {
        out.clear();
        let node = plane.node.load_full();
        node.update_timers(Instant::now(), &mut out);
        send_all(&plane.sockets, None, false, &out, &mut scratch);
        log_events(&node, &mut seen_up, node.take_events());
        plane.health.timers_ran();
        std::thread::sleep(TICK);
    }
}

/// One line per event, except roaming: a peer whose source flaps between addresses would
/// otherwise log a line per datagram, so its moves within one tick become one line. Peers
/// are named by slot; one a reload removed since is named `?`.
fn log_events(node: &Node, seen_up: &mut HashSet<usize>, events: Vec<Event>) {
    let name = |slot: usize| {
        node.peer_by_slot(slot)
            .map_or("?", |p| p.plan.name.as_str())
    };
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
