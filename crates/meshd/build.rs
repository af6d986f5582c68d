//! Links the data path's hot functions first in .text, side by side, in the order of
//! hot-symbols.txt (see hot-functions.txt and scripts/hot-symbols.sh): a packet after a pause
//! then touches a few pages of code instead of dozens (docs/performance.md). Only where the
//! linker is LLD, which rustc uses by default for x86_64 Linux since 1.90; elsewhere, or with
//! MESHD_NO_SYMBOL_ORDER set, the order is the linker's own.

use std::process::Command;

fn main() {
    // Read at run time, not with env!: a build script compiled in one checkout is reused, its
    // fingerprint blind to the path, by another checkout sharing the target directory.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = std::path::Path::new(&manifest_dir).join("hot-symbols.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=MESHD_NO_SYMBOL_ORDER");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu"
        || std::env::var_os("MESHD_NO_SYMBOL_ORDER").is_some()
        || !rustc_links_with_lld()
    {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering",
        order.display()
    );
}

/// rustc 1.90 or later, and no linker of someone else's choosing.
fn rustc_links_with_lld() -> bool {
    // Cargo passes a build script the flags it will give rustc, RUSTFLAGS and config alike.
    if std::env::var_os("CARGO_ENCODED_RUSTFLAGS")
        .is_some_and(|f| f.to_string_lossy().contains("link"))
        || std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
    {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&out.stdout);
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    matches!(minor, Some(m) if m >= 90)
}
