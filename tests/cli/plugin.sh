#!/usr/bin/env bash
# map --plugin: the example MD5 plugin against --op md5 (to '-' and to a directory, over many objects and workers);
# what each broken library gives (another ABI version, no sluice_plugin symbol, missing, unreadable, a directory, not
# a shared library: exit 2 or 3 and one line, nothing written); a thread_init that fails stops the job (exit 3); a
# process that fails one object fails it alone (exit 1, the failure log); --plugin-arg reaching thread_init and its
# usage errors; a transforming plugin writing through the output stream; resume fingerprints (job=plugin:...).
# The plugins are built by CMake with the flags of the binary under test (tests/plugins/, examples/plugin/).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

: "${SL_PLUGIN_md5:?set by CTest}" "${SL_PLUGIN_probe:?}" "${SL_PLUGIN_upper:?}" "${SL_PLUGIN_bad_abi:?}"
: "${SL_PLUGIN_no_symbol:?}"

S="$T/src"
python3 - "$S" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
def put(k, data):
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
put("empty", b"")
put("a.txt", b"hello world\n")
put("big/random-600k", bytes(rng.randrange(256) for _ in range(600 * 1024 + 3)))  # several 256 KiB buffers
put("text/lower.txt", b"some lower case text, 123\n" * 1000)
for i in range(300):
    put("many/f%03d" % i, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 5000))))
PY
NOBJ=$(find "$S" -type f | wc -l)
sorted_out() { LC_ALL=C sort "$OUT" >"$1"; }

say "the example MD5 plugin gives exactly what --op md5 gives, to '-' (-j 8 over $NOBJ objects)"
run "$SLUICE" map "$S" - --op md5 -q -j 8
expect_rc 0
sorted_out "$T/want-md5"
[ "$(wc -l <"$T/want-md5")" = "$NOBJ" ] || fail "--op md5 lines" "$NOBJ" "$(wc -l <"$T/want-md5")"
run "$SLUICE" map "$S" - --plugin "$SL_PLUGIN_md5" -q -j 8
expect_rc 0
expect_err_empty
sorted_out "$T/got-md5"
cmp -s "$T/want-md5" "$T/got-md5" || fail "plugin md5 lines" "those of --op md5" "$(diff "$T/want-md5" "$T/got-md5" | head -5)"

say "... and to a directory: every output object byte for byte the same as --op md5's"
run "$SLUICE" map "$S" "$T/op-md5" --op md5 --suffix .md5 -q
expect_rc 0
run "$SLUICE" map "$S" "$T/plugin-md5" --plugin "$SL_PLUGIN_md5" --suffix .md5 -q -j 3
expect_rc 0
diff -r "$T/op-md5" "$T/plugin-md5" >"$T/diff" || fail "outputs of --plugin md5" "identical to --op md5's" "$(head -5 "$T/diff")"
no_tmp_files "$T/plugin-md5"

say "a rerun skips every complete output; the summary and the report name the plugin"
run "$SLUICE" map "$S" "$T/plugin-md5" --plugin "$SL_PLUGIN_md5" --suffix .md5 --report "$T/report.json"
expect_rc 0
expect_err_contains "$NOBJ done ($NOBJ skipped), 0 failed"
expect_eq "report command" "map --plugin" "$(json_field "$T/report.json" 'd["command"]')"

say "a rerun with another --plugin-arg is another job: every object is redone; the order of the arguments does not matter"
run "$SLUICE" map "$S" "$T/plugin-md5" --plugin "$SL_PLUGIN_md5" --suffix .md5 --plugin-arg member=md5
expect_rc 0
expect_err_contains "$NOBJ done (0 skipped), 0 failed"
run "$SLUICE" map "$S" "$T/plugin-md5" --plugin "$SL_PLUGIN_md5" --suffix .md5 --plugin-arg member=md5
expect_rc 0
expect_err_contains "$NOBJ done ($NOBJ skipped), 0 failed"
run "$SLUICE" map "$S" "$T/probe-order" --plugin "$SL_PLUGIN_probe" --plugin-arg tag=a --plugin-arg slow_ms=0
expect_rc 0
run "$SLUICE" map "$S" "$T/probe-order" --plugin "$SL_PLUGIN_probe" --plugin-arg slow_ms=0 --plugin-arg tag=a
expect_rc 0
expect_err_contains "$NOBJ done ($NOBJ skipped), 0 failed"
say "... and so is --op md5 over outputs the plugin made, and another plugin"
run "$SLUICE" map "$S" "$T/plugin-md5" --op md5 --suffix .md5
expect_rc 0
expect_err_contains "$NOBJ done (0 skipped), 0 failed"
run "$SLUICE" map "$S" "$T/probe-order" --plugin "$SL_PLUGIN_md5"
expect_rc 0
expect_err_contains "$NOBJ done (0 skipped), 0 failed"

