#!/usr/bin/env bash
# shellcheck disable=SC1083 # {DST}, {AUX}, {FX}, {C} are placeholders the row runner replaces
# Hostile input, one table: malformed URLs, unknown schemes, a missing bucket, permission denied, an unreadable
# file, a destination inside the source, a full or read-only destination file system, object keys that try to
# leave a local destination ('..', a leading '/', '//', control characters, over-long components, a symbolic link
# inside the destination), a missing name with a newline, names with a newline in every output format, commands
# that fail, crash, never read their stdin or write a gigabyte, zero objects, a 0-byte object, bad option values,
# object names that look like shell code, an untrusted TLS certificate, and the umask.
#
# Each row: NAME, the exit status the README documents, an extended regexp that some stderr line must match ('-':
# stderr must be empty), an optional check, and the command. For every row the runner also checks that
#   - every stderr line is one message starting with "sluice: " (a name with a newline never breaks a line), and
#     that a job that could not run (2, 3) says so in exactly one line and prints nothing on stdout;
#   - nothing outside the row's destination changed: the whole scratch tree (other rows' files, the fixtures, the
#     case directory that is the command's working directory, $HOME) is compared before and after the command.
# Checks named in a row look at the destination: the other objects were still processed, nothing partial is left.
#
# In a row's arguments {DST} is the row's destination directory, {AUX} a directory for logs and reports (allowed to
# change), {FX} the read-only fixtures, {C} the row's working directory (must not change).
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

FX="$T/fx"
NROWS=0
NSKIPPED=0
SETUP=""
PRE=()

# ---- fixtures ----
mkdir -p "$FX/src/sub" "$FX/empty" "$FX/zero" "$FX/big" "$FX/nonutf8" "$FX/inj" "$FX/locked/in" "$FX/locked/deny" "$FX/one"
echo alpha >"$FX/src/a.txt"
echo bravo >"$FX/src/b.txt"
echo charlie >"$FX/src/sub/c.txt"
: >"$FX/zero/empty.bin"
echo x >"$FX/zero/x.txt"
head -c $((1 << 20)) /dev/zero | tr '\0' 'z' >"$FX/big/big.bin"
echo one >"$FX/one/one.txt"
printf good >"$FX/nonutf8/good"
printf bad >"$FX/nonutf8/$(printf 'bad\377byte')"
echo ok >"$FX/locked/in/ok.txt"
echo secret >"$FX/locked/in/secret.txt"
echo hidden >"$FX/locked/deny/x"
# Object names that are shell code if anything ever pasted one into a command string.
for k in '$(touch PWNED1)' '; touch PWNED2 #' '`touch PWNED3`' "'; touch PWNED4; '" '"; touch PWNED5; "' \
    '|touch PWNED6' '&& touch PWNED7' '-rf' '$HOME' '; rm -rf keep'; do
    printf '%s' "$k" >"$FX/inj/$k"
done
chmod 755 "$T"
mkdir -p "$T/case"

# ---- the GCS test server and its objects ----
gcs_start --bucket hostile-keys --allow-newline-names
python3 - "$T/seed.json" <<'PY'
import json, sys
objs = []
def put(name, data="d"):
    objs.append({"name": name, "data": data})
# per row: one bad key beside two good ones
bad = {
    "dotdot": "../escape", "dotdot-deep": "a/../../../x", "dotdot-only": "..", "dot": "a/./b",
    "lead-slash": "/abs", "dslash": "a//b", "trail-slash": "dir/", "long": "L" * 300,
    "tmp-name": ".sluice-tmp-abcdef", "nl-dotdot": "../new\nline", "map-dotdot": "../../map-escape",
}
for row, key in bad.items():
    put("k/%s/%s" % (row, key), "bad")
    put("k/%s/ok1" % row, "one")
    put("k/%s/zz/ok2" % row, "two")
put("ctl/ctl\x01\x1bx\x7f", "ctl")
put("ctl/ok1", "one")
put("clash/f", "file")
put("clash/f/g", "under")
put("clash/ok1", "one")
put("nl/new\nline", "newline")
put("nl/ok", "ok")
put("zero/empty", "")
put("zero/x", "x")
for n in ("a", "b", "c"):
    put("three/" + n, n)
json.dump({"bucket": "hostile-keys", "objects": objs}, open(sys.argv[1], "w"))
PY
gcs_seed "@$T/seed.json"

# ---- the table runner ----

# A listing of everything under $T but the row's destination and {AUX}, the runner's own files and the servers'
# logs: type, path, size, mode, and for files the modification time.
snapshot() {
    find "$T" \( -path "$C/dst" -o -path "$C/aux" -o -path "$C/.before" -o -path "$C/.after" -o -path "$T/.*" \
        -o -path "$T/gcs*" \) -prune -o \
        \( -type d -printf 'd %p %m\n' \) -o -printf '%y %p %s %m %T@\n' | LC_ALL=C sort
}

