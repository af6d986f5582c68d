# shellcheck shell=bash
# Shared by the benches (sourced, not run): two network namespaces $A and $B over a veth pair
# (veth-a 192.0.2.1 <-> veth-b 192.0.2.2), a two-node meshd config (overlay 10.100.0.0/24 on
# udp/51820), starting and stopping a meshd pair, stopping processes by PID, and a cleanup
# that removes everything the bench made. Nothing touches the host's own network.
#
# Before sourcing: TAG (a short unique prefix, e.g. mde$$). Then call
#   bench_need TOOL...                      root, the built meshd, the tools
#   bench_underlay [NS_A NS_B]              the namespaces and the veth pair
#   bench_mesh METRICS OPEN_A OPEN_B        keys and $WORK/mesh.yaml (OPEN_*: YAML lists)
#   start_meshd NAME [VAR=VALUE...]         the pair, ready and handshaken; sets MPIDS, IDLE
#   stop_meshd                              stops the pair and removes the table it leaves
#   ping_ms ADDR, tcp_mbit ADDR             ping median ($PINGS), one iperf3 stream ($SECS)
#   userspace_wg KIND IA IB PORT NET        a wireguard-go (or boringtun-cli) pair beside meshd
#   ticks PID..., cpu_stat, steal_pct       CPU time of daemons, of the machine, and its steal
# Long-lived helpers (iperf3 servers, wireguard-go) go in DAEMONS; a script that needs more
# cleanup defines bench_cleanup_extra. Namespaces come from scripts/lib/netns.sh: any made with
# netns_add are removed at the end, after everything running in them is stopped.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/netns.sh
. "$ROOT/scripts/lib/netns.sh"
MESHD=${MESHD_BIN:-$ROOT/target/release/meshd}
A=$TAG-a; B=$TAG-b
WORK=$(mktemp -d /tmp/meshd-bench.XXXXXX)
umask 077  # keys
DAEMONS=()  # long-lived: iperf3 servers, wireguard-go, ...
MPIDS=()    # the meshd pair currently running
log() { echo "$*" >&2; }

bench_need() {
  [[ $EUID -eq 0 ]] || { log "$(basename "$0") needs root (network namespaces)"; exit 1; }
  [[ -x $MESHD ]] || { log "build first: cargo build --release -p meshd"; exit 1; }
  local tool
  for tool in ip unshare python3 "$@"; do
    command -v "$tool" >/dev/null || { log "missing $tool (run scripts/setup.sh)"; exit 1; }
  done
}

