#!/usr/bin/env bash
# Floods against one node's WireGuard port: how much of a TCP stream through the tunnel it
# keeps. Nodes a (192.0.2.1) and b (192.0.2.2) and an attacker x (192.0.2.3) on one bridge;
# one iperf3 stream a -> b through the tunnel for $SECS s, while meshd-attacker in x floods
# b from one source, as fast as it can unless a rate is given:
#   none                no flood
#   closed-port         garbage to udp/9 on b, a port nobody listens on: the baseline, what
#                       the datagrams alone cost the link and the kernel
#   garbage             random datagrams, handshake types of the wrong length, data messages
#                       to random indexes, to b's WireGuard port
#   init-mac1           initiations with a valid mac1 from random static keys
#   init-mac2 R/s       the same with a valid mac2 from b's cookies ($MAC2_RATES: R = 0 is max)
#   impersonate         initiations claiming a's key (junk timestamp), valid mac1
# Each round runs every flood once, in an order rotated per round.
#
#   sudo benches/flood.sh [--impl meshd|wireguard-go|both]      (default meshd)
#   env: ROUNDS (default 3), SECS (iperf3 seconds, default 10), MAC2_RATES (default "5000 0"),
#        FLOOD_RATE (datagrams/s of the floods without a rate of their own; default 0, as fast
#        as the attacker's core allows, which varies with what the stream leaves it),
#        MESHD_BIN, MESHD_ATTACKER_BIN (default: meshd-attacker beside meshd; build it with
#        cargo build --release -p meshd-e2e --bin meshd-attacker)
#
# The numbers (a table per implementation on stdout, medians over the rounds):
#   Mbit/s              iperf3 -c 10.100.x.2 -t $SECS -J: end.sum_received (0 if it failed)
#   % none, % closed    that over the no-flood stream's, over the closed-port flood's
#   b CPU               utime+stime of b's daemon (all its threads, /proc/PID/stat) during
#                       the stream, % of one core
#   b drops/s           increase per second over the flood of b's kernel UDP receive buffer
#                       drops (udp_rcvbuf, RcvbufErrors of /proc/net/snmp: datagrams the
#                       daemon did not read in time) and, for meshd, of
#                       meshd_dropped_packets_total{reason} of b's metrics endpoint
#   sent/s, cookies/s   the attacker's summary: datagrams sent, cookie replies received
#   CPU steal           the share of the VM's CPU the hypervisor gave others during each run
# The target: for every flood kind, meshd keeps >= 90% of what the closed-port flood leaves.
#
# Everything runs inside namespaces this script creates and removes; nothing touches the
# host's own network.
set -euo pipefail
CMDLINE="$0 $*"
IMPL=meshd
while [[ $# -gt 0 ]]; do
  case $1 in
    --impl) IMPL=${2:-}; shift 2 || true;;
    *) echo "usage: $0 [--impl meshd|wireguard-go|both]" >&2; exit 2;;
  esac
done
case $IMPL in
  meshd|wireguard-go) IMPLS=("$IMPL");;
  both) IMPLS=(meshd wireguard-go);;
  *) echo "--impl: meshd, wireguard-go or both (not '$IMPL')" >&2; exit 2;;
esac
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
MAC2_RATES=${MAC2_RATES:-5000 0}
FLOOD_RATE=${FLOOD_RATE:-0}
TAG=mdf$$
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_need iperf3 wireguard-go wg curl getconf
ATTACKER=${MESHD_ATTACKER_BIN:-$(dirname "$MESHD")/meshd-attacker}
[[ -x $ATTACKER ]] || { log "no $ATTACKER: cargo build --release -p meshd-e2e --bin meshd-attacker"; exit 1; }
CLK=$(getconf CLK_TCK)
X=$TAG-x; S=$TAG-s
WGA=wgf${$}a; WGB=wgf${$}b
bench_cleanup_extra() { rm -f /var/run/wireguard/{$WGA,$WGB}.sock; }

