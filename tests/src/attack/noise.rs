//! The Noise IK pieces of a WireGuard handshake initiation that boringtun keeps private.
//!
//! - An initiation as the whitepaper builds it: ephemeral, encrypted static, encrypted
//!   timestamp, then mac1 and mac2.
//! - Cookie replies: opened with XChaCha20Poly1305 under HASH("cookie--" || responder key),
//!   the mac1 they answer as associated data.

use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use boringtun::x25519::{PublicKey, StaticSecret};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use hmac::{Mac, SimpleHmac};
use rand_core::{OsRng, RngCore};
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a handshake initiation.
pub const INIT_LEN: usize = 148;
/// Where mac1 starts: mac1 covers everything before it.
pub const MAC1_OFF: usize = 116;
/// Where mac2 starts: mac2 covers everything before it (mac1 included).
pub const MAC2_OFF: usize = 132;
/// Length of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 64;

pub const MSG_INIT: u8 = 1;
pub const MSG_RESPONSE: u8 = 2;
pub const MSG_COOKIE_REPLY: u8 = 3;
pub const MSG_DATA: u8 = 4;

const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
const LABEL_MAC1: &[u8] = b"mac1----";
const LABEL_COOKIE: &[u8] = b"cookie--";

/// Why a cookie reply could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CookieError {
    #[error("not a cookie reply (type {0}, {1} bytes)")]
    NotCookieReply(u8, usize),
    #[error("cookie reply does not decrypt (wrong responder key or wrong mac1)")]
    Tag,
}

/// HASH(a || b): BLAKE2s-256.
pub fn hash(a: &[u8], b: &[u8]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    Digest::update(&mut h, a);
    Digest::update(&mut h, b);
    h.finalize().into()
}

/// HMAC-BLAKE2s over the concatenation of `parts`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <SimpleHmac<Blake2s256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    for p in parts {
        Mac::update(&mut m, p);
    }
    m.finalize().into_bytes().into()
}

/// Keyed BLAKE2s-128 over the concatenation of `parts`: mac1, mac2 and the cookie itself.
pub fn mac16(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut m = <Blake2sMac<U16> as blake2::digest::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("keys here are 16 or 32 bytes"));
    for p in parts {
        Update::update(&mut m, p);
    }
    m.finalize_fixed().into()
}

/// KDF2 of the whitepaper: the new chaining key and a key.
fn kdf2(chaining_key: &[u8; 32], input: &[u8]) -> ([u8; 32], [u8; 32]) {
    let temp = hmac(chaining_key, &[input]);
    let ck = hmac(&temp, &[&[0x01]]);
    let key = hmac(&temp, &[&ck, &[0x02]]);
    (ck, key)
}

/// AEAD(key, counter 0, plaintext, aad) into `out` (plaintext length + 16).
fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8], out: &mut [u8]) {
    let cipher = ChaCha20Poly1305::new(key.into());
    let (body, tag_out) = out.split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(&[0u8; 12].into(), aad, body)
        .unwrap_or_else(|_| unreachable!("short messages cannot overflow the AEAD"));
    tag_out.copy_from_slice(&tag);
}

/// Now as a TAI64N label, the timestamp an initiation carries.
pub fn tai64n_now() -> [u8; 12] {
    const TAI64_BASE: u64 = (1u64 << 62) + 37;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&(now.as_secs() + TAI64_BASE).to_be_bytes());
    out[8..].copy_from_slice(&now.subsec_nanos().to_be_bytes());
    out
}

/// What anyone knows of the node under attack: its public key and the keys derived from it.
#[derive(Debug, Clone)]
pub struct Responder {
    public: [u8; 32],
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
}

impl Responder {
    pub fn new(public: [u8; 32]) -> Responder {
        Responder {
            public,
            mac1_key: hash(LABEL_MAC1, &public),
            cookie_key: hash(LABEL_COOKIE, &public),
        }
    }

    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// mac1 of a handshake message: keyed over everything before the mac1 field.
    pub fn mac1(&self, msg: &[u8]) -> [u8; 16] {
        mac16(&self.mac1_key, &[&msg[..msg.len() - 32]])
    }

