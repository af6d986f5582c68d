#!/usr/bin/env bash
# The .deb under a real systemd: a Debian rootfs (debootstrap) with the package installed is
# booted with systemd-nspawn inside a network namespace of our own, and peers with a meshd
# in a second namespace. Checked: `systemctl enable --now meshd` brings the node up as the
# `meshd` user with only CAP_NET_ADMIN; the tunnel carries pings; `systemctl reload` applies
# a policy change (firewall replaced) and refuses a broken file (logged at priority err)
# while the node runs on; a killed meshd is restarted; `systemctl stop` stops it.
# Needs root, debootstrap and systemd-container (scripts/setup.sh), and a Debian mirror.
#
#   sudo scripts/systemd-smoke.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/netns.sh
. scripts/lib/netns.sh
[[ $EUID -eq 0 ]] || { echo "systemd-smoke.sh needs root" >&2; exit 1; }
for tool in debootstrap systemd-nspawn nsenter ip; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run scripts/setup.sh)" >&2; exit 1; }
done
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# The host's Debian release when it is Debian (the binary's glibc must be there), else bookworm.
SUITE=${SUITE:-$(. /etc/os-release && if [[ ${ID:-} == debian && -n ${VERSION_CODENAME:-} ]]; then echo "$VERSION_CODENAME"; else echo bookworm; fi)}

deb=$(bash scripts/deb.sh)
meshd=$PWD/target/release/meshd
work=$(mktemp -d /var/tmp/meshd-smoke.XXXXXX)
root=$work/root
tag=mds$$; NS1=$tag-node; NS2=$tag-peer
NSPAWN=; INIT=; PEER=
fails=0
log() { printf '%s\n' "$*" >&2; }
ok() { log "  ok: $*"; }
bad() { log "  FAIL: $*"; fails=$((fails + 1)); }
cleanup() {
  set +e
  if [[ -n $INIT ]]; then kill -s SIGRTMIN+4 "$INIT" 2>/dev/null; fi   # power the container off
  for _ in $(seq 50); do [[ -n $NSPAWN ]] && kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
  # The container's init dies with everything in its PID namespace.
  if [[ -n $INIT ]]; then kill -KILL "$INIT" 2>/dev/null; fi
  if [[ -n $NSPAWN ]]; then kill -KILL "$NSPAWN" 2>/dev/null; wait "$NSPAWN" 2>/dev/null; fi
  # The peer, then anything left in the namespaces; they go too.
  netns_cleanup ${PEER:+"$PEER"}
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "== debootstrap $SUITE (minbase) into $root"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,nftables,iproute2,netbase,procps,wireguard-tools \
  "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
cp "$deb" "$root/tmp/meshd.deb"
chroot "$root" dpkg -i /tmp/meshd.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; exit 1; }
chroot "$root" getent passwd meshd >/dev/null && ok "the package created the meshd user" || bad "no meshd user"
[[ -s $root/etc/meshd/mesh.yaml ]] && ok "the package created /etc/meshd/mesh.yaml from the example" || bad "no mesh.yaml"
[[ $(stat -c '%a %U' "$root/etc/meshd/private.key") == "600 root" ]] \
  && ok "the package created /etc/meshd/private.key (0600 root)" || bad "private.key missing or loose"

log "== namespaces: the container's ($NS1, 192.0.2.1) and a peer's ($NS2, 192.0.2.2)"
netns_add "$NS1" "$NS2"
netns_veth "$NS1" veth-node 192.0.2.1/24 "$NS2" veth-peer 192.0.2.2/24
(umask 077; "$meshd" genkey >"$work/peer.key")
cat >"$root/etc/meshd/mesh.yaml" <<YAML
interface: {name: meshd0, listen_port: 51820, metrics: 127.0.0.1:9586}
admin: {ssh_from: [192.0.2.10/32]}
nodes:
  - {name: node, public_key: "$("$meshd" pubkey <"$root/etc/meshd/private.key")", address: 10.100.0.1/24, endpoint: "192.0.2.1:51820"}
  - {name: peer, public_key: "$("$meshd" pubkey <"$work/peer.key")", address: 10.100.0.2/24, endpoint: "192.0.2.2:51820"}
policy:
  - {from: peer, to: node, allow: [icmp, tcp/8080]}
YAML
cp "$root/etc/meshd/mesh.yaml" "$work/mesh.yaml"
ip netns exec "$NS2" unshare --mount --propagation private \
  sh -c 'mount -t tmpfs -o mode=0755 mds-run /run && exec "$0" "$@"' \
  "$meshd" run --config "$work/mesh.yaml" --private-key "$work/peer.key" >"$work/peer.log" 2>&1 &
PEER=$!

log "== boot the container (systemd-nspawn -b) in $NS1"
systemd-nspawn -D "$root" --network-namespace-path="/run/netns/$NS1" --capability=CAP_NET_ADMIN \
  --register=no --keep-unit -M "$tag" -b --console=passive >"$work/nspawn.log" 2>&1 &
NSPAWN=$!
descends() { local p=$1; while [[ $p -gt 1 ]]; do [[ $p == "$2" ]] && return 0; p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0); done; return 1; }
for _ in $(seq 150); do
  for p in $(pgrep -x systemd || true); do descends "$p" "$NSPAWN" && INIT=$p; done
  [[ -n $INIT ]] && break; sleep 0.2
