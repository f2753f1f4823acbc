#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, only when one is missing (idempotent).
set -euo pipefail
need=()
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v shfmt >/dev/null || need+=(shfmt)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v iptables >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v unshare >/dev/null || need+=(util-linux)
command -v mountpoint >/dev/null || need+=(util-linux)
command -v journalctl >/dev/null || need+=(systemd)
command -v curl >/dev/null || need+=(curl)
command -v node >/dev/null || need+=(nodejs npm)
command -v chromium >/dev/null || need+=(chromium)  # the console's browser tests
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} (run as root, or install them with apt-get)" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
