#!/usr/bin/env bash
# Installs what meshd's end-to-end tests and demo need on Debian, and checks /dev/net/tun.
# Idempotent and quiet when everything is already there. Installing needs root.
set -euo pipefail

packages=(iproute2 nftables wireguard-tools wireguard-go iperf3 iputils-ping tcpdump procps util-linux systemd binutils debootstrap systemd-container prometheus)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    if [[ $EUID -ne 0 ]]; then
        echo "setup.sh: missing packages: ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "setup.sh: missing packages: ${missing[*]}, and no apt-get to install them" >&2
        exit 1
    fi
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt may be running (e.g. at boot): wait for its lock rather than fail.
    apt-get -qq -o DPkg::Lock::Timeout=600 update
    apt-get -qq -y -o DPkg::Lock::Timeout=600 install --no-install-recommends "${missing[@]}" >/dev/null
fi

# The TUN device node: the daemon and wireguard-go both open it.
if [[ ! -c /dev/net/tun ]]; then
    if [[ $EUID -eq 0 ]]; then
        modprobe tun 2>/dev/null || true
        if [[ ! -c /dev/net/tun ]]; then
            mkdir -p /dev/net
            mknod -m 0666 /dev/net/tun c 10 200
        fi
    fi
    if [[ ! -c /dev/net/tun ]]; then
        echo "setup.sh: /dev/net/tun is missing (needs the tun module and root)" >&2
        exit 1
    fi
fi
# Opening the node is what its mode allows; what a process may do with the device is what its
# CAP_NET_ADMIN allows. Debian's udev makes it 0666 (50-udev-default.rules); a machine that
# made it without udev may have left it 0600, and then the `meshd` user of the service and of
# the unprivileged tests cannot open it at all.
if [[ $(stat -c %a /dev/net/tun) != 666 ]]; then
    if [[ $EUID -eq 0 ]]; then
        echo "setup.sh: /dev/net/tun was mode $(stat -c %a /dev/net/tun); making it 0666, as udev does"
        chmod 0666 /dev/net/tun
    else
        echo "setup.sh: /dev/net/tun is mode $(stat -c %a /dev/net/tun), not 0666: the service's unprivileged user cannot open it" >&2
    fi
fi

for tool in ip nft wg wireguard-go ping unshare nsenter sysctl systemd-analyze promtool; do
    if ! command -v "$tool" >/dev/null; then
        echo "setup.sh: \`$tool\` not found after installing packages" >&2
        exit 1
    fi
done