    /// The cookie inside `reply`, which answered a message whose mac1 was `mac1`.
    pub fn open_cookie(&self, reply: &[u8], mac1: &[u8; 16]) -> Result<[u8; 16], CookieError> {
        if reply.len() != COOKIE_REPLY_LEN || reply[0] != MSG_COOKIE_REPLY {
            return Err(CookieError::NotCookieReply(
                reply.first().copied().unwrap_or(0),
                reply.len(),
            ));
        }
        let nonce = &reply[8..32];
        let mut cookie = [0u8; 16];
        cookie.copy_from_slice(&reply[32..48]);
        let tag = &reply[48..64];
        XChaCha20Poly1305::new(&self.cookie_key.into())
            .decrypt_in_place_detached(nonce.into(), mac1, &mut cookie, tag.into())
            .map_err(|_| CookieError::Tag)?;
        Ok(cookie)
    }
}

/// Who an initiation says it comes from.
pub enum Initiator {
    /// A static key the attacker holds: the initiation is genuine, timestamp and all.
    Own(StaticSecret),
    /// Someone else's public key: the timestamp is junk, since encrypting it needs that key's
    /// private half.
    Claimed(PublicKey),
}

impl Initiator {
    /// A fresh static key of the attacker's own.
    pub fn random() -> Initiator {
        Initiator::Own(StaticSecret::random_from_rng(OsRng))
    }

    pub fn public(&self) -> PublicKey {
        match self {
            Initiator::Own(s) => PublicKey::from(s),
            Initiator::Claimed(p) => *p,
        }
    }
}

/// A handshake initiation to `responder` from `initiator` with a random ephemeral key: sender
/// index 0, mac1 and mac2 zero (see [`set_macs`]).
///
/// - The DH work (two X25519 for an own key, one for a claimed key) is all here; sending one
///   costs only the macs.
pub fn initiation(responder: &Responder, initiator: &Initiator) -> [u8; INIT_LEN] {
    let mut msg = [0u8; INIT_LEN];
    msg[0] = MSG_INIT;
    let responder_public = PublicKey::from(responder.public);
    let ck = hash(CONSTRUCTION, &[]);
    let h = hash(&hash(&ck, IDENTIFIER), &responder.public);

    let ephemeral = StaticSecret::random_from_rng(OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    msg[8..40].copy_from_slice(ephemeral_public.as_bytes());
    let h = hash(&h, ephemeral_public.as_bytes());
    let ck = hmac(&hmac(&ck, &[ephemeral_public.as_bytes()]), &[&[0x01]]);

    let es = ephemeral.diffie_hellman(&responder_public);
    let (ck, key) = kdf2(&ck, es.as_bytes());
    seal(&key, initiator.public().as_bytes(), &h, &mut msg[40..88]);
    let h = hash(&h, &msg[40..88]);

    match initiator {
        Initiator::Own(s) => {
            let ss = s.diffie_hellman(&responder_public);
            let (_, key) = kdf2(&ck, ss.as_bytes());
            seal(&key, &tai64n_now(), &h, &mut msg[88..116]);
        }
        Initiator::Claimed(_) => OsRng.fill_bytes(&mut msg[88..116]),
    }
    msg
}

/// Sets the sender index, mac1 and mac2 (zero without a cookie) of an initiation; returns the
/// mac1, which a cookie reply to it is bound to.
pub fn set_macs(
    msg: &mut [u8; INIT_LEN],
    sender: u32,
    responder: &Responder,
    cookie: Option<&[u8; 16]>,
) -> [u8; 16] {
    msg[4..8].copy_from_slice(&sender.to_le_bytes());
    let mac1 = mac16(&responder.mac1_key, &[&msg[..MAC1_OFF]]);
    msg[MAC1_OFF..MAC2_OFF].copy_from_slice(&mac1);
    let mac2 = match cookie {
        Some(c) => mac16(c, &[&msg[..MAC2_OFF]]),
        None => [0u8; 16],
    };
    msg[MAC2_OFF..].copy_from_slice(&mac2);
    mac1
}
