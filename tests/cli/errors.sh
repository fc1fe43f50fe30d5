#!/usr/bin/env bash
# Bad input: each case has its exact exit status, nothing on stdout, and one line on stderr with a useful hint.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

S="$T/src"
mkdir -p "$S/sub"
echo one >"$S/one.txt"
echo two >"$S/sub/two.txt"

# usage RC HINT CMD...: CMD exits RC, prints nothing on stdout, and one stderr line containing HINT
usage() {
    local rc="$1" hint="$2"
    shift 2
    run "$@"
    expect_rc "$rc"
    expect_out
    expect_err_one_line "$hint"
}

say "unknown command, unknown option, missing arguments: exit 2 with a pointer to --help"
usage 2 "unknown command 'frob'" "$SLUICE" frob
usage 2 "sluice --help" "$SLUICE" frob
usage 2 "unknown option '--frob'" "$SLUICE" ls --frob "$S"
usage 2 "sluice ls --help" "$SLUICE" ls --frob "$S"
usage 2 "unknown option '-Z'" "$SLUICE" cp -Z "$S" "$T/o"
usage 2 "unknown option '--jobs'" "$SLUICE" ls --jobs 2 "$S" # a job option on a command that has none
usage 2 "unknown option '--exec'" "$SLUICE" cp --exec cat "$S" "$T/o"
usage 2 "expected one URL" "$SLUICE" ls
usage 2 "expected one URL" "$SLUICE" du "$S" "$S"
usage 2 "expected SRC and DST" "$SLUICE" cp "$S"
usage 2 "expected SRC and DST" "$SLUICE" sync
usage 2 "expected SRC and DST" "$SLUICE" map "$S" --op md5
usage 2 "too many arguments" "$SLUICE" cp "$S" "$T/a" "$T/b" "$T/c"
usage 2 "needs a value" "$SLUICE" cp "$S" "$T/o" -j
usage 2 "needs a value" "$SLUICE" cp "$S" "$T/o" --report
usage 2 "takes no value" "$SLUICE" ls --json=yes "$S"

say "-j 0 / -j abc / -j -1 / -j 1025 / --memory-limit 12 / --memory-limit xyz: exit 2 naming the option"
for j in 0 abc -1 1025 1.5 "" 4x; do
    usage 2 "-j/--jobs" "$SLUICE" cp -j "$j" "$S" "$T/o"
    usage 2 "not '$j'" "$SLUICE" map --jobs "$j" "$S" - --op md5
done
for m in 12 xyz -5M 1Q "" 10MBx; do
    usage 2 "--memory-limit" "$SLUICE" cp --memory-limit "$m" "$S" "$T/o"
done
[ ! -e "$T/o" ] || fail "usage errors create nothing" "no $T/o" "$(find "$T/o")"

say "a bad glob: exit 2, the message names the pattern and the problem"
usage 2 "[" "$SLUICE" cp --include '[' "$S" "$T/o"
usage 2 "unbalanced" "$SLUICE" ls --exclude 'a[b' "$S"
usage 2 "--include" "$SLUICE" map --include '{a,b' "$S" - --op md5
usage 2 "glob" "$SLUICE" du --include 'abc\' "$S"

say "map: unknown --op, both or neither of --exec/--op, --shell without --exec, bad --exec strings"
usage 2 "unknown operation 'nope'" "$SLUICE" map "$S" "$T/o" --op nope
usage 2 "md5" "$SLUICE" map "$S" "$T/o" --op nope
usage 2 "exactly one of --exec CMD, --worker CMD, --op NAME or --plugin LIB.so" "$SLUICE" map "$S" "$T/o" --exec cat --op md5
usage 2 "exactly one of --exec CMD, --worker CMD, --op NAME or --plugin LIB.so" "$SLUICE" map "$S" "$T/o"
usage 2 "--shell" "$SLUICE" map "$S" "$T/o" --shell --op md5
usage 2 "empty command" "$SLUICE" map "$S" "$T/o" --exec ''
usage 2 "unterminated" "$SLUICE" map "$S" "$T/o" --exec "'abc"
usage 2 "unterminated" "$SLUICE" map "$S" "$T/o" --exec 'tr "a-z A-Z'
usage 2 "--suffix" "$SLUICE" map "$S" "$T/o" --exec cat --suffix /x
[ ! -e "$T/o" ] || fail "usage errors create nothing" "no $T/o" "$(find "$T/o")"