# row NAME RC REGEX CHECK ARGS...: runs "${PRE[@]}" sluice ARGS in the row's directory ($C), after $SETUP if set.
row() {
    local name=$1 want_rc=$2 re=$3 check=$4
    shift 4
    NROWS=$((NROWS + 1))
    C="$T/case/$name"
    DST="$C/dst"
    AUX="$C/aux"
    [ ! -e "$C" ] || fail "row names" "unique" "'$name' twice"
    mkdir -p "$C" "$AUX"
    chmod 777 "$C" "$AUX"
    local args=() a
    for a in "$@"; do
        a="${a//\{DST\}/$DST}"
        a="${a//\{AUX\}/$AUX}"
        a="${a//\{FX\}/$FX}"
        args+=("${a//\{C\}/$C}")
    done
    if [ -n "$SETUP" ] && ! "$SETUP"; then
        NSKIPPED=$((NSKIPPED + 1))
        SETUP="" PRE=()
        return 0
    fi
    say "row $NROWS: $name (expect exit $want_rc)"
    snapshot >"$C/.before"
    cd "$C"
    local t0=$SECONDS
    run "${PRE[@]}" "$SLUICE" "${args[@]}"
    ELAPSED=$((SECONDS - t0))
    cd /
    snapshot >"$C/.after"
    SETUP="" PRE=()
    expect_rc "$want_rc"
    if [ "$re" = - ]; then
        expect_err_empty
    else
        grep -qE -- "$re" "$ERR" || fail "stderr of row $name" "a line matching /$re/" "$(head -c 800 "$ERR")"
    fi
    if grep -qv '^sluice: ' "$ERR"; then
        fail "stderr of row $name" "every line a message starting with 'sluice: '" "$(grep -v '^sluice: ' "$ERR" | head -3)"
    fi
    if [ "$want_rc" = 2 ] || [ "$want_rc" = 3 ]; then
        expect_err_one_line
        expect_out
    fi
    if ! cmp -s "$C/.before" "$C/.after"; then
        fail "row $name wrote nothing outside its destination" "the same tree before and after" \
            "$(diff "$C/.before" "$C/.after" | grep '^[<>]' | head -6)"
    fi
    [ ! -e /abs ] && [ ! -e /escape ] || fail "row $name" "nothing written at the file-system root" "$(ls -d /abs /escape 2>&1)"
    if [ "$check" != - ]; then
        "$check"
    fi
    no_tmp_files "$C"
}

# checks
files_in() { # files_in DIR: relative paths of its regular files, sorted, one per line
    (cd "$1" 2>/dev/null && find . -type f | sed 's|^\./||' | LC_ALL=C sort) || true
}
nothing_created() { [ ! -e "$DST" ] || fail "nothing created" "no $DST" "$(find "$DST" | head -5)"; }
src_copied() { expect_eq "files in the destination" "$(printf '%s\n' a.txt b.txt sub/c.txt)" "$(files_in "$DST")"; }
others_copied() { # the bad key failed alone: exactly one FAILED line, the two good objects are there
    expect_eq "FAILED lines" 1 "$(grep -c 'FAILED' "$ERR")"
    expect_eq "the other objects were copied" "$(printf '%s\n' ok1 zz/ok2)" "$(files_in "$DST")"
    expect_eq "their content" "one two" "$(cat "$DST/ok1") $(cat "$DST/zz/ok2")"
    expect_err_contains "2 done (0 skipped), 1 failed of 3 objects"
}
others_mapped() {
    expect_eq "FAILED lines" 1 "$(grep -c 'FAILED' "$ERR")"
    expect_eq "the other objects were mapped" "$(printf '%s\n' ok1.out zz/ok2.out)" "$(files_in "$DST")"
    [ ! -e "$T/map-escape.out" ] && [ ! -e "$T/case/map-escape.out" ] || fail "map of ../../x" "nothing outside" "a file"
}

# ============================================================================================================
say "malformed URLs and unknown schemes: exit 2, nothing done"
row url-gs-empty 2 'gs://: missing bucket name' nothing_created ls gs://
row url-gs-no-bucket 2 'gs:///x: missing bucket name' nothing_created cp gs:///x {DST}
row url-s3-one-slash 2 's3:/x: expected s3://BUCKET/PREFIX' nothing_created ls s3:/x
row url-gs-one-slash 2 'gs:/x: expected gs://BUCKET/PREFIX' nothing_created cp {FX}/src gs:/x
row url-file-host 2 "not host 'host'" nothing_created cp file://host/x {DST}
row url-file-no-path 2 'file://: missing path' nothing_created ls file://
row url-http 2 "unsupported URL scheme 'http://'" nothing_created cp http://x {DST}
row url-https-dst 2 "unsupported URL scheme 'https://'" nothing_created cp {FX}/src https://example.com/x
row url-unknown-scheme 2 "unsupported URL scheme 'foo\+bar://'" nothing_created ls foo+bar://x/y
row url-empty 2 'empty URL or path' nothing_created ls ''
row url-empty-dst 2 'empty URL or path' nothing_created cp {FX}/src ''
row url-bad-percent 2 "bad percent-escape '%zz'" nothing_created ls 'file:///tmp/%zz'
row url-percent-nul 2 '%00 \(a NUL byte\)' nothing_created cat 'file:///tmp/a%00b'
row url-bad-bucket 2 "invalid bucket name 'Bad_Bucket': bucket names are lowercase" nothing_created ls gs://Bad_Bucket
row url-s3-unsupported 2 'not supported yet' nothing_created cp {FX}/src s3://some-bucket/x

# ============================================================================================================
say "missing things and permission denied"
row gs-missing-bucket 3 'gs://no-such-bucket: no such bucket \(check the name' - ls gs://no-such-bucket/x
row gs-missing-bucket-cp 3 'no such bucket' nothing_created cp gs://no-such-bucket/x {DST}
row local-missing-src 3 'no such file' nothing_created cp {C}/missing {DST}
row missing-newline-name 3 'missing\\nname: no such object' - cat $'gs://hostile-keys/nl/missing\nname'
row missing-newline-path 3 'missing\\npath.*no such file' nothing_created cp $'{C}/missing\npath' {DST}
# A missing destination bucket is found before the first object (a 404 for the bucket; a 403 there would not stop
# the job: an account may write objects without reading the bucket's metadata): exit 3, one line, nothing sent.
row gs-missing-bucket-dst 3 'gs://no-such-bucket: no such bucket \(check the name' nothing_created \
    cp {FX}/src gs://no-such-bucket/x
