#!/usr/bin/env bash
# Runs sigv4_botocore.py (our signer vs botocore's, byte for byte) with a Python that has botocore: `python3` on PATH
# when it can import it (a virtualenv, a pyenv version with botocore installed), else Debian's /usr/bin/python3 with
# python3-botocore (scripts/deps.sh installs it).
#   sigv4_botocore.sh TEST_SIGV4_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=
for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import botocore' >/dev/null 2>&1; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "sigv4_botocore: no python3 can import botocore (install python3-botocore: scripts/deps.sh)" >&2
    exit 1
fi
exec "$py" "$here/sigv4_botocore.py" "$1"
