#!/usr/bin/env bash
# Firewall at scale: a mesh of $NODES nodes (default 1,000) and $RULES policy rules (default
# 2,000, a mix of single nodes, lists, "*", port ranges, icmp and any). For the node with the
# most rules (n0000), times
#   build:   meshd firewall --json --node n0000 > ruleset.json
#   apply:   nft -j -f ruleset.json   inside a fresh network namespace
#   replace: the same again, with the table already there (what a reload does)
# $RUNS times each (default 7) and prints medians as a markdown table, with the size of the
# ruleset. The aim: build + apply under 1 s at this size.
#
#   sudo benches/firewall_scale.sh [RUNS]
#
# Everything that touches nftables runs inside namespaces this script creates and removes;
# nothing is applied to the host's own network. `meshd firewall` applies nothing and runs
# inside a namespace too.
set -euo pipefail
RUNS=${1:-7}
NODES=${NODES:-1000}
RULES=${RULES:-2000}
NODE=n0000
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"
MESHD=${MESHD_BIN:-$ROOT/target/release/meshd}
[[ $EUID -eq 0 ]] || { echo "firewall_scale.sh needs root (network namespaces)" >&2; exit 1; }
[[ -x $MESHD ]] || { echo "build first: cargo build --release -p meshd" >&2; exit 1; }
for tool in nft ip python3; do
  command -v $tool >/dev/null || { echo "missing $tool (run scripts/setup.sh)" >&2; exit 1; }
done
((NODES >= 10 && NODES <= 4000)) || { echo "NODES must be 10..4000" >&2; exit 1; }

