#!/usr/bin/env bash
# Builds the Debian package: target/debian/meshd_<version>_<arch>.deb, with dpkg-deb alone
# (no cargo-deb, no debhelper). Contents:
#   /usr/bin/meshd                             the release binary, debug info stripped
#   /usr/lib/systemd/system/meshd.service      systemd/meshd.service
#   /usr/lib/sysusers.d/meshd.conf             the `meshd` system user
#   /usr/share/meshd/mesh.example.yaml         config/mesh.example.yaml (postinst copies it
#                                              to /etc/meshd/mesh.yaml if there is none)
#   /usr/share/meshd/grafana-dashboard.json
#   /usr/share/meshd/alerts.yml                Prometheus alerting rules (config/alerts.yml)
#   /usr/share/doc/meshd/                      README.md, copyright, docs/*.md (README's links)
# and the maintainer scripts in packaging/deb (user, mesh.yaml, key, daemon-reload; nothing
# started).
#
#   bash scripts/deb.sh          prints the path of the .deb on stdout
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
[[ -n $version ]] || { echo "deb.sh: no version in Cargo.toml" >&2; exit 1; }

cargo build --release -p meshd >&2

out=target/debian
stage=$out/meshd_${version}_${arch}
rm -rf "$stage"
install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/lib/systemd/system" \
    "$stage/usr/lib/sysusers.d" "$stage/usr/share/doc/meshd/docs" \
    "$stage/usr/share/meshd"
install -m 0755 target/release/meshd "$stage/usr/bin/meshd"
if command -v strip >/dev/null; then strip --strip-debug "$stage/usr/bin/meshd"; fi
install -m 0644 systemd/meshd.service "$stage/usr/lib/systemd/system/meshd.service"
install -m 0644 packaging/sysusers.d-meshd.conf "$stage/usr/lib/sysusers.d/meshd.conf"
install -m 0644 config/mesh.example.yaml "$stage/usr/share/meshd/mesh.example.yaml"
install -m 0644 README.md "$stage/usr/share/doc/meshd/"
install -m 0644 docs/*.md "$stage/usr/share/doc/meshd/docs/"
install -m 0644 config/grafana-dashboard.json "$stage/usr/share/meshd/"
install -m 0644 config/alerts.yml "$stage/usr/share/meshd/"
cat > "$stage/usr/share/doc/meshd/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: meshd

Files: *
License: MIT OR Apache-2.0
COPYRIGHT
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
# The newest glibc symbol version the binary needs is the libc6 it depends on.
glibc=$(objdump -T "$stage/usr/bin/meshd" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
[[ -n $glibc ]] || { echo "deb.sh: cannot read the glibc version meshd needs" >&2; exit 1; }
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@GLIBC@/$glibc/" \
    packaging/deb/control.in > "$stage/DEBIAN/control"

dpkg-deb --root-owner-group -Zxz --build "$stage" "$out/meshd_${version}_${arch}.deb" >&2
echo "$out/meshd_${version}_${arch}.deb"