ID403=$(gcs_retry_test '{"storage.objects.list": ["return-403"]}')
row gs-403-list 3 'HTTP 403.*lack permission' nothing_created cp gs://hostile-keys/k/dot {DST} \
    --header "x-retry-test-id: $ID403"
gcs_expect_consumed "$ID403"
ID403=$(gcs_retry_test '{"storage.objects.get": ["return-403"]}')
one_denied() {
    expect_eq "FAILED lines" 1 "$(grep -c 'FAILED.*403' "$ERR")"
    expect_eq "objects copied besides the denied one" 2 "$(files_in "$DST" | wc -l)"
}
row gs-403-one-object 1 'FAILED a: .*HTTP 403' one_denied cp gs://hostile-keys/three/ {DST} -j 1 \
    --header "x-retry-test-id: $ID403"
gcs_expect_consumed "$ID403"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 &&
    setpriv --reuid=65534 --regid=65534 --clear-groups "$SLUICE" --version >/dev/null 2>&1; then
    as_nobody() { PRE=(setpriv --reuid=65534 --regid=65534 --clear-groups); }
    chmod 000 "$FX/locked/in/secret.txt" "$FX/locked/deny"
    mkdir -p "$T/rootonly"
    chmod 755 "$T/rootonly"
    if setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$FX/locked/in/secret.txt"; then
        skip_note "the unprivileged user can read a chmod 000 file (capabilities?): 6 rows skipped"
        NSKIPPED=$((NSKIPPED + 6))
    else
        unreadable_alone() {
            expect_eq "the readable file is copied" ok "$(cat "$DST/ok.txt")"
            [ ! -e "$DST/secret.txt" ] || fail "the unreadable file" "not copied" "a copy"
        }
        as_nobody
        row unreadable-file 1 'FAILED secret.txt: .*Permission denied' unreadable_alone \
            cp {FX}/locked/in {DST}
        as_nobody
        row unreadable-dir 3 'Permission denied' - ls -r {FX}/locked/deny
        # An unreadable directory inside the source fails alone, under its key, like an object; the rest is copied.
        unreadable_subdir() {
            expect_eq "the readable file is copied" ok "$(cat "$DST/in/ok.txt")"
            [ ! -e "$DST/deny" ] || fail "the unreadable directory" "nothing of it at the destination" "$DST/deny"
            expect_err_contains "FAILED deny/: "
            expect_err_contains "1 done (0 skipped), 2 failed of 3 objects"
        }
        as_nobody
        row unreadable-subdir 1 'FAILED in/secret.txt: .*Permission denied' unreadable_subdir cp {FX}/locked {DST}
        subdir_listed() { expect_out "in/ok.txt" "in/secret.txt"; }
        as_nobody
        row unreadable-subdir-ls 1 'FAILED deny/: .*cannot list directory: Permission denied' subdir_listed \
            ls -r {FX}/locked
        as_nobody
        row unreadable-cat 3 'secret.txt: cannot open: Permission denied' - cat {FX}/locked/in/secret.txt
        as_nobody
        row dst-not-writable 3 'cannot create files in .*rootonly: Permission denied' - \
            cp {FX}/src "$T/rootonly/out"
    fi
    chmod 755 "$FX/locked/deny"
    chmod 644 "$FX/locked/in/secret.txt"
else
    skip_note "not root, or no setpriv: the 6 permission-denied rows as an unprivileged user are skipped"
    NSKIPPED=$((NSKIPPED + 6))
fi

row dst-inside-src 2 'inside the source' - cp {FX}/src {FX}/src/sub/copy
[ ! -e "$FX/src/sub/copy" ] || fail "destination inside the source" "nothing created" "$(find "$FX/src/sub/copy")"
row dst-is-src 2 'inside the source' - sync {FX}/src {FX}/src
echo "a file" >"$T/case/a-file"
row dst-is-a-file 3 'is a file, not a directory' - cp {FX}/src "$T/case/a-file"
expect_eq "the file in the way is untouched" "a file" "$(cat "$T/case/a-file")"

# ============================================================================================================
say "a destination file system that is full (1 MiB tmpfs) or read-only"
MOUNTED=()
mount_small() { # mounts a 1 MiB tmpfs at $DST; false (row skipped) where mount is not permitted
    mkdir -p "$DST"
    if mount -t tmpfs -o size=1m,mode=755 sluice-hostile "$DST" 2>/dev/null; then
        MOUNTED+=("$DST")
        return 0
    fi
    skip_note "cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN): row skipped"
    return 1
}
mount_small_ro() { mount_small && mount -o remount,ro "$DST"; }
hostile_unmount() {
    local m
    for m in "${MOUNTED[@]}"; do umount "$m" 2>/dev/null || true; done
    MOUNTED=()
}
H__PREV_EXIT_TRAP="$(trap -p EXIT)"
eval "set -- ${H__PREV_EXIT_TRAP:-x x x}"
H__PREV_EXIT_TRAP="${3:-true}"
set --
h__on_exit() {
    local rc=$?
    hostile_unmount
    (exit "$rc")
    eval "$H__PREV_EXIT_TRAP"
}
trap h__on_exit EXIT

