#!/usr/bin/env bash
# The test command: formatting, lints, the release build, then every unit and end-to-end test.
# The end-to-end tests build network namespaces and need root; under CI (CI set) they never
# skip: without root they fail.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "the fuzz targets' crate: fmt and clippy (fuzz/Cargo.toml, a workspace of its own)"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --manifest-path fuzz/Cargo.toml --target-dir target --bins -- -D warnings

step "systemd-analyze security --offline=true systemd/meshd.service (exposure 2.0 or lower)"
echo "exposure $(bash scripts/exposure.sh systemd/meshd.service)"

step "the alert rules and their unit tests (promtool check rules, promtool test rules)"
promtool check rules config/alerts.yml
promtool test rules config/alerts.test.yml

step "cargo build --release -p meshd"
cargo build --release -p meshd

step "the .deb builds and holds what it should (scripts/check-deb.sh)"
bash scripts/check-deb.sh

step "the .deb under a real systemd, in a booted container (scripts/systemd-smoke.sh)"
if [[ $EUID -eq 0 ]]; then
    bash scripts/systemd-smoke.sh
elif [[ -n ${CI:-} ]]; then
    echo "systemd-smoke.sh needs root, and CI is set" >&2
    exit 1
else
    echo "note: not root, skipping systemd-smoke.sh"
fi

step "cargo test --profile release-tests --workspace"
if [[ $EUID -ne 0 ]]; then
    echo "note: not root, the end-to-end tests will skip${CI:+ (CI is set: they will fail instead)}"
fi
cargo test --profile release-tests --workspace

step "every fuzz target, 20 s each from its seeds (scripts/fuzz.sh 20)"
bash scripts/fuzz.sh 20
