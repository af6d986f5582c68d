//! One peer of the node: its identity from the plan, its boringtun session and its counters.

use crate::config::Endpoint;
use crate::counters::PeerCounters;
use crate::plan::PeerPlan;
use boringtun::noise::Tunn;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Packets a peer without a session holds for the handshake worker to send (more are dropped
/// as `handshake_queue_full`).
pub(crate) const WAITING_PACKETS: usize = 8;

/// The mutable half of a peer, behind one lock: the session and where to send.
pub(crate) struct PeerSession {
    /// boringtun's session state (about 11 KB and two Diffie-Hellman computations): made when
    /// the peer first has a handshake or traffic (`Node::session`), not at start.
    pub(crate) tunn: Option<Box<Tunn>>,
    /// Packets for the peer from before its session was made, which the handshake worker
    /// sends once it has made it (`Node::start`).
    pub(crate) waiting: Vec<Vec<u8>>,
    /// When the data path last named the peer to the worker for its session.
    pub(crate) start_asked: Option<Instant>,
    pub(crate) endpoint: Option<SocketAddr>,
    /// When the handshake initiation in flight was sent, to time the handshake.
    pub(crate) initiation_sent: Option<Instant>,
    pub(crate) last_handshake_duration: Option<Duration>,
    /// When the latest handshake completed. Kept here rather than asked of the session:
    /// boringtun forgets it once the session expires (180 s), and "stale" must outlive that.
    pub(crate) last_handshake: Option<Instant>,
    /// When a handshake was last restarted after the session expired (keepalive peers only).
    pub(crate) last_expired_retry: Option<Instant>,
    /// When the data path last asked for a handshake because the peer sent on a session we
    /// no longer have.
    pub(crate) restart_asked: Option<Instant>,
    /// When an initiation was last re-sent at once with the cookie a reply brought.
    pub(crate) cookie_resent: Option<Instant>,
}

/// A peer: what the plan says about it plus its live state.
pub struct Peer {
    /// Its session slot: the upper 24 bits of the session indices this node hands out for
    /// it, not reused while the peer lives, so it also names the peer across reloads.
    pub slot: usize,
    /// What the plan says of it (name, key, address, AllowedIPs, configured endpoint, which
    /// may be a DNS name, keepalive): a reload keeps the peer only if this is unchanged.
    pub plan: PeerPlan,
    pub counters: PeerCounters,
    pub(crate) state: Mutex<PeerSession>,
}

/// A snapshot of a peer for status displays.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub endpoint: Option<SocketAddr>,
    /// Time since the latest completed handshake, `None` if there never was one.
    pub since_last_handshake: Option<Duration>,
    pub last_handshake_duration: Option<Duration>,
}

impl Peer {
    pub(crate) fn new(plan: &PeerPlan, slot: usize) -> Self {
        let endpoint = match &plan.endpoint {
            Some(Endpoint::Addr(a)) => Some(*a),
            _ => None,
        };
        Self {
            slot,
            plan: plan.clone(),
            counters: PeerCounters::default(),
            state: Mutex::new(PeerSession {
                tunn: None,
                waiting: Vec::new(),
                start_asked: None,
                endpoint,
                initiation_sent: None,
                last_handshake_duration: None,
                last_handshake: None,
                last_expired_retry: None,
                restart_asked: None,
                cookie_resent: None,
            }),
        }
    }

    /// The lock is never held across I/O, and a panic while holding it cannot leave the
    /// session half-updated in a way that matters more than a lost packet, so poisoning is
    /// ignored rather than propagated.
    pub(crate) fn lock(&self) -> MutexGuard<'_, PeerSession> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The peer as of `now` (the caller's clock, as everywhere in the core).
    pub fn status(&self, now: Instant) -> PeerStatus {
        let s = self.lock();
        PeerStatus {
            endpoint: s.endpoint,
            since_last_handshake: s.last_handshake.map(|t| now.saturating_duration_since(t)),
            last_handshake_duration: s.last_handshake_duration,
        }
    }

    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.lock().endpoint
    }

    /// Sets where the peer is reached, e.g. after resolving its DNS name.
    pub fn set_endpoint(&self, addr: SocketAddr) {
        self.lock().endpoint = Some(addr);
    }
}
