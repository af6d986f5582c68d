//! `meshd genkey` and `meshd pubkey`.

use crate::load::bounded;
use crate::load::keyfile::MAX_KEY_BYTES;
use anyhow::{anyhow, Context, Result};
use meshd_core::key::PrivateKey;
use std::os::unix::fs::PermissionsExt;

pub(crate) fn genkey() -> Result<()> {
    // Like `wg genkey`: warn when the key is about to land in a file others can read.
    if let Ok(meta) = std::fs::metadata("/proc/self/fd/1") {
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            eprintln!("Warning: writing to world accessible file.\nConsider setting the umask to 077 and trying again.");
        }
    }
    println!("{}", PrivateKey::generate().to_base64());
    Ok(())
}

pub(crate) fn pubkey() -> Result<()> {
    let text = bounded::read_at_most(std::io::stdin().lock(), MAX_KEY_BYTES)
        .context("standard input is not a WireGuard private key")?;
    let key = PrivateKey::from_base64(&text)
        .map_err(|e| anyhow!("standard input is not a WireGuard private key: {e}"))?;
    println!("{}", key.public_key());
    Ok(())
}
