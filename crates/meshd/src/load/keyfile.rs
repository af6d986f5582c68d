//! Reading the private key file: where it is looked for, and the permission rule.

use super::bounded;
use anyhow::{bail, Context, Result};
use meshd_core::key::PrivateKey;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const DEFAULT_KEY: &str = "/etc/meshd/private.key";
/// The largest key file read: a key is 44 characters, the rest is room for whitespace.
pub(crate) const MAX_KEY_BYTES: u64 = 4096;

/// `--private-key`, else `$CREDENTIALS_DIRECTORY/private.key` (systemd LoadCredential), else
/// `/etc/meshd/private.key`.
pub(crate) fn key_path(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        return PathBuf::from(dir).join("private.key");
    }
    PathBuf::from(DEFAULT_KEY)
}

/// Reads a private key, refusing a file that group or others can read. The error never
/// contains the file's content.
pub(crate) fn read_private_key(path: &Path) -> Result<PrivateKey> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read private key file {shown}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        bail!(
            "private key file {shown} can be read by group or others (mode {mode:04o}); \
             run `chmod 600 {shown}` and start again"
        );
    }
    let text = bounded::read_file(path, MAX_KEY_BYTES)
        .with_context(|| format!("cannot read private key file {shown}"))?;
    PrivateKey::from_base64(&text).map_err(|e| {
        anyhow::anyhow!("private key file {shown} does not hold a WireGuard private key: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file in a directory of its own, removed (with the directory) on drop.
    struct Temp {
        dir: PathBuf,
        file: PathBuf,
    }

    impl std::ops::Deref for Temp {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.file
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn temp(name: &str, content: &str, mode: u32) -> Temp {
        let dir = std::env::temp_dir().join(format!("meshd-keyfile-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("k");
        let _ = std::fs::write(&file, content);
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode));
        Temp { dir, file }
    }

    #[test]
    fn refuses_group_or_world_readable_and_says_how_to_fix() {
        let key = PrivateKey::generate().to_base64();
        for mode in [0o644, 0o640, 0o604] {
            let p = temp(&format!("m{mode:o}"), &key, mode);
            let err = read_private_key(&p).map(|_| ()).map_err(|e| e.to_string());
            let err = err.err().unwrap_or_default();
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains(&key), "the key must never be printed");
        }
        let ok = temp("ok", &format!("{key}\n"), 0o600);
        assert!(read_private_key(&ok).is_ok());
    }

    #[test]
    fn garbage_key_is_a_clear_error_without_the_content() {
        let p = temp("junk", "s3cret-not-a-key", 0o600);
        let err = read_private_key(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("does not hold a WireGuard private key"),
            "{err}"
        );
        assert!(!err.contains("s3cret"));
        let missing = read_private_key(Path::new("/nonexistent/meshd.key"));
        assert!(missing.is_err());
    }
}
