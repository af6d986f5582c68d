# shellcheck shell=bash
# Network namespaces for the scripts and benches (sourced, not run). Every namespace made here
# is remembered, and netns_cleanup removes them all; nothing touches the host's own network.
#   netns_add NS...                       namespaces with loopback up
#   netns_del NS...                       delete some before the end (they are forgotten)
#   netns_veth NS1 DEV1 CIDR1 NS2 DEV2 CIDR2   a veth pair, both ends up (a CIDR may be "")
#   netns_bridge NS BR                    a bridge in NS, up, no forwarding delay
#   netns_bridge_port NS BR PORT PEER_NS DEV CIDR   a veth from bridge BR (end PORT) to PEER_NS
#   netns_alive PID                       running and not a zombie
#   netns_stop_pids PID...                SIGTERM, up to 10 s each to exit, then SIGKILL
#   netns_stop_all [PID...]               those PIDs, then whatever still runs in the namespaces
#   netns_del_all                         delete every namespace made here
#   netns_cleanup [PID...]                netns_stop_all, then netns_del_all (for an EXIT trap)

NETNS_CREATED=()

netns_add() {
  local ns
  for ns in "$@"; do
    ip netns add "$ns"
    NETNS_CREATED+=("$ns")
    ip -n "$ns" link set lo up
  done
}

netns_del() {
  local ns kept=() c
  for ns in "$@"; do ip netns del "$ns" 2>/dev/null || true; done
  for c in ${NETNS_CREATED[@]+"${NETNS_CREATED[@]}"}; do
    for ns in "$@"; do [[ $c == "$ns" ]] && continue 2; done
    kept+=("$c")
  done
  NETNS_CREATED=(${kept[@]+"${kept[@]}"})
}

netns_veth() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  if [[ -n $3 ]]; then ip -n "$1" addr add "$3" dev "$2"; fi
  if [[ -n $6 ]]; then ip -n "$4" addr add "$6" dev "$5"; fi
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

netns_bridge() {
  ip -n "$1" link add "$2" type bridge forward_delay 0
  ip -n "$1" link set "$2" up
}

netns_bridge_port() {
  ip -n "$1" link add "$3" type veth peer name "$5" netns "$4"
  ip -n "$1" link set "$3" master "$2" up
  ip -n "$4" link set "$5" up
  if [[ -n $6 ]]; then ip -n "$4" addr add "$6" dev "$5"; fi
}

# Running and not a zombie.
netns_alive() { [[ -e /proc/$1 ]] && [[ $(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) != Z ]]; }

netns_stop_pids() {
  local p i
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for i in $(seq 100); do netns_alive "$p" || break; sleep 0.1; done
    if netns_alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
  done
}

netns_stop_all() {
  local ns left=()
  netns_stop_pids "$@"
  # Whatever else still runs in our namespaces is ours too (an interrupted client, a server).
  for ns in ${NETNS_CREATED[@]+"${NETNS_CREATED[@]}"}; do
    left+=($(ip netns pids "$ns" 2>/dev/null || true))
  done
  netns_stop_pids ${left[@]+"${left[@]}"}
}

netns_del_all() {
  local ns
  for ns in ${NETNS_CREATED[@]+"${NETNS_CREATED[@]}"}; do ip netns del "$ns" 2>/dev/null || true; done
  NETNS_CREATED=()
}

netns_cleanup() {
  netns_stop_all "$@"
  netns_del_all
}
