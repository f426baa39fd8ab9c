#!/usr/bin/env bash
# Installs the Debian 12 packages engine needs, only those that are missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config librocksdb-dev libboost-dev libboost-program-options-dev
      libfmt-dev libspdlog-dev nlohmann-json3-dev libgtest-dev libgmock-dev libsimdjson-dev librdkafka-dev kcat python3 strace)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
echo "setup: installing ${missing[*]}"
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
