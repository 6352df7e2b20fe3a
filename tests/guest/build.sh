#!/usr/bin/env bash
# Builds the real Linux guest that tests/guest_move.rs boots with systemd-nspawn: a Debian
# tree from debootstrap with systemd-networkd and netplan.io, configured as the cirruslabs
# Ubuntu image ships its network (one netplan file, ethernets ID `all` matching `en*`, DHCP),
# plus the image's `admin` user with passwordless sudo.
#
# Usage: tests/guest/build.sh [CACHE_DIR]   (default target/guest-cache)
# Writes CACHE_DIR/rootfs and CACHE_DIR/stamp. Skips the build when the stamp matches this
# script (so re-runs cost nothing); the stamp is written last, so a broken build is redone.
# Needs root and the network: the Debian mirror apt itself uses (from /etc/apt/sources.list*).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="$PATH:/usr/sbin:/sbin"

cache="${1:-target/guest-cache}"
rootfs="$cache/rootfs"
stamp="$cache/stamp"
want="$(sha256sum tests/guest/build.sh | cut -d' ' -f1)"
if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $rootfs/usr/lib/systemd/systemd ]]; then
  echo "==> guest tree up to date ($rootfs)"
  exit 0
fi

if [[ $(id -u) != 0 ]]; then
  echo "error: building the guest tree needs root (debootstrap)" >&2
  exit 1
fi

# The suite of this machine and the mirror apt uses for it.
. /etc/os-release
suite="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"
mirror="$(
  {
    # deb822 (.sources): a stanza's URIs: line for a stanza whose Suites: has the suite.
    awk -v suite="$suite" '
      /^[[:space:]]*$/ { if (uri != "" && ok && !found) { print uri; found = 1 } uri = ""; ok = 0; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok && !found) print uri }
    ' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    # One-line format: deb [options] URI SUITE COMPONENTS.
    sed -n -E "s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+$suite[[:space:]].*/\2/p" \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
  } | grep -v -- '-security' | head -n1
)"
if [[ -z $mirror ]]; then
  echo "error: no apt source for '$suite' in /etc/apt/sources.list*: cannot tell which Debian mirror to use" >&2
  exit 1
fi

echo "==> building the guest tree: debootstrap $suite from $mirror into $rootfs"
start=$SECONDS
rm -rf "$rootfs" "$stamp" "$cache/rootfs.partial"
mkdir -p "$cache"
partial="$cache/rootfs.partial"
# systemd-sysv: /sbin/init for `systemd-nspawn -b`; dbus: networkctl and hostnamectl talk to
# networkd and hostnamed over it; netplan.io brings python3; sudo: k0slab runs the mover with it.
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,netplan.io,iproute2,sudo \
  "$suite" "$partial" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
  tail -n 30 "$cache/debootstrap.log" >&2
  echo "error: debootstrap failed (log: $cache/debootstrap.log)" >&2
  exit 1
}

# The image's network: what cloud-init writes on the cirruslabs Ubuntu image.
install -d -m 755 "$partial/etc/netplan"
cat >"$partial/etc/netplan/50-cloud-init.yaml" <<'NETPLAN'
# This file is generated from information provided by the datasource.  Changes
# to it will not persist across an instance reboot.  To disable cloud-init's
# network configuration capabilities, write a file
# /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg with the following:
# network: {config: disabled}
network:
    ethernets:
        all:
            dhcp4: true
            match:
                name: en*
    version: 2
NETPLAN
chmod 600 "$partial/etc/netplan/50-cloud-init.yaml"

chroot "$partial" systemctl enable systemd-networkd.service >/dev/null 2>&1
# Nothing in the tests waits for "network online"; keep boots short.
chroot "$partial" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1
# The image's login: admin, passwordless sudo (vagrant-tart's SSH user).
chroot "$partial" useradd --create-home --shell /bin/bash --groups sudo admin
echo 'admin ALL=(ALL) NOPASSWD:ALL' >"$partial/etc/sudoers.d/admin"
chmod 440 "$partial/etc/sudoers.d/admin"
echo k0slab-guest >"$partial/etc/hostname"
# As every image has it (the guest setup edits it); debootstrap's minbase writes none.
cat >"$partial/etc/hosts" <<'HOSTS'
127.0.0.1 localhost
::1 localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
HOSTS
# A machine ID, as the cirruslabs image has one: its build boots the image (packer's tart-cli
# source, cloud-init.pkr.hcl) and reboots it (playbook.yml lines 14-16), and nothing empties
# /etc/machine-id afterwards, so every VM cloned from it starts with this same ID (the guest
# setup gives each its own).
tr -d '-' </proc/sys/kernel/random/uuid >"$partial/etc/machine-id"
chmod 444 "$partial/etc/machine-id"
# D-Bus's copy (a file here, from dbus' postinst): the same ID, as on a booted image.
if [[ -f $partial/var/lib/dbus/machine-id && ! -L $partial/var/lib/dbus/machine-id ]]; then
  cp "$partial/etc/machine-id" "$partial/var/lib/dbus/machine-id"
fi
rm -rf "$partial"/var/cache/apt/archives/*.deb "$partial"/var/lib/apt/lists/*

mv "$partial" "$rootfs"
echo "$want" >"$stamp"
echo "==> guest tree built in $((SECONDS - start)) s ($(du -sh "$rootfs" | cut -f1))"
