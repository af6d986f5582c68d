#!/usr/bin/env bash
# Writes crates/meshd/hot-symbols.txt, the link order of the data path's hot functions
# (crates/meshd/hot-functions.txt names them), from the symbols of the release build; with
# --check, only checks that the file is current: every function named has its symbol there,
# and every symbol there is in the build (a renamed or re-typed function changes its symbol,
# and the linker would silently leave it out of the order).
#   scripts/hot-symbols.sh [--check]     (after cargo build --release -p meshd)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${MESHD_BIN:-target/release/meshd}
[[ -x $BIN ]] || { echo "build first: cargo build --release -p meshd" >&2; exit 1; }
command -v nm >/dev/null || { echo "missing nm (binutils)" >&2; exit 1; }
python3 - "$BIN" "${1:-}" <<'PY'
import re, subprocess, sys
binary, check = sys.argv[1], sys.argv[2] == "--check"
def symbols(demangle):
    args = ["nm", "--defined-only"] + (["-C"] if demangle else []) + [binary]
    out = {}
    for line in subprocess.run(args, check=True, capture_output=True, text=True).stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in "tT":
            out.setdefault(parts[0], []).append(parts[2])
    return out
raw, named = symbols(False), symbols(True)
wanted = [l.strip() for l in open("crates/meshd/hot-functions.txt") if l.strip() and not l.startswith("#")]
order, missing = [], []
for name in wanted:
    found = [sym for addr, names in named.items() if any(re.sub(r"::h[0-9a-f]{16}$", "", n) == name for n in names)
             for sym in raw.get(addr, [])]
    if not found:
        missing.append(name)
    order += [s for s in found if s not in order]
path = "crates/meshd/hot-symbols.txt"
if check:
    current = [l.strip() for l in open(path) if l.strip()]
    have = {s for names in raw.values() for s in names}
    stale = [s for s in current if s not in have]
    if missing or stale or current != order:
        for n in missing: print(f"no symbol for hot function {n}", file=sys.stderr)
        for s in stale: print(f"{path}: {s} is not in {binary}", file=sys.stderr)
        print(f"{path} is not current: run scripts/hot-symbols.sh (and rebuild)", file=sys.stderr)
        sys.exit(1)
    print(f"hot symbols: {len(order)}, all in the build")
else:
    for n in missing: print(f"warning: no symbol for hot function {n} (inlined? renamed?)", file=sys.stderr)
    open(path, "w").write("".join(s + "\n" for s in order))
    print(f"wrote {path}: {len(order)} symbols")
PY
