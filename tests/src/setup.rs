//! What every test starts from: unique names, the root check, the meshd binary, temporary
//! directories, waiting for a condition.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A token unique to this process and call: `<pid>x<n>`. The `x` keeps `pid 12, n 34` apart from
/// `pid 123, n 4`, so parallel test binaries never pick the same name.
pub fn unique_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}x{}", std::process::id(), n)
}

/// True when the e2e tests can run. Without root: prints `skipping: needs root` and returns false,
/// unless the environment variable `CI` is set, where a skipped e2e suite would hide breakage, so
/// it panics instead.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("the e2e tests need root (network namespaces) and CI is set: refusing to skip");
    }
    eprintln!("skipping: needs root");
    false
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The meshd binary: `$MESHD_BIN`, else `<target>/release/meshd`, else `<target>/debug/meshd`
/// (`<target>` is `$CARGO_TARGET_DIR`, then `<workspace>/target`). Panics with a clear message
/// if there is none.
pub fn meshd_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MESHD_BIN") {
            let p = PathBuf::from(p);
            if !p.is_file() {
                panic!("MESHD_BIN={} is not a file", p.display());
            }
            eprintln!("using meshd binary {} (from MESHD_BIN)", p.display());
            return p;
        }
        let mut targets = Vec::new();
        if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
            targets.push(PathBuf::from(t));
        }
        targets.push(workspace_root().join("target"));
        let mut looked = Vec::new();
        for target in &targets {
            for profile in ["release", "debug"] {
                let p = target.join(profile).join("meshd");
                if p.is_file() {
                    eprintln!("using meshd binary {}", p.display());
                    return p;
                }
                looked.push(p.display().to_string());
            }
        }
        panic!(
            "no meshd binary: set MESHD_BIN, or build one with `cargo build --release -p meshd` \
             (looked for {})",
            looked.join(", ")
        )
    })
    .clone()
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes. Returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A private temporary directory (mode 0700), removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("mdt-{}", unique_id()));
        if let Err(e) = fs::DirBuilder::new().mode(0o700).create(&path) {
            panic!("cannot create {}: {e}", path.display());
        }
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MDT_KEEP").is_some() {
            eprintln!("MDT_KEEP set: keeping {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_differ() {
        assert_ne!(unique_id(), unique_id());
    }
}
