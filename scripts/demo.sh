#!/usr/bin/env bash
# See meshd work: a four-node mesh on one machine, each node in its own network namespace on a
# shared bridge. Everything happens inside namespaces this script creates (addresses from
# 192.0.2.0/24 and 10.100.0.0/24 only); the machine's own network is never touched, and
# everything is removed on exit, whatever happens.
#
#   db1      10.100.0.1   the database
#   app1     10.100.0.2   may open tcp/3306 and ping db1
#   bastion  10.100.0.3   may open tcp/22 and ping every node
#   outsider 10.100.0.4   in the mesh file, but no rule of its own
#
# It shows the tunnel, the segmentation by peering, and each node's own firewall (table
# inet meshd): what the policy allows connects, everything else is dropped.
#
# Needs root. Usage: scripts/demo.sh   (MESHD_BIN=PATH uses that binary instead of building one)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/netns.sh
. scripts/lib/netns.sh

if [[ $EUID -ne 0 ]]; then
    echo "demo.sh needs root (it creates network namespaces)" >&2
    exit 1
fi

if [[ -t 1 ]]; then
    B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' N=$'\033[0m'
else
    B='' G='' R='' N=''
fi
section() { printf '\n%s==== %s ====%s\n' "$B" "$*" "$N"; }
show() { printf '%s$ %s%s\n' "$B" "$*" "$N"; }
failures=0
ok() { printf '%s  ok:%s %s\n' "$G" "$N" "$*"; }
bad() {
    printf '%s  UNEXPECTED:%s %s\n' "$R" "$N" "$*"
    failures=$((failures + 1))
}

nodes=(db1 app1 bastion outsider)
declare -A num=([db1]=1 [app1]=2 [bastion]=3 [outsider]=4)
prefix="mdt-demo$$"
ns() { echo "$prefix-$1"; }
switch="$prefix-sw"

work=$(mktemp -d /tmp/meshd-demo.XXXXXX)
declare -A pid=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # The nodes still running, then anything else in our namespaces (iperf3 servers).
    netns_cleanup ${pid[@]+"${pid[@]}"}
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section "Setup and build"
bash scripts/setup.sh
if [[ -n ${MESHD_BIN:-} ]]; then
    meshd=$(realpath "$MESHD_BIN")
    echo "using MESHD_BIN=$meshd"
else
    show cargo build --release -p meshd
    cargo build --release -p meshd
    meshd=$(realpath "${CARGO_TARGET_DIR:-target}/release/meshd")
fi

section "Four hosts on one switch (network namespaces)"
netns_add "$switch"
netns_bridge "$switch" br0
for n in "${nodes[@]}"; do
    netns_add "$(ns "$n")"
    netns_bridge_port "$switch" br0 "$n" "$(ns "$n")" eth0 "192.0.2.${num[$n]}/24"
    printf '  %-9s namespace %-22s underlay 192.0.2.%s  overlay 10.100.0.%s\n' \
        "$n" "$(ns "$n")" "${num[$n]}" "${num[$n]}"
done

section "Keys (meshd genkey, umask 077)"
for n in "${nodes[@]}"; do
    (umask 077 && "$meshd" genkey >"$work/$n.key")
    "$meshd" pubkey <"$work/$n.key" >"$work/$n.pub"
    printf '  %-9s %s\n' "$n" "$(cat "$work/$n.pub")"
done

section "One mesh.yaml for every node"
{
    cat <<EOF
interface:
  name: meshd0
  listen_port: 51820
  mtu: 1420
  metrics: 127.0.0.1:9586   # each node's own loopback (its namespace)
  metrics_detail: peer      # a series per peer for every counter: this mesh has four nodes
admin:
  ssh_from: [192.0.2.10/32]
  icmp_rate: 5/second
nodes:
EOF
    for n in "${nodes[@]}"; do
        cat <<EOF
  - name: $n
    public_key: "$(cat "$work/$n.pub")"
    address: 10.100.0.${num[$n]}/24
    endpoint: "192.0.2.${num[$n]}:51820"
EOF
    done
    cat <<'EOF'
policy:
  - from: app1
    to: db1
    allow: [tcp/3306, icmp]
  - from: bastion
    to: "*"
    allow: [tcp/22, icmp]
EOF
} >"$work/mesh.yaml"
cat "$work/mesh.yaml"

section "meshd check (as db1)"
show meshd check --config mesh.yaml --private-key db1.key
"$meshd" check --config "$work/mesh.yaml" --private-key "$work/db1.key"

section "Start the four nodes"
for n in "${nodes[@]}"; do
    # Each node gets a private /run (tmpfs in its own mount namespace) so that the nodes' control
    # and UAPI sockets, all named after meshd0, do not collide. `exec` keeps the PID meshd's own.
    MESHD_LOG=info ip netns exec "$(ns "$n")" \
        unshare --mount --propagation private \
        sh -c 'mount -t tmpfs -o mode=0755 mdt-run /run && exec "$0" "$@"' \
        "$meshd" run --config "$work/mesh.yaml" --private-key "$work/$n.key" \
        </dev/null >"$work/$n.log" 2>&1 &
    pid[$n]=$!
done
for n in "${nodes[@]}"; do
    for _ in $(seq 200); do
        grep -qw ready "$work/$n.log" && break
        if ! kill -0 "${pid[$n]}" 2>/dev/null; then
            echo "meshd $n exited before it was ready; its log:" >&2
            cat "$work/$n.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    if ! grep -qw ready "$work/$n.log"; then
        echo "meshd $n not ready after 20 s; its log:" >&2
        cat "$work/$n.log" >&2
        exit 1
    fi
    printf '  %-9s pid %-7s %s\n' "$n" "${pid[$n]}" "$(grep -w ready "$work/$n.log" | tail -1)"
done

section "The tunnel: app1 -> db1 over the overlay"
show "ip netns exec app1 ping -c 3 10.100.0.1"
if ip netns exec "$(ns app1)" ping -n -c 3 -i 0.3 -w 10 10.100.0.1; then
    ok "app1 reaches db1 through the tunnel"
else
    bad "app1 cannot ping db1"
fi
show "ip netns exec db1 iperf3 -s -1 -p 3306 & ip netns exec app1 iperf3 -c 10.100.0.1 -p 3306 -t 3"
ip netns exec "$(ns db1)" iperf3 -s -1 -p 3306 >/dev/null 2>&1 &
iperf_server=$!
sleep 0.5
if ip netns exec "$(ns app1)" iperf3 -c 10.100.0.1 -p 3306 -t 3 -f m --connect-timeout 5000 \
    >"$work/iperf.txt" 2>&1; then
    grep -E 'sender|receiver' "$work/iperf.txt" || cat "$work/iperf.txt"
    ok "tcp/3306 app1 -> db1, encrypted by meshd"
else
    cat "$work/iperf.txt"
    bad "the TCP transfer app1 -> db1 failed"
fi
# The firewall section's listener takes tcp/3306 on db1: the server must be gone first.
kill "$iperf_server" 2>/dev/null || true
wait "$iperf_server" 2>/dev/null || true
section "Segmentation: outsider has no rule with db1"
show "ip netns exec outsider ping -c 3 -W 1 10.100.0.1"
if ip netns exec "$(ns outsider)" ping -n -c 3 -i 0.3 -W 1 10.100.0.1; then
    bad "outsider reached db1"
else
    ok "outsider cannot reach db1"
fi
show "meshd check --config mesh.yaml --private-key outsider.key"
"$meshd" check --config "$work/mesh.yaml" --private-key "$work/outsider.key" || true
show "meshd check --config mesh.yaml --private-key db1.key | grep outsider"
if "$meshd" check --config "$work/mesh.yaml" --private-key "$work/db1.key" | grep -q outsider; then
    bad "db1 lists outsider"
else
    ok "db1 has no peer for outsider: no handshake with it is even possible"
fi
echo
echo "  app1 and bastion are peers (bastion -> \"*\"), so the tunnel between them exists."
echo "  Which ports each side may open is enforced by each node's own nftables table"
echo "  (next section), not by peering."
show "ip netns exec bastion ping -c 2 10.100.0.1   # bastion -> db1: icmp allowed"
if ip netns exec "$(ns bastion)" ping -n -c 2 -i 0.3 -w 10 10.100.0.1 >/dev/null; then
    ok "bastion reaches db1"
else
    bad "bastion cannot ping db1"
fi

section "The firewall: each node's own nftables table (inet meshd)"
echo "  Every node installed table inet meshd before its tunnel came up: input policy drop,"
echo "  SSH only from admin.ssh_from, the WireGuard port, ICMP under icmp_rate, and chain"
echo "  mesh_in, which admits from the mesh only what a policy rule ending at this node allows."
show "meshd firewall --config mesh.yaml --private-key db1.key | head -40"
ip netns exec "$(ns db1)" "$meshd" firewall --config "$work/mesh.yaml" --private-key "$work/db1.key" \
    >"$work/db1.nft"
head -40 "$work/db1.nft"
echo "  ... ($(wc -l <"$work/db1.nft") lines)"
if ip netns exec "$(ns db1)" nft list table inet meshd >/dev/null 2>&1; then
    ok "db1's namespace has table inet meshd"
else
    bad "no table inet meshd in db1's namespace"
fi

# Listeners that accept anything: only a firewall keeps a connection from being made.
listen() { # NODE PORT...: accept and close every connection, in the node's namespace; waits
    # until every port listens
    local n=$1 _
    shift
    ip netns exec "$(ns "$n")" python3 -c '
import socket, sys, threading
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        s.accept()[0].close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
threading.Event().wait()
' "$@" >/dev/null 2>&1 &
    listeners+=("$!")
    for _ in $(seq 50); do listening "$n" "$@" && return 0; sleep 0.1; done
    bad "$n: no listener on tcp/$* within 5 s"
}
listening() { # NODE PORT...: true when every port has a listener in the node's namespace
    local n=$1 p
    shift
    for p; do ip netns exec "$(ns "$n")" ss -Hltn "sport = :$p" | grep -q . || return 1; done
}
listeners=()
listen db1 3306 22
listen app1 3306 22 8080
# connects FROM IP PORT: true when the TCP handshake completes within 2 s.
connects() {
    ip netns exec "$(ns "$1")" timeout 2 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null
}
expect() { # allowed|dropped FROM TO-NAME IP PORT
    local want=$1 from=$2 to=$3 addr=$4 port=$5
    show "ip netns exec $from bash -c '</dev/tcp/$addr/$port'   # $from -> $to tcp/$port"
    if connects "$from" "$addr" "$port"; then
        if [[ $want == allowed ]]; then ok "$from -> $to tcp/$port connects"; else bad "$from -> $to tcp/$port connected"; fi
    else
        if [[ $want == dropped ]]; then ok "$from -> $to tcp/$port dropped (no answer in 2 s)"; else bad "$from -> $to tcp/$port did not connect"; fi
    fi
}
expect allowed app1 db1 10.100.0.1 3306
expect dropped db1 app1 10.100.0.2 3306
expect dropped db1 app1 10.100.0.2 22
expect dropped app1 db1 10.100.0.1 22
expect allowed bastion db1 10.100.0.1 22
expect dropped bastion db1 10.100.0.1 3306
expect allowed bastion app1 10.100.0.2 22
echo "  From the underlay (outsider's 192.0.2.4 is not in admin.ssh_from):"
expect dropped outsider db1 192.0.2.1 22
expect dropped outsider db1 192.0.2.1 3306
show "ip netns exec db1 nft list chain inet meshd mesh_in | grep counter   # drops are counted"
ip netns exec "$(ns db1)" nft list chain inet meshd mesh_in | grep counter || true
kill "${listeners[@]}" 2>/dev/null || true
wait "${listeners[@]}" 2>/dev/null || true

section "Status: meshd peers, meshd whois, wg show (on app1)"
# The nodes' sockets live in their private /run: enter the node's mount and network namespaces.
on_node() { local n=$1; shift; nsenter -t "${pid[$n]}" -m -n -- "$@"; }
show "meshd peers"
on_node app1 "$meshd" peers || bad "meshd peers failed"
show "meshd whois 10.100.0.1"
on_node app1 "$meshd" whois 10.100.0.1 || bad "meshd whois failed"
show "wg show meshd0   # Debian's wireguard-tools, over the WireGuard UAPI socket"
if on_node app1 wg show meshd0; then
    ok "wg show works against meshd"
else
    bad "wg show meshd0 failed"
fi

section "Metrics: GET /metrics on app1 (127.0.0.1:9586 in its namespace)"
scrape() {
    ip netns exec "$(ns "$1")" bash -c \
        'exec 3<>/dev/tcp/127.0.0.1/9586; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3'
}
scrape app1 >"$work/metrics.txt" || bad "no metrics from app1"
show "GET http://127.0.0.1:9586/metrics (in app1's namespace), the per-peer series"
grep -E '^meshd_(payload|wire)_bytes_total\{direction="tx",peer="db1"\}|^meshd_handshakes_total\{peer="db1"|^meshd_dropped_packets_total\{reason="(no_route|allowed_ips|decrypt|malformed)"\}|^meshd_firewall_dropped_packets_total' \
    "$work/metrics.txt" | sed 's/^/  /'
awk '/^meshd_payload_bytes_total\{direction="tx",peer="db1"\}/ {p=$2}
     /^meshd_wire_bytes_total\{direction="tx",peer="db1"\}/ {w=$2}
     END { if (p > 0) printf "  encryption overhead app1 -> db1, live: wire / payload - 1 = %.2f%%\n", (w / p - 1) * 100 }' \
    "$work/metrics.txt"
if grep -q '^meshd_payload_bytes_total{direction="tx",peer="db1"}' "$work/metrics.txt"; then
    ok "per-peer payload and wire bytes exported"
else
    bad "no per-peer byte counters in the metrics"
fi

section "Reload: let outsider reach db1, without a restart"
echo "  One more policy rule in mesh.yaml, then every node re-reads it (systemctl reload"
echo "  meshd on a server). Each applies only the difference: db1 and outsider become peers,"
echo "  every other peer keeps its session, the firewall is replaced in one transaction."
printf '  - from: outsider\n    to: db1\n    allow: [icmp]\n' >>"$work/mesh.yaml"
show "tail -3 mesh.yaml"
tail -3 "$work/mesh.yaml"
for n in "${nodes[@]}"; do
    show "meshd reload   # on $n"
    on_node "$n" "$meshd" reload || bad "meshd reload failed on $n"
done
show "ip netns exec outsider ping -c 3 10.100.0.1"
if ip netns exec "$(ns outsider)" ping -n -c 3 -i 0.3 -w 10 10.100.0.1; then
    ok "outsider reaches db1 after the reload"
else
    bad "outsider still cannot reach db1 after the reload"
fi
handshakes() { awk '/^meshd_handshakes_total\{peer="db1"/ {s += $2} END {print s + 0}'; }
before=$(handshakes <"$work/metrics.txt")
after=$(scrape app1 | handshakes)
if [[ $after == "$before" ]]; then
    ok "app1 and db1 kept their session through the reload ($after handshake(s), as before)"
else
    bad "app1 and db1 did a new handshake on reload ($before -> $after)"
fi

section "Stop the nodes (SIGTERM) and read their counters"
for n in "${nodes[@]}"; do
    kill -TERM "${pid[$n]}"
done
for n in "${nodes[@]}"; do
    rc=0
    wait "${pid[$n]}" || rc=$?
    unset 'pid[$n]'
    printf '  %-9s exit %s  %s\n' "$n" "$rc" "$(grep -w stopped "$work/$n.log" | tail -1)"
    if [[ $rc -ne 0 ]]; then bad "meshd $n exited with $rc"; fi
done

section "Done"
if ((failures)); then
    echo "$failures unexpected result(s); the logs were:"
    for n in "${nodes[@]}"; do
        echo "--- $n ---"
        cat "$work/$n.log"
    done
    exit 1
fi
echo "All as expected. Cleaning up the namespaces."
