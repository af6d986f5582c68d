//! Handshake messages, off the data path: what the caller's handshake worker runs.
//!
//! Before any Diffie-Hellman work, an initiation or response must pass the front door:
//! - mac1 must be right (the sender knows our public key), else `decrypt`;
//! - with a valid mac2 (the sender proved its address with our cookie) it takes a token from
//!   its address's `proven` budget, else `rate_limited`;
//! - without one it is answered with a cookie reply (`under_load`) when the caller says the
//!   node is under load or its address's `unproven` budget is spent; cookie replies have a
//!   budget of their own per address, past which the message is only dropped;
//! - an address with every budget spent is dropped (`rate_limited`) before any hashing;
//! - the data path queues at most `QUEUED_PER_SECOND` messages of one address (more only
//!   with a valid mac2), and none with every budget spent; an address it refuses more than
//!   `REFUSED_PER_SECOND` times a second is named for blocking: see [`Node::gate`]. The
//!   budgets and their rates are in `budgets.rs`.
//!
//! One checker and one set of budgets for every peer: boringtun's sessions get a limiter that
//! is never under load, so a peer answering our cookie is never asked for another one.

use super::budgets::has_mac2;
use super::{has_session, note_sent, Batch, Node, RELAXED};
use crate::counters::{DropReason, Side};
use crate::node::{Event, Macs};
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often an initiation is re-sent at once when a cookie reply arrives for it.
const COOKIE_RESEND_INTERVAL: Duration = Duration::from_secs(1);

/// The data path's verdict on a handshake message ([`Node::gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Queue,
    Refuse,
    /// Refuse, and the address sends far more than its budgets: block it in the kernel.
    Flooding,
}

/// The front door's verdict on a handshake message.
enum Admit {
    /// Worth the Diffie-Hellman work.
    Yes,
    /// Answer with a cookie reply.
    Cookie,
    No(DropReason),
}

impl Node {
    /// Runs one handshake message (initiation, response or cookie reply) received from
    /// `from`; what it answers (a response, a cookie reply, a keepalive and the packets that
    /// waited for the session, a re-sent initiation) goes to `out`, whose slots must be at
    /// least [`super::slot_size`] of the device MTU. `under_load`: the caller's handshake
    /// queue is filling, so a valid cookie is demanded of every sender.
    pub fn handle_handshake(
        &self,
        now: Instant,
        message: &[u8],
        from: SocketAddr,
        under_load: bool,
        out: &mut Batch,
    ) {
        let count = |reason| self.drops.add(Side::Inbound, reason, 1);
        let packet = match Tunn::parse_incoming_packet(message) {
            Ok(Packet::PacketData(_)) | Err(_) => return count(DropReason::Malformed),
            Ok(p) => p,
        };
        if matches!(
            packet,
            Packet::HandshakeInit(_) | Packet::HandshakeResponse(_)
        ) {
            match self.admit(message, from, now, under_load) {
                Admit::Yes => {}
                Admit::Cookie => {
                    let len = self.cookies.reply(message, from, now, out.next_slot());
                    if len > 0 {
                        out.commit(len, from);
                    }
                    return count(DropReason::UnderLoad);
                }
                Admit::No(reason) => return count(reason),
            }
        }
        let index = match &packet {
            Packet::HandshakeInit(init) => {
                // Initiations name their sender only inside the encrypted static key.
                match parse_handshake_anon(&self.static_private, &self.static_public, init) {
                    Ok(half) => self.by_key.get(&half.peer_static_public).copied(),
                    Err(_) => return count(DropReason::Decrypt),
                }
            }
            Packet::HandshakeResponse(p) => self.index_of_slot((p.receiver_idx >> 8) as usize),
            Packet::PacketCookieReply(p) => self.index_of_slot((p.receiver_idx >> 8) as usize),
            Packet::PacketData(_) => None,
        };
        let Some(index) = index else {
            return count(DropReason::UnknownPeer);
        };
        let is_init = matches!(packet, Packet::HandshakeInit(_));
        let is_cookie = matches!(packet, Packet::PacketCookieReply(_));
        let peer = &self.peers[index];
        let mut state = peer.lock();
        // Only an initiation makes a session (a response or cookie reply is for one we made),
        // and only one that proves the peer's key keeps it: anyone can claim a key.
        let made_now = state.tunn.is_none();
        let tunn = match state.tunn.as_deref_mut() {
            Some(tunn) => tunn,
            None if is_init => self.session(peer, &mut state),
            None => return count(DropReason::UnknownPeer),
        };
        let result = tunn.decapsulate(Some(from.ip()), message, out.next_slot());
        if made_now && !matches!(result, TunnResult::WriteToNetwork(_)) {
            state.tunn = None;
        }
        match result {
            TunnResult::Done if is_cookie => {
                // The cookie is ours to use: send the initiation it was for again, with mac2,
                // rather than waiting out the retransmit timer.
                if state
                    .cookie_resent
                    .is_some_and(|t| now.saturating_duration_since(t) < COOKIE_RESEND_INTERVAL)
                {
                    return;
                }
                let Some(endpoint) = state.endpoint else {
                    return;
                };
                state.cookie_resent = Some(now);
                let Some(tunn) = state.tunn.as_deref_mut() else {
                    return;
                };
                if let TunnResult::WriteToNetwork(init) =
                    tunn.format_handshake_initiation(out.next_slot(), true)
                {
                    let len = init.len();
                    note_sent(peer, &mut state, now, init);
                    out.commit(len, endpoint);
                }
                return;
            }
            TunnResult::Err(e) => {
                let reason = match e {
                    WireGuardError::WrongIndex | WireGuardError::WrongKey => {
                        DropReason::UnknownPeer
                    }
                    _ => DropReason::Handshake,
                };
                return count(reason);
            }
            TunnResult::WriteToNetwork(reply) => {
                // A response to an initiation, or a keepalive after our handshake completed;
                // then the packets that waited for the session.
                let len = reply.len();
                note_sent(peer, &mut state, now, reply);
                out.commit(len, from);
                while let Some(TunnResult::WriteToNetwork(queued)) = state
                    .tunn
                    .as_deref_mut()
                    .map(|t| t.decapsulate(None, &[], out.next_slot()))
                {
                    let len = queued.len();
                    note_sent(peer, &mut state, now, queued);
                    out.commit(len, from);
                }
            }
            // A cookie reply changes nothing else, and a handshake message never decrypts
            // to a packet.
            TunnResult::Done
            | TunnResult::WriteToTunnelV4(..)
            | TunnResult::WriteToTunnelV6(..) => return,
        }
        peer.counters.rx.add(0, message.len(), 0);
        state.last_handshake = Some(now);
        if is_init {
            peer.counters.handshakes_as_responder.fetch_add(1, RELAXED);
        } else {
            peer.counters.handshakes_as_initiator.fetch_add(1, RELAXED);
            // Timed from our initiation it answers; a second answer (initiations crossed, or
            // one sent anew) has none left and keeps the last duration.
            if let Some(sent) = state.initiation_sent.take() {
                let d = now - sent;
                state.last_handshake_duration = Some(d);
                peer.counters.handshake_duration.observe(d);
            }
        }
        self.event(Event::HandshakeCompleted {
            peer: peer.slot,
            initiator: !is_init,
        });
        self.roam(peer, &mut state, from);
    }

