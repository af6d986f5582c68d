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
TAG=mds$$
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_need iperf3
bench_underlay
bench_mesh off "[]" "[]"
start_meshd meshd
MA=${MPIDS[0]}; MB=${MPIDS[1]}
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
echo "idle RSS: a $(rss $MA) MB, b $(rss $MB) MB"

ip netns exec $B iperf3 -s -1 >/dev/null 2>&1 & DAEMONS+=($!)
sleep 0.5
ip netns exec $A iperf3 -c 10.100.0.2 -t "$SECS" -J >"$WORK/iperf.json" 2>&1 & IPERF=$!; DAEMONS+=($IPERF)
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
