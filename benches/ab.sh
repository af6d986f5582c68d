#!/usr/bin/env bash
# A/B of two meshd builds (or two settings of one): alternating in every round on the same
# namespaces, ping RTT (median of $PINGS at 10 ms intervals) and one TCP stream (iperf3, $SECS
# s) through each, and plain's ping beside them. Prints every round and the medians; the
# latency experiments in docs/performance.md were measured this way.
#
#   sudo benches/ab.sh OLD_BINARY NEW_BINARY [ROUNDS]      (default 5 rounds)
#   env: SECS (default 3), PINGS (default 300), OLD_ENV / NEW_ENV (VAR=VALUE ..., for meshd),
#        SHAPE (a tbf rate for both veth ends, e.g. 1gbit, as e2e.sh's shaped link)
#
# e.g. the one binary with and without its TUN offload:
#   NEW_ENV=MESHD_TUN_OFFLOAD=off sudo benches/ab.sh target/release/meshd target/release/meshd
#
# Everything runs inside namespaces this script creates and removes; nothing touches the host's
# own network.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,9p' "$0" >&2; exit 2; }
OLD=$(realpath "$1"); NEW=$(realpath "$2"); ROUNDS=${3:-5}
SECS=${SECS:-3}; PINGS=${PINGS:-300}
TAG=mab$$
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
for bin in "$OLD" "$NEW"; do [[ -x $bin ]] || { log "not an executable: $bin"; exit 1; }; done
MESHD=$OLD bench_need iperf3 ping
bench_underlay
if [[ -n ${SHAPE:-} ]]; then
  ip netns exec "$A" tc qdisc replace dev veth-a root tbf rate "$SHAPE" burst 256kb latency 10ms
  ip netns exec "$B" tc qdisc replace dev veth-b root tbf rate "$SHAPE" burst 256kb latency 10ms
fi
bench_mesh off "[]" "[tcp/5201]"
ip netns exec "$B" iperf3 -s -B 0.0.0.0 >/dev/null 2>&1 & DAEMONS+=($!)

declare -A RTT TCP
for round in $(seq "$ROUNDS"); do
  for v in old new plain; do
    case $v in
      plain) RTT[$v]+=" $(ping_ms 192.0.2.2)"; log "round $round plain: ping $(echo "${RTT[$v]}" | awk '{print $NF}') ms"; continue ;;
      old) MESHD=$OLD; read -ra extra <<<"${OLD_ENV:-}" ;;
      new) MESHD=$NEW; read -ra extra <<<"${NEW_ENV:-}" ;;
    esac
    start_meshd "$v" ${extra[@]+"${extra[@]}"}
    rtt=$(ping_ms 10.100.0.2); tcp=$(tcp_mbit 10.100.0.2)
    stop_meshd
    RTT[$v]+=" $rtt"; TCP[$v]+=" $tcp"
    log "round $round $v: ping $rtt ms, 1 stream $tcp Mbit/s"
  done
done
plain=$(echo "${RTT[plain]}" | median)
for v in old new; do
  rtt=$(echo "${RTT[$v]}" | median)
  printf '%s  ping %s ms (added %s)  1 stream %s Mbit/s   rounds: ping%s; Mbit/s%s\n' "$v" "$rtt" \
    "$(python3 -c "print(f'{$rtt - $plain:+.3f}')")" "$(echo "${TCP[$v]}" | median)" "${RTT[$v]}" "${TCP[$v]}"
done
echo "plain ping $plain ms   rounds:${RTT[plain]}"
