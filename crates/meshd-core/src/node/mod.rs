//! The WireGuard node as a state machine (sans-IO).
//!
//! Fed with batches of packets read from the TUN device and datagrams read from the network,
//! it fills caller-owned output batches: datagrams to send (with their destination) and packets
//! to write to the device. It never opens a socket or sleeps; the caller passes `now` and
//! drives the timers. Both directions may run at once on different threads: the routing table
//! is read-only and each peer's session sits behind its own short lock.
//!
//! Handshake messages never run on the data path: [`Node::handle_datagrams`] sets them aside
//! in a [`HandshakeWork`] for the caller's handshake worker, which feeds them to
//! [`Node::handle_handshake`] (`handshake.rs`); the data path only decrypts data messages
//! (`receive.rs`) and encrypts packets (here).
//!
//! A peer's session (boringtun's `Tunn`) is made on first use, by the worker: for an
//! initiation from the peer, an initiation to it, or packets for it that the data path holds
//! and names in [`HandshakeWork::start`] ([`Node::start`]). A peer that never talks costs no
//! session state.
//!
//! A reload builds a new node from the new plan with [`Node::reloaded`]: unchanged peers are
//! the very same objects (shared), sessions and counters included, so the caller can swap the
//! new node in while batches still run through the old one.
//!
//! (boringtun's `Tunn` reads the monotonic clock internally for its timers; everything meshd
//! itself times goes through the `now` the caller passes.)

mod batch;
mod budgets;
mod cookie;
mod handshake;
mod peer;
mod receive;
mod slots;
mod source_limit;
mod work;

pub use batch::{Batch, BatchIter, MIN_SLOT, NO_ADDR};
pub use cookie::{CookieChecker, Macs, COOKIE_REPLY_LEN};
pub use peer::{Peer, PeerStatus};
pub use source_limit::SourceLimiter;
pub use work::HandshakeWork;

use peer::{PeerSession, WAITING_PACKETS};
use slots::SlotIndex;

use crate::counters::{DropCounters, DropReason, PeerCounters, Side};
use crate::key::PrivateKey;
use crate::packet;
use crate::plan::NodePlan;
use crate::trie::PrefixTrie;
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// WireGuard's data message header (16) plus the AEAD tag (16).
pub const DATA_OVERHEAD: usize = 32;

/// Something the caller may want to log or react to. Peers are named by their slot
/// ([`Peer::slot`], stable across reloads; see [`Node::peer_by_slot`]), so that raising an
/// event on the data path allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A peer's endpoint moved to the source of its latest authenticated datagram (roaming).
    EndpointChanged {
        peer: usize,
        from: Option<SocketAddr>,
        to: SocketAddr,
    },
    /// A handshake completed and a new session is in use.
    HandshakeCompleted { peer: usize, initiator: bool },
}

/// The slot size a batch needs for a device MTU: the largest inner packet plus WireGuard's
/// overhead, and never less than a handshake message.
pub fn slot_size(mtu: u16) -> usize {
    (mtu as usize + DATA_OVERHEAD).max(MIN_SLOT)
}

/// The slot size for datagrams received from the network and for what they decrypt to: the
/// largest UDP payload, whatever MTU the sending peer uses. (Slots are only touched as far as
/// they are written, so the kernel backs no more memory than the traffic needs.)
pub const MAX_DATAGRAM: usize = 65536;

pub struct Node {
    static_private: x25519::StaticSecret,
    static_public: x25519::PublicKey,
    /// The front door for handshake messages: mac1, mac2 and cookie replies, before any
    /// Diffie-Hellman work is spent on a sender.
    cookies: Arc<CookieChecker>,
    /// What each source address may cost in handshakes (`handshake.rs`).
    budgets: Arc<Mutex<budgets::Budgets>>,
    /// Handed to every session in place of boringtun's own per-session limiter, which keeps a
    /// cookie secret of its own: never under load, it only re-checks mac1.
    session_limiter: Arc<RateLimiter>,
    /// In plan order (sorted by name).
    peers: Vec<Arc<Peer>>,
    by_key: HashMap<[u8; 32], usize>,
    /// Configured endpoint → index in `peers`: who sent a datagram for a session we lost.
    by_endpoint: HashMap<SocketAddr, usize>,
    /// Session slot (the upper 24 bits of our session indices) → index in `peers`.
    by_slot: SlotIndex,
    /// The slot the next new peer gets: slots are not reused (until they wrap around past
    /// 2^24), so a datagram for a removed peer's session never reaches a new peer's.
    next_slot: usize,
    /// Cryptokey routing: every AllowedIPs prefix → index of its peer.
    routes: PrefixTrie<usize>,
    /// Whether this node has persistent keepalive itself (it sits behind NAT): then it greets
    /// every peer with an endpoint, since none of them can reach it first.
    keeps_alive: bool,
    /// Shared with the nodes this one is reloaded into, like the rate limiter.
    drops: Arc<DropCounters>,
    /// What the peers reloads removed or replaced had counted (shared, like `drops`).
    retired: Arc<PeerCounters>,
    events: Arc<Mutex<Vec<Event>>>,
}

