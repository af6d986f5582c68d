//! WireGuard's front door for handshake messages: mac1, mac2 and cookie replies.
//!
//! - mac1 proves the sender knows this node's public key; checked on every handshake message.
//! - mac2 proves the sender receives at its source address: it is keyed with a cookie this
//!   node gave that address (in a cookie reply) within the last two minutes.
//! - Whether a valid mac2 is demanded is the caller's decision (the handshake queue's fill and
//!   the sender's budget), not a counter kept here: one checker, one secret, for every peer.

use blake2::digest::{FixedOutput, KeyInit, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const LABEL_MAC1: &[u8] = b"mac1----";
const LABEL_COOKIE: &[u8] = b"cookie--";
/// How long a cookie stays valid: the secret it is derived from changes this often.
const COOKIE_LIFETIME: Duration = Duration::from_secs(120);
/// A cookie reply: type, receiver index, 24-byte nonce, 16-byte cookie and its 16-byte tag.
pub const COOKIE_REPLY_LEN: usize = 64;
const MSG_COOKIE_REPLY: u8 = 3;

/// What the macs of a handshake message prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Macs {
    /// mac1 is wrong: not meant for this node (or corrupted).
    Invalid,
    /// mac1 is right; mac2 is missing or not keyed with this sender's current cookie.
    Mac1Only,
    /// Both are right: the sender receives at its address.
    WithCookie,
}

pub struct CookieChecker {
    mac1_key: [u8; 32],
    /// Encrypts cookie replies: HASH("cookie--" || our public key).
    reply_key: chacha20poly1305::Key,
    /// Random at start; with the two-minute epoch it keys each address's cookie.
    secret: [u8; 32],
    nonce_key: [u8; 32],
    nonce_counter: AtomicU64,
    start: Instant,
}

