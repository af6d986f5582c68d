//! Inbound on the data path: data messages decrypted to the device; handshake messages set
//! aside for the handshake worker, uncosted.
//!
//! - A datagram is classified by its type and exact length (what boringtun's parser checks);
//!   anything else is `malformed` and costs nothing more.
//! - An initiation or response from an address past its handshake budgets is `rate_limited`
//!   here, before it is copied into the worker's queue; an address far past them is named in
//!   [`HandshakeWork::flooding`].
//! - A data message names its session by receiver index; one no session of ours has is
//!   `unknown_session`, and if it came from a peer's endpoint while we hold no session with
//!   that peer (we restarted, it did not), that peer is named for a new handshake, at most
//!   once a second.

use super::handshake::Gate;
use super::work::HandshakeWork;
use super::{has_session, Batch, Node, Peer};
use crate::counters::{DropReason, Side};
use crate::packet;
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::{Packet, Tunn, TunnResult};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How often a peer that sends on a session we lost is sent a new initiation.
const RESTART_INTERVAL: Duration = Duration::from_secs(1);

impl Node {
    /// Inbound: decrypts the data messages of `datagrams` received from the network. Inner
    /// packets whose source the sending peer may use go to `to_tun`; handshake messages go to
    /// `work`, for [`Node::handle_handshake`] off the data path. A datagram larger than a
    /// `to_tun` slot is dropped as `too_big`.
    pub fn handle_datagrams<'a>(
        &self,
        now: Instant,
        datagrams: impl IntoIterator<Item = (&'a [u8], SocketAddr)>,
        to_tun: &mut Batch,
        work: &mut HandshakeWork,
    ) {
        for (datagram, from) in datagrams {
            self.handle_datagram(now, datagram, from, to_tun, work);
        }
    }

    fn handle_datagram(
        &self,
        now: Instant,
        datagram: &[u8],
        from: SocketAddr,
        to_tun: &mut Batch,
        work: &mut HandshakeWork,
    ) {
        let count = |reason| self.drops.add(Side::Inbound, reason, 1);
        // A datagram that cannot fit the decryption slot is not one this node can take.
        if datagram.len() > to_tun.stride() {
            return count(DropReason::TooBig);
        }
        let data = match Tunn::parse_incoming_packet(datagram) {
            Ok(Packet::PacketData(data)) => data,
            Ok(Packet::PacketCookieReply(_)) => return work.messages.push(datagram, from),
            Ok(_) => {
                return match self.gate(datagram, from, now) {
                    Gate::Queue => work.messages.push(datagram, from),
                    Gate::Refuse => count(DropReason::RateLimited),
                    Gate::Flooding => {
                        count(DropReason::RateLimited);
                        if !work.flooding.contains(&from.ip()) {
                            work.flooding.push(from.ip());
                        }
                    }
                }
            }
            Err(_) => return count(DropReason::Malformed),
        };
        let Some(index) = self.index_of_slot((data.receiver_idx >> 8) as usize) else {
            count(DropReason::UnknownSession);
            return self.restart_from(now, from, None, work);
        };
        let peer = &self.peers[index];
        let mut state = peer.lock();
        let Some(tunn) = state.tunn.as_deref_mut() else {
            count(DropReason::UnknownSession);
            drop(state);
            return self.restart_from(now, from, Some(index), work);
        };
        let authenticated = match tunn.decapsulate(Some(from.ip()), datagram, to_tun.next_slot()) {
            TunnResult::Done => true, // a keepalive
            TunnResult::Err(WireGuardError::NoCurrentSession | WireGuardError::WrongIndex) => {
                count(DropReason::UnknownSession);
                drop(state);
                return self.restart_from(now, from, Some(index), work);
            }
            TunnResult::Err(e) => {
                count(super::reason_of(&e));
                false
            }
            TunnResult::WriteToTunnelV4(inner, src) => {
                let well_formed = packet::addresses(inner).is_some();
                let len = inner.len();
                self.accept_inner(peer, index, IpAddr::V4(src), len, well_formed, to_tun)
            }
            TunnResult::WriteToTunnelV6(inner, src) => {
                let well_formed = packet::addresses(inner).is_some();
                let len = inner.len();
                self.accept_inner(peer, index, IpAddr::V6(src), len, well_formed, to_tun)
            }
            // A data message never asks for an answer.
            TunnResult::WriteToNetwork(_) => false,
        };
        if !authenticated {
            return;
        }
        peer.counters.rx.add(0, datagram.len(), 0);
        self.roam(peer, &mut state, from);
    }

    /// A data message from `from` named no session of ours: if `from` is a peer's endpoint
    /// (configured, or that of the peer the index names) and we have no session with it, ask
    /// for a new handshake with it, once per [`RESTART_INTERVAL`].
    fn restart_from(
        &self,
        now: Instant,
        from: SocketAddr,
        named: Option<usize>,
        work: &mut HandshakeWork,
    ) {
        let index = match self.by_endpoint.get(&from) {
            Some(&i) => i,
            None => match named {
                Some(i) if self.peers[i].endpoint() == Some(from) => i,
                _ => return,
            },
        };
        let peer: &Peer = &self.peers[index];
        let mut state = peer.lock();
        if has_session(&state)
            || state
                .restart_asked
                .is_some_and(|t| now.saturating_duration_since(t) < RESTART_INTERVAL)
        {
            return;
        }
        state.restart_asked = Some(now);
        work.initiate.push(peer.slot);
    }

    /// Cryptokey routing, inbound: a decrypted packet goes to the device only if its source is
    /// routed to the very peer that sent it. Returns whether the datagram was authentic.
    fn accept_inner(
        &self,
        peer: &Peer,
        index: usize,
        src: IpAddr,
        len: usize,
        well_formed: bool,
        to_tun: &mut Batch,
    ) -> bool {
        if !well_formed {
            // Authentic, but its IP header claims less than a header's worth of bytes.
            self.drops.add(Side::Inbound, DropReason::Malformed, 1);
        } else if self.routes.lookup(src) == Some(&index) {
            to_tun.commit_packet(len);
            peer.counters.rx.add(len, 0, 1);
        } else {
            self.drops.add(Side::Inbound, DropReason::AllowedIps, 1);
        }
        // Authentic either way: the peer's key made it, so roaming still applies.
        true
    }
}