/// How soon a peer whose packets wait for a session is named to the worker again.
const START_AGAIN: Duration = Duration::from_secs(1);

/// The largest session slot boringtun's 24-bit index space has room for.
pub const MAX_SESSION_SLOT: usize = (1 << 24) - 1;

fn reason_of(e: &WireGuardError) -> DropReason {
    use WireGuardError as E;
    match e {
        E::InvalidMac | E::InvalidAeadTag => DropReason::Decrypt,
        E::InvalidCounter | E::DuplicateCounter => DropReason::Replay,
        E::WrongIndex | E::WrongKey | E::NoCurrentSession => DropReason::UnknownPeer,
        E::InvalidTai64nTimestamp | E::WrongTai64nTimestamp | E::UnexpectedPacket => {
            DropReason::Handshake
        }
        E::UnderLoad => DropReason::UnderLoad,
        E::DestinationBufferTooSmall
        | E::IncorrectPacketLength
        | E::WrongPacketType
        | E::InvalidPacket
        | E::LockFailed
        | E::ConnectionExpired => DropReason::Malformed,
    }
}

const MSG_HANDSHAKE_INIT: u8 = 1;
const MSG_DATA: u8 = 4;

/// Counts one datagram this node sends to `peer`, whatever produced it: a data packet (its
/// payload is the datagram less WireGuard's overhead; a keepalive carries none), a handshake
/// initiation (timed, for the handshake duration), or another control message.
fn note_sent(peer: &Peer, state: &mut PeerSession, now: Instant, datagram: &[u8]) {
    let len = datagram.len();
    match datagram.first() {
        Some(&MSG_DATA) => {
            let payload = len.saturating_sub(DATA_OVERHEAD);
            peer.counters.tx.add(payload, len, u64::from(payload > 0));
        }
        Some(&MSG_HANDSHAKE_INIT) => {
            state.initiation_sent = Some(now);
            peer.counters.handshake_initiations.fetch_add(1, RELAXED);
            peer.counters.tx.add(0, len, 0);
        }
        _ => peer.counters.tx.add(0, len, 0),
    }
}

impl Node {
    /// A node for `plan`: its peers have no sessions until they have traffic or a handshake.
    pub fn new(plan: &NodePlan, private_key: &PrivateKey) -> Self {
        let static_private = private_key.to_x25519();
        let static_public = x25519::PublicKey::from(&static_private);
        let empty = Self {
            cookies: Arc::new(CookieChecker::new(static_public.as_bytes(), Instant::now())),
            budgets: Arc::new(Mutex::new(budgets::Budgets::default())),
            session_limiter: Arc::new(RateLimiter::new(&static_public, u64::MAX)),
            static_private,
            static_public,
            peers: Vec::new(),
            by_key: HashMap::new(),
            by_endpoint: HashMap::new(),
            by_slot: SlotIndex::default(),
            next_slot: 0,
            routes: PrefixTrie::new(),
            keeps_alive: false,
            drops: Arc::new(DropCounters::default()),
            retired: Arc::new(PeerCounters::default()),
            events: Arc::new(Mutex::new(Vec::new())),
        };
        empty.reloaded(plan)
    }

