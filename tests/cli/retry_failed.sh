#!/usr/bin/env bash
# --failures and --retry-failed: a map whose command fails for some objects writes those objects (odd names
# included) to the failure log as JSON lines with key, error, code and attempts; once the cause is fixed,
# --retry-failed with that log runs the command for exactly those objects (counted by the command itself), whatever
# the order of the lines. A key that no longer exists fails alone; a malformed line is a usage error naming its line
# number with nothing done; the log is streamed (memory does not grow with its length). Then the same against gs://
# (the GCS test server), where a request failing with 503 through its retries shows up with "http_status": 503 and
# attempts counting those retries.
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; }

# The command under test: records every call (the key in hex, one line per call), and fails with status 7 for the
# keys marked in $BAD (files named by the key's hex) until $FIXED exists. Otherwise it copies stdin to stdout.
CMD="$T/cmd.sh"
cat >"$CMD" <<'SH'
#!/bin/sh
k=$(printf %s "$SLUICE_KEY" | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$k" >>"$CALLS"
if [ ! -e "$FIXED" ] && [ -e "$BAD/$k" ]; then
    echo "poisoned input" >&2
    exit 7
fi
exec cat
SH
chmod +x "$CMD"
export CALLS="$T/calls" FIXED="$T/fixed" BAD="$T/bad"
mkdir -p "$BAD"

S="$T/src"
mkdir -p "$S/sub/dir"
good=()
for i in $(seq -w 1 24); do
    printf 'object %s\n' "$i" >"$S/obj$i.txt"
    good+=("obj$i.txt")
done
# The keys that will fail: odd names among them, to check they survive the trip through the log.
poison=("obj03.txt" "sub/dir/deep.txt" $'new\nline.txt' $'bad\377byte.txt' 'quote"and\back.txt' "café.txt"
    "space name.txt" "obj17.txt")
for k in "${poison[@]}"; do
    printf 'data of %s\n' "$k" >"$S/$k"
    : >"$BAD/$(hex "$k")"
done
total=$(find "$S" -type f -printf x | wc -c)

# expect_calls WHAT KEY...: the command was called exactly once for each KEY and for nothing else
expect_calls() {
    local what="$1" k
    shift
    : >"$T/want.calls"
    for k in "$@"; do hex "$k" >>"$T/want.calls" && echo >>"$T/want.calls"; done
    sort "$T/want.calls" -o "$T/want.calls"
    sort "$CALLS" -o "$T/got.calls"
    cmp -s "$T/want.calls" "$T/got.calls" || fail "$what" "one call per key: $(tr '\n' ' ' <"$T/want.calls")" \
        "$(tr '\n' ' ' <"$T/got.calls")"
}

say "a map whose command fails for ${#poison[@]} of $total objects: exit 1, one failure log line per failed object"
: >"$CALLS"
run "$SLUICE" map "$S" "$T/out" --exec "$CMD" --failures "$T/f1.jsonl" --report "$T/r1.json"
expect_rc 1
expect_eq "calls in the first run" "$total" "$(wc -l <"$CALLS")"
expect_eq "failure log lines" "${#poison[@]}" "$(wc -l <"$T/f1.jsonl")"
python3 - "$T/f1.jsonl" <<'PY' || fail "failure log fields" "key, error, code, attempts; no http_status (local)" "$(cat "$T/f1.jsonl")"
import json, sys
for line in open(sys.argv[1], "rb"):
    d = json.loads(line)
    assert sorted(d) == ["attempts", "code", "error", "key"], d
    assert d["code"] == "SL_ECHILD" and d["attempts"] == 1, d
    assert "exited with status 7" in d["error"] and "poisoned input" in d["error"], d
PY
# The log spells keys the way every JSON output of sluice does: each is one of the keys `ls --json` prints.
"$SLUICE" ls -r --json "$S" | sed -e 's/^{"key":\(.*\),"size":.*$/\1/' | sort >"$T/ls.keys"
sed -e 's/^{"key":\(.*\),"error":.*$/\1/' "$T/f1.jsonl" | sort >"$T/log.keys"
expect_eq "failure log keys spelled as by ls --json" "${#poison[@]}" \
    "$(comm -12 "$T/ls.keys" "$T/log.keys" | wc -l)"
grep -qF '"new\nline.txt"' "$T/log.keys" || fail "newline in a key" 'escaped as \n' "$(cat "$T/log.keys")"
grep -qF '"bad\u00ffbyte.txt"' "$T/log.keys" || fail "byte 0xFF in a key" 'escaped as \u00ff' "$(cat "$T/log.keys")"
grep -qF '"quote\"and\\back.txt"' "$T/log.keys" || fail "quote and backslash" 'escaped' "$(cat "$T/log.keys")"
for k in "${poison[@]}"; do
    [ ! -e "$T/out/$k" ] || fail "no output for failed $k" "absent" "present"
done

say "fixed, then --retry-failed: the command runs for exactly the ${#poison[@]} failed objects, lines in reverse order"
touch "$FIXED"
tac "$T/f1.jsonl" >"$T/f1.rev.jsonl"
: >"$CALLS"
run "$SLUICE" map "$S" "$T/out" --exec "$CMD" --retry-failed "$T/f1.rev.jsonl" --failures "$T/f2.jsonl" \
    --report "$T/r2.json"
expect_rc 0
expect_calls "calls of the retry" "${poison[@]}"
expect_eq "failure log of the retry" 0 "$(wc -c <"$T/f2.jsonl")"
expect_eq "report of the retry" '{"listed": 8, "done": 8, "skipped": 0, "failed": 0}' \
    "$(json_field "$T/r2.json" 'd["objects"]')"
expect_eq "report names the log it retried" "$T/f1.rev.jsonl" "$(json_field "$T/r2.json" 'd["retry_failed"]')"
for k in "${poison[@]}" "${good[@]}"; do
    cmp -s "$S/$k" "$T/out/$k" || fail "output $k" "identical to its source" "missing or different"
done
no_tmp_files "$T/out"

say "a key of the log that no longer exists fails alone with a clear error; the others are done"
rm "$FIXED"
: >"$CALLS"
run "$SLUICE" map "$S" "$T/out2" --exec "$CMD" --failures "$T/f3.jsonl" -q
expect_rc 1
touch "$FIXED"
rm "$S/café.txt"
: >"$CALLS"
run "$SLUICE" map "$S" "$T/out2" --exec "$CMD" --retry-failed "$T/f3.jsonl" --failures "$T/f4.jsonl"
expect_rc 1
expect_err_contains "no longer exists at the source"
remaining=()
for k in "${poison[@]}"; do [ "$k" = "café.txt" ] || remaining+=("$k"); done
expect_calls "calls with one key gone" "${remaining[@]}"
expect_eq "new failure log" '"café.txt" SL_ENOENT True' "$(python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).readline())
print(json.dumps(d["key"], ensure_ascii=False), d["code"], "no longer exists" in d["error"])' "$T/f4.jsonl")"
expect_eq "new failure log lines" 1 "$(wc -l <"$T/f4.jsonl")"

say "a malformed line is a usage error naming its line number; nothing runs, nothing is written"
printf '{"key":"obj01.txt"}\n\n{"key":"obj02.txt","error":"x","code":"SL_EIO","attempts":1}\n{"key": 5}\n' >"$T/bad1.jsonl"
: >"$CALLS"
run "$SLUICE" map "$S" "$T/out3" --exec "$CMD" --retry-failed "$T/bad1.jsonl"
expect_rc 2
expect_err_one_line "line 4"
expect_eq "calls after a malformed log" 0 "$(wc -l <"$CALLS")"
[ ! -e "$T/out3" ] || [ -z "$(find "$T/out3" -type f)" ] || fail "output after a malformed log" "nothing" "files"
for bad in 'not json' '{"key":"a"} trailing' '{"error":"no key"}' '{"key":""}' '{"key":"a","key":"b"}' \
    '{"key":"a\u0000b"}' '{"key":"a\q"}' '{"key":"unterminated}' '["key","a"]' '{"key":"\ud800"}'; do
    printf '{"key":"obj01.txt"}\n%s\n' "$bad" >"$T/bad2.jsonl"
    run "$SLUICE" map "$S" "$T/out3" --exec "$CMD" --retry-failed "$T/bad2.jsonl"
    expect_rc 2
    expect_err_one_line "$T/bad2.jsonl line 2: "
done
expect_eq "calls after malformed logs" 0 "$(wc -l <"$CALLS")"

say "usage errors: a missing log; the same file for --failures and --retry-failed (it would be truncated)"
run "$SLUICE" map "$S" "$T/out3" --exec "$CMD" --retry-failed "$T/no-such.jsonl"
expect_rc 2
expect_err_one_line "cannot read the failure log"
cp "$T/f3.jsonl" "$T/same.jsonl"
run "$SLUICE" map "$S" "$T/out3" --exec "$CMD" --retry-failed "$T/same.jsonl" --failures "$T/same.jsonl"
expect_rc 2
expect_err_one_line "give --failures a new file"
cmp -s "$T/f3.jsonl" "$T/same.jsonl" || fail "the log given twice" "left as it was" "changed"
run "$SLUICE" ls --retry-failed "$T/f3.jsonl" "$S"
expect_rc 2
expect_err_one_line "unknown option '--retry-failed'"

say "cp and sync take --retry-failed too: only the named objects are copied"
printf '{"key":"obj05.txt"}\n{"key":"sub/dir/deep.txt"}\n' >"$T/cp.jsonl"
run "$SLUICE" cp "$S" "$T/cpout" --retry-failed "$T/cp.jsonl" -q
expect_rc 0
expect_eq "files copied" $'./obj05.txt\n./sub/dir/deep.txt' "$(cd "$T/cpout" && find . -type f | sort)"
run "$SLUICE" sync "$S" "$T/cpout" --retry-failed "$T/cp.jsonl" --report "$T/sync.json" -q
expect_rc 0
expect_eq "sync of identical objects" '{"listed": 2, "done": 2, "skipped": 2, "failed": 0}' \
    "$(json_field "$T/sync.json" 'd["objects"]')"

say "the log is streamed: 200,000 lines need no more memory than 20,000"
python3 - "$T/big20k.jsonl" 20000 "$T/big200k.jsonl" 200000 <<'PY'
import sys
for path, n in ((sys.argv[1], int(sys.argv[2])), (sys.argv[3], int(sys.argv[4]))):
    with open(path, "w") as f:
        for i in range(n):
            f.write('{"key":"gone/%08d-%s.txt","error":"x","code":"SL_EIO","attempts":1}\n' % (i, "y" * 60))
PY
for n in 20000 200000; do
    run "$SLUICE" map "$S" - --op md5 --retry-failed "$T/big$((n / 1000))k.jsonl" --report "$T/big$n.json" -q
    expect_rc 1
    expect_eq "objects of the $n-line log" "{\"listed\": $n, \"done\": 0, \"skipped\": 0, \"failed\": $n}" \
        "$(json_field "$T/big$n.json" 'd["objects"]')"
done
p20=$(json_field "$T/big20000.json" 'd["peak_rss_bytes"]')
p200=$(json_field "$T/big200000.json" 'd["peak_rss_bytes"]')
say "  peak RSS: $((p20 / 1024)) KiB for 20,000 lines, $((p200 / 1024)) KiB for 200,000"
if sanitized; then
    skip_note "peak RSS comparison: the binary is sanitized (shadow memory and quarantine inflate RSS)"
elif [ "$p200" -gt $((p20 + 4 * 1024 * 1024)) ]; then
    fail "peak RSS with a 10x longer log" "at most 4 MiB above $p20" "$p200"
fi

say "gs://: a GET failing with 503 through its retries: http_status 503, attempts = 1 + retries; then the retry"
gcs_start
gcs_bucket src dst
for i in 1 2 3 4 5 6; do
    printf 'gcs object %s\n' "$i" >"$T/g$i"
done
mkdir -p "$T/gsrc"
for i in 1 2 3 4 5 6; do cp "$T/g$i" "$T/gsrc/o$i"; done
run "$SLUICE" cp "$T/gsrc" gs://src/in -q
expect_rc 0
rm -rf "$BAD" "$FIXED"
mkdir -p "$BAD"
: >"$BAD/$(hex o3)"
: >"$BAD/$(hex o5)"
ID=$(gcs_retry_test '{"storage.objects.get": ["return-503", "return-503", "return-503"]}')
: >"$CALLS"
# SRC ends in / : a prefix for sure, so the only objects.get requests are the objects' downloads.
run "$SLUICE" map gs://src/in/ gs://dst/out --exec "$CMD" -j 1 --retries 2 "${FAST[@]}" \
    --header "x-retry-test-id: $ID" --failures "$T/g1.jsonl"
expect_rc 1
gcs_expect_consumed "$ID"
expect_eq "gs:// failure log" $'o1 SL_EIO 3 503\no3 SL_ECHILD 1 200\no5 SL_ECHILD 1 200' "$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(d["key"], d["code"], d["attempts"], d.get("http_status"))' "$T/g1.jsonl" | sort)"
expect_calls "calls of the gs:// map (o1 never reached the command)" o2 o3 o4 o5 o6
touch "$FIXED"
: >"$CALLS"
run "$SLUICE" map gs://src/in/ gs://dst/out --exec "$CMD" --retry-failed "$T/g1.jsonl" --failures "$T/g2.jsonl" \
    --report "$T/g2.json"
expect_rc 0
expect_calls "calls of the gs:// retry" o1 o3 o5
expect_eq "gs:// retry report" '{"listed": 3, "done": 3, "skipped": 0, "failed": 0}' \
    "$(json_field "$T/g2.json" 'd["objects"]')"
for i in 1 2 3 4 5 6; do
    run "$SLUICE" cat "gs://dst/out/o$i"
    expect_rc 0
    expect_out_file "$T/gsrc/o$i"
done

gcs_finish
