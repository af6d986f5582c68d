#!/usr/bin/env bash
# Fleet scale: one node (n000000) of a generated N-node mesh whose policy lets every node reach
# every other on a few ports, run in a namespace of its own; the other nodes' endpoints
# (198.51.100.0/24) are unrouted there, so nothing leaves it. For each N, one row:
#   check, firewall   `meshd check` and `meshd firewall` (build and print the ruleset), seconds
#   fw apply          nft loading that ruleset (`meshd firewall --json`) into the namespace
#   ready             `meshd run` started to its `ready` line, seconds
#   RSS idle          2 s after ready, MB; then after reloads 1 and 2, the last of $RELOADS
#                     (default 3) and the most after any
#   reload            `meshd reload` after one rule's ports changed (median of the 3), seconds
#   series, scrape    metrics samples in one scrape, its size and time
#   peers, wg show    `meshd peers` (the control socket) and `wg show` (the UAPI), seconds
#                     (median of 5)
# and, below, each row's figures over the previous row's (the work's growth against N's).
#
#   sudo benches/scale.sh                    env: NODES (default "1000 5000 10000 20000"),
#                                            MESHD_BIN (default target/release/meshd)
# Everything runs inside a namespace this script creates and removes.
set -euo pipefail
TAG=mds$$
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
NODES=${NODES:-1000 5000 10000 20000}
RELOADS=${RELOADS:-3}
((RELOADS >= 2)) || { echo "RELOADS: at least 2" >&2; exit 2; }
METRICS=127.0.0.1:9586
bench_need python3 curl /usr/bin/time nsenter nft wg
NS=$TAG-n
PID=
bench_cleanup_extra() { # meshd is stopped by now; take away the table it leaves
  ip netns exec "$NS" "$MESHD" firewall --remove 2>/dev/null || true
}

mesh() { # mesh N PORT: the mesh, n000000's key in $WORK/n.key, PORT in the third rule
  python3 - "$1" "$2" "$("$MESHD" pubkey <"$WORK/n.key")" <<'PY'
import base64, os, sys
n, port, me = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = ["interface:", '  metrics: "127.0.0.1:9586"', "admin:", "  ssh_from: [192.0.2.10/32]",
       "nodes:"]
for i in range(n):
    key = me if i == 0 else base64.b64encode(os.urandom(32)).decode()
    host = i + 1
    endpoint = "192.0.2.1:51820" if i == 0 else f"198.51.100.{i % 250 + 1}:{51820 + i // 250}"
    out += [f"  - name: n{i:06d}", f'    public_key: "{key}"',
            f"    address: 10.100.{host >> 8}.{host & 255}/16", f'    endpoint: "{endpoint}"']
out += ["policy:",
        '  - {from: "*", to: "*", allow: [tcp/22, icmp]}',
        '  - {from: "*", to: "*", allow: [tcp/443]}',
        f'  - {{from: "*", to: "*", allow: [tcp/{port}]}}']
print("\n".join(out))
PY
}

secs() { # secs CMD...: wall seconds of CMD (its output discarded; it must succeed)
  local t0 t1
  t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}
in_node() { nsenter -t "$PID" -m -n "$@"; }  # meshd's network and private /run

"$MESHD" genkey >"$WORK/n.key"
netns_add "$NS"
netns_veth "$NS" veth0 192.0.2.1/24 "$NS" veth1 ""  # both ends inside: an underlay to nowhere