say "--plugin-arg reaches thread_init: every result carries the tag it gave"
run "$SLUICE" map "$S" - --plugin "$SL_PLUGIN_probe" --plugin-arg 'tag=x y "z"' -q --include a.txt
expect_rc 0
expect_out '{"key":"a.txt","size":12,"bytes":12,"tag":"x y \"z\""}'
run "$SLUICE" map "$S" - --plugin "$SL_PLUGIN_probe" --plugin-arg tag=t -q -j 4
expect_rc 0
[ "$(grep -c '"tag":"t"}$' "$OUT")" = "$NOBJ" ] || fail "tagged results" "$NOBJ" "$(grep -c '"tag":"t"}$' "$OUT")"

say "a library built against another plugin ABI version: exit 2, one line naming both versions, nothing written"
run "$SLUICE" map "$S" "$T/never" --plugin "$SL_PLUGIN_bad_abi"
expect_rc 2
expect_err_one_line "was built for sluice plugin ABI version 2; this sluice loads version 1"
expect_out
[ ! -e "$T/never" ] || fail "destination of a refused plugin" "not created" "$(ls -la "$T/never")"

say "a shared library without the sluice_plugin symbol: exit 2"
run "$SLUICE" map "$S" "$T/never" --plugin "$SL_PLUGIN_no_symbol"
expect_rc 2
expect_err_one_line "not a sluice plugin: it defines no symbol sluice_plugin"
[ ! -e "$T/never" ] || fail "destination" "not created" "exists"

say "a missing file, a directory, a file that is no shared library: exit 3, one line each"
run "$SLUICE" map "$S" "$T/never" --plugin "$T/missing.so"
expect_rc 3
expect_err_one_line "plugin $T/missing.so: no such file"
run "$SLUICE" map "$S" "$T/never" --plugin "$T"
expect_rc 3
expect_err_one_line "is a directory, not a shared library"
printf 'not ELF\n' >"$T/text.so"
run "$SLUICE" map "$S" "$T/never" --plugin "$T/text.so"
expect_rc 3
expect_err_one_line "plugin $T/text.so: cannot load it: "
if [ "$(id -u)" != 0 ]; then
    cp "$SL_PLUGIN_md5" "$T/unreadable.so"
    chmod 000 "$T/unreadable.so"
    run "$SLUICE" map "$S" "$T/never" --plugin "$T/unreadable.so"
    expect_rc 3
    expect_err_one_line "plugin $T/unreadable.so: cannot read it: Permission denied"
else
    skip_note "an unreadable plugin (running as root, which reads anything)"
fi
[ ! -e "$T/never" ] || fail "destination" "not created" "exists"

say "a bare name is a file in the current directory, never one looked up in the library path"
mkdir "$T/cwd"
cp "$SL_PLUGIN_md5" "$T/cwd/libmd5x.so"
run bash -c 'cd "$1" && "$2" map "$3" - --plugin libmd5x.so -q --include a.txt' _ "$T/cwd" "$SLUICE" "$S"
expect_rc 0
expect_out '{"key":"a.txt","size":12,"md5":"6f5902ac237024bdd0c176cb93063dc4"}'
run bash -c 'cd "$1" && "$2" map "$3" - --plugin libc.so.6 -q' _ "$T/cwd" "$SLUICE" "$S"
expect_rc 3
expect_err_one_line "plugin libc.so.6: no such file"

say "a thread_init that fails stops the job: exit 3, one line with the plugin's reason, no output"
run "$SLUICE" map "$S" "$T/init-fail" --plugin "$SL_PLUGIN_probe" --plugin-arg 'fail_init=no model file' -j 4
expect_rc 3
expect_err_one_line "operation probe: cannot start: probe: no model file"
[ -z "$(find "$T/init-fail" -type f 2>/dev/null)" ] || fail "outputs" "none" "$(find "$T/init-fail" -type f | head -3)"
run "$SLUICE" map "$S" - --plugin "$SL_PLUGIN_probe" --plugin-arg colour=red
expect_rc 3
expect_err_one_line "probe: unknown argument 'colour=red'"

