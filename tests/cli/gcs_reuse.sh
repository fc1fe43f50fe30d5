#!/usr/bin/env bash
# Connection reuse: each worker thread keeps its HTTP connection for every object it handles, so copying 2,000
# small objects at -j 8 opens about 8 connections to the server, not 2,000. Checked in both directions (local ->
# gs:// uploads, gs:// -> local downloads) and for the server-side copy (gs:// -> gs://), with the server's
# api_connections counter (connections that carried at least one API request; tests/gcs/README.md).
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

N=2000
JOBS=8
MAX_CONN=12 # 8 workers, the lister's connection (gs:// sources) and a little slack; one per object would be 2,000

python3 - "$T/src" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(5)
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.bin" % i), "wb") as f:
        f.write(rng.randbytes(4096))
PY

gcs_start --bucket sl-reuse

expect_connections() { # expect_connections WHAT
    local c
    c=$(gcs_stat 'd["api_connections"]')
    if [ "$c" -lt 1 ] || [ "$c" -gt "$MAX_CONN" ]; then
        fail "$1: connections to the server (api_connections)" "between 1 and $MAX_CONN (about $JOBS)" "$c"
    fi
    say "$1: $c connections for $N objects"
}

say "cp local -> gs:// of $N objects of 4 KiB at -j $JOBS: every object arrives, over at most $MAX_CONN connections"
gcs_stats_reset
run "$SLUICE" cp "$T/src" gs://sl-reuse/up -j "$JOBS"
expect_rc 0
expect_connections "upload" # first: the listing below is a connection of its own
expect_err_contains "sluice: cp: $N done (0 skipped), 0 failed of $N objects"
expect_eq "storage.objects.insert requests" "$N" "$(gcs_requests storage.objects.insert)"
expect_eq "objects on the server" "$N" "$(gcs_objects sl-reuse up/ | wc -l)"

say "cp gs:// -> local of the same $N objects at -j $JOBS: byte-identical tree, over at most $MAX_CONN connections"
gcs_stats_reset
run "$SLUICE" cp gs://sl-reuse/up/ "$T/back" -j "$JOBS"
expect_rc 0
expect_err_contains "sluice: cp: $N done (0 skipped), 0 failed of $N objects"
expect_eq "storage.objects.get requests (one download per object)" "$N" "$(gcs_requests storage.objects.get)"
diff -r "$T/src" "$T/back" >/dev/null || fail "downloaded tree" "identical to the uploaded one" "$(diff -rq "$T/src" "$T/back" | head -5)"
no_tmp_files "$T/back"
expect_connections "download"

say "cp gs:// -> gs:// of the same $N objects at -j $JOBS: $N rewrites over at most $MAX_CONN connections"
gcs_stats_reset
run "$SLUICE" cp gs://sl-reuse/up/ gs://sl-reuse/copy/ -j "$JOBS"
expect_rc 0
expect_err_contains "sluice: cp: $N done (0 skipped), 0 failed of $N objects"
expect_eq "storage.objects.rewrite requests" "$N" "$(gcs_requests storage.objects.rewrite)"
expect_connections "rewrite"

gcs_finish