    /// The node for a new `plan`, as a reload builds it: a peer whose key and plan are
    /// unchanged is shared with this node (its session, endpoint and counters carry on);
    /// every other peer of `plan` starts afresh in a new slot. Keys, the handshake rate
    /// limiter, drop counters and pending events are shared too. This node is not modified:
    /// batches in flight finish on it.
    pub fn reloaded(&self, plan: &NodePlan) -> Self {
        let mut next_slot = self.next_slot;
        let mut peers = Vec::with_capacity(plan.peers.len());
        let mut by_key = HashMap::new();
        let mut by_endpoint = HashMap::new();
        let mut by_slot = HashMap::new();
        let mut routes = PrefixTrie::new();
        for (index, p) in plan.peers.iter().enumerate() {
            let kept = self
                .by_key
                .get(&p.public_key.0)
                .map(|&i| &self.peers[i])
                .filter(|old| old.plan == *p);
            let peer = match kept {
                Some(old) => Arc::clone(old),
                None => {
                    // Past 2^24 new peers in one process, slots wrap around, skipping those
                    // still in use; a stray datagram for a long-gone session then fails to
                    // decrypt, as it would anyway.
                    let next = |slot: usize| {
                        if slot >= MAX_SESSION_SLOT {
                            0
                        } else {
                            slot + 1
                        }
                    };
                    while self.by_slot.contains(next_slot) || by_slot.contains_key(&next_slot) {
                        next_slot = next(next_slot);
                    }
                    let slot = next_slot;
                    next_slot = next(next_slot);
                    Arc::new(Peer::new(p, slot))
                }
            };
            for prefix in &p.allowed_ips {
                routes.insert(*prefix, index);
            }
            by_key.insert(p.public_key.0, index);
            if let Some(crate::config::Endpoint::Addr(addr)) = &p.endpoint {
                by_endpoint.insert(*addr, index);
            }
            by_slot.insert(peer.slot, index);
            peers.push(peer);
        }
        // Peers not carried over: their counts go to the node's total.
        for old in self.peers.iter().filter(|p| !by_slot.contains_key(&p.slot)) {
            self.retired.absorb(&old.counters);
        }
        Self {
            static_private: self.static_private.clone(),
            static_public: self.static_public,
            cookies: Arc::clone(&self.cookies),
            budgets: Arc::clone(&self.budgets),
            session_limiter: Arc::clone(&self.session_limiter),
            peers,
            by_key,
            by_endpoint,
            by_slot: SlotIndex::new(by_slot.into_iter().collect()),
            next_slot,
            routes,
            keeps_alive: plan.me.keepalive.is_some(),
            drops: Arc::clone(&self.drops),
            retired: Arc::clone(&self.retired),
            events: Arc::clone(&self.events),
        }
    }

    /// In plan order.
    pub fn peers(&self) -> &[Arc<Peer>] {
        &self.peers
    }

    /// The highest session slot in use (the upper 24 bits of our session indices); `None`
    /// with no peers. A datagram naming a slot past it is for no live session.
    pub fn highest_slot(&self) -> Option<usize> {
        self.by_slot.highest()
    }

    /// Whether this node starts a handshake with `peer` unasked (as it starts, when a reload
    /// brings the peer, when its DNS name moves): a peer with persistent keepalive, or every
    /// peer when this node has keepalive itself (behind NAT, nobody can reach it first). The
    /// kernel's WireGuard does the same.
    pub fn greets(&self, peer: &Peer) -> bool {
        self.keeps_alive || peer.plan.keepalive.is_some()
    }

    /// The peer in session slot `slot`, as events name it; `None` once it was reloaded away.
    pub fn peer_by_slot(&self, slot: usize) -> Option<&Arc<Peer>> {
        self.index_of_slot(slot).map(|i| &self.peers[i])
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// What the peers reloads removed or replaced had counted, added up.
    pub fn retired(&self) -> &PeerCounters {
        &self.retired
    }

    /// Takes the events that happened since the last call.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn event(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
    }

    /// Roaming: `peer`'s endpoint follows the source of its latest authenticated datagram.
    fn roam(&self, peer: &Peer, state: &mut PeerSession, from: SocketAddr) {
        if state.endpoint == Some(from) {
            return;
        }
        let old = state.endpoint.replace(from);
        peer.counters.endpoint_changes.fetch_add(1, RELAXED);
        self.event(Event::EndpointChanged {
            peer: peer.slot,
            from: old,
            to: from,
        });
    }