done
[[ -n $INIT ]] || { cat "$work/nspawn.log" >&2; exit 1; }
in_ct() { nsenter -t "$INIT" -a -- "$@"; }
# Polls a condition (a command) for up to 10 s; its status is the condition's last.
wait_for() { local _; for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done; "$@"; }
journal() { in_ct journalctl -u meshd -o cat "$@" 2>/dev/null || true; }
logged() { local pattern=$1; shift; grep -q "$pattern" <<<"$(journal "$@")"; }
state=
for _ in $(seq 120); do
  state=$(in_ct systemctl is-system-running 2>/dev/null || true)
  [[ $state == running || $state == degraded ]] && break; sleep 0.5
done
log "  container init $INIT, system $state"

log "== systemctl enable --now meshd"
in_ct systemctl enable --now meshd 2>&1 | sed 's/^/  /' >&2 || true
if [[ $(in_ct systemctl is-active meshd) == active ]]; then ok "meshd.service is active"
else bad "meshd.service is not active"; in_ct journalctl -u meshd -o short --no-pager 2>&1 | tail -n 20 | sed 's/^/    /' >&2; exit 1; fi
main=$(in_ct systemctl show meshd -p MainPID --value)
uid=$(in_ct awk '/^Uid:/ {print $2}' "/proc/$main/status")
caps=$(in_ct awk '/^CapEff:/ {print $2}' "/proc/$main/status")
[[ $uid == "$(chroot "$root" id -u meshd)" && $caps == 0000000000001000 ]] \
  && ok "runs as meshd (uid $uid) with CapEff $caps (CAP_NET_ADMIN only)" || bad "uid $uid, CapEff $caps"
replies=$(ip netns exec "$NS2" ping -c 5 -i 0.3 -W 2 10.100.0.1 | grep -c 'bytes from' || true)
((replies >= 4)) && ok "the peer pings the node over the tunnel ($replies/5)" || bad "$replies/5 pings over the tunnel"
# Light traffic: the data thread keeps to one CPU (interface.quiet_cpu), which the unit's
# system call filter must allow (sched_setaffinity is in @resources).
if (( $(nproc) > 1 )); then
  cpus=$(in_ct sh -c "for t in /proc/$main/task/*; do [ \"\$(cat \$t/comm)\" = meshd-data ] && awk '/^Cpus_allowed_list:/ {print \$2}' \$t/status; done; true")
  log_now=$(journal)
  placed=$(grep -c 'data thread placement: CPU' <<<"$log_now" || true)
  refused=$(grep 'placement off' <<<"$log_now" || true)
  [[ $cpus =~ ^[0-9]+$ && $placed -ge 1 && -z $refused ]] \
    && ok "the data thread keeps to CPU $cpus while traffic is light" \
    || bad "data thread on CPUs '$cpus' after pings; journal: ${refused:-no placement line}"
fi

log "== systemctl reload: tcp/9090 allowed too"
sed -i 's|allow: \[icmp, tcp/8080\]|allow: [icmp, tcp/8080, tcp/9090]|' "$root/etc/meshd/mesh.yaml"
in_ct systemctl reload meshd || bad "systemctl reload failed"
wait_for logged '^reloaded .*firewall=replaced' \
  && ok "journal: $(grep '^reloaded' <<<"$(journal)" | tail -n 1)" || bad "no 'reloaded ... firewall=replaced' line"
table=$(in_ct nft list table inet meshd)
grep -q 9090 <<<"$table" && ok "table inet meshd now admits tcp/9090" || bad "no tcp/9090 in the table"

log "== systemctl reload with a broken mesh.yaml"
cp "$root/etc/meshd/mesh.yaml" "$work/good.yaml"
echo 'nodes: [' >"$root/etc/meshd/mesh.yaml"
in_ct systemctl reload meshd || true
wait_for logged '^reload refused' -p err \
  && ok "journalctl -p err: $(grep '^reload refused' <<<"$(journal -p err)" | tail -n 1 | cut -c1-100)..." \
  || bad "no 'reload refused' at priority err"
cp "$work/good.yaml" "$root/etc/meshd/mesh.yaml"
[[ $(in_ct systemctl is-active meshd) == active ]] && ok "still active" || bad "not active after a refused reload"
replies=$(ip netns exec "$NS2" ping -c 3 -i 0.3 -W 2 10.100.0.1 | grep -c 'bytes from' || true)
((replies >= 2)) && ok "the tunnel still carries pings ($replies/3)" || bad "$replies/3 pings after the refused reload"

log "== kill -9 meshd: Restart=on-failure"
in_ct kill -9 "$main"
restarted() { [[ $(in_ct systemctl show meshd -p NRestarts --value) -ge 1 && $(in_ct systemctl is-active meshd) == active ]]; }
wait_for restarted && ok "restarted (NRestarts=$(in_ct systemctl show meshd -p NRestarts --value))" || bad "not restarted"

log "== systemctl stop meshd"
in_ct systemctl stop meshd
[[ $(in_ct systemctl is-active meshd || true) == inactive ]] && ok "stopped" || bad "not stopped"
log "== journalctl -u meshd (the service's own lines)"
grep ' meshd\[' <<<"$(in_ct journalctl -u meshd -o short --no-pager || true)" | sed 's/^/  /' >&2 || true

log "== dpkg --purge meshd (in the container)"
in_ct dpkg --purge meshd >"$work/purge.log" 2>&1 || { bad "dpkg --purge failed"; cat "$work/purge.log" >&2; }
in_ct nft list table inet meshd >/dev/null 2>&1 && bad "table inet meshd left after removal" || ok "removal took table inet meshd away"
[[ ! -e $root/etc/meshd ]] && ok "purge removed /etc/meshd" || bad "/etc/meshd left after purge: $(ls "$root/etc/meshd")"
if ((fails)); then log "systemd-smoke: $fails failure(s)"; exit 1; fi
log "systemd-smoke: all ok"
