#!/usr/bin/env bash
# Large objects: a 1 GiB file (sparse, with markers) copied, synced and hashed in small, flat memory; ranged reads
# past 4 GiB in a sparse 5 GiB file.
#
# Peak RSS is measured with `/usr/bin/time -f %M` (max RSS in KiB) and with --report's peak_rss_bytes; both must stay
# under 64 MiB. Sanitizers inflate memory, so these assertions are skipped for sanitized binaries (detected with nm,
# or forced with SL_SANITIZED=1 / SL_SANITIZED=0; see lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

LIMIT_KIB=$((64 * 1024))
check_rss() { # check_rss WHAT KIB
    if sanitized; then
        say "  $1: peak RSS $2 KiB (sanitized binary: not asserted)"
    else
        [ "$2" -lt "$LIMIT_KIB" ] || fail "$1: peak RSS" "< $LIMIT_KIB KiB (64 MiB)" "$2 KiB"
        say "  $1: peak RSS $2 KiB < 64 MiB"
    fi
}
# timed CMD...: like run, and sets RSS_KIB from /usr/bin/time when available
timed() {
    if [ -x /usr/bin/time ]; then
        LAST_CMD="$(s_quote "$@")"
        RC=0
        /usr/bin/time -o "$T/.rss" -f %M "$@" >"$OUT" 2>"$ERR" || RC=$?
        RSS_KIB=$(tail -1 "$T/.rss")
    else
        run "$@"
        RSS_KIB=0
    fi
}

S="$T/src"
mkdir -p "$S"
truncate -s 1G "$S/huge.bin"
# markers at the start, across the first buffer boundary, in the middle and at the very end
for off in 0 262140 536870912 1073741816; do
    printf 'MARK%04d' $((off % 9973)) | dd of="$S/huge.bin" bs=1 seek="$off" conv=notrunc status=none
done
expect_eq "size of the source" 1073741824 "$(stat -c %s "$S/huge.bin")"
want_md5=$(md5sum <"$S/huge.bin" | cut -d' ' -f1)

say "ls -l and du report 1073741824 bytes"
run "$SLUICE" du --json "$S"
expect_rc 0
expect_out '{"objects":1,"bytes":1073741824}'
run "$SLUICE" ls -l "$S"
expect_rc 0
grep -qE '^ *1073741824  [0-9T:-]+Z  huge\.bin$' "$OUT" || fail "ls -l of 1 GiB" "1073741824 ... huge.bin" "$(cat "$OUT")"
expect_err_empty

say "cp of 1 GiB: identical copy (cmp), peak RSS < 64 MiB"
timed "$SLUICE" cp "$S" "$T/dst" -q --report "$T/cp.json"
expect_rc 0
expect_err_empty
cmp "$S/huge.bin" "$T/dst/huge.bin" >"$T/cmp.txt" 2>&1 || fail "cmp source copy" "identical" "$(cat "$T/cmp.txt")"
check_rss "cp (time -f %M)" "$RSS_KIB"
check_rss "cp (--report peak_rss_bytes)" "$(($(json_field "$T/cp.json" 'd["peak_rss_bytes"]') / 1024))"
expect_eq "cp report bytes" '{"listed": 1073741824, "read": 1073741824, "written": 1073741824}' \
    "$(json_field "$T/cp.json" 'd["bytes"]')"
no_tmp_files "$T/dst"

say "map --op md5 of 1 GiB equals md5sum ($want_md5), peak RSS < 64 MiB"
timed "$SLUICE" map "$S" - --op md5 -q
expect_rc 0
expect_out "{\"key\":\"huge.bin\",\"size\":1073741824,\"md5\":\"$want_md5\"}"
check_rss "map --op md5" "$RSS_KIB"

say "map --exec md5sum streams 1 GiB through a child process, peak RSS < 64 MiB"
timed "$SLUICE" map "$S" "$T/exec" --exec md5sum -q
expect_rc 0
expect_eq "output of md5sum" "$want_md5  -" "$(cat "$T/exec/huge.bin")"
check_rss "map --exec md5sum" "$RSS_KIB"

say "cat of 1 GiB | md5sum equals md5sum of the source, peak RSS < 64 MiB"
LAST_CMD="sluice cat $S/huge.bin | md5sum"
RC=0
/usr/bin/time -o "$T/.rss" -f %M "$SLUICE" cat "$S/huge.bin" 2>"$ERR" | md5sum >"$T/cat.md5" || RC=$?
expect_rc 0
expect_eq "md5 of cat" "$want_md5" "$(cut -d' ' -f1 "$T/cat.md5")"
check_rss "cat" "$(tail -1 "$T/.rss")"

say "sync of the 1 GiB file to its copy skips it; after changing one byte in the middle it copies it"
run "$SLUICE" sync "$S" "$T/dst" -q --report "$T/s1.json"
expect_rc 0
expect_eq "sync: skipped, nothing written" "1 0" \
    "$(json_field "$T/s1.json" 'd["objects"]["skipped"]') $(json_field "$T/s1.json" 'd["bytes"]["written"]')"
printf 'X' | dd of="$S/huge.bin" bs=1 seek=700000000 conv=notrunc status=none
timed "$SLUICE" sync "$S" "$T/dst" -q --report "$T/s2.json"
expect_rc 0
expect_eq "sync after a one-byte change: copied" "0 1073741824" \
    "$(json_field "$T/s2.json" 'd["objects"]["skipped"]') $(json_field "$T/s2.json" 'd["bytes"]["written"]')"
cmp "$S/huge.bin" "$T/dst/huge.bin" >"$T/cmp.txt" 2>&1 || fail "cmp after sync" "identical" "$(cat "$T/cmp.txt")"
check_rss "sync" "$RSS_KIB"
rm -f "$T/dst/huge.bin"

say "cat --range past 4 GiB in a sparse 5 GiB file (64-bit offsets)"
truncate -s 5G "$S/five.bin"
printf 'four-gib-marker' | dd of="$S/five.bin" bs=1 seek=$((4 * 1024 * 1024 * 1024 + 7)) conv=notrunc status=none
run "$SLUICE" cat --range $((4 * 1024 * 1024 * 1024 + 7))-$((4 * 1024 * 1024 * 1024 + 21)) "$S/five.bin"
expect_rc 0
expect_out_file <(printf 'four-gib-marker')
run "$SLUICE" cat --range -3 "$S/five.bin"
expect_rc 0
expect_out_file <(printf '\0\0\0')
run "$SLUICE" du --json "$S/five.bin"
expect_out '{"objects":1,"bytes":5368709120}'

finish