    /// `peer`'s session, made now if it has none yet: two Diffie-Hellman computations, so only
    /// the handshake worker's calls make one, never the data thread's.
    fn session<'s>(&self, peer: &Peer, state: &'s mut PeerSession) -> &'s mut Tunn {
        state.tunn.get_or_insert_with(|| {
            // boringtun shifts the slot left by 8 for its session indices.
            Box::new(Tunn::new(
                self.static_private.clone(),
                peer.plan.public_key.to_x25519(),
                None,
                peer.plan.keepalive,
                peer.slot as u32,
                Some(Arc::clone(&self.session_limiter)),
            ))
        })
    }

    /// The peer whose AllowedIPs contain `addr` (longest prefix).
    pub fn route(&self, addr: IpAddr) -> Option<&Peer> {
        self.routes
            .lookup(addr)
            .and_then(|i| self.peers.get(*i))
            .map(|p| &**p)
    }

    /// Outbound: encrypts `packets` read from the device into `out` (datagrams with their
    /// destination). Packets waiting for a handshake are queued in the session and sent
    /// once it completes; those for a peer without a session yet wait in the peer, which is
    /// named in `work.start` for the handshake worker ([`Node::start`]).
    pub fn handle_tun_packets<'a>(
        &self,
        now: Instant,
        packets: impl IntoIterator<Item = &'a [u8]>,
        out: &mut Batch,
        work: &mut HandshakeWork,
    ) {
        // Consecutive packets to one peer (a bulk transfer, a split GSO segment) share one
        // hold of its lock.
        let mut held: Option<(usize, MutexGuard<'_, PeerSession>)> = None;
        for packet in packets {
            let Some((_, dst)) = packet::addresses(packet) else {
                self.drops.add(Side::Outbound, DropReason::Malformed, 1);
                continue;
            };
            // Larger than the device MTU (someone raised it under us): it would not fit its
            // encrypted slot, now or when flushed from the handshake queue.
            if packet.len() + DATA_OVERHEAD > out.stride() {
                self.drops.add(Side::Outbound, DropReason::TooBig, 1);
                continue;
            }
            let Some(&index) = self.routes.lookup(dst) else {
                self.drops.add(Side::Outbound, DropReason::NoRoute, 1);
                continue;
            };
            let peer = &self.peers[index];
            if held.as_ref().is_none_or(|(i, _)| *i != index) {
                drop(held.take()); // release the previous peer before taking the next
                held = Some((index, peer.lock()));
            }
            let Some((_, state)) = held.as_mut() else {
                continue;
            };
            let Some(endpoint) = state.endpoint else {
                self.drops.add(Side::Outbound, DropReason::NoEndpoint, 1);
                continue;
            };
            if state.tunn.is_none() {
                self.hold(peer, state, packet, now, work);
                continue;
            }
            // Packets held before the session existed go first (the worker's Start may not
            // have run).
            self.seal_waiting(peer, state, now, endpoint, out);
            self.seal(peer, state, now, packet, endpoint, out);
        }
    }

    /// Encrypts `packet` on `peer`'s session (which it has) into `out`.
    fn seal(
        &self,
        peer: &Peer,
        state: &mut PeerSession,
        now: Instant,
        packet: &[u8],
        endpoint: SocketAddr,
        out: &mut Batch,
    ) {
        let Some(tunn) = state.tunn.as_deref_mut() else {
            return;
        };
        match tunn.encapsulate(packet, out.next_slot()) {
            // Either the packet, or (no session yet: it was queued) a handshake initiation.
            TunnResult::WriteToNetwork(datagram) => {
                let len = datagram.len();
                note_sent(peer, state, now, datagram);
                out.commit(len, endpoint);
            }
            TunnResult::Done => {} // queued behind a handshake already in flight
            TunnResult::Err(e) => self.drops.add(Side::Outbound, reason_of(&e), 1),
            TunnResult::WriteToTunnelV4(..) | TunnResult::WriteToTunnelV6(..) => {}
        }
    }

    /// A packet for a peer without a session: it waits in the peer (up to
    /// [`WAITING_PACKETS`]; past that it is dropped as `handshake_queue_full`) and the peer is
    /// named for the worker, which makes the session: once, and again a second later if the
    /// session is still not there (the worker's queue may have had no room).
    fn hold(
        &self,
        peer: &Peer,
        state: &mut PeerSession,
        packet: &[u8],
        now: Instant,
        work: &mut HandshakeWork,
    ) {
        if state.waiting.len() < WAITING_PACKETS {
            state.waiting.push(packet.to_vec());
        } else {
            self.drops.add(Side::Outbound, DropReason::QueueFull, 1);
        }
        if state
            .start_asked
            .is_some_and(|t| now.saturating_duration_since(t) < START_AGAIN)
        {
            return;
        }
        state.start_asked = Some(now);
        work.start.push(peer.slot);
    }

    /// Seals the packets `peer` holds from before its session existed, in order.
    fn seal_waiting(
        &self,
        peer: &Peer,
        state: &mut PeerSession,
        now: Instant,
        endpoint: SocketAddr,
        out: &mut Batch,
    ) {
        if state.waiting.is_empty() {
            return;
        }
        for packet in std::mem::take(&mut state.waiting) {
            self.seal(peer, state, now, &packet, endpoint, out);
        }
    }

    /// Makes the session of the peer in `slot` and sends what waited for it (the first packet
    /// brings out a handshake initiation, the rest queue behind it): the worker's half of
    /// [`Node::handle_tun_packets`]. Nothing to do once an earlier call sent them.
    pub fn start(&self, now: Instant, slot: usize, out: &mut Batch) {
        let Some(peer) = self.peer_by_slot(slot) else {
            return;
        };
        let mut state = peer.lock();
        let Some(endpoint) = state.endpoint else {
            let n = std::mem::take(&mut state.waiting).len() as u64;
            return self.drops.add(Side::Outbound, DropReason::NoEndpoint, n);
        };
        if state.waiting.is_empty() {
            return;
        }
        self.session(peer, &mut state);
        self.seal_waiting(peer, &mut state, now, endpoint, out);
    }

    /// The index in `peers` of the peer in session slot `slot`. Until a reload adds peers, a
    /// peer's slot is its index: that costs no lookup beyond the peer, needed next anyway.
    fn index_of_slot(&self, slot: usize) -> Option<usize> {
        if self.peers.get(slot).is_some_and(|p| p.slot == slot) {
            return Some(slot);
        }
        self.by_slot.get(slot)
    }

    /// Timers: handshake retries, rekeys, keepalives. Call every 100–250 ms.
    pub fn update_timers(&self, now: Instant, out: &mut Batch) {
        for peer in &self.peers {
            let mut state = peer.lock();
            let endpoint = state.endpoint;
            if state.tunn.is_none() {
                continue; // no session, nothing to time
            }
            if let Some(endpoint) = endpoint {
                // Held packets whose Start the worker never ran, the session made otherwise.
                self.seal_waiting(peer, &mut state, now, endpoint, out);
            }
            let Some(tunn) = state.tunn.as_deref_mut() else {
                continue;
            };
            let len = match tunn.update_timers(out.next_slot()) {
                TunnResult::WriteToNetwork(datagram) => datagram.len(),
                TunnResult::Err(WireGuardError::ConnectionExpired) => {
                    retry_expired(peer, &mut state, now, out)
                }
                _ => 0,
            };
            if len == 0 {
                continue;
            }
            let Some(endpoint) = endpoint else {
                self.drops.add(Side::Outbound, DropReason::NoEndpoint, 1);
                continue;
            };
            note_sent(peer, &mut state, now, &out.next_slot()[..len]);
            out.commit(len, endpoint);
        }
    }
}

