#!/usr/bin/env bash
# Installs what distest needs on the control node (and on a local-cluster host):
# iptables/iproute2 for namespaces, openssh for the SSH path tests, Chromium for report
# tests, Python 3 for the example clients and Maelstrom nodes, build tools; then what
# targets and faults need on nodes (etcd, PostgreSQL, libfaketime, fuse3, ...), as the
# target and nemesis registries list them
# (`distest env packages`). Idempotent and non-interactive. Run as root:
# sudo ./scripts/setup.sh
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh must run as root (it installs packages with apt-get): sudo $0" >&2
    exit 1
fi

# The control node's own tools (and the clients of the node packages, for debugging).
packages=(
    iptables iproute2 iputils-ping procps psmisc kmod
    openssh-server openssh-client
    faketime etcd-client postgresql-client
    python3
    chromium
    ca-certificates curl pkg-config libssl-dev
)

install_missing() {
    local missing=()
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "setup.sh: installing ${missing[*]}"
        # Packages must not start their own daemons (etcd, postgresql, sshd): distest
        # starts what it needs inside its own namespaces, with its own data directories.
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
        rm -f /usr/sbin/policy-rc.d
    else
        echo "setup.sh: all packages present: $*"
    fi
}
trap 'rm -f /usr/sbin/policy-rc.d' EXIT

install_missing "${packages[@]}"

# What targets and faults need on the nodes comes from their registries: ask a built
# distest (DISTEST_BIN, target/release, target/debug), else build one with cargo.
root="$(cd "$(dirname "$0")/.." && pwd)"
distest="${DISTEST_BIN:-}"
target="${CARGO_TARGET_DIR:-$root/target}"
for candidate in "$target/release/distest" "$target/debug/distest"; do
    [ -z "$distest" ] && [ -x "$candidate" ] && distest="$candidate"
done
if [ -z "$distest" ] && command -v cargo >/dev/null; then
    (cd "$root" && cargo build --quiet --bin distest) && distest="$target/debug/distest"
fi
if [ -n "$distest" ]; then
    mapfile -t node_packages < <("$distest" env packages)
    install_missing "${node_packages[@]}"
else
    echo "setup.sh: no distest binary and no cargo; build distest, then run this again for the node packages (distest env packages)" >&2
    exit 1
fi

# sshd (used by the SSH-path tests inside namespaces) needs its privilege-separation dir.
mkdir -p /run/sshd

# Debian puts etcd and PostgreSQL's binaries outside PATH on some releases.
for candidate in /usr/lib/postgresql/*/bin; do
    [ -d "$candidate" ] && echo "setup.sh: PostgreSQL binaries in $candidate"
done
command -v etcd >/dev/null && echo "setup.sh: $(etcd --version 2>/dev/null | head -1)"
command -v iptables >/dev/null && echo "setup.sh: $(iptables --version)"
exit 0
