#!/usr/bin/env bash
# End-to-end benchmark: two network namespaces over a veth pair (192.0.2.1 <-> 192.0.2.2), for
#   plain                     the underlay itself, no tunnel
#   meshd                     meshd with its default offloads          (overlay 10.100.0.0/24)
#   meshd (no offload)        MESHD_TUN_OFFLOAD=off MESHD_UDP_OFFLOAD=off
#   meshd (TUN offload only)  MESHD_UDP_OFFLOAD=off
#   wireguard-go              Debian's wireguard-go, udp/51821, MTU 1420 (overlay 10.100.1.0/24)
#   boringtun-cli             only if boringtun-cli is installed, udp/51822 (overlay 10.100.2.0/24)
# on each link of $LINKS: "unshaped" (the bare veth) and "1gbit" (both veth ends shaped with tbf).
# Each round runs every path once, in an order rotated per round so no path always goes first.
#
#   sudo benches/e2e.sh [ROUNDS]       (default 3)
#   env: SECS (iperf3 seconds, default 10), PINGS (default 200), LINKS (default "unshaped 1gbit")
#
# The numbers (tables on stdout, medians over the rounds; progress on stderr):
#   1 stream / 4 streams   iperf3 -c ADDR -t $SECS [-P 4] -J: end.sum_received, Mbit/s
#   ping RTT               median of the per-reply time= of `ping -c $PINGS -i 0.01`, ms
#   added RTT              ping RTT minus plain's ping RTT on the same link, ms
#   CPU s/GB               utime+stime of both daemons during the 1-stream run, per GB received
#   peak RSS               max VmHWM of the two daemons after the path's runs, MB (wireguard-go
#                          and boringtun stay up for the whole bench, so theirs is cumulative)
#   idle RSS               max VmRSS of the two daemons right after start, before traffic, MB
#   vs plain / vs wg-go    1-stream median over plain's / wireguard-go's
#   CPU steal              share of the VM's CPU time the hypervisor gave to others while a
#                          path was measured (/proc/stat): a line per link, median and max. A
#                          run with more than a few percent measured the neighbours as much as
#                          the paths; compare runs only at a similar steal.
# The meshd variants share one config and key pair; only one pair can run at a time (one
# firewall table per namespace), so each is started for its measurement and stopped after,
# and its table (which meshd leaves behind on purpose, fail closed) is removed, so the other
# paths always run without it.
#
# Everything (meshd, wireguard-go, iperf3, ping, tc, nft) runs inside namespaces this script
# creates and removes; nothing touches the host's own network.
set -euo pipefail
ROUNDS=${1:-3}
SECS=${SECS:-10}
PINGS=${PINGS:-200}
LINKS=${LINKS:-unshaped 1gbit}
for link in $LINKS; do
  case $link in unshaped|1gbit) ;; *) echo "unknown link '$link' (unshaped, 1gbit)" >&2; exit 1;; esac
done
TAG=mde$$
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_need iperf3 wireguard-go wg tc nft ping getconf
BT=$(command -v boringtun-cli || command -v boringtun || true)
CLK=$(getconf CLK_TCK)
WGA=wge${$}a; WGB=wge${$}b; BTA=bte${$}a; BTB=bte${$}b
bench_cleanup_extra() { rm -f /var/run/wireguard/{$WGA,$WGB,$BTA,$BTB}.sock; }

# --- the namespaces, the underlay and meshd's config ----------------------------------------
# meshd: overlay 10.100.0.0/24 on udp/51820; `open` lets wireguard-go and iperf3 through.
bench_underlay
bench_mesh off "[udp/51821]" "[udp/51821, tcp/5201]"

# --- wireguard-go (and boringtun-cli): up for the whole bench --------------------------------
userspace_wg wg "$WGA" "$WGB" 51821 10.100.1
IMPLS=(plain meshd "meshd (no offload)" "meshd (TUN offload only)" wireguard-go)
if [[ -n $BT ]]; then userspace_wg bt "$BTA" "$BTB" 51822 10.100.2; IMPLS+=(boringtun-cli)
else log "note: boringtun-cli not on PATH, skipping it"; fi

