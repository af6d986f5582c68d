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

step "cargo build --release -p meshd"
cargo build --release -p meshd

step "cargo test --release --workspace"
if [[ $EUID -ne 0 ]]; then
    echo "note: not root, the end-to-end tests will skip${CI:+ (CI is set: they will fail instead)}"
fi
cargo test --release --workspace