# --- a, b and x on a bridge in namespace s ------------------------------------------------
flood_underlay() {
  local ns n i=1
  netns_add "$A" "$B" "$X" "$S"
  netns_bridge "$S" br0
  for n in a b x; do
    case $n in a) ns=$A;; b) ns=$B;; x) ns=$X;; esac
    netns_bridge_port "$S" br0 "port-$n" "$ns" "veth-$n" "192.0.2.$i/24"
    i=$((i + 1))
  done
}
flood_underlay
# meshd: overlay 10.100.0.0/24 on udp/51820, metrics on b's loopback; wireguard-go (started
# after meshd is stopped, so without its firewall): 10.100.1.0/24 on udp/51821.
bench_mesh 127.0.0.1:9586 "[udp/51821]" "[udp/51821, tcp/5201]"
ip netns exec "$B" iperf3 -s -B 0.0.0.0 >/dev/null 2>&1 & DAEMONS+=($!)

# label|kind|rate|port ("-" kind: no flood; port "wg": the implementation's WireGuard port)
F=$FLOOD_RATE
FLOODS=("none|-|0|wg" "closed-port|garbage|$F|9" "garbage|garbage|$F|wg" "init-mac1|init-mac1|$F|wg")
for r in $MAC2_RATES; do
  if [[ $r == 0 && $F == 0 ]]; then FLOODS+=("init-mac2 max|init-mac2|0|wg")
  elif [[ $r == 0 ]]; then FLOODS+=("init-mac2 FLOOD_RATE|init-mac2|$F|wg"); else FLOODS+=("init-mac2 $r/s|init-mac2|$r|wg"); fi
done
FLOODS+=("impersonate|impersonate|$F|wg")

stream() { # one TCP stream from $A to $1 for $SECS s → Mbit/s received, 0 if it failed
  local out=$WORK/iperf.json
  if ip netns exec "$A" iperf3 -c "$1" -t "$SECS" --connect-timeout 5000 -J >"$out" 2>&1; then
    python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6))' "$out"
  else
    log "  iperf3 to $1 failed under the flood: $(grep -o '"error":.*' "$out" | head -n 1)"; echo 0
  fi
}
drops() { # b's drop counters as "reason=n ...": the kernel's UDP receive buffer drops (the
  # daemon did not read in time), then meshd's by reason
  ip netns exec "$B" awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 }
    else printf "udp_rcvbuf=%s ", $c["RcvbufErrors"] }' /proc/net/snmp
  [[ $CUR == meshd ]] || return 0
  ip netns exec "$B" curl -sf --max-time 3 http://127.0.0.1:9586/metrics |
    sed -n 's/^meshd_dropped_packets_total{reason="\([a-z_]*\)"} \([0-9.e+]*\)$/\1=\2/p' | tr '\n' ' '
}
now() { date +%s.%N; }
measure() { # $1 round, $2 FLOODS entry; appends a TSV row to $WORK/results.tsv
  local round=$1 label kind rate port apid=- d0 d1 w0 w1 c0 c1 t0 t1 s0 mbit cpu sent=- cookies=-
  IFS='|' read -r label kind rate port <<<"$2"
  [[ $port == wg ]] && port=$PORT
  s0=$(cpu_stat); d0=$(drops); w0=$(now)
  rm -f "$WORK/attack.json"
  if [[ $kind != - ]]; then
    local claim=(); [[ $kind == impersonate ]] && claim=(--claim "$CLAIM")
    ip netns exec "$X" "$ATTACKER" --target "192.0.2.2:$port" --responder-key "$KEY_B" \
      --kind "$kind" --rate "$rate" --secs "$((SECS + 2))" "${claim[@]}" --json \
      >"$WORK/attack.json" 2>"$WORK/attack.err" &
    apid=$!
    sleep 0.5
  fi
  c0=$(ticks "$PID_B"); t0=$(now)
  mbit=$(stream "$OVERLAY_B")
  c1=$(ticks "$PID_B"); t1=$(now)
  if [[ $apid != - ]]; then
    wait "$apid" || { log "meshd-attacker failed:"; cat "$WORK/attack.err" >&2; exit 1; }
    read -r sent cookies < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))
print(round(s["achieved_rate"]), round(s["cookie_replies"]/s["secs"]))' "$WORK/attack.json")
  fi
  d1=$(drops); w1=$(now)
  cpu=$(python3 -c "print(f'{($c1-$c0)/$CLK/($t1-$t0)*100:.0f}')")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$CUR" "$round" "$label" "$mbit" "$cpu" \
    "$(steal_pct "$s0" "$(cpu_stat)")" "$(python3 -c "print($w1-$w0)")" "$d0" "$d1" "$sent $cookies" \
    >>"$WORK/results.tsv"
  log "  $CUR round $round  $label: $mbit Mbit/s, b CPU $cpu%, attacker $sent/s, cookie replies $cookies/s"
}

