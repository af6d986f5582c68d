#!/usr/bin/env bash
# Builds meshd's fuzz targets (fuzz/) with libFuzzer on the stable toolchain and runs each for
# SECONDS (default 60) from its committed seeds, one after another; stops at the first crash.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # all targets when none is named
#
# New inputs go to target/fuzz/corpus/TARGET (the seeds in fuzz/seeds stay as committed);
# a crash is saved as target/fuzz/artifacts/TARGET/crash-* and reproduced with
#   target/fuzz/x86_64-unknown-linux-gnu/release/TARGET target/fuzz/artifacts/TARGET/crash-*
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secs=${1:-60}
shift || true
all=(node_datagrams node_messages tun_gso_split tun_gro_merge config control uapi http)
targets=("${@:-${all[@]}}")

# What cargo-fuzz passes to rustc, minus the sanitizer (stable has none): coverage counters
# and comparison tracing for libFuzzer, and the `fuzzing` cfg.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR=$PWD/target/fuzz
# An explicit target keeps those flags off build scripts and proc macros.
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --manifest-path fuzz/Cargo.toml --bins --quiet --target "$triple"
bin=$CARGO_TARGET_DIR/$triple/release

for t in "${targets[@]}"; do
    corpus=$CARGO_TARGET_DIR/corpus/$t
    artifacts=$CARGO_TARGET_DIR/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    log=$CARGO_TARGET_DIR/$t.log
    printf '==> %s: %ss\n' "$t" "$secs"
    if ! "$bin/$t" "$corpus" "fuzz/seeds/$t" \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz.sh: $t failed; its log is $log" >&2
        exit 1
    fi
    # The last status line (executions, coverage, features, corpus) and the run's totals.
    grep -E '^#[0-9]+' "$log" | tail -n 1
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | tr '\n' ' '
    echo
done