mkdir -p "$FX/fill"
for i in 1 2 3; do head -c 400000 /dev/urandom >"$FX/fill/big$i"; done
echo small >"$FX/fill/small"
full_checks() {
    local failed
    failed=$(grep -c 'FAILED' "$ERR")
    [ "$failed" -ge 1 ] || fail "a full destination" "at least one object failed" "$failed"
    expect_eq "the small object was copied whole" small "$(cat "$DST/small")"
    local f
    for f in big1 big2 big3; do
        [ ! -e "$DST/$f" ] || cmp -s "$FX/fill/$f" "$DST/$f" || fail "$f" "absent or whole" "a partial file"
    done
    no_tmp_files "$DST"
    hostile_unmount
}
SETUP=mount_small
row dst-full 1 'FAILED big[0-9]: .*No space left on device \(the file system is full' full_checks \
    cp {FX}/fill {DST} -j 1
SETUP=mount_small_ro
row dst-read-only 3 'Read-only file system' hostile_unmount cp {FX}/fill {DST}

# ============================================================================================================
say "object keys from gs:// that would leave a local destination: each fails alone, the others are copied"
row key-dotdot 1 "FAILED \.\./escape: .*unsafe for a local directory: it has a '\.' or '\.\.' path component" \
    others_copied cp gs://hostile-keys/k/dotdot {DST}
row key-dotdot-deep 1 "FAILED a/\.\./\.\./\.\./x: .*unsafe" others_copied cp gs://hostile-keys/k/dotdot-deep {DST}
row key-dotdot-only 1 "FAILED \.\.: .*unsafe" others_copied cp gs://hostile-keys/k/dotdot-only {DST}
row key-dot 1 "FAILED a/\./b: .*unsafe" others_copied cp gs://hostile-keys/k/dot {DST}
row key-leading-slash 1 "FAILED /abs: .*it starts with '/'" others_copied cp gs://hostile-keys/k/lead-slash {DST}
row key-double-slash 1 'FAILED a//b: .*empty path component' others_copied cp gs://hostile-keys/k/dslash {DST}
row key-trailing-slash 1 "FAILED dir/: .*ends with '/'" others_copied sync gs://hostile-keys/k/trail-slash {DST}
row key-long-component 1 'FAILED L{300}: .*a path component of 300 bytes is too long \(limit 255\)' others_copied \
    cp gs://hostile-keys/k/long {DST}
row key-temp-name 1 'FAILED \.sluice-tmp-abcdef: .*reserved for writes in progress' others_copied \
    cp gs://hostile-keys/k/tmp-name {DST}
row key-newline-dotdot 1 'FAILED \.\./new\\nline: .*/\.\./new\\nline: object key is unsafe' others_copied \
    cp gs://hostile-keys/k/nl-dotdot {DST}
row key-map-dotdot 1 'FAILED \.\./\.\./map-escape: .*unsafe' others_mapped \
    map gs://hostile-keys/k/map-dotdot {DST} --exec cat --suffix .out
ctl_copied() {
    expect_eq "the name with control characters, exactly" "$(printf 'ctl\001\033x\177') ok1" \
        "$(cd "$DST" && printf '%s ' ctl* ok1 | sed 's/ $//')"
    expect_eq "its content" ctl "$(cat "$DST/$(printf 'ctl\001\033x\177')")"
}
row key-control-chars 0 - ctl_copied cp gs://hostile-keys/ctl {DST} -q
clash_one() {
    expect_eq "FAILED lines" 1 "$(grep -c FAILED "$ERR")"
    expect_eq "ok1 copied" one "$(cat "$DST/ok1")"
    if [ -d "$DST/f" ]; then
        expect_eq "f/g copied" under "$(cat "$DST/f/g")"
    else
        expect_eq "f copied" file "$(cat "$DST/f")"
    fi
}
row key-file-dir-clash 1 'FAILED f(/g)?: .*(is a file, not a directory|is a directory)' clash_one \
    cp gs://hostile-keys/clash {DST}
# A symbolic link someone left inside the destination is not written through (the destination's own path may be one).
link_in_dst() {
    mkdir -p "$C/outside"
    mkdir -p "$DST"
    ln -s ../outside "$DST/sub"
}
link_refused() {
    expect_eq "nothing written through the link" "" "$(files_in "$C/outside")"
    expect_eq "the other objects were copied" "$(printf '%s\n' a.txt b.txt)" "$(files_in "$DST")"
    [ -L "$DST/sub" ] || fail "the link" "left as it was" "changed"
}
SETUP=link_in_dst
row key-through-symlink 1 'FAILED sub/c.txt: .*/dst/sub: a directory on its path is a symbolic link' link_refused \
    cp {FX}/src {DST}
dst_is_link() { mkdir -p "$AUX/real" && ln -s aux/real "$DST"; }
via_link() { src_copied_to "$AUX/real"; }
src_copied_to() { expect_eq "files" "$(printf '%s\n' a.txt b.txt sub/c.txt)" "$(files_in "$1")"; }
SETUP=dst_is_link
row dst-root-is-symlink 0 - via_link cp {FX}/src {DST} -q
nonutf8_alone() {
    expect_eq "what the server holds" "nu/good" \
        "$(gcs_objects hostile-keys nu/ | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))')"
}
row key-not-utf8-to-gs 1 'FAILED bad\\xffbyte: .*UTF-8' nonutf8_alone cp {FX}/nonutf8 gs://hostile-keys/nu

