//! WireGuard keys in the `wg genkey` / `wg pubkey` format: 32 bytes, standard base64 with padding.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use boringtun::x25519;
use std::fmt;

/// Why a string is not a WireGuard key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not valid base64")]
    Base64,
    #[error("decodes to {0} bytes, a WireGuard key is 32 bytes (44 base64 characters)")]
    Length(usize),
}

fn decode32(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD
        .decode(text.trim().as_bytes())
        .map_err(|_| KeyError::Base64)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length(bytes.len()))
}

/// A Curve25519 public key: a node's identity in the mesh.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode32(text).map(Self)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    pub fn to_x25519(&self) -> x25519::PublicKey {
        x25519::PublicKey::from(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// A Curve25519 private key. It has no `Display`, and its `Debug` is redacted, so that it
/// cannot end up in a log line or an error message by accident.
#[derive(Clone)]
pub struct PrivateKey(x25519::StaticSecret);

impl PrivateKey {
    /// A new random key, clamped as `wg genkey` clamps it.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        Self(x25519::StaticSecret::from(bytes))
    }

    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode32(text).map(|b| Self(x25519::StaticSecret::from(b)))
    }

    /// The base64 form, for `meshd genkey` only.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519::PublicKey::from(&self.0).to_bytes())
    }

    pub fn to_x25519(&self) -> x25519::StaticSecret {
        self.0.clone()
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_clamped_and_round_trip() {
        let k = PrivateKey::generate();
        let text = k.to_base64();
        assert_eq!(text.len(), 44);
        let raw = STANDARD.decode(&text).unwrap_or_default();
        assert_eq!(raw[0] & 7, 0);
        assert_eq!(raw[31] & 0xc0, 0x40);
        let back = PrivateKey::from_base64(&text).map(|k| k.public_key());
        assert_eq!(back, Ok(k.public_key()));
    }

    #[test]
    fn public_key_matches_rfc7748_vector() {
        // RFC 7748 section 6.1, Alice's key pair.
        let private: [u8; 32] = std::array::from_fn(|i| {
            u8::from_str_radix(
                &"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
                    [2 * i..2 * i + 2],
                16,
            )
            .unwrap_or(0)
        });
        let public = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
        let k = PrivateKey::from_base64(&STANDARD.encode(private));
        assert_eq!(
            k.map(|k| k.public_key().to_base64()),
            Ok(public.to_string())
        );
    }

    #[test]
    fn bad_keys_are_rejected_with_a_reason() {
        assert_eq!(PublicKey::from_base64("not base64!"), Err(KeyError::Base64));
        assert_eq!(PublicKey::from_base64("AAAA"), Err(KeyError::Length(3)));
        assert!(format!("{:?}", PrivateKey::generate()).contains("redacted"));
    }
}