/// boringtun gives up on a handshake after 90 s without an answer and then reports the
/// session expired on every tick, skipping its keepalive timer. A peer with persistent
/// keepalive is one this node must keep reachable (typically: this node is behind NAT), so,
/// like the kernel and wireguard-go, start a new handshake once per keepalive interval.
/// Returns the length of the initiation written into the next slot of `out`, or 0.
fn retry_expired(peer: &Peer, state: &mut PeerSession, now: Instant, out: &mut Batch) -> usize {
    let Some(interval) = peer.plan.keepalive.map(|k| Duration::from_secs(k.into())) else {
        return 0;
    };
    if state.endpoint.is_none()
        || state
            .last_expired_retry
            .is_some_and(|t| now.saturating_duration_since(t) < interval)
    {
        return 0;
    }
    state.last_expired_retry = Some(now);
    let Some(tunn) = state.tunn.as_deref_mut() else {
        return 0;
    };
    match tunn.format_handshake_initiation(out.next_slot(), false) {
        TunnResult::WriteToNetwork(datagram) => datagram.len(),
        _ => 0,
    }
}

/// Whether the peer has a session that completed a handshake (boringtun forgets it once the
/// session expires).
fn has_session(state: &PeerSession) -> bool {
    state
        .tunn
        .as_ref()
        .is_some_and(|t| t.time_since_last_handshake().is_some())
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

#[cfg(test)]
mod tests;