# ============================================================================================================
say "a name with a newline is escaped in every output format"
row nl-ls 0 - - ls -r gs://hostile-keys/nl
expect_out 'new\nline' ok
row nl-ls-long 0 - - ls -l -r gs://hostile-keys/nl
expect_eq "ls -l lines" 3 "$(wc -l <"$OUT")"
grep -qE '^ +7  [0-9T:-]+Z  new\\nline$' "$OUT" || fail "ls -l line of the newline name" "'... new\\nline'" "$(cat "$OUT")"
json_keys() { # the "key" of every JSON line on stdout, as a JSON list
    python3 -c 'import json, sys; print(json.dumps([json.loads(l)["key"] for l in open(sys.argv[1], "rb")]))' "$OUT"
}
row nl-ls-json 0 - - ls -r --json gs://hostile-keys/nl
expect_eq "ls --json keys" '["new\nline", "ok"]' "$(json_keys)"
row nl-map-stdout 0 - - map gs://hostile-keys/nl - --op md5 -q -j 1
expect_eq "map - keys" '["new\nline", "ok"]' "$(json_keys)"
row nl-dry-run 0 'dry run' - cp gs://hostile-keys/nl {DST} --dry-run -j 1
expect_eq "dry-run keys" '["new\nline", "ok"]' "$(json_keys)"
nl_logs() {
    expect_eq "FAILED lines (escaped, one per object)" 2 "$(grep -c 'FAILED' "$ERR")"
    expect_err_contains 'FAILED new\nline: command exited with status 1'
    expect_eq "failure log keys" '["new\nline", "ok"]' "$(python3 -c '
import json, sys
print(json.dumps(sorted(json.loads(l)["key"] for l in open(sys.argv[1], "rb"))))' "$AUX/failures.jsonl")"
    expect_eq "report failures_sample keys" '["new\nline", "ok"]' \
        "$(json_field "$AUX/report.json" 'sorted(f["key"] for f in d["failures_sample"])')"
    expect_eq "outputs" "" "$(files_in "$DST")"
}
row nl-failure-log-report 1 'FAILED new\\nline' nl_logs \
    map gs://hostile-keys/nl {DST} --exec false --failures {AUX}/failures.jsonl --report {AUX}/report.json

# ============================================================================================================
say "map commands that fail, crash, never read their stdin, or write a gigabyte"
no_outputs() { expect_eq "outputs of a failing command" "" "$(files_in "$DST")"; }
row exec-nonzero 1 'FAILED a.txt: command exited with status 7: oops' no_outputs \
    map {FX}/src {DST} --exec 'sh -c "echo oops >&2; exit 7"'
expect_eq "FAILED lines" 3 "$(grep -c FAILED "$ERR")"
one_fails() {
    expect_eq "the others were mapped" "$(printf '%s\n' a.txt sub/c.txt)" "$(files_in "$DST")"
    expect_eq "content" alpha "$(cat "$DST/a.txt")"
}
row exec-nonzero-one 1 'FAILED b.txt: command exited with status 9' one_fails \
    map {FX}/src {DST} --shell --exec 'case "$SLUICE_KEY" in b.txt) exit 9;; *) cat;; esac'
row exec-segv 1 'FAILED .*command killed by signal SIGSEGV' no_outputs \
    map {FX}/src {DST} --exec 'sh -c "kill -SEGV \$\$"'
row exec-kill9 1 'FAILED .*command killed by signal SIGKILL' no_outputs \
    map {FX}/src {DST} --exec 'sh -c "kill -9 \$\$"'
no_read_done() { expect_eq "output of a command that closed its stdin" "done" "$(cat "$DST/big.bin")"; }
row exec-closes-stdin 0 - no_read_done map {FX}/big {DST} -q --exec 'sh -c "exec 0<&-; sleep 0.2; echo done"'
no_read_empty() { expect_eq "output of sleep" 0 "$(stat -c %s "$DST/big.bin")"; }
row exec-never-reads 0 - no_read_empty map {FX}/big {DST} -q --exec 'sleep 0.3'
gigabyte() {
    expect_eq "output size" 1073741824 "$(stat -c %s "$DST/one.txt")"
    local peak
    peak=$(json_field "$AUX/r.json" 'd["peak_rss_bytes"]')
    if sanitized; then
        skip_note "sanitized build: peak RSS ($peak bytes) not judged"
    else
        [ "$peak" -lt $((64 << 20)) ] || fail "peak RSS while a command writes 1 GiB" "under 64 MiB (streamed)" "$peak"
    fi
    rm -f "$DST/one.txt"
}
row exec-gigabyte 0 - gigabyte map {FX}/one {DST} -q --exec 'head -c 1G /dev/zero' --report {AUX}/r.json
row exec-gigabyte-stdout 1 'FAILED one.txt: command output exceeds [0-9]+ bytes; give a destination instead of -' - \
    map {FX}/one - --exec 'head -c 1G /dev/zero'
expect_out

# ============================================================================================================
say "uploads a server completes early or stores short: the object fails, what was stored is deleted, a rerun redoes it"
# {FX}/big/big.bin is 1 MiB: with --upload-chunk 256K it goes up in a resumable upload of four chunks.
gcs_size() { # gcs_size NAME: the size of gs://hostile-keys/NAME, or "absent"
    gcs_objects hostile-keys "$1" | python3 -c 'import json, sys
items = [json.loads(l) for l in sys.stdin]
print(items[0]["size"] if items else "absent")'
}
gcs_fp() { # gcs_fp NAME: its sluice-source metadata, or "none"
    gcs_objects hostile-keys "$1" | python3 -c 'import json, sys
items = [json.loads(l) for l in sys.stdin]
print(items[0].get("metadata", {}).get("sluice-source", "none") if items else "absent")'
}
failed_corrupt_3() { # the failure log: the object was tried three times, as data that failed a check is
    expect_eq "failure log" "SL_ECORRUPT 3" "$(json_field "$AUX/f.jsonl" '"%s %d" % (d["code"], d["attempts"])')"
}
early_gone() {
    expect_eq "what the server completed early" absent "$(gcs_size early/big.bin)"
    failed_corrupt_3
}
ID=$(gcs_retry_test '{"storage.objects.insert": ["finalize-early", "finalize-early", "finalize-early"]}')
row upload-finalized-early 1 \
    'FAILED big.bin: .*gs://hostile-keys/early/big.bin: upload completed early at 262144 of more than 262144 bytes; the object was deleted$' \
    early_gone map {FX}/big gs://hostile-keys/early --exec cat --upload-chunk 256K --failures {AUX}/f.jsonl \
    --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
