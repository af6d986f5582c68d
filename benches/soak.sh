#!/usr/bin/env bash
# Memory under a long transfer: two meshd nodes in namespaces over a veth pair, one TCP stream
# (iperf3) for $SECS seconds (default 300), and both daemons' resident memory (VmRSS) sampled
# every $EVERY seconds (default 10). Prints the samples, the idle RSS before traffic, and the
# growth from the first sample under load to the last.
#
#   sudo benches/soak.sh            SECS=300 EVERY=10
#
# Everything runs inside namespaces this script creates and removes; nothing touches the host's
# own network. Processes are stopped by PID.
set -euo pipefail
SECS=${SECS:-300}
EVERY=${EVERY:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MESHD=${MESHD_BIN:-$ROOT/target/release/meshd}
[ -x "$MESHD" ] || { echo "build first: cargo build --release -p meshd" >&2; exit 1; }
for tool in iperf3 ip python3; do
  command -v $tool >/dev/null || { echo "missing $tool (run scripts/setup.sh)" >&2; exit 1; }
done

TAG=mds$$
A=$TAG-a; B=$TAG-b
WORK=$(mktemp -d); PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add $A; ip netns add $B
ip link add veth-a netns $A type veth peer name veth-b netns $B
ip -n $A addr add 192.0.2.1/24 dev veth-a; ip -n $B addr add 192.0.2.2/24 dev veth-b
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link set veth-a up; ip -n $B link set veth-b up

umask 077
"$MESHD" genkey > "$WORK/a.key"; "$MESHD" genkey > "$WORK/b.key"
cat > "$WORK/mesh.yaml" <<YAML
interface: {name: meshd0, listen_port: 51820, mtu: 1420, metrics: "off"}
admin: {ssh_from: [192.0.2.10/32]}
nodes:
  - {name: a, public_key: "$("$MESHD" pubkey < "$WORK/a.key")", address: 10.100.0.1/24, endpoint: "192.0.2.1:51820"}
  - {name: b, public_key: "$("$MESHD" pubkey < "$WORK/b.key")", address: 10.100.0.2/24, endpoint: "192.0.2.2:51820"}
policy:
  - {from: a, to: b, allow: [any]}
YAML
# A private /run per node (their sockets are named after the interface); the PID is meshd's.
PRIVATE_RUN=(unshare --mount --propagation private sh -c 'mount -t tmpfs -o mode=0755 mds-run /run && exec "$0" "$@"')
ip netns exec $A "${PRIVATE_RUN[@]}" "$MESHD" run --config "$WORK/mesh.yaml" --private-key "$WORK/a.key" 2>"$WORK/a.log" & MA=$!; PIDS+=($MA)
ip netns exec $B "${PRIVATE_RUN[@]}" "$MESHD" run --config "$WORK/mesh.yaml" --private-key "$WORK/b.key" 2>"$WORK/b.log" & MB=$!; PIDS+=($MB)
for _ in $(seq 100); do grep -qw ready "$WORK/a.log" && grep -qw ready "$WORK/b.log" && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
ip netns exec $A ping -c 1 -W 2 10.100.0.2 >/dev/null || { cat "$WORK"/*.log >&2; exit 1; }
echo "idle RSS: a $(rss $MA) MB, b $(rss $MB) MB"

ip netns exec $B iperf3 -s -1 >/dev/null 2>&1 & PIDS+=($!)
sleep 0.5
ip netns exec $A iperf3 -c 10.100.0.2 -t "$SECS" -J >"$WORK/iperf.json" 2>&1 & IPERF=$!; PIDS+=($IPERF)
echo "| t (s) | RSS a (MB) | RSS b (MB) |"
echo "|---|---|---|"
t=0; first=""; last=""
while kill -0 $IPERF 2>/dev/null && [ $t -lt "$SECS" ]; do
  sleep "$EVERY"; t=$((t + EVERY))
  line="$(rss $MA) $(rss $MB)"
  echo "| $t | ${line% *} | ${line#* } |"
  [ -z "$first" ] && first=$line
  last=$line
done
wait $IPERF || true
python3 - "$WORK/iperf.json" "$first" "$last" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["end"]["sum_received"]
f, l = [list(map(float, s.split())) for s in sys.argv[2:4]]
print(f"\n{r['bytes']/1e9:.1f} GB in {r['seconds']:.0f} s ({r['bits_per_second']/1e6:.0f} Mbit/s); "
      f"RSS growth from the first sample under load to the last: a {l[0]-f[0]:+.1f} MB, b {l[1]-f[1]:+.1f} MB")
PY