say "a process that fails one object fails it alone: exit 1, the reason in the failure log, the others done"
run "$SLUICE" map "$S" "$T/one-fails" --plugin "$SL_PLUGIN_probe" --plugin-arg fail_key=a.txt --failures "$T/fail.jsonl"
expect_rc 1
expect_err_contains "$((NOBJ - 1)) done (0 skipped), 1 failed"
expect_eq "failure log" '{"key":"a.txt","error":"refusing a.txt","code":"SL_EIO","attempts":1}' "$(cat "$T/fail.jsonl")"
[ "$(find "$T/one-fails" -type f | wc -l)" = "$((NOBJ - 1))" ] || fail "outputs" "$((NOBJ - 1))" "$(find "$T/one-fails" -type f | wc -l)"
[ ! -e "$T/one-fails/a.txt" ] || fail "output of the failed object" "absent" "present"
no_tmp_files "$T/one-fails"

say "a transforming plugin writes through the output stream: each output is its object upper-cased"
run "$SLUICE" map "$S" "$T/upper" --plugin "$SL_PLUGIN_upper" -j 4
expect_rc 0
for k in a.txt text/lower.txt big/random-600k many/f007 empty; do
    tr 'a-z' 'A-Z' <"$S/$k" >"$T/want-upper"
    cmp -s "$T/want-upper" "$T/upper/$k" || fail "upper-cased $k" "tr a-z A-Z of it" "different"
done
say "... and with DST '-' (no output stream) reports its result members instead"
run "$SLUICE" map "$S" - --plugin "$SL_PLUGIN_upper" -q --include text/lower.txt
expect_rc 0
expect_out '{"key":"text/lower.txt","size":26000,"bytes_out":26000}'

say "usage errors: exit 2, one line"
run "$SLUICE" map "$S" - --plugin "$SL_PLUGIN_probe" --plugin-arg novalue
expect_rc 2
expect_err_one_line "--plugin-arg takes KEY=VALUE"
run "$SLUICE" map "$S" - --plugin "$SL_PLUGIN_probe" --plugin-arg =v
expect_rc 2
expect_err_one_line "--plugin-arg takes KEY=VALUE"
run "$SLUICE" map "$S" - --plugin "$SL_PLUGIN_probe" --plugin-arg tag=a --plugin-arg tag=b
expect_rc 2
expect_err_one_line "--plugin-arg tag is given twice"
run "$SLUICE" map "$S" - --op md5 --plugin-arg tag=a
expect_rc 2
expect_err_one_line "--plugin-arg goes with --plugin"
run "$SLUICE" map "$S" - --op md5 --plugin "$SL_PLUGIN_md5"
expect_rc 2
expect_err_one_line "give exactly one of --exec CMD, --worker CMD, --op NAME or --plugin LIB.so"
run "$SLUICE" cp "$S" "$T/cp" --plugin "$SL_PLUGIN_md5"
expect_rc 2
expect_err_one_line "unknown option '--plugin'"

say "SIGTERM while a slow plugin works: in-flight objects finish within --grace, exit 143"
"$SLUICE" map "$S" "$T/slow" --plugin "$SL_PLUGIN_probe" --plugin-arg slow_ms=200 -j 2 --grace 5s >"$OUT" 2>"$ERR" &
pid=$!
sleep 1
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
LAST_CMD="map --plugin probe slow_ms=200, SIGTERM after 1 s"
expect_eq "exit status after SIGTERM" 143 "$rc"
no_tmp_files "$T/slow"
say "... and with --grace 0 the plugin sees the abort (sl_task_aborted) and gives up at once"
"$SLUICE" map "$S" "$T/slow0" --plugin "$SL_PLUGIN_probe" --plugin-arg slow_ms=100000 -j 2 --grace 0 \
    --failures "$T/slow0.jsonl" >"$OUT" 2>"$ERR" &
pid=$!
sleep 1
start=$SECONDS
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
expect_eq "exit status after SIGTERM" 143 "$rc"
[ $((SECONDS - start)) -le 3 ] || fail "time to stop" "at most 3 s" "$((SECONDS - start)) s"
grep -q '"code":"SL_ECANCELED"' "$T/slow0.jsonl" || fail "failure log" "SL_ECANCELED lines" "$(cat "$T/slow0.jsonl")"

finish