say "map --exec with a command that does not exist: exit 3 before anything runs, the message names it"
# (the job cannot run on this machine; README: 3 = the job could not run)
usage 3 "no-such-command-xyz" "$SLUICE" map "$S" "$T/o" --exec 'no-such-command-xyz --flag'
expect_err_contains "PATH"
usage 3 "/nonexistent/bin/tool" "$SLUICE" map "$S" "$T/o" --exec /nonexistent/bin/tool
[ ! -e "$T/o" ] || fail "a missing command creates nothing" "no $T/o" "$(find "$T/o")"

say "s3:// with no credentials anywhere: exit 3 before any request, one line saying what to set; malformed gs:// and s3:// URLs exit 2"
# (gs:// and s3:// have their own stores and tests, tests/cli/gcs_*.sh and s3_*.sh; here only what needs no server)
nocreds() {
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_CONFIG_FILE \
        -u AWS_SHARED_CREDENTIALS_FILE -u AWS_WEB_IDENTITY_TOKEN_FILE -u AWS_CONTAINER_CREDENTIALS_FULL_URI \
        -u AWS_CONTAINER_CREDENTIALS_RELATIVE_URI HOME="$T/no-home" AWS_EC2_METADATA_DISABLED=true "$@"
}
usage 3 "no AWS credentials found" nocreds "$SLUICE" ls s3://my-bucket/prefix
usage 3 "no AWS credentials found" nocreds "$SLUICE" ls s3://my-bucket/prefix/
usage 3 "no AWS credentials found" nocreds "$SLUICE" cp s3://my-bucket/prefix "$T/o"
usage 3 "no AWS credentials found" nocreds "$SLUICE" cp "$S" s3://my-bucket/out
usage 3 "no AWS credentials found" nocreds "$SLUICE" map s3://my-bucket/in - --op md5
usage 3 "--no-sign-request" nocreds "$SLUICE" cat s3://my-bucket/obj
usage 3 "no AWS credentials found" nocreds "$SLUICE" du s3://my-bucket
usage 2 "bucket" "$SLUICE" ls gs://
usage 2 "bucket" "$SLUICE" ls gs://b/x
usage 2 "bucket" "$SLUICE" cp s3://x/y "$T/o"
usage 2 "bucket" "$SLUICE" cp "$S" gs://UPPER_case/x

say "http://, https:// and other schemes: exit 2 naming the supported ones"
usage 2 "unsupported URL scheme" "$SLUICE" cp http://example.com/x "$T/o"
usage 2 "gs://" "$SLUICE" ls https://example.com/x
usage 2 "unsupported URL scheme" "$SLUICE" cp "$S" ftp://example.com/x
usage 2 "file://" "$SLUICE" cat http://example.com/x

say "destination inside the source: exit 2, nothing copied"
usage 2 "inside the source" "$SLUICE" cp "$S" "$S/copy"
usage 2 "inside the source" "$SLUICE" sync "$S" "$S"
usage 2 "inside the source" "$SLUICE" map "$S" "$S/sub/out" --exec cat
usage 2 "inside the source" "$SLUICE" cp "$S/" "file://$S/sub"
[ ! -e "$S/copy" ] && [ ! -e "$S/sub/out" ] || fail "destination inside the source" "nothing created" "$(find "$S")"
say "a destination that only shares a name prefix with the source is fine (src vs src2)"
run "$SLUICE" cp "$S" "${S}2" -q
expect_rc 0