early_full() { expect_eq "the object" 1048576 "$(gcs_size early/big.bin)"; }
row upload-finalized-early-rerun 0 'map: 1 done \(0 skipped\), 0 failed of 1 objects' early_full \
    map {FX}/big gs://hostile-keys/early --exec cat --upload-chunk 256K
row upload-finalized-early-rerun2 0 'map: 1 done \(1 skipped\), 0 failed of 1 objects' early_full \
    map {FX}/big gs://hostile-keys/early --exec cat --upload-chunk 256K
# cp knows the size the object should have.
ID=$(gcs_retry_test '{"storage.objects.insert": ["finalize-early", "finalize-early", "finalize-early"]}')
cp_early_gone() { expect_eq "what the server completed early" absent "$(gcs_size early-cp/big.bin)"; }
row upload-finalized-early-cp 1 'FAILED big.bin: .*upload completed early at 262144 of 1048576 bytes; the object was deleted$' \
    cp_early_gone cp {FX}/big gs://hostile-keys/early-cp --upload-chunk 256K --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
# The cut-short object cannot be deleted: it stays, but without a fingerprint (a resumable upload gets one only once
# its object is checked), so the rerun redoes it instead of skipping it.
ID=$(gcs_retry_test '{"storage.objects.insert": ["finalize-early", "finalize-early", "finalize-early"],
    "storage.objects.delete": ["return-503", "return-503", "return-503", "return-503", "return-503", "return-503"]}')
left_short() {
    expect_eq "the object the server completed early" "262144 none" "$(gcs_size stuck/big.bin) $(gcs_fp stuck/big.bin)"
}
row upload-early-undeletable 1 'upload completed early at 262144 of more than 262144 bytes; deleting it failed \(.*HTTP 503' \
    left_short map {FX}/big gs://hostile-keys/stuck --exec cat --upload-chunk 256K --retries 1 "${FAST[@]}" \
    --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
stuck_full() { expect_eq "the object" 1048576 "$(gcs_size stuck/big.bin)"; }
row upload-early-undeletable-rerun 0 'map: 1 done \(0 skipped\), 0 failed of 1 objects' stuck_full \
    map {FX}/big gs://hostile-keys/stuck --exec cat --upload-chunk 256K
# A server that answers 200 but stored other bytes: the answer's size and CRC32C are checked, multipart and resumable.
ID=$(gcs_retry_test '{"storage.objects.insert": ["truncate-upload", "truncate-upload", "truncate-upload"]}')
short_gone() { expect_eq "what the server stored" absent "$(gcs_size short/one.txt)"; }
row upload-stored-short 1 \
    'FAILED one.txt: .*upload completed, but the server stored 2 bytes \(CRC32C [0-9a-f]{8}\), not the 4 bytes sent \(CRC32C [0-9a-f]{8}\); the object was deleted$' \
    short_gone cp {FX}/one gs://hostile-keys/short --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
ID=$(gcs_retry_test '{"storage.objects.insert": ["truncate-upload", "truncate-upload", "truncate-upload"]}')
short_big_gone() { expect_eq "what the server stored" absent "$(gcs_size short/big.bin)"; }
row upload-stored-short-resumable 1 \
    'FAILED big.bin: .*the server stored 524288 bytes \(CRC32C [0-9a-f]{8}\), not the 1048576 bytes sent .*; the object was deleted$' \
    short_big_gone cp {FX}/big gs://hostile-keys/short --upload-chunk 256K --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
# An output changed behind sluice's back keeps its recorded fingerprint, but not the size and CRC32C recorded with it:
# redone. So is an output whose fingerprint was recorded without them (older versions: it cannot vouch for its bytes).
recorded=$(gcs_fp early/big.bin)
case "$recorded" in *" out_size=1048576 out_crc32c="*) ;; *) fail "recorded fingerprint" "... out_size=1048576 out_crc32c=..." "$recorded" ;; esac
gcs_api POST "/upload/storage/v1/b/hostile-keys/o?uploadType=media&name=early%2Fbig.bin" "short" >/dev/null
gcs_api PATCH "/storage/v1/b/hostile-keys/o/early%2Fbig.bin" \
    "$(python3 -c 'import json, sys; print(json.dumps({"metadata": {"sluice-source": sys.argv[1]}}))' "$recorded")" >/dev/null
row upload-output-replaced 0 'map: 1 done \(0 skipped\), 0 failed of 1 objects' early_full \
    map {FX}/big gs://hostile-keys/early --exec cat
gcs_api PATCH "/storage/v1/b/hostile-keys/o/early%2Fbig.bin" \
    "$(python3 -c 'import json, sys; print(json.dumps({"metadata": {"sluice-source": sys.argv[1].split(" out_size=")[0]}}))' "$recorded")" >/dev/null
row upload-output-legacy-fingerprint 0 'map: 1 done \(0 skipped\), 0 failed of 1 objects' early_full \
    map {FX}/big gs://hostile-keys/early --exec cat
