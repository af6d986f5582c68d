#!/usr/bin/env bash
# Config scale: `meshd check` time and peak RSS on generated meshes of 1,000 / 10,000 / 100,000
# nodes and on files of nothing but list items (50 MB, and $LIST_MB, default just under the
# config size limit), for one or more meshd binaries side by side; prints a markdown table.
#
#   benches/config_scale.sh [MESHD...]          (default: $MESHD_BIN, else target/release/meshd)
#   NODES="1000 10000" LIST_MB="50" benches/config_scale.sh /tmp/meshd-old target/release/meshd
#
# A mesh node has a name, a key, an IPv6 overlay address (2001:db8::/32), an endpoint for two
# nodes in three, one route each and `open` for one in five; the policy has a rule from every
# node (a block list of all names) to n000000, n000000 to "*", and a group rule every 100 nodes.
# Each run is capped at $CAP_GB GiB of address space (default 6) and $TIMEOUT s (default 120):
# a run over either shows as `killed` or `out of memory`. Needs python3 and /usr/bin/time; runs
# nothing as root and touches no network.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODES=${NODES:-1000 10000 100000}
LIST_MB=${LIST_MB:-50 31}
CAP_GB=${CAP_GB:-6}
TIMEOUT=${TIMEOUT:-120}
BINS=("$@")
((${#BINS[@]})) || BINS=("${MESHD_BIN:-$ROOT/target/release/meshd}")
for b in "${BINS[@]}"; do [[ -x $b ]] || { echo "not an executable: $b" >&2; exit 1; }; done
[[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/meshd-cfgscale.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

mesh() { # mesh N FILE
  python3 - "$1" >"$2" <<'PY'
import base64, os, sys
n = int(sys.argv[1])
names = [f"n{i:06d}" for i in range(n)]
out = ["interface:", '  metrics: "off"', "admin:", "  ssh_from: [192.0.2.10/32]", "nodes:"]
for i, name in enumerate(names):
    key = base64.b64encode(os.urandom(32)).decode()  # any 32 bytes are a public key
    out += [f"  - name: {name}", f'    public_key: "{key}"',
            f"    address: 2001:db8:ffff::{(i + 1) >> 16:x}:{(i + 1) & 0xffff:x}/64"]
    if i % 3 != 2:
        out.append(f'    endpoint: "198.51.100.{i % 250 + 1}:{51820 + i // 250}"')
    out.append(f"    routes: [2001:db8:{i >> 16:x}:{i & 0xffff:x}::/64]")
    if i % 5 == 0:
        out.append("    open: [tcp/443]")
out += ["policy:",
        "  - from:", *(f"      - {name}" for name in names),
        f"    to: {names[0]}", "    allow: [tcp/22, icmp]",
        f"  - from: {names[0]}", '    to: "*"', "    allow: [any]"]
for g in range(0, n - 1, 100):
    out += [f"  - from: [{', '.join(names[g:g + 50])}]",
            f"    to: [{', '.join(names[g + 50:g + 100] or names[:1])}]", "    allow: [tcp/443]"]
print("\n".join(out))
PY
}

list_items() { # list_items MB FILE: `nodes:` then one-character list items up to MB megabytes
  python3 - "$1" >"$2" <<'PY'
import sys
mb = int(sys.argv[1])
sys.stdout.write("nodes:\n")
line = "- a\n"
sys.stdout.write(line * ((mb * 1_000_000 - 7) // len(line)))
PY
}

run() { # run BIN FILE NODE: prints "seconds|MiB|exit"
  local out=$WORK/time.txt status=0
  (ulimit -v $((CAP_GB * 1024 * 1024)); timeout "$TIMEOUT" /usr/bin/time -v -o "$out" \
    "$1" check --config "$2" --node "$3" >/dev/null 2>"$WORK/stderr") || status=$?
  local secs kib
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0;
    for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.2f", s}' "$out" 2>/dev/null || true)
  kib=$(awk -F': ' '/Maximum resident/ {print $2}' "$out" 2>/dev/null || true)
  local what="exit $status"
  ((status == 124)) && what="killed at ${TIMEOUT} s"
  grep -q "memory allocation" "$WORK/stderr" && what="out of memory"
  printf '%s|%s|%s' "${secs:-?}" "$((${kib:-0} / 1024))" "$what"
}

header="| input | size |"
rule="|---|---|"
for b in "${BINS[@]}"; do
  header+=" $(basename "$b"): time | peak RSS | result |"
  rule+="---|---|---|"
done
echo "$header"
echo "$rule"
row() { # row LABEL FILE NODE
  local line="| $1 | $(($(stat -c %s "$2") / 1000)) kB |" b r
  for b in "${BINS[@]}"; do
    r=$(run "$b" "$2" "$3")
    IFS='|' read -r secs mib what <<<"$r"
    line+=" ${secs} s | ${mib} MiB | ${what} |"
  done
  echo "$line"
}
for n in $NODES; do
  mesh "$n" "$WORK/mesh.yaml"
  row "$n nodes" "$WORK/mesh.yaml" n000000
done
for mb in $LIST_MB; do
  list_items "$mb" "$WORK/list.yaml"
  row "list items, $mb MB" "$WORK/list.yaml" n000000
done
