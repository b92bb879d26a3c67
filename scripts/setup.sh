#!/usr/bin/env bash
# Installs what distest needs on the control node (and on a local-cluster host):
# iptables/iproute2 for namespaces and partitions, openssh for the SSH path tests,
# libfaketime for clock faults, etcd and PostgreSQL as targets, Chromium for report tests.
# Idempotent and non-interactive. Run as root: sudo ./scripts/setup.sh
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh must run as root (it installs packages with apt-get): sudo $0" >&2
    exit 1
fi

packages=(
    iptables iproute2 iputils-ping procps psmisc kmod
    openssh-server openssh-client
    libfaketime faketime
    etcd-server etcd-client
    postgresql postgresql-client
    chromium
    ca-certificates curl pkg-config libssl-dev
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    # Packages must not start their own daemons (etcd, postgresql, sshd): distest starts
    # what it needs inside its own namespaces, with its own data directories.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "setup.sh: all packages present"
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
