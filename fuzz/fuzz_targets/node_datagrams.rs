//! Datagrams from the network into a node with an established session (b, whose peer is a):
//! the data path, then the handshake worker for what it set aside.
//!
//! Records (see `records`) pick what b receives:
//! - tag 0..=3: the bytes as a raw datagram, from a's endpoint, a stranger or an IPv6 stranger;
//! - tag 4: the bytes as a packet a reads from its device and encrypts to b (real ciphertext,
//!   fuzzed inner packet);
//! - tag 5: a real data message from a with the bytes XORed over its front (type, receiver
//!   index, counter, ciphertext).
//!
//! Holds: no panic; everything b writes to its device came from an address a may use.
//! b's answers go back to a (and a's to b), so expired sessions are made again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshd_core::node::{Batch, MAX_DATAGRAM};
use meshd_fuzz::{addr, deliver, from_a, ipv4, records, source, Pair, A, B};
use std::sync::{Mutex, OnceLock};

static PAIR: OnceLock<Mutex<Pair>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let pair = PAIR
        .get_or_init(|| Mutex::new(Pair::connected()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for (tag, body) in records(data).take(32) {
        let (datagrams, from) = match tag % 6 {
            t @ 0..=3 => {
                let mut b = Batch::new(1, MAX_DATAGRAM);
                b.push(body, source(t));
                (b, source(t))
            }
            4 => (pair.a_sends(body), addr(A)),
            _ => {
                let inner = ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"payload for b");
                let sent = pair.a_sends(&inner);
                let mut b = Batch::new(sent.len().max(1), MAX_DATAGRAM);
                for (d, _) in sent.iter() {
                    let mut d = d.to_vec();
                    for (x, y) in d.iter_mut().zip(body) {
                        *x ^= y;
                    }
                    b.push(&d, addr(A));
                }
                (b, addr(A))
            }
        };
        // What b answers reaches a, and a's answer b: sessions expire and are re-made as in
        // a long run of the daemon.
        let (mut to_tun, mut replies) = deliver(&pair.b, &datagrams, from);
        for _ in 0..2 {
            for (packet, _) in to_tun.iter() {
                assert!(
                    from_a(packet),
                    "b let through a packet a may not send: {packet:02x?}"
                );
            }
            if replies.is_empty() {
                break;
            }
            let (_, from_a_again) = deliver(&pair.a, &replies, addr(B));
            (to_tun, replies) = deliver(&pair.b, &from_a_again, addr(A));
        }
    }
});