# A budget too small for one worker (its state, clients, a transfer buffer, an upload quantum): refused up front,
# naming the least that works.
row budget-below-one-worker 2 '--memory-limit 64.0 KiB is less than one worker needs: .*; give at least [0-9]+K$' \
    nothing_created cp {FX}/src {DST} --memory-limit 64K
row budget-below-one-worker-gs 2 '--memory-limit 512.0 KiB is less than one worker needs: .*, a [0-9.]+ KiB upload buffer, ' \
    - cp {FX}/src gs://hostile-keys/budget --memory-limit 512K

# ============================================================================================================
say "zero objects, 0-byte objects"
row zero-objects 0 '0 done \(0 skipped\), 0 failed of 0 objects' - cp {FX}/empty {DST}
row zero-objects-gs 0 - - ls -r gs://hostile-keys/nothing-here
expect_out
row zero-matching 0 '0 done \(0 skipped\), 0 failed of 0 objects' - map {FX}/src - --op md5 --include '*.none'
expect_out
zero_copied() {
    expect_eq "0-byte object copied" "0 x" "$(stat -c %s "$DST/empty") $(cat "$DST/x")"
}
row zero-byte-gs 0 - zero_copied cp gs://hostile-keys/zero {DST} -q
row zero-byte-md5 0 - - map {FX}/zero/empty.bin - --op md5 -q
expect_out '{"key":"empty.bin","size":0,"md5":"d41d8cd98f00b204e9800998ecf8427e"}'
zero_mapped() { expect_eq "0-byte input through cat" 0 "$(stat -c %s "$DST/empty.bin")"; }
row zero-byte-exec 0 - zero_mapped map {FX}/zero {DST} --exec cat -q

# ============================================================================================================
say "bad option values: exit 2 naming the option, nothing done"
row flag-j-0 2 "-j/--jobs takes a whole number from 1 to 1024, not '0'" nothing_created cp -j 0 {FX}/src {DST}
row flag-j-negative 2 "not '-1'" nothing_created cp -j -1 {FX}/src {DST}
row flag-j-abc 2 "-j/--jobs .* not 'abc'" nothing_created map {FX}/src {DST} --op md5 --jobs abc
row flag-memory-1X 2 "--memory-limit takes a size .* not '1X'" nothing_created cp --memory-limit 1X {FX}/src {DST}
row flag-range-backwards 2 "--range takes A-B, A- or -N .* not '5-2'" - cat --range 5-2 {FX}/src/a.txt
row flag-range-junk 2 "--range .* not 'x-'" - cat --range x- {FX}/src/a.txt
row flag-unknown 2 "unknown option '--frobnicate' \(see \`sluice cp --help\`\)" nothing_created \
    cp --frobnicate {FX}/src {DST}
row flag-missing-value 2 "option '--include' needs a value" nothing_created cp {FX}/src {DST} --include
row flag-retries 2 "--retries takes a whole number from 0 to 100, not '1e3'" - ls --retries 1e3 gs://hostile-keys
row flag-header 2 "--header takes 'Name: value'" - ls --header NoColon gs://hostile-keys
row flag-upload-chunk 2 '--upload-chunk takes a size of at least 256K' nothing_created \
    cp --upload-chunk 1K {FX}/src gs://hostile-keys/u
row flag-mem-interval 2 "--mem-interval .* not '0'" nothing_created cp --mem-interval 0 {FX}/src {DST}