ROWS=()
for n in $NODES; do
  log "== $n nodes"
  mesh "$n" 8080 >"$WORK/mesh.yaml"
  check=$(secs "$MESHD" check --config "$WORK/mesh.yaml" --private-key "$WORK/n.key")
  firewall=$(secs "$MESHD" firewall --config "$WORK/mesh.yaml" --private-key "$WORK/n.key")
  "$MESHD" firewall --json --config "$WORK/mesh.yaml" --private-key "$WORK/n.key" >"$WORK/fw.json"
  apply=$(secs ip netns exec "$NS" nft -j -f "$WORK/fw.json")
  ip netns exec "$NS" "$MESHD" firewall --remove 2>/dev/null
  t0=$(date +%s.%N)
  ip netns exec "$NS" "${PRIVATE_RUN[@]}" "$MESHD" run --config "$WORK/mesh.yaml" \
    --private-key "$WORK/n.key" 2>"$WORK/n.log" &
  PID=$!
  until grep -q ' ready ' "$WORK/n.log"; do
    alive "$PID" || { tail -n 20 "$WORK/n.log" >&2; exit 1; }
    sleep 0.01
  done
  ready=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
  sleep 2
  idle=$(mem_mb VmRSS "$PID")
  reloads=() after=()
  for port in $(seq 8081 $((8080 + RELOADS))); do
    # The same mesh, only the third rule's port changed.
    sed "s|allow: \[tcp/80[0-9][0-9]\]|allow: [tcp/$port]|" "$WORK/mesh.yaml" >"$WORK/next.yaml"
    mv "$WORK/next.yaml" "$WORK/mesh.yaml"
    reloads+=("$(secs in_node "$MESHD" reload)")
    after+=("$(mem_mb VmRSS "$PID")")
  done
  [[ $(grep -c ' reloaded ' "$WORK/n.log") == "$RELOADS" ]] || { log "a reload failed"; tail -n 20 "$WORK/n.log" >&2; exit 1; }
  reload=$(median <<<"${reloads[*]}")
  t0=$(date +%s.%N)
  ip netns exec "$NS" curl -sf "http://$METRICS/metrics" >"$WORK/scrape.txt"
  scrape=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.3f}')")
  series=$(grep -vc '^#' "$WORK/scrape.txt")
  size=$(python3 -c "import os; print(f'{os.path.getsize(\"$WORK/scrape.txt\") / 1e6:.1f}')")
  runs=() wgs=()
  for _ in 1 2 3 4 5; do
    runs+=("$(secs in_node "$MESHD" peers)")
    wgs+=("$(secs in_node wg show meshd0)")
  done
  peers=$(median <<<"${runs[*]}")
  wgshow=$(median <<<"${wgs[*]}")
  stop_pids "$PID"; PID=
  ip netns exec "$NS" "$MESHD" firewall --remove 2>/dev/null || true
  most=$(tr ' ' '\n' <<<"${after[*]}" | sort -n | tail -n 1)
  ROWS+=("$n $check $firewall $apply $ready $idle ${after[0]} ${after[1]} ${after[-1]} $most $reload $series $size $scrape $peers $wgshow")
  log "   ${ROWS[-1]}"
done

echo "# meshd fleet scale: kernel $(uname -r), $(nproc) cores, meshd $MESHD"
echo
echo "command: benches/scale.sh (NODES=\"$NODES\" RELOADS=$RELOADS)"
echo
echo "| nodes | check s | firewall s | fw apply s | run to ready s | RSS idle MB | RSS after reloads 1, 2, last; most MB | reload s | series | scrape MB | scrape s | peers s | wg show s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do
  read -r n c f ap rd i a1 a2 a3 am rl se sz sc p w <<<"$r"
  echo "| $n | $c | $f | $ap | $rd | $i | $a1, $a2, $a3; $am | $rl | $se | $sz | $sc | $p | $w |"
done
echo
echo "Growth over the row before (nodes, then each figure):"
echo
echo "| nodes | check | firewall | fw apply | ready | RSS idle | reload | series | scrape | peers | wg show |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
prev=
for r in "${ROWS[@]}"; do
  if [[ -n $prev ]]; then
    python3 - "$prev" "$r" <<'PY'
import sys
a, b = (list(map(float, s.split())) for s in sys.argv[1:])
cols = [0, 1, 2, 3, 4, 5, 10, 11, 13, 14, 15]
ratio = lambda i: f"{b[i] / a[i]:.1f}x" if a[i] > 0 else "-"
print(f"| {int(a[0])} -> {int(b[0])} ({b[0] / a[0]:.1f}x) | " + " | ".join(ratio(i) for i in cols[1:]) + " |")
PY
  fi
  prev=$r
done