say "a missing source path: exit 3 for ls/du/cat/cp/map, one line naming the path"
usage 3 "$T/missing" "$SLUICE" ls "$T/missing"
usage 3 "$T/missing" "$SLUICE" du "$T/missing"
usage 3 "$T/missing" "$SLUICE" cat "$T/missing"
run "$SLUICE" cp "$T/missing" "$T/o"
expect_rc 3
expect_out
expect_err_contains "$T/missing"
expect_err_contains "no such file"
[ ! -e "$T/o" ] || fail "cp of a missing source" "nothing created" "$(find "$T/o")"
run "$SLUICE" map "$T/missing" - --op md5 -q
expect_rc 3
expect_err_one_line "$T/missing"

say "cat of a directory: exit 3"
usage 3 "not an object" "$SLUICE" cat "$S/sub"

say "unreadable source files and directories"
if [ "$(id -u)" != 0 ]; then
    as_user() { "$@"; }
elif command -v setpriv >/dev/null 2>&1; then
    # root reads anything: run sluice as 'nobody' instead, on a scratch tree that nobody can traverse
    as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
    chmod 755 "$T"
fi
if declare -F as_user >/dev/null; then
    U="$T/unreadable"
    mkdir -p "$U/src/locked" "$U/out"
    chmod 777 "$U/out"
    echo ok >"$U/src/ok.txt"
    echo secret >"$U/src/secret.txt"
    echo hidden >"$U/src/locked/x"
    chmod 000 "$U/src/secret.txt"
    chmod 755 "$U" "$U/src"
    if as_user test -r "$U/src/secret.txt"; then
        skip_note "the test user can read a chmod 000 file (capabilities?); unreadable-file checks skipped"
    else
        run as_user "$SLUICE" cp "$U/src" "$U/out/c" --exclude 'locked/**'
        expect_rc 1
        expect_err_contains "FAILED secret.txt"
        expect_err_contains "Permission denied"
        expect_eq "the readable file is copied" ok "$(cat "$U/out/c/ok.txt")"
        [ ! -e "$U/out/c/secret.txt" ] || fail "unreadable file" "no copy of it" "a copy exists"
        run as_user "$SLUICE" cat "$U/src/secret.txt"
        expect_rc 3
        expect_out
        expect_err_one_line "Permission denied"
        chmod 000 "$U/src/locked"
        run as_user "$SLUICE" ls -r "$U/src/locked"
        expect_rc 3
        expect_err_one_line "Permission denied"
        chmod 755 "$U/src/locked"
        chmod 644 "$U/src/secret.txt"
    fi
else
    skip_note "running as root without setpriv: root reads chmod 000 files, unreadable-file checks skipped"
fi

say "a destination that is an existing regular file: the job cannot run (exit 3), one message, not one per object"
echo "a file" >"$T/dst-file"
run "$SLUICE" cp "$S" "$T/dst-file"
expect_rc 3
expect_out
expect_err_one_line "$T/dst-file"
expect_eq "the file is untouched" "a file" "$(cat "$T/dst-file")"

say "cp of a missing source: exactly one line on stderr (no job summary after the error)"
run "$SLUICE" cp "$T/missing" "$T/o"
expect_rc 3
expect_err_one_line "$T/missing"

say "--memory-limit: the smallest size the error message names is accepted"
run "$SLUICE" cp --memory-limit 12 "$S" "$T/o"
min=$(grep -oE 'at least [0-9]+[KMG]?' "$ERR" | head -1 | sed 's/at least //')
[ -n "$min" ] || fail "--memory-limit 12 message" "'at least SIZE'" "$(cat "$ERR")"
run "$SLUICE" cp --memory-limit "$min" "$S" "$T/minmem" -q
expect_rc 0
rm -rf "$T/minmem" "$T/o"

finish