# ============================================================================================================
say "security: object names never reach a shell; TLS is verified; the umask is respected"
inj_exact() {
    # Each output holds its own key (printed by the command from $SLUICE_KEY), and no PWNED file exists anywhere
    # (the runner's snapshot covers the working directory and the whole scratch tree; / and $HOME are checked here).
    local k n=0
    while IFS= read -r -d '' k; do
        k=${k#"$FX/inj/"}
        expect_eq "output of '$k'" "$k" "$(cat "$DST/$k")"
        n=$((n + 1))
    done < <(find "$FX/inj" -type f -print0)
    expect_eq "outputs" 10 "$n"
    expect_eq "the directory '; rm -rf keep' names" "kept" "$(cat "$C/keep/file")"
    [ -z "$(find / -xdev -maxdepth 1 -name 'PWNED*' 2>/dev/null; find "$T" -name 'PWNED*')" ] ||
        fail "object names run as shell code" "no PWNED file" "$(find "$T" / -maxdepth 1 -name 'PWNED*')"
}
make_keep() { mkdir -p "$C/keep" && echo kept >"$C/keep/file"; }
SETUP=make_keep
row inject-shell 0 - inj_exact map {FX}/inj {DST} -q --shell --exec 'printf %s "$SLUICE_KEY"'
SETUP=make_keep
row inject-exec 0 - inj_exact map {FX}/inj {DST} -q --exec 'sh -c "printf %s \"\$SLUICE_KEY\""'
inj_listed() { expect_eq "ls lines" 10 "$(wc -l <"$OUT")"; }
row inject-ls 0 - inj_listed ls {FX}/inj
grep -qxF '$(touch PWNED1)' "$OUT" || fail "ls of shell-code names" "the exact name" "$(cat "$OUT")"

# TLS: a server with a self-signed certificate on 127.0.0.1. First show with curl that it answers and that the
# certificate is the only problem, then that sluice refuses it at once (no retries) with a clear message.
if command -v openssl >/dev/null && command -v curl >/dev/null; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 1 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
    openssl s_server -accept 127.0.0.1:0 -cert "$T/tls.crt" -key "$T/tls.key" -www >"$T/gcs-tls.log" 2>&1 </dev/null &
    GCS_PIDS+=("$!")
    gcs_watch "$!"
    GCS_LOGS+=("$T/gcs-tls.log")
    for _ in $(seq 100); do grep -qs "^ACCEPT" "$T/gcs-tls.log" && break; sleep 0.05; done
    TLS_PORT=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$T/gcs-tls.log")
    [ -n "$TLS_PORT" ] || fail "openssl s_server starts" "an ACCEPT line" "$(cat "$T/gcs-tls.log")"
    curl -sS --noproxy '*' --cacert "$T/tls.crt" -o /dev/null "https://127.0.0.1:$TLS_PORT/" ||
        fail "curl with the server's own certificate as CA" "success" "failure"
    if curl -sS --noproxy '*' -o /dev/null "https://127.0.0.1:$TLS_PORT/" 2>/dev/null; then
        fail "curl with the system's CAs" "a certificate error" "success"
    fi
    quick() { [ "$ELAPSED" -le 3 ] || fail "an untrusted certificate" "fails at once, not after retries" "${ELAPSED}s"; }
    # Where the system has no CA store at all (no ca-certificates package), nothing verifies: that is said instead.
    if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
        TLS_RE="https://127\.0\.0\.1:$TLS_PORT: SSL certificate problem: self-signed certificate \(the server's TLS certificate is not trusted"
    else
        TLS_RE="https://127\.0\.0\.1:$TLS_PORT: .*certificate.* \(cannot load the trusted CA certificates"
    fi
    row tls-self-signed-ls 3 "$TLS_RE" quick ls gs://tls-bucket --endpoint "https://127.0.0.1:$TLS_PORT" --anonymous
    row tls-self-signed-cat 3 'certificate' quick \
        cat gs://tls-bucket/obj --endpoint "https://127.0.0.1:$TLS_PORT" --anonymous
    # cp checks the destination before the first object (its listing, for resuming): one line, nothing sent.
    row tls-self-signed-cp 3 "$TLS_RE" quick \
        cp {FX}/src gs://tls-bucket/x --endpoint "https://127.0.0.1:$TLS_PORT" --anonymous
    if [ -s /etc/ssl/certs/ca-certificates.crt ] && command -v unshare >/dev/null &&
        unshare -m sh -c 'mount --bind /dev/null /etc/ssl/certs/ca-certificates.crt' 2>/dev/null; then
        # In a private mount namespace the system's CA bundle is made empty, for sluice alone.
        PRE=(unshare -m sh -c 'mount --bind /dev/null /etc/ssl/certs/ca-certificates.crt && exec "$@"' sh)
        row tls-no-ca-store 3 'error setting certificate file: .*\(cannot load the trusted CA certificates, so no server can be verified: install the ca-certificates package\)' \
            quick ls gs://tls-bucket --endpoint "https://127.0.0.1:$TLS_PORT" --anonymous
    else
        skip_note "cannot hide the system's CA bundle in a private mount namespace (or there is none): 1 row skipped"
        NSKIPPED=$((NSKIPPED + 1))
    fi
else
    skip_note "no openssl or curl: the 4 TLS rows are skipped"
    NSKIPPED=$((NSKIPPED + 4))
fi

# umask: outputs get 0666 & ~umask, directories 0777 & ~umask; the failure log and the report too.
umask_is() { PRE=(sh -c "umask $1 && exec \"\$@\"" sh); }
modes() { # modes FILE_MODE DIR_MODE
    expect_eq "modes of outputs" "$1 $1 $1" "$(stat -c %a "$DST/a.txt" "$DST/b.txt" "$DST/sub/c.txt" | tr '\n' ' ' | sed 's/ $//')"
    expect_eq "modes of created directories" "$2 $2" "$(stat -c %a "$DST" "$DST/sub" | tr '\n' ' ' | sed 's/ $//')"
    expect_eq "mode of the report" "$1" "$(stat -c %a "$AUX/r.json")"
    expect_eq "mode of the failure log" "$1" "$(stat -c %a "$AUX/f.jsonl")"
}
modes_077() { modes 600 700; }
modes_022() { modes 644 755; }
umask_is 077
row umask-077 0 - modes_077 cp {FX}/src {DST} -q --report {AUX}/r.json --failures {AUX}/f.jsonl
umask_is 022
row umask-022 0 - modes_022 cp {FX}/src {DST} -q --report {AUX}/r.json --failures {AUX}/f.jsonl
# umask 000 asks for 0666 outputs, but the temp file an output is written into stays 0600 until it is complete:
# the command itself looks at the temp file sluice is writing its stdout into.
tmp_private() {
    expect_eq "temp files seen while the command ran" 3 "$(grep -c sluice-tmp "$AUX/seen")"
    expect_eq "temp file modes" "600 600 600" "$(awk '{print $1}' "$AUX/seen" | tr '\n' ' ' | sed 's/ $//')"
    expect_eq "final modes (umask 000)" "666 666 666" \
        "$(stat -c %a "$DST/a.txt" "$DST/b.txt" "$DST/sub/c.txt" | tr '\n' ' ' | sed 's/ $//')"
}
umask_is 000
row umask-000-temp 0 - tmp_private map {FX}/src {DST} -q -j 1 --shell \
    --exec 'cat; find "{DST}" -name ".sluice-tmp-*" -printf "%m %p\n" >>"{AUX}/seen"'

say "$NROWS rows, $NSKIPPED skipped"
[ "$NROWS" -ge 40 ] || fail "table size" "at least 40 rows" "$NROWS"
gcs_finish
