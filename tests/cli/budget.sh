#!/usr/bin/env bash
# The memory budget: --memory-limit covers everything that grows with workers or upload chunk size, so a job's peak
# RSS stays within the limit plus a fixed overhead (16 MiB, see bench/budget.sh for the whole matrix).
#
# 1. cp of 16 files of 8 MB to gs:// with -j 64 --memory-limit 32M: -j is lowered to what 32 MiB feeds, each upload
#    buffer comes out of the budget (before, every worker held a whole 8 MiB chunk: ~140 MiB).
# 2. the same with --upload-chunk 64M -j 4 --memory-limit 16M: the writers grow only into what the budget can spare
#    and send smaller chunks (before: four 8 MB multipart bodies, ~45 MiB); with -j 1 --memory-limit 4M every object
#    goes up in chunks smaller than itself.
# 3. map --exec to gs:// of the same files with a 64M chunk and a 16M budget.
# Each run: every object arrives whole (the server's own listing), the report's budget.peak_bytes (what was counted in
# the budget at most) is within the limit, and GNU time's peak RSS is within the limit + 16 MiB. The RSS judgement is
# skipped under sanitizers (their shadow memory is not sluice's); the budget's own count is checked everywhere.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

OVERHEAD=$((16 << 20))
TIME=/usr/bin/time
[ -x "$TIME" ] || fail "GNU time" "/usr/bin/time (Debian package time; scripts/deps.sh installs it)" "missing"

gcs_start --bucket budget
mkdir -p "$T/src"
python3 - "$T/src" <<'PY'
import os, sys
for i in range(16):
    with open(os.path.join(sys.argv[1], "f%02d.bin" % i), "wb") as f:
        f.write(bytes([i]) * 8000000)
PY

# budget_run NAME LIMIT_BYTES ARGS...: runs sluice ARGS under GNU time with a report, then checks the objects under
# gs://budget/NAME and the bounds.
budget_run() {
    local name=$1 limit=$2
    shift 2
    run "$TIME" -f %M -o "$T/time" "$SLUICE" "$@" --report "$T/r.json"
    expect_rc 0
    local objects
    objects=$(gcs_objects budget "$name/" | python3 -c 'import json, sys
items = [json.loads(l) for l in sys.stdin]
print(len(items), sorted({i["size"] for i in items}))')
    expect_eq "objects at gs://budget/$name" "16 ['8000000']" "$objects"
    local jobs counted peak
    jobs=$(json_field "$T/r.json" 'd["jobs"]')
    counted=$(json_field "$T/r.json" 'd["budget"]["peak_bytes"]')
    expect_eq "report budget.limit_bytes" "$limit" "$(json_field "$T/r.json" 'd["budget"]["limit_bytes"]')"
    [ "$counted" -gt 0 ] && [ "$counted" -le "$limit" ] ||
        fail "report budget.peak_bytes (counted in the budget at once)" "between 0 and $limit" "$counted"
    peak=$(($(tail -1 "$T/time") * 1024))
    say "  $jobs workers; counted in the budget at most $((counted >> 10)) KiB of $((limit >> 10)) KiB;" \
        "peak RSS $((peak >> 10)) KiB"
    if sanitized; then
        skip_note "sanitized binary: peak RSS $((peak >> 10)) KiB not judged"
    else
        [ "$peak" -le $((limit + OVERHEAD)) ] ||
            fail "peak RSS of: sluice $*" "<= $(((limit + OVERHEAD) >> 10)) KiB (limit + 16 MiB)" "$((peak >> 10)) KiB"
    fi
}

say "1. cp 16 x 8 MB to gs:// -j 64 --memory-limit 32M: the peak stays within 32 MiB + 16 MiB"
budget_run j64 $((32 << 20)) cp "$T/src" gs://budget/j64 -j 64 --memory-limit 32M
jobs=$(json_field "$T/r.json" 'd["jobs"]')
[ "$jobs" -lt 64 ] || fail "workers for a 32 MiB budget" "fewer than 64" "$jobs"
expect_eq "workers: as many as the budget feeds" \
    "$(json_field "$T/r.json" 'min(64, d["budget"]["limit_bytes"] // d["budget"]["per_worker_bytes"])')" "$jobs"
# the -j given and lowered is said, with the limit that feeds it
expect_err_contains "warning: -j 64 lowered to $jobs: --memory-limit 32.0 MiB holds $jobs workers of"
need=$(sed -n 's/.*give --memory-limit \([0-9]*\)M for 64.*/\1/p' "$ERR")
[ -n "$need" ] || fail "the limit that feeds -j 64" "give --memory-limit NM for 64" "$(cat "$ERR")"
run "$SLUICE" cp "$T/src" gs://budget/j64b -j 64 --memory-limit "${need}M" --report "$T/r2.json" -q
expect_rc 0
expect_eq "workers with --memory-limit ${need}M" 64 "$(json_field "$T/r2.json" 'd["jobs"]')"

say "2. cp 16 x 8 MB to gs:// --upload-chunk 64M -j 4 --memory-limit 16M: writers grow only into spare budget"
budget_run chunk64 $((16 << 20)) cp "$T/src" gs://budget/chunk64 --upload-chunk 64M -j 4 --memory-limit 16M
# One worker whose budget cannot hold an 8 MB object: each goes up in a resumable upload of smaller chunks (the
# session's start and at least two chunks), never in one 8 MB request.
gcs_stats_reset
budget_run small $((4 << 20)) cp "$T/src" gs://budget/small --upload-chunk 64M -j 1 --memory-limit 4M
inserts=$(gcs_requests storage.objects.insert)
[ "$inserts" -ge $((16 * 3)) ] || fail "upload requests for 16 objects" "at least 48 (resumable, in chunks)" "$inserts"

say "3. map --exec cat to gs:// --upload-chunk 64M -j 4 --memory-limit 16M"
budget_run mapped $((16 << 20)) map "$T/src" gs://budget/mapped --exec cat --upload-chunk 64M -j 4 --memory-limit 16M

gcs_finish
