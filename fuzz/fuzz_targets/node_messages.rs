//! Handshake messages into the handshake worker of a node that may or may not have a session
//! (initiations, responses, cookie replies; valid mac1 or not; under load or not).
//!
//! The first byte chooses:
//! - bit 0: the worker is under load (a valid cookie is demanded);
//! - bits 1-2: the source (a's endpoint, a stranger, an IPv6 stranger);
//! - bit 3: mac1 is set right for b's key, so the message gets past the cookie check;
//! - bits 4-5: the message: the rest as is; a real initiation from a with the rest XORed over
//!   it; or one from b to a, which a receives instead.
//!
//! Holds: no panic; a's session with b keeps working whatever b was fed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshd_core::node::{Batch, HandshakeWork, MAX_DATAGRAM};
use meshd_e2e::attack::noise::Responder;
use meshd_fuzz::{addr, deliver, from_a, ipv4, source, work_off, Pair, A, B};
use std::sync::{Mutex, OnceLock};

struct State {
    pair: Pair,
    /// A genuine initiation a sent b, and one b sent a (neither answered).
    a_init: Vec<u8>,
    b_init: Vec<u8>,
    mac_b: Responder,
    mac_a: Responder,
}

static STATE: OnceLock<Mutex<State>> = OnceLock::new();

fn state() -> State {
    let pair = Pair::connected();
    let fresh = Pair::new();
    let a_init = fresh
        .a_sends(&ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"x"))
        .iter()
        .map(|(d, _)| d.to_vec())
        .next()
        .unwrap_or_default();
    let mut to_b = Batch::new(1, MAX_DATAGRAM);
    to_b.push(
        &ipv4([10, 100, 0, 2], [10, 100, 0, 1], b"y"),
        meshd_core::node::NO_ADDR,
    );
    let mut out = meshd_fuzz::batch();
    meshd_fuzz::send(&fresh.b, &to_b, &mut out);
    let b_init = out
        .iter()
        .map(|(d, _)| d.to_vec())
        .next()
        .unwrap_or_default();
    let public = |k: &meshd_core::key::PrivateKey| *k.public_key().to_x25519().as_bytes();
    State {
        mac_b: Responder::new(public(&pair.key_b)),
        mac_a: Responder::new(public(&pair.key_a)),
        pair,
        a_init,
        b_init,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let st = STATE
        .get_or_init(|| Mutex::new(state()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let under_load = head & 1 != 0;
    let from = source(head >> 1);
    let xored = |base: &[u8]| {
        let mut m = base.to_vec();
        for (x, y) in m.iter_mut().zip(rest) {
            *x ^= y;
        }
        m
    };
    let (mut message, to_a) = match (head >> 4) % 3 {
        0 => (rest.to_vec(), false),
        1 => (xored(&st.a_init), false),
        _ => (xored(&st.b_init), true),
    };
    if head & 8 != 0 && message.len() >= 32 {
        let mac1 = if to_a { &st.mac_a } else { &st.mac_b }.mac1(&message);
        let at = message.len() - 32;
        message[at..at + 16].copy_from_slice(&mac1);
    }
    let (node, from) = if to_a {
        (&st.pair.a, if from == addr(A) { addr(B) } else { from })
    } else {
        (&st.pair.b, from)
    };
    let mut work = HandshakeWork::default();
    work.messages.push(&message, from);
    let _ = work_off(node, &work, under_load);

    // a's session with b still carries traffic: no message above may break it.
    if head & 0x40 != 0 {
        let hello = ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"still there");
        let sent = st.pair.a_sends(&hello);
        let (tun, replies) = deliver(&st.pair.b, &sent, addr(A));
        let (_, _) = deliver(&st.pair.a, &replies, addr(B));
        assert!(tun.iter().all(|(p, _)| from_a(p)));
    }
});
