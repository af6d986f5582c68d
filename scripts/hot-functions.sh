#!/usr/bin/env bash
# Finds the functions a lone packet runs through on meshd's data path, the list that
# crates/meshd/hot-functions.txt keeps: a meshd pair in two namespaces (benches/lib.sh), node
# a's meshd under callgrind, pinged from a to b ($PINGS pings, 10 ms apart) once the tunnel is
# up, so the handshake is not counted. Prints the functions of meshd's own binary that ran on
# a's data-path thread, hottest first (instructions, self cost), and how they differ from
# hot-functions.txt.
#   sudo scripts/hot-functions.sh          env: PINGS (default 200)
# After editing hot-functions.txt: scripts/hot-symbols.sh, rebuild, scripts/hot-symbols.sh --check.
# Callgrind counts instructions, not time: the list is the same on a busy machine.
set -euo pipefail
PINGS=${PINGS:-200}
TAG=mdh$$
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/../benches/lib.sh"
command -v callgrind_control >/dev/null || { log "missing valgrind (apt-get install valgrind)"; exit 1; }
bench_need valgrind callgrind_annotate callgrind_control ping
bench_underlay
bench_mesh off "[]" "[]"

ip netns exec "$B" "${PRIVATE_RUN[@]}" "$MESHD" run --config "$WORK/mesh.yaml" \
  --private-key "$WORK/b.key" 2>"$WORK/b.log" &
MPIDS+=($!)
ip netns exec "$A" "${PRIVATE_RUN[@]}" valgrind --tool=callgrind --separate-threads=yes \
  --instr-atstart=no --callgrind-out-file="$WORK/cg.out" "$MESHD" run \
  --config "$WORK/mesh.yaml" --private-key "$WORK/a.key" 2>"$WORK/a.log" &
MPIDS+=($!)
wait_ready 60 "callgrind"
up=
for _ in 1 2 3 4 5; do ip netns exec "$A" ping -c 1 -W 5 10.100.0.2 >/dev/null && { up=1; break; }; done
[[ $up ]] || { log "no handshake over meshd"; tail -n 20 "$WORK/a.log" "$WORK/b.log" >&2; exit 1; }
callgrind_control -i on "${MPIDS[1]}" >/dev/null
ip netns exec "$A" ping -q -c "$PINGS" -i 0.01 -W 2 10.100.0.2 >&2
callgrind_control -i off "${MPIDS[1]}" >/dev/null
stop_pids "${MPIDS[1]}" "${MPIDS[0]}"; MPIDS=()

# The data-path thread's file is the one that ran meshd::run::datapath::serve (its name is
# mangled there).
cg=$(grep -lE 'datapath(::|5)serve' "$WORK"/cg.out-* 2>/dev/null | head -n 1 || true)
[[ -n ${KEEP:-} ]] && cp "$WORK"/cg.out-* "$KEEP"/
[[ $cg ]] || { log "no callgrind output for the data-path thread"; ls "$WORK" >&2; exit 1; }
python3 - "$cg" "$MESHD" "$ROOT/crates/meshd/hot-functions.txt" <<'PY'
import re, subprocess, sys
out, binary, listed = sys.argv[1:4]
ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", out],
                     check=True, capture_output=True, text=True).stdout
# The names meshd's binary defines (demangled, without the hash), so that libc's and the
# vDSO's are left out: they are not ours to place.
ours = set()
for line in subprocess.run(["nm", "--defined-only", "-C", binary], check=True,
                           capture_output=True, text=True).stdout.splitlines():
    parts = line.split(None, 2)
    if len(parts) == 3 and parts[1] in "tT":
        ours.add(re.sub(r"::h[0-9a-f]{16}$", "", parts[2]))
found = []
for line in ann.splitlines():
    m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(?:\S*?:)?(.+?)(?: \[[^\]]*\])?$", line)
    if not m:
        continue
    name = re.sub(r"::h[0-9a-f]{16}$", "", m.group(2).strip())
    if name in ours and name not in found:
        found.append(name)
        print(f"{m.group(1):>12}  {name}")
have = [l.strip() for l in open(listed) if l.strip() and not l.startswith("#")]
for name in found:
    if name not in have:
        print(f"not in hot-functions.txt: {name}", file=sys.stderr)
for name in have:
    if name not in found:
        print(f"in hot-functions.txt, not run: {name}", file=sys.stderr)
PY
