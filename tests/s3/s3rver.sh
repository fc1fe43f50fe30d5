#!/usr/bin/env bash
# s3rver (an independent S3 implementation from npm, pinned by tests/s3/package-lock.json) for sluice's S3 tests.
#
#   s3rver.sh install                 npm ci into $S3RVER_DIR (default: tests/s3, i.e. tests/s3/node_modules, which
#                                     git ignores); does nothing when that lock file is installed there already
#   s3rver.sh start [OPTIONS...]      install if needed, then run s3rver on 127.0.0.1 in the foreground (exec: the
#                                     caller's $! is its pid); OPTIONS are s3rver_start.js's: --port-file F, --port N,
#                                     --bucket NAME (repeatable), --directory D (kept; default a temporary one),
#                                     --parent-pid PID, --verbose
#
# Needs node and npm (scripts/deps.sh installs Debian's when missing). s3rver checks no SigV4 signature, but wants
# the access key S3RVER (secret S3RVER).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${S3RVER_DIR:-$here}"

install() {
    command -v node >/dev/null && command -v npm >/dev/null || {
        echo "s3rver.sh: node and npm are needed (scripts/deps.sh installs them)" >&2
        exit 77
    }
    local want have=""
    mkdir -p "$dir"
    # One install at a time into a directory (CTest runs the tests that use it in parallel).
    exec 9>"$dir/.s3rver-install.lock"
    flock 9
    want="$(sha256sum <"$here/package-lock.json" | cut -d' ' -f1)"
    [ -f "$dir/node_modules/.sluice-lock-sha256" ] && have="$(cat "$dir/node_modules/.sluice-lock-sha256")"
    if [ "$want" = "$have" ] && [ -f "$dir/node_modules/s3rver/package.json" ]; then
        exec 9>&-
        return 0
    fi
    if [ "$dir" != "$here" ]; then
        cp "$here/package.json" "$here/package-lock.json" "$dir/"
    fi
    (cd "$dir" && npm ci --no-audit --no-fund --omit=dev --loglevel=error >&2)
    echo "$want" >"$dir/node_modules/.sluice-lock-sha256"
    exec 9>&-
}

case "${1:-}" in
install)
    install
    ;;
start)
    shift
    install
    exec node "$here/s3rver_start.js" --modules "$dir" "$@"
    ;;
*)
    echo "usage: s3rver.sh install | start [--port-file F] [--bucket NAME]... [--directory D] [--verbose]" >&2
    exit 2
    ;;
esac