TAG=mdfw$$
WORK=$(mktemp -d /tmp/meshd-fwbench.XXXXXX)
cleanup() {
  netns_cleanup
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
NEWNS=0
newns() { # a fresh namespace, its name in $REPLY
  NEWNS=$((NEWNS + 1))
  REPLY=$TAG-$NEWNS
  netns_add "$REPLY"
}
now() { date +%s%N; }

# --- the mesh -------------------------------------------------------------------------------
python3 - "$NODES" "$RULES" >"$WORK/mesh.yaml" <<'PY'
import base64, os, random, sys
nodes, rules = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(20240603)  # the same mesh every run; keys need no determinism
names = [f"n{i:04d}" for i in range(nodes)]
out = ["interface:", "  name: meshd0", "  listen_port: 51820", "  mtu: 1420", '  metrics: "off"',
       "admin:", "  ssh_from: [192.0.2.10/32, 198.51.100.0/28]", "  icmp_rate: 5/second",
       "nodes:"]
for i, n in enumerate(names):
    # Any 32 bytes are a valid X25519 public key.
    key = base64.b64encode(os.urandom(32)).decode()
    out += [f"  - name: {n}", f'    public_key: "{key}"',
            f"    address: 10.100.{i // 250}.{i % 250 + 1}/20"]
    if i % 3 != 2:  # a third behind NAT, without an endpoint
        out.append(f'    endpoint: "192.0.2.{i % 250 + 1}:{51820 + i // 250}"')
    routes = []
    if i % 8 == 1 and i // 8 < 128:  # 10.100.128.0/17, one /24 each: outside the mesh /20
        routes.append(f"10.100.{128 + i // 8}.0/24")
    if i % 50 == 7:
        routes.append(f"2001:db8:{i:x}::/64")
    if routes:
        out.append(f"    routes: [{', '.join(routes)}]")
    if i % 5 == 0:
        out.append("    open: [tcp/443]")
out.append("policy:")

def some(k):
    return rnd.sample(names[1:], k)

def allow():
    kinds = rnd.choices(["tcp", "udp", "trange", "urange", "icmp", "any"],
                        weights=[40, 15, 15, 10, 12, 3], k=rnd.randint(1, 3))
    a = []
    for k in kinds:
        if k in ("tcp", "udp"):
            a.append(f"{k}/{rnd.randint(1, 65535)}")
        elif k in ("trange", "urange"):
            lo = rnd.randint(1024, 60000)
            a.append(f"{'tcp' if k == 'trange' else 'udp'}/{lo}-{lo + rnd.randint(1, 500)}")
        else:
            a.append(k)
    return "[" + ", ".join(dict.fromkeys(a)) + "]"

def names_yaml(ns):
    return ns[0] if len(ns) == 1 else "[" + ", ".join(ns) + "]"

for r in range(rules):
    shape = r % 10
    if shape in (0, 1, 2):    # single -> single, to the benched node
        frm, to = names_yaml(some(1)), names[0]
    elif shape in (3, 4):     # a list -> the benched node (and others)
        frm, to = names_yaml(some(rnd.randint(2, 10))), names_yaml([names[0]] + some(rnd.randint(0, 4)))
    elif shape == 5:          # single -> single elsewhere
        frm, to = names_yaml(some(1)), names_yaml(some(1))
    elif shape == 6:          # lists elsewhere
        frm, to = names_yaml(some(rnd.randint(2, 8))), names_yaml(some(rnd.randint(2, 8)))
    elif shape == 7:          # "*" -> a few
        frm, to = '"*"', names_yaml(some(rnd.randint(1, 3)))
    elif shape == 8:          # a few -> "*"
        frm, to = names_yaml(some(rnd.randint(1, 3))), '"*"'
    else:                     # the benched node -> a list
        frm, to = names[0], names_yaml(some(rnd.randint(1, 6)))
    out += [f"  - from: {frm}", f"    to: {to}", f"    allow: {allow()}"]
print("\n".join(out))
PY
echo "mesh: $NODES nodes, $RULES policy rules ($(wc -c <"$WORK/mesh.yaml") bytes of YAML)" >&2

newns
BUILD_NS=$REPLY
build() { # one build inside $BUILD_NS, writes $WORK/ruleset.json, prints ns
  ip netns exec "$BUILD_NS" sh -c \
    's=$(date +%s%N); "$0" firewall --json --config "$1" --node "$2" >"$3" || exit 1; e=$(date +%s%N); echo $((e - s))' \
    "$MESHD" "$WORK/mesh.yaml" "$NODE" "$WORK/ruleset.json"
}
apply_in() { # nft -j -f inside namespace $1, prints ns
  ip netns exec "$1" sh -c \
    's=$(date +%s%N); nft -j -f "$0" || exit 1; e=$(date +%s%N); echo $((e - s))' "$WORK/ruleset.json"
}

if ! build >/dev/null 2>"$WORK/build.err"; then
  echo "meshd firewall failed:" >&2; cat "$WORK/build.err" >&2; exit 1
fi

B=() A=() R=() T=()
for run in $(seq "$RUNS"); do
  b=$(build)
  newns; ns=$REPLY
  a=$(apply_in "$ns")
  r=$(apply_in "$ns")
  B+=("$b"); A+=("$a"); R+=("$r"); T+=($((b + a)))
  printf 'run %d: build %d ms, apply %d ms, replace %d ms\n' "$run" $((b / 1000000)) $((a / 1000000)) $((r / 1000000)) >&2
  if ((run < RUNS)); then netns_del "$ns"; fi
done

# The installed table (in the last namespace) as nft lists it.
nft_list=$(ip netns exec "$ns" nft list table inet meshd)
lines=$(wc -l <<<"$nft_list")
read -r rules_n sets_n elems_n chains_n < <(ip netns exec "$ns" nft -j list table inet meshd | python3 -c '
import json, sys
objs = json.load(sys.stdin)["nftables"]
rules = sum(1 for o in objs if "rule" in o)
sets = [o.get("set") or o.get("map") for o in objs if "set" in o or "map" in o]
elems = sum(len(s.get("elem", [])) for s in sets)
chains = sum(1 for o in objs if "chain" in o)
print(rules, len(sets), elems, chains)')
check=$(ip netns exec "$BUILD_NS" "$MESHD" check --config "$WORK/mesh.yaml" --node "$NODE" 2>/dev/null || true)
peers=$(sed -n 's/^peers (\([0-9]*\)):.*/\1/p' <<<"$check")
node_rules=$(sed -n 's/^rules (\([0-9]*\)):.*/\1/p' <<<"$check")
json_bytes=$(wc -c <"$WORK/ruleset.json")

stats() { # median min max of the arguments (ns), printed in ms
  printf '%s\n' "$@" | sort -n | python3 -c '
import sys
v = [int(x) for x in sys.stdin.read().split()]
m = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
print(f"{m / 1e6:.1f} | {v[0] / 1e6:.1f} | {v[-1] / 1e6:.1f}")'
}
total_med_ms=$(printf '%s\n' "${T[@]}" | sort -n | awk '{a[NR]=$1} END {print int(a[int((NR+1)/2)] / 1000000)}')

echo
echo "Firewall of node $NODE in a mesh of $NODES nodes and $RULES policy rules, $RUNS runs ($(nproc) CPUs, $(nft --version))"
echo
echo "| step | median ms | min ms | max ms |"
echo "|---|---:|---:|---:|"
echo "| build: \`meshd firewall --json\` | $(stats "${B[@]}") |"
echo "| apply: \`nft -j -f\`, fresh namespace | $(stats "${A[@]}") |"
echo "| replace: \`nft -j -f\`, table present | $(stats "${R[@]}") |"
echo "| **build + apply** | $(stats "${T[@]}") |"
echo
echo "| ruleset of $NODE | |"
echo "|---|---:|"
echo "| peers / policy rules touching it (\`meshd check\`) | ${peers:-?} / ${node_rules:-?} |"
echo "| JSON bytes | $json_bytes |"
echo "| lines of \`nft list table inet meshd\` | $lines |"
echo "| chains / rules | $chains_n / $rules_n |"
echo "| named sets and maps / their elements | $sets_n / $elems_n |"
echo
if ((total_med_ms < 1000)); then
  echo "build + apply median ${total_med_ms} ms: under the 1 s target"
else
  echo "build + apply median ${total_med_ms} ms: OVER the 1 s target"
fi
