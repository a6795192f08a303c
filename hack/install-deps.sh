#!/usr/bin/env bash
# Installs the Debian packages weft and its lab need. Idempotent: installs only what is missing.
set -euo pipefail

packages=(iptables ipset nftables conntrack etcd-server iproute2 kmod procps ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "hack/install-deps: all packages present (${packages[*]})"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "hack/install-deps: need root to install: ${missing[*]} (run: sudo $0)" >&2
  exit 1
fi
echo "hack/install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "hack/install-deps: done"
