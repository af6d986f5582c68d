//! The handshake worker: a thread of its own that answers handshake messages, so that the
//! data thread never does Diffie-Hellman work.
//!
//! - The data thread hands over what `Node::handle_datagrams` set aside through a bounded
//!   queue ([`HandshakeQueue`](super::handshake_queue::HandshakeQueue)); a full queue drops the message and counts
//!   `handshake_queue_full`.
//! - The node is under load while the queue holds an eighth of its room or more, and for a
//!   second after: then every sender must show a cookie (`Node::handle_handshake`).
//! - What the worker answers goes out through the listening sockets, as the timers' does.
//! - A peer's session is made here, when it first has a handshake or traffic: the data thread
//!   names a peer whose packets wait for one (`Node::start`).
//! - As the node starts, the worker greets (initiates to) the peers `Node::greets` names, 32
//!   every 10 ms; after a reload, those the reload brought; and such a peer whose endpoint a
//!   DNS name gave when it changes.

use super::handshake_queue::{Job, QUEUE_ROOM, TAKE};
use super::send::send_all;
use super::socket_filter::MAX_BLOCKED;
use super::udp::ListeningSockets;
use super::{DataPlane, BATCH};
use meshd_core::node::{Batch, Node};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Under load from this many queued messages on.
const UNDER_LOAD_AT: usize = QUEUE_ROOM / 8;
/// How long the node stays under load after the queue was last that full.
const UNDER_LOAD_FOR: Duration = Duration::from_secs(1);
/// The worker wakes at least this often, to sweep the budgets and show it is alive.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// How long a flooding source's handshake messages are dropped by the socket filter (about:
/// the list is swept every [`IDLE_WAKE`]). Blocked again at once if it still floods.
const BLOCK_FOR: Duration = Duration::from_secs(1);
/// Peers greeted at most per round of the worker as the node starts, and how soon the next
/// round comes: a fleet's responses arrive spread out, not all at once.
const GREET_AT_ONCE: usize = 32;
const GREET_PACE: Duration = Duration::from_millis(10);
/// A source blocked again within this long is not logged again.
const BLOCK_LOG_QUIET: Duration = Duration::from_secs(60);
/// Sources logged as blocked within [`BLOCK_LOG_QUIET`], at most (many sources: a few lines).
const MAX_LOGGED: usize = 64;

/// The worker's thread: takes jobs, runs them on the current node, sends the answers.
pub(crate) fn run(plane: Arc<DataPlane>) -> anyhow::Result<Infallible> {
    let mut out = Batch::new(BATCH, plane.stride);
    let mut scratch = Vec::new();
    let mut jobs = Vec::with_capacity(TAKE);
    let mut loaded_until: Option<Instant> = None;
    let mut swept = Instant::now();
    let mut blocked = Blocked::default();
    let mut greeting = Greeting::default();
    loop {
        let wait = if greeting.busy() {
            GREET_PACE
        } else {
            IDLE_WAKE
        };
        let queued = plane.handshakes.take(&mut jobs, wait);
        let now = Instant::now();
        if queued >= UNDER_LOAD_AT {
            loaded_until = Some(now + UNDER_LOAD_FOR);
        }
        let under_load = loaded_until.is_some_and(|t| now < t);
        let node = plane.node.load_full();
        out.clear();
        if greeting.step(&node, now, &mut out) {
            send_all(&plane.sockets, None, false, &out, &mut scratch);
            out.clear();
        }
        for job in jobs.drain(..) {
            match job {
                Job::Message { from, len, bytes } => {
                    node.handle_handshake(now, &bytes[..len], from, under_load, &mut out)
                }
                Job::Initiate(slot) => node.initiate(now, slot, &mut out),
                Job::Start(slot) => node.start(now, slot, &mut out),
                Job::Block(ip) => blocked.add(ip, now, &plane.sockets),
            }
            if out.len() >= BATCH {
                send_all(&plane.sockets, None, false, &out, &mut scratch);
                out.clear();
            }
        }
        send_all(&plane.sockets, None, false, &out, &mut scratch);
        if now.saturating_duration_since(swept) >= IDLE_WAKE {
            node.sweep_budgets(now);
            blocked.expire(now, &plane.sockets);
            swept = now;
        }
        plane.health.handshakes_ran();
    }
}

