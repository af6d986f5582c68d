#!/usr/bin/env bash
# Latency A/B of two meshd builds (or two settings of one) running side by side: two meshd pairs,
# each over its own pair of namespaces and veth (the same addresses in both), both up for the
# whole run, pinged in alternating blocks ($N pings at 10 ms intervals per block, the order
# flipped every block), with plain's ping over the first pair's underlay after each block
# (through meshd's firewall, whose echo-request limit is raised for it).
# Prints each block's median, the median over blocks, and the median of the paired differences
# (new minus old, block by block) with how many blocks the new one won: a slow spell of the
# machine hits both sides of a pair of blocks alike, so the paired difference sees effects of
# a few microseconds that separate runs (benches/ab.sh) lose in their spread.
#
#   sudo benches/side_by_side.sh OLD_BINARY NEW_BINARY [BLOCKS]     (default 12 blocks)
#   env: N (pings per block, default 100), OLD_ENV / NEW_ENV (VAR=VALUE ..., for meshd),
#        OLD_CONF / NEW_CONF (extra `interface` keys, e.g. "busy_poll: 0")
#
# e.g. one binary without and with its busy-poll:
#   OLD_CONF="busy_poll: 0" sudo benches/side_by_side.sh target/release/meshd target/release/meshd
#
# Both daemons' CPU time (utime+stime, including their firewall checks) over the run is printed
# too. Everything runs inside namespaces this script creates and removes; nothing touches the
# host's own network.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,20p' "$0" >&2; exit 2; }
OLD=$(realpath "$1"); NEW=$(realpath "$2"); BLOCKS=${3:-12}; N=${N:-100}
TAG=msb$$
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
for bin in "$OLD" "$NEW"; do [[ -x $bin ]] || { log "not an executable: $bin"; exit 1; }; done
MESHD=$OLD bench_need ping
# The second pair's namespaces; lib.sh's cleanup removes both pairs and stops DAEMONS.
A2=$TAG-c; B2=$TAG-d

pair() { # $1 old|new, $2 $3 the namespaces, $4 binary, $5 env, $6 extra interface keys
  local v=$1 bin=$4 extra=() n ns
  read -ra extra <<<"$5"
  "$bin" genkey >"$WORK/$v-a.key"; "$bin" genkey >"$WORK/$v-b.key"
  cat >"$WORK/$v.yaml" <<YAML
interface: {name: meshd0, listen_port: 51820, mtu: 1420, metrics: "off"${6:+, $6}}
admin: {ssh_from: [192.0.2.10/32], icmp_rate: 1000/second}
nodes:
  - {name: a, public_key: "$("$bin" pubkey <"$WORK/$v-a.key")", address: 10.100.0.1/24, endpoint: "192.0.2.1:51820"}
  - {name: b, public_key: "$("$bin" pubkey <"$WORK/$v-b.key")", address: 10.100.0.2/24, endpoint: "192.0.2.2:51820"}
policy:
  - {from: a, to: b, allow: [any]}
YAML
  for n in a b; do
    ns=$2; [[ $n == b ]] && ns=$3
    env ${extra[@]+"${extra[@]}"} ip netns exec "$ns" "${PRIVATE_RUN[@]}" "$bin" run \
      --config "$WORK/$v.yaml" --private-key "$WORK/$v-$n.key" 2>"$WORK/$v-$n.log" &
    DAEMONS+=($!)
  done
}
bench_underlay; bench_underlay "$A2" "$B2"
pair old "$A" "$B" "$OLD" "${OLD_ENV:-}" "${OLD_CONF:-}"
pair new "$A2" "$B2" "$NEW" "${NEW_ENV:-}" "${NEW_CONF:-}"
for ns in "$A" "$A2"; do
  for _ in $(seq 50); do ip netns exec "$ns" ping -c 1 -W 1 10.100.0.2 >/dev/null 2>&1 && continue 2; sleep 0.2; done
  log "no path over meshd in $ns:"; tail -n 5 "$WORK"/*.log >&2; exit 1
done
ticks() { local t=0 p f; for p in "$@"; do read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat"); t=$((t + f[11] + f[12])); done; echo "$t"; }
CLK=$(getconf CLK_TCK)
c_old=$(ticks "${DAEMONS[@]:0:2}"); c_new=$(ticks "${DAEMONS[@]:2:2}")
block() { A=$1 PINGS=$N ping_ms "$2"; }
old=(); new=(); plain=()
for r in $(seq "$BLOCKS"); do
  if ((r % 2)); then old+=("$(block "$A" 10.100.0.2)"); new+=("$(block "$A2" 10.100.0.2)")
  else new+=("$(block "$A2" 10.100.0.2)"); old+=("$(block "$A" 10.100.0.2)"); fi
  plain+=("$(block "$A" 192.0.2.2)")
  log "block $r: old ${old[-1]} ms, new ${new[-1]} ms, plain ${plain[-1]} ms"
done
c_old=$(( $(ticks "${DAEMONS[@]:0:2}") - c_old )); c_new=$(( $(ticks "${DAEMONS[@]:2:2}") - c_new ))
python3 - "${old[*]}" "${new[*]}" "${plain[*]}" "$c_old" "$c_new" "$CLK" "$((BLOCKS * N))" <<'PY'
import statistics as st, sys
old, new, plain = ([float(x) * 1000 for x in a.split()] for a in sys.argv[1:4])
c_old, c_new, clk, pings = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
d = [b - a for a, b in zip(old, new)]
print(f"old {st.median(old):.0f} us, new {st.median(new):.0f} us, plain (underlay) {st.median(plain):.0f} us "
      f"(medians of {len(old)} blocks of per-ping medians); new - old, paired: {st.median(d):+.0f} us, "
      f"new faster in {sum(x < 0 for x in d)} of {len(d)} blocks")
print(f"CPU of both daemons over {pings} pings: old {c_old * 1000 / clk:.0f} ms, new {c_new * 1000 / clk:.0f} ms")
print("blocks, old:", " ".join(f"{x:.0f}" for x in old))
print("blocks, new:", " ".join(f"{x:.0f}" for x in new))
PY