    /// Sends the peer in `slot` an initiation, unless it has a session: the node starts, the
    /// peer's endpoint changed, or the peer sent on a session we lost. One in flight is sent
    /// anew (it may have been lost); the callers ask at most once a second per peer.
    pub fn initiate(&self, now: Instant, slot: usize, out: &mut Batch) {
        let Some(peer) = self.peer_by_slot(slot) else {
            return;
        };
        let mut state = peer.lock();
        let Some(endpoint) = state.endpoint else {
            return;
        };
        if has_session(&state) {
            return;
        }
        if let TunnResult::WriteToNetwork(init) = self
            .session(peer, &mut state)
            .format_handshake_initiation(out.next_slot(), true)
        {
            let len = init.len();
            note_sent(peer, &mut state, now, init);
            out.commit(len, endpoint);
        }
    }

    /// Forgets the budgets of addresses that have been quiet; call about once a second.
    pub fn sweep_budgets(&self, now: Instant) {
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        b.proven.sweep(now);
        b.unproven.sweep(now);
        b.cookies.sweep(now);
        b.queued.sweep(now);
        b.refused.sweep(now);
    }

    /// What the data path does with handshake `message` from `from`: queue it for the worker
    /// - unless its address's budgets are spent (a few lookups, no hashing; as if not under
    ///   load, the worker's call);
    /// - or it is past the address's `queued` budget (more than the worker could take from
    ///   it), unless its mac2 checks with a `proven` token left: a forger of the address has no
    ///   cookie, so it cannot keep the real sender out this way.
    ///
    /// An address refused more than `REFUSED_PER_SECOND` times a second is [`Gate::Flooding`].
    pub(crate) fn gate(&self, message: &[u8], from: SocketAddr, now: Instant) -> Gate {
        let ip = from.ip();
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let queue = if b.spent(message, ip, now, false) {
            false
        } else if b.queued.allow(ip, now) {
            true
        } else if has_mac2(message) && b.proven.has_token(ip, now) {
            drop(b);
            if self.cookies.check(message, from, now) == Macs::WithCookie {
                return Gate::Queue;
            }
            b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
            false
        } else {
            false
        };
        match (queue, b.refused.allow(ip, now)) {
            (true, _) => Gate::Queue,
            (false, true) => Gate::Refuse,
            (false, false) => Gate::Flooding,
        }
    }

    fn admit(&self, message: &[u8], from: SocketAddr, now: Instant, under_load: bool) -> Admit {
        let ip = from.ip();
        let mut b = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        if b.spent(message, ip, now, under_load) {
            return Admit::No(DropReason::RateLimited);
        }
        let macs = self.cookies.check(message, from, now);
        match macs {
            Macs::Invalid => Admit::No(DropReason::Decrypt),
            Macs::WithCookie if b.proven.allow(ip, now) => Admit::Yes,
            Macs::WithCookie => Admit::No(DropReason::RateLimited),
            Macs::Mac1Only if !under_load && b.unproven.allow(ip, now) => Admit::Yes,
            Macs::Mac1Only if b.cookies.allow(ip, now) => Admit::Cookie,
            Macs::Mac1Only => Admit::No(DropReason::RateLimited),
        }
    }
}