/// Which peers are still to be greeted (`Node::greets`): all of them as the node starts, then
/// those each reload brings, which get slots above every earlier peer's.
struct Greeting {
    /// Peers in slots up to this one were greeted; `None`: no greeting has finished yet.
    greeted_up_to: Option<usize>,
    /// The node greeted last: another one means a reload.
    seen: Weak<Node>,
    /// Where the greeting of `seen` goes on (a position in its peers); `None` once done.
    next: Option<usize>,
}

impl Default for Greeting {
    /// Busy from the start: the first round greets at once, not after an idle wait.
    fn default() -> Self {
        Self {
            greeted_up_to: None,
            seen: Weak::new(),
            next: Some(0),
        }
    }
}

impl Greeting {
    fn busy(&self) -> bool {
        self.next.is_some()
    }

    /// Greets the next [`GREET_AT_ONCE`] peers of `node` at most; whether it sent anything.
    fn step(&mut self, node: &Arc<Node>, now: Instant, out: &mut Batch) -> bool {
        let current = Arc::downgrade(node);
        if !Weak::ptr_eq(&self.seen, &current) {
            self.seen = current;
            self.next = Some(0);
        }
        let Some(mut at) = self.next else {
            return false;
        };
        let peers = node.peers();
        let mut greeted = 0;
        while at < peers.len() && greeted < GREET_AT_ONCE {
            let peer = &peers[at];
            if node.greets(peer) && self.greeted_up_to.is_none_or(|s| peer.slot > s) {
                node.initiate(now, peer.slot, out);
                greeted += 1;
            }
            at += 1;
        }
        self.next = (at < peers.len()).then_some(at);
        if self.next.is_none() {
            self.greeted_up_to = node.highest_slot();
        }
        greeted > 0
    }
}

/// Sources whose handshake messages the listening sockets' filter drops in the kernel, for
/// a while: each flooded far past its budgets (`Node::gate`), and the data path's refusing
/// it one by one cost a read per message.
#[derive(Default)]
struct Blocked {
    until: Vec<(IpAddr, Instant)>,
    /// When each source was last logged as blocked.
    logged: Vec<(IpAddr, Instant)>,
}

impl Blocked {
    fn add(&mut self, ip: IpAddr, now: Instant, sockets: &ListeningSockets) {
        if self.until.iter().any(|&(b, _)| b == ip) {
            return;
        }
        if self.until.len() >= MAX_BLOCKED {
            // The one whose block ends first makes room.
            if let Some(i) = (0..self.until.len()).min_by_key(|&i| self.until[i].1) {
                self.until.swap_remove(i);
            }
        }
        self.until.push((ip, now + BLOCK_FOR));
        self.logged
            .retain(|&(_, t)| now.saturating_duration_since(t) < BLOCK_LOG_QUIET);
        if self.logged.len() < MAX_LOGGED && !self.logged.iter().any(|&(b, _)| b == ip) {
            self.logged.push((ip, now));
            tracing::warn!(
                "handshake messages from {ip} dropped in the kernel: far over its budget \
                 (blocked a second at a time while it lasts)"
            );
        }
        self.apply(sockets);
    }

    fn expire(&mut self, now: Instant, sockets: &ListeningSockets) {
        let before = self.until.len();
        self.until.retain(|&(_, t)| t > now);
        if self.until.len() != before {
            self.apply(sockets);
        }
    }

    fn apply(&self, sockets: &ListeningSockets) {
        let ips: Vec<IpAddr> = self.until.iter().map(|&(ip, _)| ip).collect();
        sockets.refuse(|r| r.sources = ips);
    }
}
