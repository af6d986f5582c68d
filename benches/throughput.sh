#!/usr/bin/env bash
# End-to-end throughput: one TCP stream (iperf3, $SECS s) between two network namespaces over
# a veth pair, for the plain underlay, meshd and Debian's wireguard-go, alternating between
# them in each round so that machine noise hits all three alike. Prints medians and ratios.
# "meshd scraped" is meshd again while its metrics endpoint is scraped 10 times a second on
# both ends: what reading the counters costs the data path.
#
#   sudo benches/throughput.sh [ROUNDS]        (default 3 rounds of 10 s each)
#
# Everything runs inside namespaces this script creates and removes; nothing touches the
# host's own network.
set -euo pipefail
ROUNDS=${1:-3}
SECS=${SECS:-10}
TAG=mdb$$
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
bench_need iperf3 wireguard-go wg
WGA=wgb${$}a; WGB=wgb${$}b
bench_cleanup_extra() { rm -f /var/run/wireguard/{$WGA,$WGB}.sock; }
bench_underlay
# meshd: overlay 10.100.0.0/24 on udp/51820. Its firewall (default drop) also guards the
# other paths in these namespaces: `open` lets wireguard-go's port and iperf3 through.
bench_mesh 127.0.0.1:9586 "[udp/51821]" "[udp/51821, tcp/5201]"
start_meshd meshd

# wireguard-go: overlay 10.100.1.0/24 on udp/51821, MTU 1420 like meshd
wg genkey > "$WORK/wa.key"; wg genkey > "$WORK/wb.key"
ip netns exec $A wireguard-go -f $WGA >/dev/null 2>&1 & DAEMONS+=($!)
ip netns exec $B wireguard-go -f $WGB >/dev/null 2>&1 & DAEMONS+=($!)
for i in $(seq 50); do [ -S /var/run/wireguard/$WGA.sock ] && [ -S /var/run/wireguard/$WGB.sock ] && break; sleep 0.1; done
ip netns exec $A wg set $WGA private-key "$WORK/wa.key" listen-port 51821 peer "$(wg pubkey < "$WORK/wb.key")" endpoint 192.0.2.2:51821 allowed-ips 10.100.1.2/32
ip netns exec $B wg set $WGB private-key "$WORK/wb.key" listen-port 51821 peer "$(wg pubkey < "$WORK/wa.key")" endpoint 192.0.2.1:51821 allowed-ips 10.100.1.1/32
ip -n $A addr add 10.100.1.1/24 dev $WGA; ip -n $B addr add 10.100.1.2/24 dev $WGB
ip -n $A link set $WGA mtu 1420 up; ip -n $B link set $WGB mtu 1420 up

ip netns exec $B iperf3 -s -B 0.0.0.0 >/dev/null 2>&1 & DAEMONS+=($!)
sleep 1
for target in 192.0.2.2 10.100.0.2 10.100.1.2; do
  ip netns exec $A ping -c 2 -i 0.2 -W 2 $target >/dev/null || { echo "no path to $target" >&2; cat "$WORK"/*.log >&2; exit 1; }
done

SCRAPE='while :; do exec 3<>/dev/tcp/127.0.0.1/9586 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3 >/dev/null; exec 3<&-; sleep 0.1; done'
scraped() { # like tcp_mbit, while both nodes' metrics are scraped every 100 ms
  local s1 s2 v
  ip netns exec $A bash -c "$SCRAPE" & s1=$!
  ip netns exec $B bash -c "$SCRAPE" & s2=$!
  v=$(tcp_mbit "$1")
  kill $s1 $s2 2>/dev/null; wait $s1 $s2 2>/dev/null || true
  echo "$v"
}
declare -A R
for round in $(seq "$ROUNDS"); do
  for impl in plain meshd wireguard-go "meshd scraped"; do
    case $impl in plain) t=192.0.2.2;; meshd*) t=10.100.0.2;; wireguard-go) t=10.100.1.2;; esac
    if [ "$impl" = "meshd scraped" ]; then v=$(scraped $t); else v=$(tcp_mbit $t); fi
    R[$impl]="${R[$impl]:-} $v"
    echo "round $round  $impl: $v Mbit/s" >&2
  done
done

P=$(echo "${R[plain]}" | median); M=$(echo "${R[meshd]}" | median); W=$(echo "${R[wireguard-go]}" | median)
echo
echo "single TCP stream, iperf3 ${SECS}s, median of $ROUNDS rounds, $(nproc) cores, $(uname -r)"
echo
echo "| path | Mbit/s (median) | runs | vs plain | vs wireguard-go |"
echo "|---|---|---|---|---|"
for impl in plain meshd wireguard-go "meshd scraped"; do
  v=$(echo "${R[$impl]}" | median)
  printf '| %s | %s | %s | %s | %s |\n' "$impl" "$v" "$(echo ${R[$impl]} | tr ' ' ',')" \
    "$(python3 -c "print(f'{$v/$P:.3f}')")" "$(python3 -c "print(f'{$v/$W:.2f}x')")"
done
S=$(echo "${R[meshd scraped]}" | median)
echo
echo "meshd scraped every 100 ms / meshd unscraped: $(python3 -c "print(f'{$S/$M:.3f}')")"