ip netns exec "$B" iperf3 -s -B 0.0.0.0 >/dev/null 2>&1 & DAEMONS+=($!)
sleep 1
ip netns exec "$A" ping -c 2 -i 0.2 -W 2 192.0.2.2 >/dev/null || { log "no underlay path"; exit 1; }

iperf() { # $1 address, $2 streams → "Mbit/s bytes" received
  local out=$WORK/iperf.json try
  for try in 1 2; do
    if ip netns exec "$A" iperf3 -c "$1" -t "$SECS" -P "$2" -J >"$out" 2>&1; then
      python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["end"]["sum_received"]
print(round(s["bits_per_second"]/1e6), s["bytes"])' "$out"; return 0
    fi
    sleep 1
  done
  log "iperf3 to $1 failed:"; cat "$out" >&2; exit 1
}
measure() { # $1 link, $2 round, $3 path, $4 address, then the daemon PIDs; appends a TSV row
  local link=$1 round=$2 impl=$3 addr=$4 c0 c1 out one four rtt cpu=- peak=- s0 steal; shift 4
  s0=$(cpu_stat)
  [[ $# -gt 0 ]] && c0=$(ticks "$@")
  out=$(iperf "$addr" 1); read -r -a one <<<"$out"
  if [[ $# -gt 0 ]]; then
    c1=$(ticks "$@")
    cpu=$(python3 -c "print(f'{($c1-$c0)/$CLK/(${one[1]}/1e9):.2f}')")
  fi
  out=$(iperf "$addr" 4); read -r -a four <<<"$out"
  rtt=$(ping_ms "$addr")
  [[ -n $rtt ]] || { log "$impl: no ping replies from $addr"; exit 1; }
  [[ $# -gt 0 ]] && peak=$(mem_mb VmHWM "$@")
  steal=$(steal_pct "$s0" "$(cpu_stat)")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$link" "$round" "$impl" "${one[0]}" "${four[0]}" \
    "$rtt" "$cpu" "$peak" "${IDLE:--}" "$steal" >>"$WORK/results.tsv"
  log "  $link round $round  $impl: ${one[0]} Mbit/s, 4 streams ${four[0]}, ping $rtt ms, CPU $cpu s/GB, peak $peak MB, steal $steal%"
}

shape() { # $1 link: both veth ends back to their default qdisc, then tbf for "1gbit"
  ip netns exec "$A" tc qdisc del dev veth-a root 2>/dev/null || true
  ip netns exec "$B" tc qdisc del dev veth-b root 2>/dev/null || true
  if [[ $1 == 1gbit ]]; then
    ip netns exec "$A" tc qdisc replace dev veth-a root tbf rate 1gbit burst 256kb latency 10ms
    ip netns exec "$B" tc qdisc replace dev veth-b root tbf rate 1gbit burst 256kb latency 10ms
  fi
}
: >"$WORK/results.tsv"
for link in $LINKS; do
  shape "$link"
  for round in $(seq "$ROUNDS"); do
    n=${#IMPLS[@]}; off=$(((round - 1) % n))
    for impl in "${IMPLS[@]:off}" "${IMPLS[@]:0:off}"; do
      case $impl in
        plain) IDLE=-; measure "$link" "$round" "$impl" 192.0.2.2;;
        meshd) start_meshd "$impl"; measure "$link" "$round" "$impl" 10.100.0.2 "${MPIDS[@]}"; stop_meshd;;
        "meshd (no offload)") start_meshd "$impl" MESHD_TUN_OFFLOAD=off MESHD_UDP_OFFLOAD=off
          measure "$link" "$round" "$impl" 10.100.0.2 "${MPIDS[@]}"; stop_meshd;;
        "meshd (TUN offload only)") start_meshd "$impl" MESHD_UDP_OFFLOAD=off
          measure "$link" "$round" "$impl" 10.100.0.2 "${MPIDS[@]}"; stop_meshd;;
        wireguard-go) IDLE=$IDLE_wg; measure "$link" "$round" "$impl" 10.100.1.2 $PIDS_wg;;
        boringtun-cli) IDLE=$IDLE_bt; measure "$link" "$round" "$impl" 10.100.2.2 $PIDS_bt;;
      esac
    done
  done
  shape unshaped
done

# --- the tables -----------------------------------------------------------------------------
echo "# meshd e2e bench: $(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) cores," \
  "SECS=$SECS, ROUNDS=$ROUNDS, PINGS=$PINGS, meshd $MESHD"
python3 - "$WORK/results.tsv" "$LINKS" "${IMPLS[@]}" <<'PY'
import statistics, sys
path, links, impls = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
COL = {"t1": 3, "t4": 4, "rtt": 5, "cpu": 6, "peak": 7, "idle": 8, "steal": 9}
def vals(link, impl, col):
    return [float(r[COL[col]]) for r in rows if r[0] == link and r[2] == impl and r[COL[col]] != "-"]
def med(link, impl, col):
    v = vals(link, impl, col)
    return statistics.median(v) if v else None
def f(x, spec):
    return "-" if x is None else format(x, spec)
for link in links:
    print(f"\n## link: {link}\n")
    print("| path | 1 stream Mbit/s | 4 streams Mbit/s | ping RTT ms | added RTT ms | CPU s/GB "
          "| peak RSS MB | idle RSS MB | 1 stream vs plain | 1 stream vs wireguard-go |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    P, W, Prtt = med(link, "plain", "t1"), med(link, "wireguard-go", "t1"), med(link, "plain", "rtt")
    for impl in impls:
        t1, rtt = med(link, impl, "t1"), med(link, impl, "rtt")
        added = None if impl == "plain" or rtt is None or Prtt is None else rtt - Prtt
        print(f"| {impl} | {f(t1, '.0f')} | {f(med(link, impl, 't4'), '.0f')} | {f(rtt, '.3f')} "
              f"| {f(added, '+.3f')} | {f(med(link, impl, 'cpu'), '.2f')} | {f(med(link, impl, 'peak'), '.1f')} "
              f"| {f(med(link, impl, 'idle'), '.1f')} | {f(t1 / P if t1 and P else None, '.3f')} "
              f"| {f(t1 / W if t1 and W else None, '.2f')}{'x' if t1 and W else ''} |")
    print("\n1-stream Mbit/s per round: " + "; ".join(
        f"{i} " + ",".join(f"{v:.0f}" for v in vals(link, i, "t1")) for i in impls))
    steal = [float(r[COL["steal"]]) for r in rows if r[0] == link]
    if steal:
        print(f"\nCPU steal while measured: median {statistics.median(steal):.1f}%, "
              f"max {max(steal):.1f}% (per path and round: the hypervisor running others)")
    if link == "1gbit":
        M, Mrtt, Mcpu = med(link, "meshd", "t1"), med(link, "meshd", "rtt"), med(link, "meshd", "cpu")
        print("\n| Metric | Standard | Encrypted (meshd) | Impact |\n|---|---|---|---|")
        print(f"| Throughput (Mbit/s) | {f(P, '.0f')} | {f(M, '.0f')} "
              f"| {f((M / P - 1) * 100 if M and P else None, '+.1f')} % |")
        print(f"| Latency (ms) | {f(Prtt, '.3f')} | {f(Mrtt, '.3f')} "
              f"| {f(Mrtt - Prtt if Mrtt is not None and Prtt is not None else None, '+.3f')} ms |")
        print(f"| CPU (s/GB) | - | {f(Mcpu, '.2f')} | {f(Mcpu, '+.2f')} s/GB |")
PY