alive() { netns_alive "$1"; }
stop_pids() { netns_stop_pids "$@"; } # SIGTERM by PID, wait up to 10 s each, then SIGKILL
bench_cleanup() {
  set +e
  # the pair, the daemons, and whatever else still runs in our namespaces (an interrupted
  # iperf3 or ping client)
  netns_stop_all ${MPIDS[@]+"${MPIDS[@]}"} ${DAEMONS[@]+"${DAEMONS[@]}"}
  if declare -F bench_cleanup_extra >/dev/null; then bench_cleanup_extra; fi
  netns_del_all
  rm -rf "$WORK"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_underlay() { # [NS_A NS_B]: another pair of namespaces than $A and $B
  local a=${1:-$A} b=${2:-$B}
  netns_add "$a" "$b"
  netns_veth "$a" veth-a 192.0.2.1/24 "$b" veth-b 192.0.2.2/24
}

bench_mesh() { # $1 metrics ("off" or an address), $2 and $3 the `open` lists of a and b
  "$MESHD" genkey >"$WORK/a.key"; "$MESHD" genkey >"$WORK/b.key"
  cat >"$WORK/mesh.yaml" <<YAML
interface: {name: meshd0, listen_port: 51820, mtu: 1420, metrics: "$1"}
admin: {ssh_from: [192.0.2.10/32]}
nodes:
  - {name: a, public_key: "$("$MESHD" pubkey <"$WORK/a.key")", address: 10.100.0.1/24, endpoint: "192.0.2.1:51820", open: $2}
  - {name: b, public_key: "$("$MESHD" pubkey <"$WORK/b.key")", address: 10.100.0.2/24, endpoint: "192.0.2.2:51820", open: $3}
policy:
  - {from: a, to: b, allow: [any]}
YAML
}

# A private /run per node (its sockets are named after the interface); every step execs, so
# $! is meshd's own PID.
PRIVATE_RUN=(unshare --mount --propagation private sh -c 'mount -t tmpfs -o mode=0755 bench-run /run && exec "$0" "$@"')
mem_mb() { # $1 VmHWM|VmRSS, then PIDs → the largest, in MB
  local field=$1 max=0 p v; shift
  for p in "$@"; do v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status"); ((v > max)) && max=$v; done
  python3 -c "print(f'{$max/1024:.1f}')"
}
both_ready() { grep -q ' ready ' "$WORK/a.log" && grep -q ' ready ' "$WORK/b.log"; }
wait_ready() { # $1 seconds, $2 what to name in the error: waits for both nodes of MPIDS to log ready
  local _
  for _ in $(seq $(($1 * 10))); do
    both_ready && return 0
    alive "${MPIDS[0]}" && alive "${MPIDS[1]}" || break
    sleep 0.1
  done
  both_ready && return 0
  log "$2: meshd not ready within $1 s"; tail -n 20 "$WORK/a.log" "$WORK/b.log" >&2; exit 1
}
start_meshd() { # $1 variant name, then env assignments; sets MPIDS and IDLE
  local name=$1 n ns; shift
  MPIDS=()
  for n in a b; do
    ns=$A; [[ $n == b ]] && ns=$B
    env "$@" ip netns exec "$ns" "${PRIVATE_RUN[@]}" "$MESHD" run --config "$WORK/mesh.yaml" \
      --private-key "$WORK/$n.key" 2>"$WORK/$n.log" &
    MPIDS+=($!)
  done
  wait_ready 10 "$name"
  for n in 0 1; do
    [[ $(readlink "/proc/${MPIDS[$n]}/exe") -ef $MESHD ]] || { log "PID ${MPIDS[$n]} is not meshd"; exit 1; }
  done
  IDLE=$(mem_mb VmRSS "${MPIDS[@]}")
  log "  $name: $(grep -o 'offloads.*' "$WORK/a.log" | head -n 1)"
  for _ in 1 2 3; do ip netns exec "$A" ping -c 1 -W 3 10.100.0.2 >/dev/null && return 0; done
  log "$name: no handshake over meshd"; tail -n 20 "$WORK/a.log" "$WORK/b.log" >&2; exit 1
}
stop_meshd() { # SIGTERM the pair, wait, then remove the table meshd leaves behind (fail closed)
  local ns
  stop_pids "${MPIDS[@]}"; MPIDS=()
  for ns in "$A" "$B"; do ip netns exec "$ns" "$MESHD" firewall --remove 2>/dev/null || true; done
}
ping_ms() { # median per-reply RTT from $A to $1 over $PINGS pings 10 ms apart, ms (a warning on
  # stderr if replies are missing; empty if none came)
  ip netns exec "$A" ping -c "$PINGS" -i 0.01 -W 1 "$1" 2>/dev/null | { grep -o 'time=[0-9.]*' || true; } |
    cut -d= -f2 | python3 -c 'import statistics,sys; v=[float(x) for x in sys.stdin]; n=int(sys.argv[1])
len(v) < n and print(f"  warning: {len(v)} of {n} ping replies from {sys.argv[2]}", file=sys.stderr)
print(f"{statistics.median(v):.3f}" if v else "")' "$PINGS" "$1"
}
tcp_mbit() { # one TCP stream from $A to the iperf3 server at $1 for $SECS s → Mbit/s received
  ip netns exec "$A" iperf3 -c "$1" -t "$SECS" -J 2>/dev/null |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}
median() { # numbers on stdin, one per line or space-separated → their median
  tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
ticks() { # utime+stime (clock ticks) summed over the PIDs
  local t=0 p f
  for p in "$@"; do
    [[ -r /proc/$p/stat ]] || { log "daemon PID $p is gone"; exit 1; }
    read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat")  # f[0] is field 3 (state)
    t=$((t + f[11] + f[12]))                             # fields 14 utime, 15 stime
  done
  echo "$t"
}
userspace_wg() { # $1 kind (wg: wireguard-go, bt: $BT), $2 iface a, $3 iface b, $4 port, $5 overlay
  # prefix: a pair on the underlay, up and handshaken; sets PIDS_<kind> and IDLE_<kind>
  local kind=$1 ia=$2 ib=$3 port=$4 net=$5 pids=() i
  wg genkey > "$WORK/$kind-a.key"; wg genkey > "$WORK/$kind-b.key"
  for i in a b; do
    local ns=$A iface=$ia; [[ $i == b ]] && { ns=$B; iface=$ib; }
    if [[ $kind == wg ]]; then ip netns exec "$ns" wireguard-go -f "$iface" >"$WORK/$kind-$i.log" 2>&1 &
    else ip netns exec "$ns" "$BT" --foreground --disable-drop-privileges "$iface" >"$WORK/$kind-$i.log" 2>&1 &
    fi
    pids+=($!); DAEMONS+=($!)
  done
  for _ in $(seq 50); do [[ -S /var/run/wireguard/$ia.sock && -S /var/run/wireguard/$ib.sock ]] && break; sleep 0.1; done
  ip netns exec "$A" wg set "$ia" private-key "$WORK/$kind-a.key" listen-port "$port" \
    peer "$(wg pubkey < "$WORK/$kind-b.key")" endpoint "192.0.2.2:$port" allowed-ips "$net.2/32"
  ip netns exec "$B" wg set "$ib" private-key "$WORK/$kind-b.key" listen-port "$port" \
    peer "$(wg pubkey < "$WORK/$kind-a.key")" endpoint "192.0.2.1:$port" allowed-ips "$net.1/32"
  ip -n "$A" addr add "$net.1/24" dev "$ia"; ip -n "$B" addr add "$net.2/24" dev "$ib"
  ip -n "$A" link set "$ia" mtu 1420 up; ip -n "$B" link set "$ib" mtu 1420 up
  declare -g "PIDS_$kind=${pids[*]}" "IDLE_$kind=$(mem_mb VmRSS "${pids[@]}")"
  ip netns exec "$A" ping -c 2 -i 0.2 -W 3 "$net.2" >/dev/null || { log "no path over $kind"; cat "$WORK/$kind"-*.log >&2; exit 1; }
}
cpu_stat() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $9}' /proc/stat; }  # all, steal
steal_pct() { # two cpu_stat readings → % of the CPU time between them that was stolen
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[1] - x[1]
    printf "%.1f", (d > 0 ? (y[2] - x[2]) * 100 / d : 0) }'
}