: >"$WORK/results.tsv"
for CUR in "${IMPLS[@]}"; do
  case $CUR in
    meshd)
      start_meshd meshd
      PID_B=${MPIDS[1]}; PORT=51820; OVERLAY_B=10.100.0.2
      KEY_B=$("$MESHD" pubkey <"$WORK/b.key"); CLAIM=$("$MESHD" pubkey <"$WORK/a.key");;
    wireguard-go)
      userspace_wg wg "$WGA" "$WGB" 51821 10.100.1
      read -r _ PID_B <<<"$PIDS_wg"; PORT=51821; OVERLAY_B=10.100.1.2
      KEY_B=$(wg pubkey <"$WORK/wg-b.key"); CLAIM=$(wg pubkey <"$WORK/wg-a.key");;
  esac
  for round in $(seq "$ROUNDS"); do
    n=${#FLOODS[@]}; off=$(((round - 1) % n))
    for f in "${FLOODS[@]:off}" "${FLOODS[@]:0:off}"; do measure "$round" "$f"; done
  done
  case $CUR in
    meshd) stop_meshd;;
    wireguard-go) stop_pids $PIDS_wg;;
  esac
done

# --- the tables -----------------------------------------------------------------------------
echo "# meshd flood bench: $(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) cores," \
  "SECS=$SECS, ROUNDS=$ROUNDS, meshd $MESHD"
echo
echo "command: $CMDLINE (MAC2_RATES=\"$MAC2_RATES\" FLOOD_RATE=$FLOOD_RATE)"
labels=(); for f in "${FLOODS[@]}"; do labels+=("${f%%|*}"); done
python3 - "$WORK/results.tsv" "${#IMPLS[@]}" "${IMPLS[@]}" "${labels[@]}" <<'PY'
import statistics, sys
path, n = sys.argv[1], int(sys.argv[2])
impls, labels = sys.argv[3:3 + n], sys.argv[3 + n:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
def runs(impl, label):
    return [r for r in rows if r[0] == impl and r[2] == label]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def num(s):
    return None if s in ("-", "") else float(s)
def counters(s):
    return {k: float(v) for k, v in (p.split("=") for p in s.split())}
def drops(r):  # reason -> increase per second over the flood
    d0, d1, secs = counters(r[7]), counters(r[8]), float(r[6])
    return {k: (v - d0.get(k, 0)) / secs for k, v in d1.items() if v - d0.get(k, 0) > 0}
for impl in impls:
    name = "meshd" if impl == "meshd" else "Debian's wireguard-go"
    print(f"\n## {name}\n")
    print("| flood | Mbit/s | runs | % of none | % of closed-port | >= 90% of closed-port "
          "| b CPU % of a core | b drops/s by reason | attacker sent/s | cookie replies/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = med(float(r[3]) for r in runs(impl, "none"))
    closed = med(float(r[3]) for r in runs(impl, "closed-port"))
    for label in labels:
        rs = runs(impl, label)
        if not rs:
            continue
        t = med(float(r[3]) for r in rs)
        cpu = med(float(r[4]) for r in rs)
        att = [r[9].split() for r in rs]
        sent, cookies = med(num(a[0]) for a in att), med(num(a[1]) for a in att)
        rates = {k: med(drops(r).get(k, 0) for r in rs) for k in {k for r in rs for k in drops(r)}}
        dr = ", ".join(f"{k} {v:.0f}" for k, v in sorted(rates.items()) if v >= 0.5) or "-"
        pn = f"{t / base * 100:.0f}%" if base else "-"
        pc = f"{t / closed * 100:.0f}%" if closed else "-"
        met = "-" if label in ("none", "closed-port") or not closed else ("yes" if t >= 0.9 * closed else "**no**")
        f = lambda x: "-" if x is None else f"{x:.0f}"
        print(f"| {label} | {t:.0f} | {','.join(r[3] for r in rs)} | {pn} | {pc} | {met} | {f(cpu)} "
              f"| {dr} | {f(sent)} | {f(cookies)} |")
    steal = [float(r[5]) for r in rows if r[0] == impl]
    print(f"\nCPU steal while measured: median {statistics.median(steal):.1f}%, max {max(steal):.1f}%")
PY