fn keyed_mac16(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // Every key here is 16 or 32 bytes, which BLAKE2s takes.
    let mut mac = <Blake2sMac<blake2::digest::consts::U16> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("BLAKE2s takes keys of up to 32 bytes"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize_fixed().into()
}

fn hash(label: &[u8], key: &[u8; 32]) -> [u8; 32] {
    Blake2s256::new()
        .chain_update(label)
        .chain_update(key)
        .finalize()
        .into()
}

/// Equality in time independent of where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl CookieChecker {
    /// The checker of the node whose static public key is `public`.
    pub fn new(public: &[u8; 32], now: Instant) -> Self {
        let mut secret = [0u8; 32];
        let mut nonce_key = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        OsRng.fill_bytes(&mut nonce_key);
        Self {
            mac1_key: hash(LABEL_MAC1, public),
            reply_key: hash(LABEL_COOKIE, public).into(),
            secret,
            nonce_key,
            nonce_counter: AtomicU64::new(0),
            start: now,
        }
    }

    /// The cookie `from` gets now: MAC(secret, epoch || address || port).
    fn cookie(&self, from: SocketAddr, now: Instant) -> [u8; 16] {
        let epoch = now.saturating_duration_since(self.start).as_secs() / COOKIE_LIFETIME.as_secs();
        let ip = match from.ip() {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        keyed_mac16(
            &self.secret,
            &[&epoch.to_le_bytes(), &ip, &from.port().to_le_bytes()],
        )
    }

    /// Checks the two macs that end a handshake message (initiation or response).
    pub fn check(&self, message: &[u8], from: SocketAddr, now: Instant) -> Macs {
        let Some(body_len) = message.len().checked_sub(32) else {
            return Macs::Invalid;
        };
        let (body, macs) = message.split_at(body_len);
        let (mac1, mac2) = macs.split_at(16);
        if !ct_eq(&keyed_mac16(&self.mac1_key, &[body]), mac1) {
            return Macs::Invalid;
        }
        let cookie = self.cookie(from, now);
        if ct_eq(&keyed_mac16(&cookie, &[body, mac1]), mac2) {
            Macs::WithCookie
        } else {
            Macs::Mac1Only
        }
    }

    /// Writes into `out` the cookie reply for a handshake `message` from `from` (whose macs
    /// were checked) and returns its length.
    pub fn reply(&self, message: &[u8], from: SocketAddr, now: Instant, out: &mut [u8]) -> usize {
        if message.len() < 40 || out.len() < COOKIE_REPLY_LEN {
            return 0;
        }
        let sender = &message[4..8];
        let mac1 = &message[message.len() - 32..message.len() - 16];
        let counter = self.nonce_counter.fetch_add(1, Relaxed);
        let nonce = {
            let mut mac = <Blake2sMac<blake2::digest::consts::U24> as KeyInit>::new_from_slice(
                &self.nonce_key,
            )
            .unwrap_or_else(|_| unreachable!("a 32-byte key"));
            mac.update(&counter.to_le_bytes());
            let n: [u8; 24] = mac.finalize_fixed().into();
            n
        };
        let out = &mut out[..COOKIE_REPLY_LEN];
        out[..4].copy_from_slice(&[MSG_COOKIE_REPLY, 0, 0, 0]);
        out[4..8].copy_from_slice(sender);
        out[8..32].copy_from_slice(&nonce);
        out[32..48].copy_from_slice(&self.cookie(from, now));
        let cipher = <XChaCha20Poly1305 as chacha20poly1305::KeyInit>::new(&self.reply_key);
        let (cookie, tag) = out[32..].split_at_mut(16);
        match cipher.encrypt_in_place_detached(XNonce::from_slice(&nonce), mac1, cookie) {
            Ok(t) => {
                tag.copy_from_slice(&t);
                COOKIE_REPLY_LEN
            }
            Err(_) => 0,
        }
    }
}

/// For the node's tests: the mac1 an attacker who knows `public` computes over `body`.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) fn mac1(public: &[u8; 32], body: &[u8]) -> [u8; 16] {
        super::keyed_mac16(&super::hash(super::LABEL_MAC1, public), &[body])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boringtun::noise::rate_limiter::RateLimiter;
    use boringtun::noise::{Tunn, TunnResult};
    use boringtun::x25519::{PublicKey, StaticSecret};

    fn keys() -> (StaticSecret, PublicKey) {
        let s = StaticSecret::random_from_rng(OsRng);
        let p = PublicKey::from(&s);
        (s, p)
    }

    /// A real initiation from boringtun to `responder`, with `cookie` answered if given.
    fn initiation(initiator: &mut Tunn) -> Vec<u8> {
        let mut buf = [0u8; 148];
        match initiator.format_handshake_initiation(&mut buf, true) {
            TunnResult::WriteToNetwork(m) => m.to_vec(),
            _ => panic!("no initiation"),
        }
    }

    #[test]
    fn mac1_of_a_real_initiation_checks_and_a_flipped_bit_does_not() {
        let (_, responder) = keys();
        let (i_secret, _) = keys();
        let mut initiator = Tunn::new(i_secret, responder, None, None, 1, None);
        let now = Instant::now();
        let checker = CookieChecker::new(responder.as_bytes(), now);
        let from: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let mut m = initiation(&mut initiator);
        assert_eq!(checker.check(&m, from, now), Macs::Mac1Only);
        m[20] ^= 1;
        assert_eq!(checker.check(&m, from, now), Macs::Invalid);
        assert_eq!(checker.check(&m[..20], from, now), Macs::Invalid);
    }

    #[test]
    fn a_cookie_reply_is_taken_by_boringtun_whose_next_initiation_then_carries_mac2() {
        let (_, responder) = keys();
        let (i_secret, _) = keys();
        let mut initiator = Tunn::new(i_secret, responder, None, None, 1, None);
        let now = Instant::now();
        let checker = CookieChecker::new(responder.as_bytes(), now);
        let from: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let first = initiation(&mut initiator);
        let mut reply = [0u8; 64];
        assert_eq!(checker.reply(&first, from, now, &mut reply), 64);
        let mut scratch = [0u8; 256];
        let taken = initiator.decapsulate(None, &reply, &mut scratch);
        assert!(matches!(taken, TunnResult::Done), "{taken:?}");
        let second = initiation(&mut initiator);
        assert_eq!(checker.check(&second, from, now), Macs::WithCookie);
        // The cookie is the address's (and port's): another sender's mac2 does not check.
        let other: SocketAddr = "192.0.2.1:51821".parse().unwrap();
        assert_eq!(checker.check(&second, other, now), Macs::Mac1Only);
        // It expires with the secret's epoch.
        let later = now + COOKIE_LIFETIME * 2;
        assert_eq!(checker.check(&second, from, later), Macs::Mac1Only);
    }

    #[test]
    fn a_reply_is_not_accepted_for_another_message() {
        let (_, responder) = keys();
        let (i_secret, _) = keys();
        let mut initiator = Tunn::new(i_secret, responder, None, None, 1, None);
        let now = Instant::now();
        let checker = CookieChecker::new(responder.as_bytes(), now);
        let from: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let first = initiation(&mut initiator);
        let mut reply = [0u8; 64];
        checker.reply(&first, from, now, &mut reply);
        // A newer initiation replaced the one the reply answers (its mac1 is the AAD).
        let _second = initiation(&mut initiator);
        let mut scratch = [0u8; 256];
        let taken = initiator.decapsulate(None, &reply, &mut scratch);
        assert!(matches!(taken, TunnResult::Err(_)), "{taken:?}");
        // And boringtun's own limiter agrees on mac1: same construction.
        let limiter = RateLimiter::new(&responder, 1000);
        let third = initiation(&mut initiator);
        assert!(limiter.verify_packet(None, &third, &mut scratch).is_ok());
    }
}
