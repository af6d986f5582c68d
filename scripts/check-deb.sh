#!/usr/bin/env bash
# Builds the .deb (scripts/deb.sh) and checks that it holds what it should: exactly the
# expected files with their modes, the control fields, maintainer scripts that parse, a
# binary that runs, a unit rated 2.0 or lower, and an example mesh.yaml that validates.
# Installs nothing: everything is checked in an extracted copy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

deb=$(bash scripts/deb.sh)
fail() { echo "check-deb: $*" >&2; exit 1; }

expected="-rwxr-xr-x ./usr/bin/meshd
-rw-r--r-- ./usr/lib/systemd/system/meshd.service
-rw-r--r-- ./usr/lib/sysusers.d/meshd.conf
-rw-r--r-- ./usr/share/doc/meshd/README.md
-rw-r--r-- ./usr/share/doc/meshd/copyright
-rw-r--r-- ./usr/share/meshd/alerts.yml
-rw-r--r-- ./usr/share/meshd/grafana-dashboard.json
-rw-r--r-- ./usr/share/meshd/mesh.example.yaml"
for doc in docs/*.md; do expected+=$'\n'"-rw-r--r-- ./usr/share/doc/meshd/$doc"; done
expected=$(sort <<<"$expected")
files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $1, $6}' | sort)
[[ $files == "$expected" ]] || fail "files differ:
$(diff <(echo "$expected") <(echo "$files") || true)"
owners=$(dpkg-deb -c "$deb" | awk '{print $2}' | sort -u)
[[ $owners == root/root ]] || fail "files not all owned by root: $owners"

for field in Package:meshd Architecture:"$(dpkg --print-architecture)" Section:net; do
  [[ $(dpkg-deb -f "$deb" "${field%%:*}") == "${field#*:}" ]] || fail "control ${field%%:*} is not ${field#*:}"
done
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libc6 nftables iproute2 netbase procps; do grep -q "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"; done
[[ $(dpkg-deb -f "$deb" Version) == "$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)" ]] \
  || fail "Version is not Cargo.toml's"

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/root"
dpkg-deb -e "$deb" "$work/control"
[[ ! -e $work/control/conffiles ]] || fail "conffiles: $(cat "$work/control/conffiles") (mesh.yaml is postinst's)"
for s in postinst prerm postrm; do
  [[ -x $work/control/$s ]] || fail "$s is not executable"
  sh -n "$work/control/$s" || fail "$s does not parse"
done
grep -q '^u meshd ' "$work/root/usr/lib/sysusers.d/meshd.conf" || fail "sysusers.d has no meshd user"
unit=$work/root/usr/lib/systemd/system/meshd.service
grep -qx 'User=meshd' "$unit" || fail "the unit does not run as meshd"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || fail "the unit does not reload with SIGHUP"
"$work/root/usr/bin/meshd" --version | grep -q '^meshd ' || fail "the packaged binary does not run"
score=$(bash scripts/exposure.sh "$unit") || fail "the packaged unit's exposure is above 2.0"
"$work/root/usr/bin/meshd" check --config "$work/root/usr/share/meshd/mesh.example.yaml" --node db1 >/dev/null \
  || fail "the packaged mesh.yaml does not validate"
echo "check-deb: $deb ok ($(du -h "$deb" | cut -f1), exposure $score)"
