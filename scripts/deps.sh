#!/usr/bin/env bash
# Installs what sluice needs to build and test on Debian 12, from Debian's packages only. Safe to rerun: does
# nothing when everything is present. Needs root (or sudo) the first time.
set -euo pipefail
# clang is clang 14 on Debian 12; libclang-rt-14-dev holds its ASan/UBSan/TSan runtimes and libFuzzer
# (libclang_rt.fuzzer*.a), which scripts/fuzz.sh links. libmicrohttpd-dev: the synthetic bucket server of bench/.
# python3-botocore: the SigV4 signer's cross-check (tests/unit/sigv4_botocore.py) and the S3 test server's signature
# check (tests/s3/s3_server.py); libexpat1-dev: S3's and STS's XML answers. slurmctld slurmd slurm-client munge: the
# single-node Slurm cluster tests/slurm/array.sh runs deploy/slurm/ on (scripts/slurm-cluster.sh, not the system services).
# awscli, rclone: the peers of the s3:// interoperability test (tests/cli/s3_interop.sh).
packages=(build-essential cmake pkg-config libcurl4-openssl-dev libssl-dev libjansson-dev libyajl-dev zlib1g-dev
          clang libclang-rt-14-dev python3 libxml2-utils openssl curl procps time libmicrohttpd-dev
          strace python3-botocore libexpat1-dev slurmctld slurmd slurm-client munge awscli rclone)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm run s3rver (tests/s3/s3rver.sh). Debian's packages, but only when the commands are missing: a
# nodejs from another repository bundles its own npm, which Debian's npm package would conflict with.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
