#!/usr/bin/env bash
# The smallest inputs: an empty tree and a single 0-byte file, through every command.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

E="$T/empty"
mkdir "$E"

say "ls of an empty directory prints nothing and exits 0"
for flags in "" "-r" "--json" "-r --json"; do
    # shellcheck disable=SC2086
    run "$SLUICE" ls $flags "$E"
    expect_rc 0
    expect_out
    expect_err_empty
done
run "$SLUICE" ls -l -r "$E"
expect_rc 0
expect_out "TOTAL: 0 objects, 0 bytes (0 B)"

say "du of an empty directory: 0 objects"
run "$SLUICE" du "$E"
expect_rc 0
expect_out "0 objects, 0 bytes (0 B)	$E"
expect_err_empty
run "$SLUICE" du --json "$E"
expect_rc 0
expect_out '{"objects":0,"bytes":0}'

say "cp / sync / map over 0 objects exit 0 and report 0 objects"
for cmd in "cp" "sync" "map --exec cat" "map --op md5"; do
    # shellcheck disable=SC2086
    run "$SLUICE" $cmd "$E" "$T/out" -q --report "$T/r.json"
    expect_rc 0
    expect_err_empty
    expect_eq "$cmd: report objects" '{"listed": 0, "done": 0, "skipped": 0, "failed": 0}' \
        "$(json_field "$T/r.json" 'd["objects"]')"
    expect_eq "$cmd: report outcome" ok "$(json_field "$T/r.json" 'd["outcome"]')"
    if [ -d "$T/out" ]; then
        expect_eq "$cmd: files in DST" "" "$(find "$T/out" -type f)"
    fi
done
run "$SLUICE" map "$E" - --op md5 -q
expect_rc 0
expect_out
run "$SLUICE" map "$E" - --exec cat
expect_rc 0
expect_out
expect_err_contains "0 done (0 skipped), 0 failed of 0 objects"

Z="$T/zero"
mkdir "$Z"
: >"$Z/empty.bin"

say "one 0-byte file: ls, du, cat"
run "$SLUICE" ls -r "$Z"
expect_rc 0
expect_out "empty.bin"
run "$SLUICE" du --json "$Z"
expect_out '{"objects":1,"bytes":0}'
run "$SLUICE" cat "$Z/empty.bin"
expect_rc 0
expect_out
expect_err_empty

say "one 0-byte file: cp makes a 0-byte copy"
run "$SLUICE" cp "$Z" "$T/zcopy" -q
expect_rc 0
[ -f "$T/zcopy/empty.bin" ] || fail "cp of a 0-byte file" "$T/zcopy/empty.bin exists" "missing"
expect_eq "size of the copy" 0 "$(stat -c %s "$T/zcopy/empty.bin")"
expect_eq "files in DST" "$T/zcopy/empty.bin" "$(find "$T/zcopy" -type f)"
run "$SLUICE" cp "$Z/empty.bin" "$T/zcopy2" -q
expect_rc 0
expect_eq "cp of a single 0-byte file: size" 0 "$(stat -c %s "$T/zcopy2/empty.bin")"

say "one 0-byte file: md5 is d41d8cd98f00b204e9800998ecf8427e, sha256/crc32c/count of nothing"
run "$SLUICE" map "$Z" - --op md5 -q
expect_rc 0
expect_out '{"key":"empty.bin","size":0,"md5":"d41d8cd98f00b204e9800998ecf8427e"}'
run "$SLUICE" map "$Z" - --op sha256 -q
expect_out '{"key":"empty.bin","size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}'
run "$SLUICE" map "$Z" - --op crc32c -q
expect_out '{"key":"empty.bin","size":0,"crc32c":"00000000"}'
run "$SLUICE" map "$Z" - --op count -q
expect_out '{"key":"empty.bin","size":0,"bytes":0,"lines":0}'

say "one 0-byte file: map --exec cat writes a 0-byte output; --exec 'echo x' writes 'x'"
run "$SLUICE" map "$Z" "$T/zmap" --exec cat -q
expect_rc 0
expect_eq "size of the output" 0 "$(stat -c %s "$T/zmap/empty.bin")"
run "$SLUICE" map "$Z" "$T/zmap2" --exec 'echo x' -q
expect_rc 0
expect_eq "output of echo x" x "$(cat "$T/zmap2/empty.bin")"
run "$SLUICE" map "$Z" - --exec 'echo x' -q
expect_out '{"key":"empty.bin","size":0,"output":"x\n"}'

no_tmp_files "$T"
finish
