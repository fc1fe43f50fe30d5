#!/usr/bin/env bash
# Installs what sluice needs to build and test on Debian 12, from Debian's packages only. Safe to rerun: does
# nothing when everything is present. Needs root (or sudo) the first time.
set -euo pipefail
# clang is clang 14 on Debian 12; libclang-rt-14-dev holds its ASan/UBSan/TSan runtimes and libFuzzer
# (libclang_rt.fuzzer*.a), which scripts/fuzz.sh links. libmicrohttpd-dev: the synthetic bucket server of bench/.
packages=(build-essential cmake pkg-config libcurl4-openssl-dev libssl-dev libjansson-dev libyajl-dev zlib1g-dev
          clang libclang-rt-14-dev python3 libxml2-utils openssl curl procps time libmicrohttpd-dev
          strace)
packages+=(libexpat1-dev) # expat: S3's XML answers (src/s3_xml.c)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
