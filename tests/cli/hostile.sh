#!/usr/bin/env bash
# shellcheck disable=SC1083 # {DST}, {AUX}, {FX}, {C} are placeholders the row runner replaces
# Hostile input, one table: malformed URLs, unknown schemes, a missing bucket, permission denied, an unreadable
# file, a destination inside the source, a full or read-only destination file system, object keys that try to
# leave a local destination ('..', a leading '/', '//', control characters, over-long components, a symbolic link
# inside the destination), a missing name with a newline, names with a newline in every output format, commands
# that fail, crash, never read their stdin or write a gigabyte, zero objects, a 0-byte object, a server that dies
# mid-job, signals while a request hangs, bad option values,
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
row url-s3-bad-bucket 2 "invalid bucket name 'x'" nothing_created cp {FX}/src s3://x/y

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
say "paths: a destination that overlaps its source, '..' after a link, rm of everything, output files"
# Fixtures of this section: a source of 300 files (the failure-log rows need many failures), a bucket whose objects
# must never change, and a bucket rm empties. Mounts made here (bind mounts, small tmpfs) are undone by each row's
# check, and at exit whatever a failed row left.
PX="$T/px"
mkdir -p "$PX/many"
for i in $(seq -w 1 300); do echo "$i" >"$PX/many/f$i"; done
P9_MOUNTS=()
p9_unmount() {
    local m
    for m in "${P9_MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
    P9_MOUNTS=()
}
P9__PREV_EXIT_TRAP="$(trap -p EXIT)"
eval "set -- ${P9__PREV_EXIT_TRAP:-x x x}"
P9__PREV_EXIT_TRAP="${3:-true}"
set --
p9__on_exit() {
    local rc=$?
    p9_unmount
    (exit "$rc")
    eval "$P9__PREV_EXIT_TRAP"
}
trap p9__on_exit EXIT
gcs_seed '{"bucket": "hostile-paths", "objects": [{"name": "d/a", "data": "alpha"}, {"name": "d/b", "data": "bravo"},
    {"name": "p/x", "data": "x-ray"}, {"name": "p/y", "data": "yankee"}]}'
gcs_seed '{"bucket": "hostile-rm", "objects": [{"name": "one", "data": "1"}, {"name": "sub/two", "data": "2"}]}'
p9_gs_state() { # every object of the bucket as name:generation
    gcs_objects "$1" | python3 -c 'import json, sys
print(" ".join("%s:%s" % (d["name"], d["generation"]) for d in map(json.loads, sys.stdin)))'
}
P9_GS_BEFORE=$(p9_gs_state hostile-paths)
gs_unchanged() { expect_eq "objects of gs://hostile-paths" "$P9_GS_BEFORE" "$(p9_gs_state hostile-paths)"; }

# A destination inside the source, or the source inside the destination, is refused before anything is done, for
# every pair of stores and however the path is spelled: the runner's snapshot shows the source untouched.
alias_src() { ln -s "$FX/src" "$C/alias"; }
SETUP=alias_src
row overlap-link-same 2 'destination .*/alias \(which is .*/fx/src\) is inside the source .*/fx/src \(it is the source itself\)' \
    - map {FX}/src {C}/alias --exec 'gzip -c'
SETUP=alias_src
PRE=(timeout 20)
row overlap-link-nested 2 'destination .*/alias/zzz \(which is .*/fx/src/zzz\) is inside the source' - \
    cp {FX}/src {C}/alias/zzz
SETUP=alias_src
PRE=(timeout 20)
row overlap-link-dry-run 2 'is inside the source' - cp {FX}/src {C}/alias/zzz --dry-run
retry_log() { alias_src && printf '{"key":"a.txt","error":"x"}\n' >"$AUX/log"; }
SETUP=retry_log
row overlap-retry-failed 2 'is inside the source' - sync {FX}/src {C}/alias --retry-failed {AUX}/log
row overlap-src-in-dst 2 'the source .*/fx/src/sub is inside the destination .*/fx/src: an output could replace a source object' \
    - cp {FX}/src/sub {FX}/src
# One object as the source: refused only when its output would be that object itself.
row overlap-single-object 2 'destination .*/fx/src holds the source .*/fx/src/a.txt: its output would replace the source itself' \
    - map {FX}/src/a.txt {FX}/src --exec 'gzip -c'
SETUP=alias_src
row overlap-single-object-link 2 'holds the source .*/fx/src/a.txt' - map {FX}/src/a.txt {C}/alias --exec 'gzip -c'
own_src() { mkdir -p "$DST" && cp -r "$FX/src" "$DST/src"; }
beside_src() {
    expect_eq "the source" alpha "$(cat "$DST/src/a.txt")"
    expect_eq "the output beside it" alpha "$(gunzip -c "$DST/src/a.txt.gz")"
}
SETUP=own_src
row overlap-single-suffix 0 - beside_src map {DST}/src/a.txt {DST}/src --exec 'gzip -c' --suffix .gz -q
bind_src() {
    mkdir -p "$C/mnt" && mount --bind "$FX/src" "$C/mnt" 2>/dev/null && P9_MOUNTS+=("$C/mnt") && return 0
    skip_note "cannot bind-mount here (not root): row skipped"
    return 1
}
SETUP=bind_src
row overlap-bind-mount 2 'destination .*/mnt/out is inside the source .*/fx/src' p9_unmount cp {FX}/src {C}/mnt/out
# gs:// (any bucket scheme): the same bucket and the same or a nested directory-like prefix.
row gs-overlap-same 2 'destination gs://hostile-paths/d is inside the source gs://hostile-paths/d \(it is the source itself\)' \
    gs_unchanged map gs://hostile-paths/d gs://hostile-paths/d --exec 'gzip -c'
row gs-overlap-same-slash 2 'is inside the source' gs_unchanged cp gs://hostile-paths/p/ gs://hostile-paths/p
PRE=(timeout 20)
row gs-overlap-nested 2 'destination gs://hostile-paths/p/zz is inside the source gs://hostile-paths/p' gs_unchanged \
    cp gs://hostile-paths/p gs://hostile-paths/p/zz
row gs-overlap-src-in-bucket-root 2 'the source gs://hostile-paths/p is inside the destination gs://hostile-paths' \
    gs_unchanged cp gs://hostile-paths/p gs://hostile-paths
row gs-overlap-bucket-root-src 2 'destination gs://hostile-paths/copy is inside the source gs://hostile-paths' \
    gs_unchanged sync gs://hostile-paths/ gs://hostile-paths/copy --dry-run
row gs-overlap-single-object 2 'destination gs://hostile-paths/d holds the source gs://hostile-paths/d/a' gs_unchanged \
    map gs://hostile-paths/d/a gs://hostile-paths/d --exec 'gzip -c'
# Not overlapping: "p" never covers "p2"; a suffix keeps one object's output beside it; map to '-' writes nothing.
gs_added() { # gs_added NAME...: the bucket holds its objects as they were, plus exactly these
    local now o before
    now=$(p9_gs_state hostile-paths)
    read -r -a before <<<"$P9_GS_BEFORE"
    for o in "${before[@]}"; do
        case " $now " in *" $o "*) ;; *) fail "gs://hostile-paths/${o%%:*}" "unchanged ($o)" "$now" ;; esac
    done
    expect_eq "objects" "$(printf '%s\n' "${before[@]}" "$@" | sed 's/:.*//' | LC_ALL=C sort | tr '\n' ' ')" \
        "$(tr ' ' '\n' <<<"$now" | sed 's/:.*//' | tr '\n' ' ')"
}
p2_added() { gs_added p2/x p2/y; }
row gs-prefix-sibling 0 - p2_added cp gs://hostile-paths/p gs://hostile-paths/p2 -q
suffix_added() { gs_added p2/x p2/y d/a.out; }
row gs-single-suffix 0 - suffix_added map gs://hostile-paths/d/a gs://hostile-paths/d --exec cat --suffix .out -q
row gs-overlap-stdout 0 - - map gs://hostile-paths/d - --op md5 -q
expect_eq "map to - lines" 3 "$(wc -l <"$OUT")"

# '..' is resolved the way the kernel resolves it: after a symbolic link it leaves the link's target.
dotdot_tree() {
    mkdir -p "$C/pl/real/sub"
    ln -s real/sub "$C/pl/lnk"
    echo pl >"$C/pl/marker"
    echo real >"$C/pl/real/marker"
}
reads_like_cat() { expect_eq "what cat(1) reads" "$(cat "$C/pl/lnk/../marker")" "$(cat "$OUT")"; }
SETUP=dotdot_tree
row dotdot-cat-relative 0 - reads_like_cat cat pl/lnk/../marker
SETUP=dotdot_tree
row dotdot-cat-file-url 0 - reads_like_cat cat file://{C}/pl/lnk/../marker
SETUP=dotdot_tree
row dotdot-ls-dot 0 - - ls pl/lnk/./..
expect_out marker sub/
dotdot_dst() { mkdir -p "$DST/real/sub" && ln -s real/sub "$DST/lnk"; }
p9_copied_to() { expect_eq "files in $1" "$(printf '%s\n' a.txt b.txt sub/c.txt)" "$(files_in "$1")"; }
written_like_shell() {
    p9_copied_to "$DST/real/out"
    [ ! -e "$DST/out" ] || fail "cp to lnk/../out" "nothing at $DST/out" "$(find "$DST/out")"
}
SETUP=dotdot_dst
row dotdot-cp 0 - written_like_shell cp {FX}/src {DST}/lnk/../out -q
new_below_link() { p9_copied_to "$DST/real/sub/out"; }
SETUP=dotdot_dst
row dotdot-cp-not-created 0 - new_below_link cp {FX}/src {DST}/lnk/new/../out -q
dangling() { ln -s nowhere "$C/dangling"; }
SETUP=dangling
row dotdot-dangling 3 'dangling/\.\./x: cannot resolve .\.\.. after .*/dangling: a symbolic link to nothing' - \
    cat dangling/../x

# rm of a whole bucket or of / needs --all. The local rows exclude every key ('**'), so that even a sluice without
# the check would delete nothing (the first row proves the exclusion alone keeps everything).
keep_copy() { mkdir -p "$DST" && cp -r "$FX/src/." "$DST"; }
kept() { src_copied; }
SETUP=keep_copy
row rm-exclude-everything 0 - kept rm -r {DST} --exclude '**' -q
PRE=(timeout 20)
row rm-root 2 'refusing to delete every object under file:///: that is every file on the machine; add --all' - \
    rm -r / --exclude '**'
PRE=(timeout 20)
row rm-root-dry-run 2 'refusing to delete every object under file:///' - rm -r / --dry-run --include 'no-such-key-p9'
PRE=(timeout 20)
row rm-root-spelled 2 'refusing to delete every object under file:///' - rm -r "${P9_EMPTY:-}/" --exclude '**'
PRE=(timeout 20)
row rm-root-file-url 2 'refusing to delete every object under file:///' - rm -r file:///tmp/.. --exclude '**'
root_link() { ln -s / "$C/root"; }
SETUP=root_link
PRE=(timeout 20)
row rm-root-link 2 'refusing to delete every object under file://.*/root \(which is /\)' - rm -r {C}/root --exclude '**'
# rm -r would delete a failure log (or report, timeline, chart) it is writing inside what it deletes: refused.
SETUP=keep_copy
row rm-log-inside 2 'the failure log .*/dst/f.jsonl is inside file://.*/dst, which rm -r deletes: write it somewhere else' \
    kept rm -r {DST} --failures {DST}/f.jsonl
rm_kept() { expect_eq "objects of gs://hostile-rm" "one sub/two" "$(p9_gs_state hostile-rm | sed 's/:[0-9]*//g')"; }
row rm-bucket-root 2 'refusing to delete every object under gs://hostile-rm: that is the whole bucket; add --all' \
    rm_kept rm -r gs://hostile-rm
row rm-bucket-root-slash-dry 2 'refusing to delete every object under gs://hostile-rm' rm_kept \
    rm -r gs://hostile-rm/ --dry-run
rm_listed() { expect_eq "dry-run lines" 2 "$(wc -l <"$OUT")"; rm_kept; }
row rm-bucket-root-all-dry 0 - rm_listed rm -r gs://hostile-rm/ --all --dry-run -q
rm_emptied() { expect_eq "objects of gs://hostile-rm" "" "$(p9_gs_state hostile-rm)"; }
row rm-bucket-root-all 0 - rm_emptied rm -r gs://hostile-rm --all -q

# Output files are written like `> FILE`: a device or a FIFO is written into, a link is followed. As root, device
# nodes of our own (the numbers of /dev/null and /dev/full) stand in for the machine's, so that a sluice that
# replaced them would replace ours; without root the machine's own are used (they cannot be replaced then).
# (In a hidden directory: the runner's snapshot leaves out what writes into them may touch.)
P9_NULL="" P9_FULL=""
mkdir -p "$T/.p9dev"
if mknod "$T/.p9dev/null" c 1 3 2>/dev/null && mknod "$T/.p9dev/full" c 1 7 2>/dev/null &&
    : >"$T/.p9dev/null" 2>/dev/null; then
    chmod 666 "$T/.p9dev/null" "$T/.p9dev/full"
    P9_NULL="$T/.p9dev/null" P9_FULL="$T/.p9dev/full"
elif [ "$(id -u)" != 0 ]; then
    P9_NULL=/dev/null P9_FULL=/dev/full
else
    skip_note "root, and no device node can be made in the scratch directory: the device rows are skipped"
fi
devices_kept() {
    [ -c "$P9_NULL" ] && [ -c "$P9_FULL" ] || fail "the device nodes" "still character devices" "$(ls -l "$P9_NULL" "$P9_FULL")"
}
if [ -n "$P9_NULL" ]; then
    row out-null-chart-report 0 - devices_kept cp {FX}/src {DST} -q --chart "$P9_NULL" --report "$P9_NULL"
    row out-null-log-timeline 1 'FAILED' devices_kept map {FX}/src {DST} --exec false --failures "$P9_NULL" \
        --timeline "$P9_NULL" --chart "$P9_NULL"
    # Written into, every write fails with ENOSPC: a job error (3), whatever the objects did, said in one line.
    row out-full-failures 3 'cannot write the failure log .*/full: No space left on device; the job stopped there' \
        devices_kept map {FX}/src - --exec false -q --failures "$P9_FULL"
    row out-full-report-partial 3 'cannot write the report .*/full: No space left on device' devices_kept \
        map {FX}/src - --exec false -q --report "$P9_FULL"
    row out-full-chart 3 'cannot write the chart .*/full: No space left on device' devices_kept \
        cp {FX}/src {DST} -q --chart "$P9_FULL"
    row out-full-timeline 3 'cannot write the timeline .*/full: No space left on device' devices_kept \
        cp {FX}/src {DST} -q --timeline "$P9_FULL"
    # Only once our own nodes survived: the machine's /dev/null.
    if [ "$P9_NULL" != /dev/null ]; then
        sys_null_kept() { [ -c /dev/null ] || fail "/dev/null" "a character device" "$(ls -l /dev/null)"; }
        row out-dev-null 0 - sys_null_kept cp {FX}/src {DST} -q --chart /dev/null --report /dev/null
    fi
fi
fifo_reader() {
    mkfifo "$AUX/fifo"
    timeout 60 cat "$AUX/fifo" >"$AUX/fifo.out" &
    P9_READER=$!
}
fifo_read() {
    wait "$P9_READER" || fail "the FIFO's reader" "got the chart and exited 0" "exit $?"
    [ -p "$AUX/fifo" ] || fail "the FIFO" "still a FIFO" "$(ls -l "$AUX/fifo")"
    grep -q '</svg>' "$AUX/fifo.out" || fail "what the reader got" "a whole SVG" "$(head -c 200 "$AUX/fifo.out")"
}
SETUP=fifo_reader
row out-fifo-chart 0 - fifo_read cp {FX}/src {DST} -q --chart {AUX}/fifo
links_out() { mkdir -p "$AUX/real" && ln -s real/chart.svg "$AUX/chart.svg" && ln -s real/r.json "$AUX/r.json"; }
through_links() {
    [ -L "$AUX/chart.svg" ] && [ -L "$AUX/r.json" ] || fail "the links" "still links" "$(ls -l "$AUX")"
    grep -q '</svg>' "$AUX/real/chart.svg" || fail "the chart's target" "the SVG" "$(head -c 200 "$AUX/real/chart.svg")"
    expect_eq "the report's target" 3 "$(json_field "$AUX/real/r.json" 'd["objects"]["done"]')"
    expect_eq "files beside the links and their targets (no temp file left)" "chart.svg r.json real chart.svg r.json" \
        "$(cd "$AUX" && ls -A | tr '\n' ' ' && ls -A real | tr '\n' ' ' | sed 's/ $//')"
    expect_eq "modes (umask 027)" "640 640" "$(stat -c %a "$AUX/real/chart.svg" "$AUX/real/r.json" | tr '\n' ' ' | sed 's/ $//')"
}
SETUP=links_out
PRE=(sh -c 'umask 027 && exec "$@"' sh)
row out-symlinks 0 - through_links cp {FX}/src {DST} -q --chart {AUX}/chart.svg --report {AUX}/r.json

# Output files are checked before anything runs (exit 3, nothing created); one that cannot be written during the
# run (a full disk) stops the job with exit 3, said in one line; a report that cannot be replaced leaves the old one.
row out-report-no-dir 3 'cannot write the report .*/aux/no/such/r.json: directory .*/aux/no/such: No such file or directory' \
    nothing_created cp {FX}/src {DST} --report {AUX}/no/such/r.json
row out-report-is-dir 3 'cannot write the report .*/aux: it is a directory' nothing_created cp {FX}/src {DST} --report {AUX}
row out-chart-no-dir 3 'cannot write the chart' nothing_created map {FX}/src {DST} --op md5 --chart {AUX}/no/c.svg
small_fs() { # a 1 MiB tmpfs at $AUX/small; $1: bytes left free once it is filled (0: full)
    mkdir -p "$AUX/small"
    if ! mount -t tmpfs -o size=1m,mode=755 sluice-p9 "$AUX/small" 2>/dev/null; then
        skip_note "cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN): row skipped"
        return 1
    fi
    P9_MOUNTS+=("$AUX/small")
    head -c 2M /dev/zero >"$AUX/small/fill" 2>/dev/null || true
    [ "${1:-0}" = 0 ] || truncate -s "-$1" "$AUX/small/fill"
}
small_ro() { small_fs 0 && mount -o remount,ro "$AUX/small"; }
SETUP=small_ro
row out-report-read-only 3 'cannot write the report .*/small/r.json: cannot create files in .*/small: Read-only file system' \
    nothing_created cp {FX}/src {DST} --report {AUX}/small/r.json
small_4k() { small_fs 4096; }
log_torn() {
    local lines
    lines=$(wc -l <"$AUX/small/f.jsonl")
    [ "$lines" -lt 300 ] || fail "the failure log on a full disk" "cut short" "$lines lines"
    if [ "$(tail -c 1 "$AUX/small/f.jsonl" | od -An -c | tr -d ' ')" != '\n' ]; then
        run "$SLUICE" map "$PX/many" - --exec false -q --retry-failed "$AUX/small/f.jsonl"
        expect_rc 2 # a torn last line is refused by --retry-failed: the run that wrote it said so with exit 3
    fi
    p9_unmount
}
SETUP=small_4k
row out-failures-disk-full 3 'cannot write the failure log .*/small/f.jsonl: No space left on device; the job stopped there: 0 objects done, [0-9]+ failed, [0-9]+ not started' \
    log_torn map "$PX/many" - --exec false -q --failures {AUX}/small/f.jsonl
old_report() {
    small_fs 0 || return 1
    rm -f "$AUX/small/fill"
    echo "old report" >"$AUX/small/r.json"
    head -c 2M /dev/zero >"$AUX/small/fill" 2>/dev/null || true
}
report_kept() {
    expect_eq "the report that was there" "old report" "$(cat "$AUX/small/r.json")"
    expect_eq "files on the full file system (no temp file left)" "fill r.json" "$(cd "$AUX/small" && ls -A | tr '\n' ' ' | sed 's/ $//')"
    p9_unmount
}
SETUP=old_report
row out-report-disk-full 3 'cannot write the report .*/small/r.json: No space left on device' report_kept \
    cp {FX}/src {DST} -q --report {AUX}/small/r.json
timeline_cut() {
    [ "$(wc -l <"$AUX/small/t.csv")" -gt 1 ] || fail "the timeline" "some lines before the disk filled" "$(wc -l <"$AUX/small/t.csv")"
    p9_unmount
}
SETUP=small_4k
row out-timeline-disk-full 3 'cannot write the timeline .*/small/t.csv: No space left on device; the job stopped there' \
    timeline_cut map "$PX/many" {DST} --exec 'sleep 0.2' -j 1 -q --mem-interval 10 --timeline {AUX}/small/t.csv

# sluice watch: the same files, the same rules; its own exit status is CMD's, or 3 when CMD exited 0 but a file
# could not be written (its text block on stderr does not fit the table's one-message-per-line rule).
say "paths: sluice watch --chart/--report/--timeline into devices, FIFOs and full disks"
if [ -n "$P9_NULL" ]; then
    run "$SLUICE" watch --chart "$P9_NULL" --report "$P9_NULL" -- true
    expect_rc 0
    devices_kept
    run "$SLUICE" watch --report "$P9_FULL" -- true
    expect_rc 3
    expect_err_contains "sluice: watch: cannot write --report $P9_FULL: No space left on device"
    run "$SLUICE" watch --chart "$P9_FULL" -- sh -c 'exit 5'
    expect_rc 5 # CMD's own failure wins
    expect_err_contains "cannot write the chart $P9_FULL: No space left on device"
    devices_kept
fi
C="$T/case/watch-fifo" AUX="$T/case/watch-fifo/aux"
mkdir -p "$AUX"
fifo_reader
run "$SLUICE" watch --chart "$AUX/fifo" -- true
expect_rc 0
fifo_read
C="$T/case/watch-full" AUX="$T/case/watch-full/aux"
mkdir -p "$AUX"
if small_fs 4096; then
    run "$SLUICE" watch --interval 10 --timeline "$AUX/small/t.csv" -- sleep 3
    expect_rc 3
    expect_err_contains "sluice: watch: cannot write the timeline $AUX/small/t.csv: No space left on device (the timeline ends there; the watch goes on)"
    # Said while CMD ran: before the summary block, which comes once CMD has exited.
    [ "$(grep -n 'the timeline ends there' "$ERR" | cut -d: -f1)" -lt "$(grep -n '^sluice watch: sleep 3' "$ERR" | cut -d: -f1)" ] ||
        fail "the timeline's error" "said before the summary" "$(cat "$ERR")"
    p9_unmount
fi

# ============================================================================================================
say "what a URL names: nothing (exit 3), one object, a prefix, or both; a bucket that does not serve its resource"
# A source URL that names neither an object nor a prefix holding objects is exit 3 for every command that reads one, as
# a missing local path is; a prefix that exists but holds nothing (the root of an empty bucket, a folder placeholder,
# an empty directory) is not missing. gs://b/both names the object "both" and the objects under "both/": ls shows both,
# ls -r, du and rm -r take both (keyed from the parent), cat and rm the object, cp, sync and map refuse (exit 2) and
# say how to name each. rm of nothing says "no such object" (exit 3) and gives the -r hint only for a prefix that is
# there.
gcs_seed '{"bucket": "hostile-src", "objects": [{"name": "both", "data": "obj"}, {"name": "both/x", "data": "x"},
    {"name": "both/sub/y", "data": "y"}, {"name": "pre/a", "data": "a"}, {"name": "pre/b", "data": "b"},
    {"name": "folder/", "data": ""}, {"name": "rmo", "data": "o"}, {"name": "rmo/x", "data": "x"},
    {"name": "rmr", "data": "r"}, {"name": "rmr/x", "data": "x"}, {"name": "rmr/y/z", "data": "z"},
    {"name": "rmr2/keep", "data": "k"}, {"name": "rw/a", "data": "a"}, {"name": "rw/b", "data": "b"}]}'
gcs_seed '{"bucket": "hostile-srcempty", "objects": []}'
gcs_seed '{"bucket": "hostile-rwdst", "objects": []}'
s10_names() { # s10_names BUCKET [PREFIX]: the names the bucket holds, on one line
    gcs_objects "$1" "${2:-}" | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))'
}
S10_BEFORE=$(s10_names hostile-src)
printf '{"key":"both","error":"x"}\n' >"$FX/both.jsonl"
s10_unchanged() { expect_eq "objects of gs://hostile-src" "$S10_BEFORE" "$(s10_names hostile-src)"; }
s10_nothing() { nothing_created && s10_unchanged; }
NOSUCH='gs://hostile-src/nope: no such object or prefix$'
row src-nothing-cp 3 "$NOSUCH" s10_nothing cp gs://hostile-src/nope {DST}
row src-nothing-cp-slash 3 'gs://hostile-src/nope/: no such object or prefix$' s10_nothing cp gs://hostile-src/nope/ {DST}
row src-nothing-cp-dry 3 "$NOSUCH" s10_nothing cp gs://hostile-src/nope {DST} --dry-run
row src-nothing-sync 3 "$NOSUCH" s10_nothing sync gs://hostile-src/nope {DST}
row src-nothing-map 3 "$NOSUCH" s10_nothing map gs://hostile-src/nope - --op md5
row src-nothing-gs-to-gs 3 "$NOSUCH" s10_nothing cp gs://hostile-src/nope gs://hostile-src/out
row src-nothing-rm-r 3 "$NOSUCH" s10_unchanged rm -r gs://hostile-src/nope
row src-nothing-du 3 "$NOSUCH" - du gs://hostile-src/nope
row src-nothing-ls 3 "$NOSUCH" - ls gs://hostile-src/nope
row src-nothing-ls-r 3 "$NOSUCH" - ls -r gs://hostile-src/nope
# Not missing: an empty bucket's root, a folder placeholder alone, an empty directory, a prefix filtered to nothing.
no_output() { expect_out; }
row src-empty-bucket-ls 0 - no_output ls -r gs://hostile-srcempty
row src-empty-bucket-cp 0 '0 done \(0 skipped\), 0 failed of 0 objects' nothing_created cp gs://hostile-srcempty {DST}
row src-folder-placeholder 0 - no_output ls gs://hostile-src/folder
du_zero() { expect_out "0 objects, 0 bytes (0 B)	$FX/empty"; }
row src-empty-dir-du 0 - du_zero du {FX}/empty
row src-filtered-to-nothing 0 '0 done \(0 skipped\), 0 failed of 0 objects' nothing_created \
    cp gs://hostile-src/pre {DST} --include '*.none'
# rm of nothing: "no such object", exit 3, no -r hint; of a prefix that is there: the hint, exit 2.
no_hint() { ! grep -q -- 'add -r' "$ERR" || fail "rm of nothing" "no -r hint" "$(cat "$ERR")"; s10_unchanged; }
row rm-nothing-gs 3 'sluice: rm: gs://hostile-src/nope: no such object$' no_hint rm gs://hostile-src/nope
row rm-nothing-local 3 'sluice: rm: file://.*/missing: no such object \(no such file or directory\)$' no_hint \
    rm {C}/missing
row rm-prefix-hint 2 'gs://hostile-src/pre is not the name of one object: add -r' s10_unchanged rm gs://hostile-src/pre
# A prefix or directory that is there but holds no objects gets no hint either: rm -r would delete nothing.
row rm-empty-folder 3 'sluice: rm: gs://hostile-src/folder: no such object \(a prefix that holds no objects\)$' \
    no_hint rm gs://hostile-src/folder
row rm-empty-dir 3 'sluice: rm: file://.*/empty: no such object \(an empty directory; rm never deletes directories\)$' \
    no_hint rm {FX}/empty
# An account that may read objects but not list them (403 on every listing) still copies, lists and deletes the one
# object a URL names: the look for a prefix of the same name is not a reason to fail.
ID403L=$(gcs_retry_test '{"storage.objects.list": ["return-403", "return-403", "return-403"]}')
one_copied() { expect_eq "files" a "$(files_in "$DST")" && expect_eq "its content" a "$(cat "$DST/a")"; }
row one-object-no-list-cp 0 - one_copied cp gs://hostile-src/pre/a {DST} -q --header "x-retry-test-id: $ID403L"
one_listed() { expect_out a; }
row one-object-no-list-ls 0 - one_listed ls gs://hostile-src/pre/a --header "x-retry-test-id: $ID403L"
row one-object-no-list-rm-nothing 3 'sluice: rm: gs://hostile-src/nope: no such object$' no_hint \
    rm gs://hostile-src/nope --header "x-retry-test-id: $ID403L"
gcs_expect_consumed "$ID403L"
# gs://hostile-src/both: the object "both" and the prefix "both/".
both_one_level() { expect_out both both/; }
row both-ls 0 - both_one_level ls gs://hostile-src/both
both_recursive() { expect_out both both/sub/y both/x; }
row both-ls-r 0 - both_recursive ls -r gs://hostile-src/both
both_counted() { expect_out "3 objects, 5 bytes (5 B)	gs://hostile-src/both"; }
row both-du 0 - both_counted du gs://hostile-src/both
both_cat() { expect_eq "stdout" obj "$(cat "$OUT")"; }
row both-cat 0 - both_cat cat gs://hostile-src/both
BOTH='gs://hostile-src/both names both an object and a prefix that holds objects \(gs://hostile-src/both/\.\.\.\), and (cp|sync|map) names its outputs differently for each: give gs://hostile-src/both/ for the objects under the prefix, or gs://hostile-src/ --include ./both. for the object alone'
row both-cp 2 "$BOTH" s10_nothing cp gs://hostile-src/both {DST}
row both-sync 2 "$BOTH" s10_nothing sync gs://hostile-src/both {DST}
row both-map 2 "$BOTH" s10_nothing map gs://hostile-src/both {DST} --exec cat
row both-cp-gs 2 "$BOTH" s10_nothing cp gs://hostile-src/both gs://hostile-rwdst/both
row both-retry-failed 2 "$BOTH" s10_nothing cp gs://hostile-src/both {DST} --retry-failed {FX}/both.jsonl
# ... and what the message says to give instead does each one.
under_copied() { expect_eq "files" "$(printf '%s\n' sub/y x)" "$(files_in "$DST")"; }
row both-prefix-named 0 - under_copied cp gs://hostile-src/both/ {DST} -q
object_copied() { expect_eq "files" both "$(files_in "$DST")" && expect_eq "its content" obj "$(cat "$DST/both")"; }
row both-object-named 0 - object_copied cp gs://hostile-src/ {DST} --include /both -q
rmo_done() { expect_eq "objects left of rmo" "rmo/x" "$(s10_names hostile-src rmo)"; }
row both-rm 0 - rmo_done rm gs://hostile-src/rmo -q
# Workers print dry-run lines in the order they finish: compare them sorted.
rmr_listed() { LC_ALL=C sort -o "$OUT" "$OUT"; expect_out '{"key":"rmr","size":1,"dry_run":true}' '{"key":"rmr/x","size":1,"dry_run":true}' \
    '{"key":"rmr/y/z","size":1,"dry_run":true}'; }
row both-rm-r-dry 0 - rmr_listed rm -r gs://hostile-src/rmr --dry-run -q
rmr_done() { expect_eq "objects left of rmr" "rmr2/keep" "$(s10_names hostile-src rmr)"; }
row both-rm-r 0 - rmr_done rm -r gs://hostile-src/rmr -q
# A bucket that does not serve its own resource (404: an emulator that makes buckets on first upload; 501: no
# buckets.get at all) but lists and takes uploads is written to; a bucket that is missing to a listing too is not.
gcs_seed '{"bucket": "hostile-nores", "objects": []}'
gcs_seed '{"bucket": "hostile-nores501", "objects": []}'
gcs_config '{"bucket_modes": {"hostile-nores": ["no-bucket-resource"], "hostile-nores501": ["bucket-resource-501"],
    "hostile-gone501": ["bucket-resource-501"]}}'
nores_written() { expect_eq "objects uploaded" "up/a.txt up/b.txt up/sub/c.txt" "$(s10_names hostile-nores up/)"; }
row bucket-resource-404 0 - nores_written cp {FX}/src gs://hostile-nores/up -q
nores501_written() { expect_eq "objects uploaded" "up/a.txt up/b.txt up/sub/c.txt" "$(s10_names hostile-nores501 up/)"; }
row bucket-resource-501 0 - nores501_written cp {FX}/src gs://hostile-nores501/up -q
row bucket-resource-501-missing 3 'gs://hostile-gone501: no such bucket \(check the name' - \
    cp {FX}/src gs://hostile-gone501/up
gcs_config '{"bucket_modes": {"hostile-nores": [], "hostile-nores501": [], "hostile-gone501": []}}'
# A server-side copy that fails names its source and its destination.
ID=$(gcs_retry_test '{"storage.objects.rewrite": ["return-404"]}')
rewrite_named() {
    expect_eq "FAILED lines" 1 "$(grep -c FAILED "$ERR")"
    expect_eq "the other object was copied" "d/b" "$(s10_names hostile-rwdst d/)"
}
row rewrite-names-both 1 'FAILED a: server-side copy of gs://hostile-src/rw/a to gs://hostile-rwdst/d/a: HTTP 404' \
    rewrite_named cp gs://hostile-src/rw gs://hostile-rwdst/d -j 1 --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"

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
say "names like sluice's temp files: only a file named .sluice-tmp- + 6 letters or digits is a write in progress"
mkdir -p "$FX/tmplike/sub" "$FX/tmplike/.sluice-tmp-Dir123"
echo a >"$FX/tmplike/a.txt"
echo notes >"$FX/tmplike/.sluice-tmp-notes.txt"
echo short >"$FX/tmplike/.sluice-tmp-abc"
echo seven >"$FX/tmplike/.sluice-tmp-abcdefg"
echo inside >"$FX/tmplike/.sluice-tmp-Dir123/inside"
# Exactly the form of a temp file: a write in progress or a leftover, in a source too; never an object.
echo partial >"$FX/tmplike/sub/.sluice-tmp-AbC123"
TMPLIKE=(.sluice-tmp-Dir123/inside .sluice-tmp-abc .sluice-tmp-abcdefg .sluice-tmp-notes.txt a.txt)
row tmpname-ls 0 - - ls -r {FX}/tmplike
expect_out "${TMPLIKE[@]}"
row tmpname-du 0 - - du {FX}/tmplike
grep -q '^5 objects, 27 bytes ' "$OUT" || fail "du of names like temp files" "5 objects, 27 bytes" "$(cat "$OUT")"
tmplike_copied() {
    expect_eq "files copied" "$(printf '%s\n' "${TMPLIKE[@]}")" "$(files_in "$DST")"
    expect_eq "content" notes "$(cat "$DST/.sluice-tmp-notes.txt")"
}
row tmpname-cp 0 '5 done \(0 skipped\), 0 failed of 5 objects' tmplike_copied cp {FX}/tmplike {DST}
copy_tmplike_first() { "$SLUICE" cp -q "$FX/tmplike" "$DST"; }
SETUP=copy_tmplike_first
row tmpname-rerun 0 '5 done \(5 skipped\), 0 failed of 5 objects' tmplike_copied sync {FX}/tmplike {DST}
# A destination holding the user's own files named like temp files: they stay; only a leftover of the exact form
# that no writer holds is removed.
dst_user_tmp_names() {
    mkdir -p "$DST/sub"
    echo mine >"$DST/.sluice-tmp-keep.me"
    echo mine >"$DST/sub/.sluice-tmp-abcde"
    echo mine >"$DST/sub/.sluice-tmp-x_yz12"
    echo partial >"$DST/sub/.sluice-tmp-Stale9"
}
user_names_kept() {
    expect_eq "files" "$(printf '%s\n' .sluice-tmp-keep.me a.txt b.txt sub/.sluice-tmp-abcde sub/.sluice-tmp-x_yz12 \
        sub/c.txt)" "$(files_in "$DST")"
    expect_eq "the user's file" mine "$(cat "$DST/.sluice-tmp-keep.me")"
}
SETUP=dst_user_tmp_names
row tmpname-dst-user-files 0 - user_names_kept cp {FX}/src {DST} -q
tmplike_in_dst() { mkdir -p "$DST" && cp -r "$FX/tmplike/." "$DST/" && rm "$DST/sub/.sluice-tmp-AbC123"; }
all_removed() { expect_eq "files left" "" "$(files_in "$DST")"; }
SETUP=tmplike_in_dst
row tmpname-rm-r 0 '5 done \(0 skipped\), 0 failed of 5 objects' all_removed rm -r {DST}
notes_removed() {
    [ ! -e "$DST/.sluice-tmp-notes.txt" ] || fail "rm of .sluice-tmp-notes.txt" "removed" "still there"
    expect_eq "files left" 4 "$(files_in "$DST" | wc -l)"
}
SETUP=tmplike_in_dst
row tmpname-rm-one 0 '1 done \(0 skipped\), 0 failed of 1 objects' notes_removed rm {DST}/.sluice-tmp-notes.txt
# gs:// keys: only the exact form is refused at a local destination (row key-temp-name); the others are copied.
gcs_seed '{"bucket": "hostile-keys", "create_bucket": false, "objects": [
    {"name": "tn/.sluice-tmp-notes", "data": "notes"}, {"name": "tn/.sluice-tmp-abcdefg", "data": "seven"},
    {"name": "tn/d/.sluice-tmp-12345", "data": "five"}, {"name": "tn/.sluice-tmp-AbC123/x", "data": "in a dir"},
    {"name": "tn/ok", "data": "ok"}]}'
gs_tmplike_copied() {
    expect_eq "files" "$(printf '%s\n' .sluice-tmp-AbC123/x .sluice-tmp-abcdefg .sluice-tmp-notes d/.sluice-tmp-12345 \
        ok)" "$(files_in "$DST")"
}
row tmpname-gs-to-local 0 - gs_tmplike_copied cp gs://hostile-keys/tn {DST} -q
gs_got_tmplike() {
    expect_eq "objects at the server" "$(printf 'tl/%s\n' "${TMPLIKE[@]}")" \
        "$(gcs_objects hostile-keys tl/ |
            python3 -c 'import json, sys; print("\n".join(json.loads(l)["name"] for l in sys.stdin))')"
}
row tmpname-local-to-gs 0 - gs_got_tmplike cp {FX}/tmplike gs://hostile-keys/tl -q

say "files whose size says nothing of their content (/proc), and files that change while being read"
cat /proc/version >"$T/proc-version" # cmp(1) takes the 0 bytes /proc reports for the file's size
row proc-cat 0 - - cat /proc/version
expect_out_file "$T/proc-version"
proc_copied() { expect_eq "the copy of /proc/version" "$(cat /proc/version)" "$(cat "$DST/version")"; }
row proc-cp 0 - proc_copied cp /proc/version {DST} -q
row proc-count 0 - - map /proc/version - --op count -q
expect_out "{\"key\":\"version\",\"size\":0,\"bytes\":$(wc -c </proc/version),\"lines\":1}"
row proc-range 0 - - cat --range 0-4 /proc/version
expect_eq "bytes 0-4 of /proc/version" "$(head -c 5 /proc/version)" "$(cat "$OUT")"
row proc-range-from-end 3 '/proc/version: the file system reports a size of 0 but the file has content' - \
    cat --range -10 /proc/version
# The command appends to its own source file before it reads it: the reader is still at the first of many buffers
# (16 MiB), so the file has grown before its last byte is read, whatever the machine's speed.
grow_src() { mkdir -p "$AUX/grow" && head -c 16777216 /dev/zero >"$AUX/grow/grow.bin" && echo ok >"$AUX/grow/ok.txt"; }
grow_failed_alone() {
    expect_eq "outputs" ok.txt "$(files_in "$DST")"
    expect_err_contains "1 done (0 skipped), 1 failed of 2 objects"
}
SETUP=grow_src
row grows-while-read 1 'FAILED grow.bin: .*changed while being read \(16777216 bytes when opened, 16777221 now\)' \
    grow_failed_alone map {AUX}/grow {DST} -j 1 --shell \
    --exec 'case "$SLUICE_KEY" in grow.bin) echo more >>"{AUX}/grow/grow.bin" ;; esac; cat'

say "a local tree deeper than PATH_MAX: keys up to 4,095 bytes work, a longer one fails alone with its reason"
# 20 directories of 200 bytes (4,020 key bytes); in the last: f (a key of 4,090 bytes: its full path is longer than
# PATH_MAX), g (4,120 bytes) and the directory h/ (4,111 bytes) holding one file. mkdir -p cannot make such a path:
# the tree is made one relative step at a time.
DEEP_DIRS=()
for i in $(seq -w 1 20); do DEEP_DIRS+=("d$i$(printf 'x%.0s' $(seq 197))"); done
DEEP_F=$(printf 'f%.0s' $(seq 70))
DEEP_G=$(printf 'g%.0s' $(seq 100))
DEEP_H=$(printf 'h%.0s' $(seq 90))
DEEP_PATH=$(printf '%s/' "${DEEP_DIRS[@]}")
make_deep() { # make_deep DIR
    mkdir -p "$1"
    echo top >"$1/top.txt"
    echo zz >"$1/zz.txt"
    (
        cd "$1"
        for d in "${DEEP_DIRS[@]}"; do mkdir -p "$d" && cd "$d"; done
        echo deep >"$DEEP_F"
        echo long >"$DEEP_G"
        mkdir -p "$DEEP_H" && echo inner >"$DEEP_H/inner"
    )
}
deep_cat() { # deep_cat DIR: the content of DIR's f, reached one directory at a time
    (
        cd "$1"
        for d in "${DEEP_DIRS[@]}"; do cd "$d"; done
        cat "$DEEP_F"
    )
}
make_deep "$FX/deep"
if [ "${#DEEP_PATH}" != 4020 ] || [ $((${#FX} + 6 + ${#DEEP_PATH} + ${#DEEP_F})) -le 4096 ]; then
    fail "the deep fixture" "4,020-byte directories, f's full path over 4,096 bytes" "${#DEEP_PATH}"
fi
DEEP_G_RE="FAILED ${DEEP_PATH}${DEEP_G}: .*/d20x+/${DEEP_G}: skipped: "
DEEP_G_RE+="its key would be 4120 bytes long, over the limit of 4095\$"
DEEP_H_RE="FAILED ${DEEP_PATH}${DEEP_H}/: .*/${DEEP_H}/: skipped with everything under it: "
DEEP_H_RE+="its key would be 4111 bytes long, over the limit of 4095\$"
deep_two_failed() { # both too-long entries fail alone, each in one whole line that ends with the reason
    grep -qE -- "$DEEP_G_RE" "$ERR" || fail "the FAILED line of g" "/$DEEP_G_RE/" "$(cut -c1-300 "$ERR")"
    grep -qE -- "$DEEP_H_RE" "$ERR" || fail "the FAILED line of h/" "/$DEEP_H_RE/" "$(cut -c1-300 "$ERR")"
    expect_eq "FAILED lines" 2 "$(grep -c FAILED "$ERR")"
}
deep_listed() {
    deep_two_failed
    expect_out "$DEEP_PATH$DEEP_F" top.txt zz.txt
}
row deep-ls 1 'FAILED d01x+' deep_listed ls -r {FX}/deep
deep_counted() {
    deep_two_failed
    grep -q '^3 objects, 12 bytes ' "$OUT" || fail "du of the deep tree" "3 objects, 12 bytes" "$(cat "$OUT")"
}
row deep-du 1 'FAILED d01x+' deep_counted du {FX}/deep
deep_copied() {
    deep_two_failed
    expect_err_contains "3 done (0 skipped), 2 failed of 5 objects"
    expect_eq "files copied" "$(printf '%s\n' "$DEEP_PATH$DEEP_F" top.txt zz.txt)" "$(files_in "$DST")"
    expect_eq "the deep file's content" deep "$(deep_cat "$DST")"
}
row deep-cp 1 'FAILED d01x+' deep_copied cp {FX}/deep {DST}
copy_deep_first() { "$SLUICE" cp -q "$FX/deep" "$DST" || true; }
deep_resumed() {
    deep_two_failed
    expect_err_contains "3 done (3 skipped), 2 failed of 5 objects"
}
SETUP=copy_deep_first
row deep-sync-rerun 1 'FAILED d01x+' deep_resumed sync {FX}/deep {DST}
deep_md5() {
    deep_two_failed
    expect_eq "result lines" 3 "$(wc -l <"$OUT")"
    grep -qF "{\"key\":\"$DEEP_PATH$DEEP_F\",\"size\":5,\"md5\":\"$(echo deep | md5sum | cut -d' ' -f1)\"}" "$OUT" ||
        fail "md5 of the deep file" "its line" "$(cut -c1-200 "$OUT")"
}
row deep-map 1 'FAILED d01x+' deep_md5 map {FX}/deep - --op md5 -j 1
# An output key over 4,095 bytes (4,090 + a suffix) fails alone, whole message, reason at its end.
deep_suffix() {
    expect_eq "outputs" "$(printf '%s\n' top.txt.md5sums zz.txt.md5sums)" "$(files_in "$DST")"
    expect_eq "FAILED lines" 3 "$(grep -c FAILED "$ERR")"
}
row deep-dst-key-too-long 1 "FAILED $DEEP_PATH$DEEP_F: .*: the key is 4098 bytes long, over the limit of 4095 bytes\$" \
    deep_suffix map {FX}/deep {DST} --op md5 --suffix .md5sums
make_deep_dst() { make_deep "$DST"; }
deep_rm_left() {
    deep_two_failed
    expect_eq "files left" "$(printf '%s\n' "$DEEP_PATH$DEEP_G" "$DEEP_PATH$DEEP_H/inner")" "$(files_in "$DST")"
}
SETUP=make_deep_dst
row deep-rm-r 1 '3 done \(0 skipped\), 2 failed of 5 objects' deep_rm_left rm -r {DST}
rm -rf "$FX/deep"
# Nor does a directory of the destination that its listing may not open (a volume's lost+found) stop a job: no
# output can be looked up there, none is needed.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 &&
    setpriv --reuid=65534 --regid=65534 --clear-groups "$SLUICE" --version >/dev/null 2>&1; then
    dst_lost_found() { mkdir -p "$DST/lost+found" && chmod 777 "$DST" && chmod 700 "$DST/lost+found"; }
    SETUP=dst_lost_found
    PRE=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    row dst-unreadable-subdir 0 - src_copied cp {FX}/src {DST} -q
else
    skip_note "not root, or no setpriv: the row with an unreadable directory in the destination is skipped"
    NSKIPPED=$((NSKIPPED + 1))
fi

# A device or a FIFO given as the source: refused saying what it is, never read (a link to /dev/zero would never end).
mkfifo "$FX/fifo"
ln -s /dev/zero "$FX/zero-link"
row cat-device 3 'zero-link: a device, not a regular file or a directory \(sluice reads regular files only\)' - \
    cat {FX}/zero-link
row cp-fifo 3 'fifo: a FIFO, not a regular file or a directory' nothing_created cp {FX}/fifo {DST}
rm -f "$FX/fifo" "$FX/zero-link"

# ============================================================================================================
say "transfers that break but get further resume for as long as they do; a command's exit ends its object"
# -- Only attempts without progress count against --retries and --retry-deadline-ms (as in gsutil and Google's client
# libraries): a transfer that got 256 KiB further since its count last started counts from zero again.
gcs_seed '{"bucket": "hostile-resume", "count": 1, "name_format": "big/{:02d}", "size": 8388608}'
(yes big/00 || true) | head -c 8388608 >"$FX/resume-big" # the server's generated content: name and newline, repeated
mkdir -p "$FX/resume-up"
head -c 3145728 /dev/urandom >"$FX/resume-up/u3"
breaks() { # breaks N INSTRUCTION: a retry test whose next N storage.objects.get requests each meet INSTRUCTION
    local i list=""
    for ((i = 0; i < $1; i++)); do list="$list\"$2\","; done
    gcs_retry_test "{\"storage.objects.get\": [${list%,}]}"
}
faults_left() { gcs_api GET "/retry_test/$1" >"$T/.rt.json" && json_field "$T/.rt.json" "len(d[\"instructions\"][\"$2\"])"; }
resume_copied() { cmp -s "$FX/resume-big" "$DST/00" || fail "the 8 MiB object" "copied whole" "$(ls -l "$DST" 2>&1)"; }
resume_nothing() { expect_eq "outputs" "" "$(files_in "$DST")"; }
# An 8 MiB object over a server that breaks every answer after 1 MiB: every attempt gets 1 MiB further, so the 9
# attempts it takes are never "6 attempts without progress" (the default --retries 5).
ID=$(breaks 8 return-broken-stream-after-1024K)
row resume-progress-cp 0 - resume_copied cp gs://hostile-resume/big {DST} -q "${FAST[@]}" --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
ID=$(breaks 8 return-broken-stream-after-1024K)
row resume-progress-cat 0 - - cat gs://hostile-resume/big/00 "${FAST[@]}" --header "x-retry-test-id: $ID"
expect_out_file "$FX/resume-big"
gcs_expect_consumed "$ID"
# The deadline too counts from the last progress: 17 attempts of at least 0.25 s each (the server's delay) take 4.25 s
# or more, longer than the 3 s deadline, while each streak without progress is one attempt (0.25 s and a 512 KiB
# answer over loopback): 2.75 s to spare on a loaded machine.
gcs_config '{"delay_ms": 250}'
ID=$(breaks 16 return-broken-stream-after-512K)
row resume-progress-deadline 0 - resume_copied cp gs://hostile-resume/big {DST} -q "${FAST[@]}" --retries 100 \
    --retry-deadline-ms 3000 --header "x-retry-test-id: $ID"
gcs_config '{"delay_ms": 0}'
gcs_expect_consumed "$ID"
# A server that sends 1 KiB per attempt cannot hold an object forever: 6 attempts that brought less than 256 KiB in
# all, and the object fails, saying where it stopped and why it was not tried again.
ID=$(breaks 8 return-broken-stream-after-1K)
no_progress() {
    resume_nothing
    local left
    left=$(faults_left "$ID" storage.objects.get)
    [ "$left" -ge 1 ] || fail "faults left" "some (the download gave up while the server still broke it)" "$left"
}
row resume-no-progress 1 'FAILED 00: read failed: gs://hostile-resume/big/00: download stopped at byte 6144 of 8388608: .*transfer closed.*\(6 attempts in a row brought less than 256 KiB in all: only attempts without progress count' \
    no_progress cp gs://hostile-resume/big {DST} "${FAST[@]}" --header "x-retry-test-id: $ID"
# A resumable upload whose server keeps 256 KiB of the chunk per attempt, then answers 503: the 2 MiB chunk takes 8
# attempts, each one further. Every other insert request (the session's start, each status query) goes through.
list='"stall-for-0s-after-0K"'
for _ in 1 2 3 4 5 6 7 8; do list="$list,\"return-503-after-256K\",\"stall-for-0s-after-0K\""; done
ID=$(gcs_retry_test "{\"storage.objects.insert\": [$list]}")
resume_uploaded() {
    expect_eq "size of the upload" 3145728 "$(gcs_meta hostile-resume up/u3 'd["size"]')"
    expect_eq "CRC32C of the upload" "$(crc32c_b64 "$FX/resume-up/u3")" "$(gcs_meta hostile-resume up/u3 'd["crc32c"]')"
}
row resume-progress-upload 0 - resume_uploaded cp {FX}/resume-up gs://hostile-resume/up -q --upload-chunk 2M \
    "${FAST[@]}" --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
rm -f "$FX/resume-big"

# -- map: a command's exit ends its object. Once what it wrote before it exited is read, its stdout gets 1 s to reach
# its end: a process it left running with that stdout (a background job, a daemon) makes the output incomplete (not
# committed, the object fails, what is left in the command's process group is stopped); one that holds only its
# stderr is not waited for.
BGS="60.$$7" # a sleep of this run's own, so that what is left of it can be found
bg_left() { pgrep -f "^sleep ${BGS//./\\.}\$" || true; }
bg_kill() { local p; for p in $(bg_left); do kill -KILL "$p" 2>/dev/null || true; done; }
bg_failed() {
    [ "$ELAPSED" -lt 30 ] || fail "a command whose background job holds its stdout for 60 s" "done 1 s after it exits" \
        "${ELAPSED} s"
    expect_eq "FAILED lines" 3 "$(grep -c FAILED "$ERR")"
    expect_eq "outputs" "" "$(files_in "$DST")"
    local i # a SIGKILL takes effect a moment after it is sent: up to 10 s on a loaded machine
    for ((i = 0; i < 100; i++)); do [ -n "$(bg_left)" ] || break; sleep 0.1; done
    expect_eq "background jobs left in the commands' process groups" "" "$(bg_left)"
    bg_kill
}
row exec-bg-holds-stdout 1 'FAILED a\.txt: command exited with status 0 but left a process holding its stdout open \(still open 1 s after the exit\): the output may be incomplete, not committed' \
    bg_failed map {FX}/src {DST} --shell --exec "cat; sleep $BGS & echo bg"
# A job that left the process group (setsid) holds the stdout past --timeout: the message says what happened, where
# "command timed out" was said although the command had exited 0 at once.
bg_detached() {
    ! grep -q 'timed out' "$ERR" || fail "message for a command that exited 0 at once" "not 'timed out'" "$(cat "$ERR")"
    expect_eq "outputs" "" "$(files_in "$DST")"
    bg_kill
}
row exec-bg-setsid-timeout 1 'FAILED a\.txt: command exited with status 0 but left a process holding its stdout open' \
    bg_detached map {FX}/src {DST} --include a.txt --shell --exec "cat; setsid sleep $BGS & echo bg" --timeout 10s
bg_stderr() {
    [ "$ELAPSED" -lt 30 ] || fail "a command whose background job holds its stderr for 60 s" "done 1 s after it exits" \
        "${ELAPSED} s"
    src_copied
    expect_eq "output of a.txt" "$(printf 'alpha\nbg')" "$(cat "$DST/a.txt")"
    expect_eq "background jobs holding only stderr: left alone" 3 "$(bg_left | wc -l)"
    bg_kill
}
row exec-bg-holds-stderr 0 - bg_stderr map {FX}/src {DST} -q --shell --exec "cat; sleep $BGS >/dev/null & echo bg"

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
say "gs:// answers that lie: short or long bodies, a 200 to a Range, gzip-encoded objects, listings out of order, credentials quoted in errors"
NOOP=stall-for-0s-after-0K # a fault instruction that changes nothing: it puts the next one on a later request
# Objects whose downloads misbehave (the test server's per-object serve modes, tests/gcs/README.md): a correctly
# framed body cut to half or padded by 16 bytes, without x-goog-hash (so only the size and CRC32C the metadata has
# can tell), with it, and a Range header ignored (200 and the whole object). Objects stored gzip-compressed.
python3 - "$T/read.json" "$FX" <<'PY'
import base64, gzip, json, os, sys
out, fx = sys.argv[1], sys.argv[2]
def b64(b):
    return base64.b64encode(b).decode()
data = bytes((i * 7 + i // 256) % 256 for i in range(550))
big = bytes((i * 131 + i // 1000) % 256 for i in range(1 << 20))
text = b"".join(b"%05d the quick brown fox\n" % i for i in range(3000))
gz = gzip.compress(text[:40000], mtime=0) + gzip.compress(text[40000:], mtime=0)  # two members, as `cat a.gz b.gz`
small = b"a small gzip-encoded object\n"
os.makedirs(fx + "/read", exist_ok=True)
for name, b in (("data", data), ("big", big), ("text", text), ("small", small)):
    open(fx + "/read/" + name, "wb").write(b)
objs = []
def put(name, b, **kw):
    objs.append(dict(name=name, data_b64=b64(b), **kw))
put("b7/nohash", data, serve=["no-hash"])
put("b7/short", data, serve=["no-hash", "short-body"])
put("b7/long", data, serve=["no-hash", "long-body"])
put("b7/short-h", data, serve=["short-body"])
put("b7r/big-nohash", big, serve=["no-hash"])
put("b7s/big-short", big, serve=["no-hash", "short-body"])
put("b9/ir.bin", data, serve=["ignore-range"])
put("b9r/big.bin", big, serve=["ignore-range"])
put("gz/text.txt", gz, contentEncoding="gzip", contentType="text/plain")
put("gz/small.txt", gzip.compress(small, mtime=0), contentEncoding="gzip")
put("gz/plain.txt", small)
json.dump({"bucket": "hostile-read", "objects": objs}, open(out, "w"))
PY
gcs_seed "@$T/read.json"
head -c 275 "$FX/read/data" >"$FX/read/data.half"
# Buckets whose listings misbehave (the test server's list modes): 10 objects under r/ and one outside it.
for b in hl-repeat hl-reverse hl-prefix hl-cycle hl-utf16src hl-rm; do
    gcs_seed "{\"bucket\": \"$b\", \"count\": 10, \"name_format\": \"r/{:02d}\", \"size\": 5}"
    gcs_seed "{\"bucket\": \"$b\", \"objects\": [{\"name\": \"s/x\", \"data\": \"outside\"}]}"
done
gcs_bucket hl-utf16
gcs_config '{"list_modes": {"hl-repeat": ["repeat-last", "page-size-3"], "hl-rm": ["reverse-pages", "page-size-4"],
    "hl-reverse": ["reverse-pages", "page-size-4"], "hl-prefix": ["ignore-prefix"], "hl-cycle": ["token-cycle"],
    "hl-utf16src": ["utf16-order"], "hl-utf16": ["utf16-order"]}}'
# Keys whose order differs between UTF-8 bytes and UTF-16 code units: U+E000, U+FF5E, U+FFFD against U+1F600.
mkdir -p "$FX/u16/d"
for k in a z $'\xee\x80\x80' $'\xef\xbd\x9e' $'\xef\xbf\xbd' $'\xf0\x9f\x98\x80' $'\xf0\x9f\x98\x80x' \
    $'d/\xee\x80\x80' $'d/\xf0\x9f\x98\x80'; do
    printf '%s\n' "$k" >"$FX/u16/$k"
done
gcs_seed "{\"bucket\": \"hl-utf16src\", \"objects\": [{\"name\": \"r/\\ue000\"}, {\"name\": \"r/\\ud83d\\ude00\"}]}"
(cd "$FX/u16" && find . -type f | sed 's|^\./||') |
    python3 -c 'import json, sys; [print(json.dumps({"key": k})) for k in sys.stdin.read().splitlines()]' >"$FX/u16.failures"
READ=gs://hostile-read
no_files() { expect_eq "outputs" "" "$(files_in "$DST")"; }

# cat streams: what it wrote before the end of the object showed the answer was wrong stays written, so these are not
# rows (whose exit 3 means "nothing on stdout"): exit 3 and one line saying the bytes on stdout are not the object's.
streamed_wrong() { # streamed_wrong MESSAGE WANT_STDOUT_FILE ARGS...
    local msg=$1 want=$2
    shift 2
    say "not a row: sluice $*"
    run "$SLUICE" "$@"
    expect_rc 3
    expect_err_one_line "$msg"
    [ -z "$want" ] || expect_out_file "$want"
}

# -- B7: the size and CRC32C of every whole download are checked, also when the answer carries no x-goog-hash.
streamed_wrong "$READ/b7/short: received 275 bytes but the object has 550: the answer was cut short or padded (not accepted); the 275 bytes written to stdout are not the object's" \
    "$FX/read/data.half" cat "$READ/b7/short" "${FAST[@]}"
streamed_wrong "$READ/b7/long: received 566 bytes but the object has 550: the answer was cut short or padded (not accepted); the 566 bytes written to stdout are not the object's" \
    "" cat "$READ/b7/long" "${FAST[@]}"
row read-cat-short-hash 3 'the answer holds 275 bytes but the object has 550 \(x-goog-stored-content-length\)' - \
    cat "$READ/b7/short-h" "${FAST[@]}"
row read-cat-nohash 0 - - cat "$READ/b7/nohash"
expect_out_file "$FX/read/data"
short_long_failed() { # b7/: nohash copied exactly; short, long, short-h failed after 3 tries each, nothing of them left
    expect_eq "FAILED lines" 3 "$(grep -c FAILED "$ERR")"
    expect_eq "outputs" "nohash" "$(files_in "$DST")"
    cmp -s "$FX/read/data" "$DST/nohash" || fail "the object without x-goog-hash" "copied exactly" "different bytes"
    expect_eq "tries of each corrupt object (failure log)" "3 3 3" \
        "$(python3 -c 'import json, sys; print(" ".join(str(json.loads(l)["attempts"]) for l in open(sys.argv[1])))' "$AUX/f.jsonl")"
}
row read-cp-short-long 1 'FAILED short: .*received 275 bytes but the object has 550' short_long_failed \
    cp "$READ/b7/" {DST} -j 1 "${FAST[@]}" --failures {AUX}/f.jsonl
mapped_nohash() {
    expect_eq "FAILED lines" 3 "$(grep -c FAILED "$ERR")"
    cmp -s "$FX/read/data" "$DST/nohash.out" || fail "map input without x-goog-hash" "the object's bytes" "different"
    expect_eq "outputs" "nohash.out" "$(files_in "$DST")"
}
row read-map-short-long 1 'FAILED long: .*received 566 bytes' mapped_nohash \
    map "$READ/b7/" {DST} --exec cat --suffix .out -j 2 "${FAST[@]}"
op_nohash() { expect_out "{\"key\":\"nohash\",\"size\":550,\"md5\":\"$(md5sum <"$FX/read/data" | cut -d' ' -f1)\"}"; }
row read-op-short-long 1 'FAILED short-h: .*the answer holds 275 bytes' op_nohash \
    map "$READ/b7/" - --op md5 -j 1 "${FAST[@]}"
# A download broken after 256 KiB resumes with a Range; without x-goog-hash the whole is still checked at the end.
ID=$(gcs_retry_test '{"storage.objects.get": ["return-broken-stream-after-256K"]}')
big_resumed() { cmp -s "$FX/read/big" "$DST/big-nohash" || fail "resumed download without x-goog-hash" "exact" "different"; }
row read-resume-nohash 0 - big_resumed cp "$READ/b7r/" {DST} -q -j 1 "${FAST[@]}" --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
ID=$(gcs_retry_test '{"storage.objects.get": ["return-broken-stream-after-64K"]}')
row read-resume-short 1 'FAILED big-short: .*(cut short|not accepted)' no_files \
    cp "$READ/b7s/" {DST} -j 1 "${FAST[@]}" --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"

# -- B9: a 200 (the whole object) to a ranged GET: the bytes before the offset are dropped.
for r in 100-119 -10 500- 0-0 549- 550-; do
    row "read-range-200-$r" 0 - - cat --range "$r" "$READ/b9/ir.bin"
    "$SLUICE" cat --range "$r" "$FX/read/data" >"$T/want.range"
    expect_out_file "$T/want.range"
done
row read-range-200-past-end 3 'ir.bin: offset 551 is past the end' - cat --range 551- "$READ/b9/ir.bin"
# The resume of a broken download at byte 262144 is answered 200: it goes on at that byte of the whole object. Each
# of the job's 3 tries of the object would meet the same, a broken answer then a 200 to the resume (a try that took
# the 200 for the range would fail its CRC32C); the first try gets it right.
ID=$(gcs_retry_test "{\"storage.objects.get\": [\"return-broken-stream-after-256K\", \"$NOOP\",
    \"return-broken-stream-after-256K\", \"$NOOP\", \"return-broken-stream-after-256K\", \"$NOOP\"]}")
resumed_200() {
    cmp -s "$FX/read/big" "$DST/big.bin" || fail "resume answered with 200" "exact copy" "different"
    gcs_api GET "/retry_test/$ID" >"$T/.rt.json"
    expect_eq "faults left (one try was enough)" 4 "$(json_field "$T/.rt.json" 'len(d["instructions"]["storage.objects.get"])')"
}
row read-resume-200 0 - resumed_200 cp "$READ/b9r/" {DST} -q -j 1 "${FAST[@]}" --header "x-retry-test-id: $ID"
ID=$(gcs_retry_test "{\"storage.objects.get\": [\"$NOOP\", \"return-broken-stream-after-256K\"]}")
row read-resume-200-cat 0 - - cat "$READ/b9r/big.bin" "${FAST[@]}" --header "x-retry-test-id: $ID"
expect_out_file "$FX/read/big"
gcs_expect_consumed "$ID"

# -- B10: objects stored with Content-Encoding: gzip are fetched as stored, checked, and read decompressed.
row read-gzip-cat 0 - - cat "$READ/gz/text.txt"
expect_out_file "$FX/read/text"
row read-gzip-range 0 - - cat --range 40000-40099 "$READ/gz/text.txt"
"$SLUICE" cat --range 40000-40099 "$FX/read/text" >"$T/want.range"
expect_out_file "$T/want.range"
row read-gzip-range-tail 3 'stored gzip-compressed and read decompressed: --range -N would need its decompressed size' - \
    cat --range -10 "$READ/gz/text.txt"
gzip_copied() {
    expect_eq "outputs" "$(printf '%s\n' plain.txt small.txt text.txt)" "$(files_in "$DST")"
    cmp -s "$FX/read/text" "$DST/text.txt" || fail "cp of a gzip-encoded object" "its decompressed bytes" "other bytes"
    cmp -s "$FX/read/small" "$DST/small.txt" || fail "cp of a small gzip-encoded object" "decompressed" "other bytes"
    # Rerun: complete outputs are skipped, though their size is not the listing's (the compressed size).
    run "$SLUICE" cp "$READ/gz/" "$DST"
    expect_rc 0
    expect_err_contains "3 done (3 skipped), 0 failed of 3 objects"
    # An output cut short since is not accepted: it is made again.
    truncate -s 100 "$DST/text.txt"
    run "$SLUICE" cp "$READ/gz/" "$DST"
    expect_err_contains "3 done (2 skipped), 0 failed of 3 objects"
    cmp -s "$FX/read/text" "$DST/text.txt" || fail "the cut output" "made again" "not"
}
row read-gzip-cp 0 - gzip_copied cp "$READ/gz/" {DST} -q
gzip_mapped() { cmp -s "$FX/read/text" "$DST/text.txt.out" || fail "map input of a gzip-encoded object" "decompressed" "not"; }
row read-gzip-map 0 - gzip_mapped map "$READ/gz/" {DST} --exec cat --suffix .out -q
row read-gzip-op 0 - - map "$READ/gz/text.txt" - --op md5 -q
expect_out "{\"key\":\"text.txt\",\"size\":$(gcs_meta hostile-read gz/text.txt 'd["size"]'),\"md5\":\"$(md5sum <"$FX/read/text" | cut -d' ' -f1)\"}"
gzip_rewritten() { # a gs:// to gs:// copy is a rewrite on the server: the stored bytes stay as they are
    expect_eq "the copy's encoding and CRC32C" "$(gcs_meta hostile-read gz/text.txt '[d["contentEncoding"], d["crc32c"], d["size"]]')" \
        "$(gcs_meta hostile-read gzcopy/text.txt '[d["contentEncoding"], d["crc32c"], d["size"]]')"
    run "$SLUICE" cp "$READ/gz/" "$READ/gzcopy/"
    expect_err_contains "3 done (3 skipped), 0 failed of 3 objects"
}
row read-gzip-gs-to-gs 0 - gzip_rewritten cp "$READ/gz/" "$READ/gzcopy/" -q
ID=$(gcs_retry_test '{"storage.objects.get": ["return-corrupted-data", "return-corrupted-data", "return-corrupted-data"]}')
gz_corrupt() {
    expect_eq "FAILED lines" 1 "$(grep -c FAILED "$ERR")"
    expect_eq "outputs" "" "$(files_in "$DST")"
}
row read-gzip-corrupt 1 'FAILED text.txt: .*(CRC32C mismatch|not valid gzip data)' gz_corrupt \
    cp "$READ/gz/" {DST} --include text.txt -j 1 "${FAST[@]}" --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"

# -- B11: listings are checked: strictly increasing keys, page tokens that do not go round, names under the prefix.
row list-repeat-du 3 'gs://hl-repeat/r: the listing is not in byte order: .02. came after .02. \(the same key twice\); stopped' \
    - du gs://hl-repeat/r
run "$SLUICE" ls -r gs://hl-repeat/r
expect_rc 3
expect_err_one_line "(the same key twice)"
expect_out 00 01 02
row list-repeat-cp 3 'not in byte order.*the same key twice' - cp gs://hl-repeat/r {DST} -j 1
row list-reverse-rm 3 "gs://hl-rm/r: the listing is not in byte order: '02' came after '03'" - rm -r gs://hl-rm/r -j 1
row list-reverse-cp 3 "gs://hl-reverse/r: the listing is not in byte order: '02' came after '03' \(it went backwards\)" \
    - cp gs://hl-reverse/r {DST} -j 1
row list-outside-prefix 3 "gs://hl-prefix/r: the server listed 's/x', which is not under the prefix asked for" - \
    cp gs://hl-prefix/r {DST}
PRE=(timeout 60)
row list-token-cycle 3 'gs://hl-cycle/r: the server repeated a page token \(its pages go round in a cycle' - \
    du gs://hl-cycle/r
row list-utf16-source 3 'the server sorts by UTF-16 code units, not by bytes' - du gs://hl-utf16src/r
# A destination listed in UTF-16 order: the keys it places differently are looked up one by one, so the second sync
# uploads nothing.
first_sync() {
    "$SLUICE" sync "$FX/u16" gs://hl-utf16/s -q && gcs_stats_reset
}
nothing_uploaded() {
    expect_err_contains "9 done (9 skipped), 0 failed of 9 objects"
    expect_eq "uploads" 0 "$(gcs_requests storage.objects.insert)"
}
SETUP=first_sync
row list-utf16-dst-sync 0 '9 done \(9 skipped\)' nothing_uploaded sync {FX}/u16 gs://hl-utf16/s
SETUP=first_sync
row list-utf16-dst-retry-failed 0 'done \(9 skipped\)' nothing_uploaded sync {FX}/u16 gs://hl-utf16/s \
    --retry-failed "$FX/u16.failures"
gcs_config '{"list_modes": {"hl-repeat": [], "hl-rm": [], "hl-reverse": [], "hl-prefix": [], "hl-cycle": [],
    "hl-utf16src": [], "hl-utf16": []}}'

# -- D18: a server error that quotes the request's Authorization header never shows the token.
gcs_seed '{"bucket": "hostile-read", "objects": [{"name": "d18/a", "data": "a"}, {"name": "d18/b", "data": "b"}]}'
D18=gs://hostile-read/d18
D18_TOKEN="ya29.sluice-hostile-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$D18_TOKEN" >"$FX/d18.token"
no_token() {
    local f
    for f in "$ERR" "$AUX"/*; do
        [ -e "$f" ] || continue
        if grep -qF "${D18_TOKEN#ya29.}" "$f"; then
            fail "the token in $(basename "$f")" "nowhere" "$(grep -F "${D18_TOKEN#ya29.}" "$f" | head -c 300)"
        fi
    done
    expect_err_contains "(the server's message is not shown: it quotes a credential)"
}
d18_logged() {
    no_token
    expect_eq "failure log lines" 1 "$(wc -l <"$AUX/f.jsonl")"
    expect_eq "report failures" 1 "$(json_field "$AUX/r.json" 'len(d["failures_sample"])')"
}
ID=$(gcs_retry_test '{"storage.objects.get": ["return-403-echo-headers"]}')
PRE=(env -u STORAGE_EMULATOR_HOST)
row secret-echo-token-file 1 'FAILED a: .*HTTP 403: \(the server.s message is not shown: it quotes a credential\)' \
    d18_logged cp "$D18/" {DST} -j 1 --endpoint "$GCS" --token-file "$FX/d18.token" \
    --header "x-retry-test-id: $ID" --failures {AUX}/f.jsonl --report {AUX}/r.json
gcs_expect_consumed "$ID"
ID=$(gcs_retry_test '{"storage.objects.list": ["return-400-echo-headers"]}')
d18_fatal() { no_token; json_field "$AUX/r.json" 'd["error"]' | grep -q 'not shown' || fail "report error" "the filtered message" "$(cat "$AUX/r.json")"; }
PRE=(env -u STORAGE_EMULATOR_HOST "GOOGLE_OAUTH_ACCESS_TOKEN=$D18_TOKEN")
row secret-echo-env-listing 3 'HTTP 400: \(the server.s message is not shown' d18_fatal \
    cp "$D18/" {DST} --endpoint "$GCS" --header "x-retry-test-id: $ID" --failures {AUX}/f.jsonl --report {AUX}/r.json
gcs_expect_consumed "$ID"
ID=$(gcs_retry_test "{\"storage.objects.get\": [\"$NOOP\", \"return-403-echo-headers\"]}")
PRE=(env -u STORAGE_EMULATOR_HOST)
row secret-echo-cat 3 'HTTP 403: \(the server.s message is not shown' no_token \
    cat "$D18/a" --endpoint "$GCS" --token-file "$FX/d18.token" --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
# A password in the endpoint's URL is not part of the address messages name.
no_password() { ! grep -q sekrit "$ERR" || fail "the endpoint's password" "nowhere in messages" "$(cat "$ERR")"; }
row secret-endpoint-password 3 ': http://127\.0\.0\.1:1: ' no_password \
    ls gs://hostile-read --endpoint http://user:sekrit@127.0.0.1:1 --retries 0

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
# A server-side copy (gs:// to gs://, objects.rewrite) is held to the source as listed, the same way: a copy that made
# other bytes is deleted and tried again (3 times), then reported.
ID=$(gcs_retry_test '{"storage.objects.rewrite": ["truncate-upload", "truncate-upload", "truncate-upload"]}')
rw_short_gone() {
    expect_eq "what the server stored" absent "$(gcs_size rw-short/a)"
    expect_eq "the others were copied" "1 1" "$(gcs_size rw-short/b) $(gcs_size rw-short/c)"
}
row rewrite-stored-short 1 \
    'FAILED a: .*the server-side copy of gs://hostile-keys/three/a made an object of 0 bytes \(CRC32C 00000000\), not the 1 bytes \(CRC32C [0-9a-f]{8}\) listed; the object was deleted$' \
    rw_short_gone cp gs://hostile-keys/three gs://hostile-keys/rw-short -j 1 --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
ID=$(gcs_retry_test '{"storage.objects.rewrite": ["truncate-upload"]}')
rw_retried() { expect_eq "the copy tried again" "1 1 1" "$(gcs_size rw-again/a) $(gcs_size rw-again/b) $(gcs_size rw-again/c)"; }
row rewrite-stored-short-retried 0 - rw_retried cp gs://hostile-keys/three gs://hostile-keys/rw-again -j 1 -q \
    --header "x-retry-test-id: $ID"
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
# The memory guard judges what the kernel cannot reclaim. A fake cgroup v2 tree (SLUICE_CGROUP_ROOT,
# SLUICE_PROC_CGROUP; tests/cli/cgroup.sh does the same in a real cgroup): 60 of its 64 MiB are in use, 55 MiB of that
# active page cache. No warning, workers kept; the same usage with no page cache warns, naming the figure it judged.
fake_cgroup() { # fake_cgroup FILE_BYTES: $C/cg, its usage 60 MiB of 64, FILE_BYTES of it page cache
    mkdir -p "$C/cg/pod/ctr"
    echo "0::/pod/ctr" >"$C/cg/proc-cgroup"
    echo max >"$C/cg/pod/memory.max"
    echo $((64 << 20)) >"$C/cg/pod/ctr/memory.max"
    echo $((60 << 20)) >"$C/cg/pod/ctr/memory.current"
    # Active page cache (a file read again and again): the working set (usage - inactive_file) counts it too.
    printf 'anon %d\nfile %d\nactive_file %d\ninactive_file 0\n' $(((60 << 20) - $1)) "$1" "$1" >"$C/cg/pod/ctr/memory.stat"
    PRE=(env SLUICE_CGROUP_ROOT="$C/cg" SLUICE_PROC_CGROUP="$C/cg/proc-cgroup")
}
cache_cgroup() { fake_cgroup $((55 << 20)); }
anon_cgroup() { fake_cgroup 0; }
workers_kept() { expect_eq "report: workers, warning" '[2, null]' "$(json_field "$AUX/r.json" '[d["jobs"], d["memory"]["warning"]]')"; }
SETUP=cache_cgroup
row guard-page-cache 0 - workers_kept map {FX}/src - -q -j 2 --mem-interval 20 --report {AUX}/r.json \
    --shell --exec 'sleep 0.5; wc -c'
SETUP=anon_cgroup
row guard-anonymous 0 '^sluice: warning: memory at 94% of the 64\.0 MiB limit: 60\.0 MiB of cgroup memory that is not page cache \(.*\); lowering workers from 2 to 1$' \
    - map {FX}/src - -q -j 2 --mem-interval 20 --shell --exec 'sleep 0.5; wc -c'
# A budget too small for one worker (its state, clients, a transfer buffer, an upload quantum): refused up front,
# naming the least that works.
row budget-below-one-worker 2 '--memory-limit 64.0 KiB is less than one worker needs: .*; give at least [0-9]+K$' \
    nothing_created cp {FX}/src {DST} --memory-limit 64K
row budget-below-one-worker-gs 2 '--memory-limit 512.0 KiB is less than one worker needs: .*, a [0-9.]+ KiB upload buffer, ' \
    - cp {FX}/src gs://hostile-keys/budget --memory-limit 512K

# ============================================================================================================
say "uploads a strict server takes: typed bodies, preconditions from the first attempt, the status that failed, 412s, --upload-chunk"
# The test server refuses a form-encoded body (libcurl's default for a POST body) on every storage request, as GCS
# does, and a multipart metadata part that is not JSON: a resumable upload (1 MiB in 256 KiB chunks, a 503 on a chunk
# so that its status is queried with an empty PUT) and a multipart one go through.
mkdir -p "$T/upfx/one2"
echo two >"$T/upfx/one2/one.txt"
gcs_seed '{"bucket": "hostile-keys", "create_bucket": false, "objects": [{"name": "up-rm/x", "data": "x"},
    {"name": "up-cat/x", "data": "x"}]}'
up_size() { # up_size NAME: the size of gs://hostile-keys/NAME, or "absent"
    gcs_objects hostile-keys "$1" | python3 -c 'import json, sys
items = [json.loads(l) for l in sys.stdin]
print(items[0]["size"] if items else "absent")'
}
up_data() { # up_data NAME: the bytes of gs://hostile-keys/NAME (from the server, not through sluice)
    curl -sS --noproxy '*' "$GCS/storage/v1/b/hostile-keys/o/$(python3 -c 'import sys, urllib.parse
print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")?alt=media"
}
up_failure() { json_field "$AUX/f.jsonl" '"%s %s" % (d["code"], d.get("http_status"))'; }
up_full() { expect_eq "the object" 1048576 "$(up_size up-typed/big.bin)"; }
row upload-resumable-typed 0 - up_full cp {FX}/big gs://hostile-keys/up-typed --upload-chunk 256K -q
ID=$(gcs_retry_test '{"storage.objects.insert": ["pass", "pass", "return-503"]}')
up_full_q() { expect_eq "the object" 1048576 "$(up_size up-query/big.bin)"; }
row upload-resumable-status-query 0 - up_full_q cp {FX}/big gs://hostile-keys/up-query --upload-chunk 256K -q \
    "${FAST[@]}" --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
up_small() { expect_eq "the objects" "6 6 8" "$(up_size up-multi/a.txt) $(up_size up-multi/b.txt) $(up_size up-multi/sub/c.txt)"; }
row upload-multipart-typed 0 - up_small cp {FX}/src gs://hostile-keys/up-multi -q

# The status that failed the object is the one in the failure log, not the answer to sluice's own clean-up: the
# cancel of the resumable session (499), the delete of what a server completed early (204) or a rewrite made wrong.
ID=$(gcs_retry_test '{"storage.objects.insert": ["pass", "return-503"]}')
up_503() {
    expect_eq "failure log: code, http_status" "SL_EIO 503" "$(up_failure)"
    expect_eq "nothing stored" absent "$(up_size up-503/big.bin)"
    expect_eq "open upload sessions" 0 "$(gcs_stat 'd["open_upload_sessions"]')"
}
row upload-failed-status 1 'FAILED big.bin: .*gs://hostile-keys/up-503/big.bin: HTTP 503: Retry Test: Caused a 503 \(via ' up_503 \
    cp {FX}/big gs://hostile-keys/up-503 --upload-chunk 256K --retries 0 --failures {AUX}/f.jsonl \
    --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
ID=$(gcs_retry_test '{"storage.objects.insert": ["finalize-early", "finalize-early", "finalize-early"]}')
up_early() { expect_eq "failure log: code, http_status" "SL_ECORRUPT 200" "$(up_failure)"; }
row upload-early-status 1 'upload completed early at 262144 of 1048576 bytes; the object was deleted$' up_early \
    cp {FX}/big gs://hostile-keys/up-early --upload-chunk 256K --failures {AUX}/f.jsonl --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
ID=$(gcs_retry_test '{"storage.objects.rewrite": ["truncate-upload", "truncate-upload", "truncate-upload"]}')
up_rw_short() { expect_eq "failure log: code, http_status" "SL_ECORRUPT 200" "$(up_failure)"; }
row rewrite-short-status 1 'made an object of 0 bytes .*; the object was deleted$' up_rw_short \
    cp gs://hostile-keys/three/a gs://hostile-keys/up-rw --failures {AUX}/f.jsonl --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"

# Nor is it the answer to a lookup of the destination (sync --retry-failed and --force look each output up first:
# a 404 for an output not made yet). Here every attempt of the upload gets no answer at all (its connection reset;
# libcurl may send it once more on a fresh connection by itself, hence two resets): the log has no http_status.
mkdir -p "$T/upfx/rf"
echo rf >"$T/upfx/rf/rf.txt"
printf '{"key":"rf.txt","error":"earlier","code":"SL_EIO","attempts":1}\n' >"$T/upfx/rf.jsonl"
up_no_answer() {
    expect_eq "failure log: code, http_status" "SL_EIO None" "$(up_failure)"
    expect_eq "nothing stored" absent "$(up_size up-rf/rf.txt)"
}
ID=$(gcs_retry_test '{"storage.objects.insert": ["return-reset-connection", "return-reset-connection"]}')
row upload-no-answer-retry-failed 1 'FAILED rf.txt: ' up_no_answer sync "$T/upfx/rf" gs://hostile-keys/up-rf \
    --retry-failed "$T/upfx/rf.jsonl" --retries 0 --failures {AUX}/f.jsonl --header "x-retry-test-id: $ID"
ID=$(gcs_retry_test '{"storage.objects.insert": ["return-reset-connection", "return-reset-connection"]}')
row upload-no-answer-force 1 'FAILED rf.txt: ' up_no_answer cp "$T/upfx/rf" gs://hostile-keys/up-rf --force \
    --retries 0 --failures {AUX}/f.jsonl --header "x-retry-test-id: $ID"

# A 412 means "the object changed meanwhile" only when the request carried a precondition; otherwise the message
# quotes the server's reason, with a neutral code.
ID=$(gcs_retry_test '{"storage.objects.delete": ["return-412"]}')
up_rm_412() {
    expect_eq "failure log: code, http_status" "SL_EIO 412" "$(up_failure)"
    expect_eq "the object" 1 "$(up_size up-rm/x)"
}
row rm-412-unconditional 1 'FAILED x: .*gs://hostile-keys/up-rm/x: HTTP 412: Retry Test: Caused a 412 \(via [^()]*(\([^()]*\))?\)$' \
    up_rm_412 rm -r gs://hostile-keys/up-rm --failures {AUX}/f.jsonl --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
ID=$(gcs_retry_test '{"storage.objects.get": ["return-412"]}')
row cat-412-unconditional 3 'gs://hostile-keys/up-cat/x: HTTP 412: Retry Test: Caused a 412 \(via [^()]*(\([^()]*\))?\)$' - \
    cat gs://hostile-keys/up-cat/x --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"

# The first attempt of every upload carries the precondition the destination check established: here a command
# writes the destination object itself (another writer, after the listing found nothing there). sluice's upload
# fails its precondition instead of replacing that object, multipart and resumable alike.
up_race_cmd() { # the shell command of a map whose output OUT_PREFIX/KEY someone else writes first
    printf 'curl -sS --noproxy "*" -o /dev/null -H "Content-Type: text/plain" --data-binary other "%s/upload/storage/v1/b/hostile-keys/o?uploadType=media&name=%s%%2F$SLUICE_KEY" && cat' "$GCS" "$1"
}
up_race_kept() {
    expect_eq "the other writer's objects" "other other" "$(up_data up-race/a.txt) $(up_data up-race/big.bin)"
    expect_eq "failure log: codes" "SL_EEXIST SL_EEXIST" "$(python3 -c 'import json, sys
print(" ".join(sorted(json.loads(l)["code"] for l in open(sys.argv[1]))))' "$AUX/f.jsonl")"
}
mkdir -p "$T/upfx/race"
cp "$FX/src/a.txt" "$FX/big/big.bin" "$T/upfx/race/"
row upload-precondition-first-attempt 1 \
    'FAILED big.bin: .*gs://hostile-keys/up-race/big.bin: HTTP 412: .*\(precondition failed: the object changed meanwhile\)' \
    up_race_kept map "$T/upfx/race" gs://hostile-keys/up-race --upload-chunk 256K --failures {AUX}/f.jsonl \
    --shell --exec "$(up_race_cmd up-race)"
grep -q 'FAILED a.txt: .*gs://hostile-keys/up-race/a.txt: HTTP 412: .*(precondition failed: the object changed meanwhile)' "$ERR" ||
    fail "the multipart upload" "failed its precondition" "$(cat "$ERR")"

# A first attempt whose answer is lost (the connection reset while the server goes on with the request, as after a
# client timeout) and lands a second later: it carries ifGenerationMatch, so only one generation is ever made, the
# retry's. Without a listing (--force) the object is looked up first, so the same holds; also for a single file
# and for gs:// to gs:// copies (rewrites). The late request is waited for (the server counts it in flight until it is done).
up_stats_reset() { gcs_stats_reset; }
up_one_generation() { # up_one_generation N: after the late requests, N generations were made since the reset
    local i
    for i in $(seq 300); do [ "$(gcs_stat 'd["api_in_flight"]')" = 0 ] && break; sleep 0.1; done
    expect_eq "requests still in flight at the server" 0 "$(gcs_stat 'd["api_in_flight"]')"
    expect_eq "object generations made" "$1" "$(gcs_stat 'd["generations_created"]')"
}
up_late() { up_one_generation 1; expect_eq "the object" one "$(up_data up-late/one.txt)"; }
ID=$(gcs_retry_test '{"storage.objects.insert": ["reset-then-execute-after-1s"]}')
SETUP=up_stats_reset
row upload-late-duplicate 0 - up_late cp {FX}/one gs://hostile-keys/up-late -q "${FAST[@]}" \
    --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
up_late_force() { up_one_generation 1; expect_eq "the object" two "$(up_data up-late/one.txt)"; }
ID=$(gcs_retry_test '{"storage.objects.insert": ["reset-then-execute-after-1s"]}')
SETUP=up_stats_reset
row upload-late-duplicate-force 0 - up_late_force cp "$T/upfx/one2" gs://hostile-keys/up-late --force -q "${FAST[@]}" \
    --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
up_late_single() { up_one_generation 1; expect_eq "the object" one "$(up_data up-late1/one.txt)"; }
ID=$(gcs_retry_test '{"storage.objects.insert": ["reset-then-execute-after-1s"]}')
SETUP=up_stats_reset
row upload-late-duplicate-single 0 - up_late_single cp {FX}/one/one.txt gs://hostile-keys/up-late1 -q \
    "${FAST[@]}" --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
up_late_rw() { up_one_generation 3; }
ID=$(gcs_retry_test '{"storage.objects.rewrite": ["reset-then-execute-after-1s"]}')
SETUP=up_stats_reset
row rewrite-late-duplicate 0 - up_late_rw cp gs://hostile-keys/three gs://hostile-keys/up-rw-late -j 1 -q "${FAST[@]}" \
    --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"

# --upload-chunk is a multiple of 256K, or refused naming the two nearest: never rounded in silence.
up_absent() { expect_eq "nothing uploaded" absent "$(up_size up-chunk/big.bin)"; }
row upload-chunk-300k 2 "^sluice: cp: --upload-chunk must be a multiple of 256K .*, not '300K': use 256K or 512K$" up_absent \
    cp {FX}/big gs://hostile-keys/up-chunk --upload-chunk 300K
row upload-chunk-fraction 2 "not '8.1M': use 8M or 8448K$" up_absent cp {FX}/big gs://hostile-keys/up-chunk --upload-chunk 8.1M
up_help() { # --help says that another size is refused, not rounded
    grep -qF 'SIZE must be a multiple of 256K (another is' "$OUT" && grep -qF 'refused, naming the two nearest)' "$OUT" ||
        fail "cp --help on --upload-chunk" "a multiple of 256K, another refused" "$(grep -A2 -- --upload-chunk "$OUT")"
}
row upload-chunk-help 0 - up_help cp --help
up_768() {
    expect_eq "the object" 1048576 "$(up_size up-chunk/big.bin)"
    expect_eq "upload requests: a start and 2 chunks" 3 "$(gcs_requests storage.objects.insert)"
}
SETUP=up_stats_reset
row upload-chunk-768k 0 - up_768 cp {FX}/big gs://hostile-keys/up-chunk --upload-chunk 768K -q

# ============================================================================================================
say "zero objects, 0-byte objects"
row zero-objects 0 '0 done \(0 skipped\), 0 failed of 0 objects' - cp {FX}/empty {DST}
row zero-objects-gs 0 - - ls -r gs://hostile-keys/three --include '*.none'
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
# A server that stops answering, and signals while a request hangs before the job has started. Short rows here; the
# full cases (every job kind, an outage shorter than the deadline, 503 is not "unreachable", timings, two signals,
# du) are in tests/cli/gcs_outage.sh and tests/cli/signals.sh.
say "a server that dies mid-job stops the job after the retry deadline; a signal abandons a hanging start-up request"
prompt() { # the command ended long before the server's 60 s stall: the grace (1 s) and a generous margin
    [ "$ELAPSED" -le 10 ] || fail "exit after the signal" "within 10 s (the server stalls 60 s)" "$ELAPSED s"
}
prompt_nothing() {
    prompt
    nothing_created
}
stall_id() { gcs_retry_test "{\"$1\": [\"stall-for-60s-after-0K\"]}"; } # the next $1 request stalls 60 s
sig_after() { PRE=(timeout --foreground --preserve-status -s "$1" 1.5); } # one signal, 1.5 s into the command
IDS=$(stall_id storage.objects.get)
sig_after TERM
row sigterm-startup-probe 143 '^sluice: cp: interrupted by SIGTERM while starting, nothing was done' prompt_nothing \
    cp gs://hostile-keys/three {DST} --grace 1s --header "x-retry-test-id: $IDS"
gcs_expect_consumed "$IDS"
IDS=$(stall_id storage.buckets.get)
sig_after TERM
row sigterm-startup-bucket 143 '^sluice: cp: interrupted by SIGTERM while starting, nothing was done' prompt \
    cp {FX}/src gs://hostile-keys/stalled-bucket-check --grace 1s --header "x-retry-test-id: $IDS"
gcs_expect_consumed "$IDS"
expect_eq "objects uploaded after SIGTERM at start-up" "" "$(gcs_objects hostile-keys stalled-bucket-check/)"
IDS=$(stall_id storage.objects.list)
sig_after TERM
row sigterm-ls-stalled 143 - prompt ls gs://hostile-keys/three/ --header "x-retry-test-id: $IDS"
expect_out
IDS=$(stall_id storage.objects.get)
sig_after INT
row sigint-cat-stalled 130 - prompt cat gs://hostile-keys/three/a --header "x-retry-test-id: $IDS"
expect_out

HOSTILE_GCS=("$GCS" "$GCS_PORT" "$STORAGE_EMULATOR_HOST")
gcs_start --bucket hostile-outage
gcs_seed '{"bucket": "hostile-outage", "count": 2000, "name_format": "p/{:05d}", "size": 100}'
gcs_config '{"delay_ms": 20}' # 2000 objects take ~5 s at -j 8: the server dies early in the job
OUTAGE_PID=$GCS_PID
kill_server_under_way() { # SETUP: kills the server once the row's first file has arrived (at most 15 s from now)
    (
        for _ in $(seq 300); do
            [ -n "$(find "$DST" -type f 2>/dev/null | head -1)" ] && break
            sleep 0.05
        done
        kill "$OUTAGE_PID"
    ) &
}
outage_stopped() {
    [ "$ELAPSED" -le 20 ] || fail "exit after the server died" "about 2 s (--retry-deadline-ms) later" "$ELAPSED s"
    expect_eq "files present that are not whole (100 bytes)" "" "$(find "$DST" -type f ! -size 100c)"
    [ -n "$(find "$DST" -type f | head -1)" ] || fail "files copied before the server died" "some" "none"
}
SETUP=kill_server_under_way
row server-dies-mid-job 3 \
    '^sluice: cp: gs://hostile-outage/p: server unreachable for [0-9.]+ s \(.*\); [0-9]+ objects done, 0 failed, .*rerun to resume$' \
    outage_stopped cp gs://hostile-outage/p {DST} -j 8 --retry-deadline-ms 2000
gcs_stop
GCS=${HOSTILE_GCS[0]} GCS_PORT=${HOSTILE_GCS[1]}
export STORAGE_EMULATOR_HOST=${HOSTILE_GCS[2]}

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
say "messages and exit codes that tell the truth: cat --verify, the endpoint used, long keys, refusals up front, option values"
# Its own objects: one whose body comes short (no x-goog-hash: only the size can tell), a 1 MiB one, and under m14/ one
# whose name is as long as GCS allows (1,024 bytes) after a short one.
python3 - "$T/msg.json" "$FX" <<'PY'
import base64, json, os, sys
out, fx = sys.argv[1], sys.argv[2]
data = bytes((i * 7 + i // 256) % 256 for i in range(550))
big = bytes((i * 131 + i // 1000) % 256 for i in range(1 << 20))
os.makedirs(fx + "/msg", exist_ok=True)
open(fx + "/msg/data", "wb").write(data)
open(fx + "/msg/big", "wb").write(big)
long_name = "m14/" + "/".join(["n%03d" % i + "x" * 195 for i in range(5)])
long_name += "y" * (1024 - len(long_name.encode()))
assert len(long_name.encode()) == 1024
open(fx + "/msg/long_name", "w").write(long_name)
b64 = lambda b: base64.b64encode(b).decode()
objs = [dict(name="short", data_b64=b64(data), serve=["no-hash", "short-body"]),
        dict(name="big.bin", data_b64=b64(big)), dict(name=long_name, data="long"), dict(name="m14/a", data="a")]
json.dump({"bucket": "hostile-msg", "objects": objs}, open(out, "w"))
PY
gcs_seed "@$T/msg.json"
MSG=gs://hostile-msg
M14_NAME=$(cat "$FX/msg/long_name")

# -- cat streams, so a check that fails at the end comes after the bytes went out; --verify writes nothing until the
# whole object has passed its checks (an unlinked temp file in $TMPDIR holds it meanwhile).
verify_tmp() { mkdir -p "$AUX/tmp" && PRE=(env "TMPDIR=$AUX/tmp"); }
tmp_empty() { expect_eq "files left in TMPDIR" "" "$(find "$AUX/tmp" -mindepth 1)"; }
SETUP=verify_tmp
row m-verify-short 3 "$MSG/short: received 275 bytes but the object has 550: .*; nothing was written to stdout \(--verify\)\$" \
    tmp_empty cat --verify "$MSG/short" "${FAST[@]}"
ID=$(gcs_retry_test "{\"storage.objects.get\": [\"$NOOP\", \"return-corrupted-data\"]}")
SETUP=verify_tmp
row m-verify-crc 3 "$MSG/big.bin: CRC32C mismatch: .*; nothing was written to stdout \(--verify\)\$" tmp_empty \
    cat --verify "$MSG/big.bin" "${FAST[@]}" --header "x-retry-test-id: $ID"
gcs_expect_consumed "$ID"
verified_whole() {
    expect_out_file "$FX/msg/big"
    tmp_empty
}
SETUP=verify_tmp
row m-verify-ok 0 - verified_whole cat --verify "$MSG/big.bin"
verified_range() {
    head -c 1001 "$FX/msg/big" | tail -c 901 >"$T/want.range"
    expect_out_file "$T/want.range"
}
row m-verify-range 0 - verified_range cat --verify --range 100-1000 "$MSG/big.bin"
row m-verify-local 0 - - cat --verify {FX}/msg/data
expect_out_file "$FX/msg/data"
tmp_full() { small_fs 0 && PRE=(env "TMPDIR=$AUX/small"); }
SETUP=tmp_full
row m-verify-tmp-full 3 "big.bin: --verify cannot write its temporary file in .*/small \(TMPDIR\): No space left on device; it needs room there for the whole object; nothing was written to stdout" \
    p9_unmount cat --verify "$MSG/big.bin"
PRE=(env TMPDIR=/nonexistent-sl)
row m-verify-tmp-missing 3 '--verify cannot create its temporary file in /nonexistent-sl \(TMPDIR\): No such file or directory' \
    - cat --verify {FX}/msg/data
# Without --verify the wrong bytes are already out: the line says how many, and what --verify would have done.
ID=$(gcs_retry_test "{\"storage.objects.get\": [\"$NOOP\", \"return-corrupted-data\"]}")
streamed_wrong "$MSG/big.bin: CRC32C mismatch: received data has " "" cat "$MSG/big.bin" "${FAST[@]}" --header "x-retry-test-id: $ID"
expect_err_contains "; the 1048576 bytes written to stdout are not the object's (--verify writes nothing until the object has passed its checks)"
gcs_expect_consumed "$ID"
# A download that fails midway (broken after 256 KiB, then 503s until the tries are spent): the line says how much of
# the object went out; with --verify, none of it. (The faults left over are not checked: how many tries a resumed
# download gets is the retry policy's business, and 256 KiB are written under any.)
MIDWAY="[\"$NOOP\", \"return-broken-stream-after-256K\", \"return-503\", \"return-503\", \"return-503\", \"return-503\"]"
ID=$(gcs_retry_test "{\"storage.objects.get\": $MIDWAY}")
streamed_wrong "; only the object's first 262144 bytes were written to stdout" "" \
    cat "$MSG/big.bin" --retries 1 "${FAST[@]}" --header "x-retry-test-id: $ID"
expect_err_contains "$MSG/big.bin: HTTP 503: "
expect_eq "bytes on stdout" 262144 "$(wc -c <"$OUT")"
ID=$(gcs_retry_test "{\"storage.objects.get\": $MIDWAY}")
SETUP=verify_tmp
row m-verify-midway 3 "$MSG/big.bin: HTTP 503: .*; nothing was written to stdout \(--verify\)\$" tmp_empty \
    cat --verify "$MSG/big.bin" --retries 1 "${FAST[@]}" --header "x-retry-test-id: $ID"

# -- with STORAGE_EMULATOR_HOST (or CLOUD_STORAGE_EMULATOR_ENDPOINT) set, requests go where --endpoint says, still
# without credentials: the message names that endpoint, not the variable's address (127.0.0.1:1, where nothing runs).
not_the_variable() {
    ! grep -q '127\.0\.0\.1:1)' "$ERR" || fail "the credentials named" "the endpoint used" "$(cat "$ERR")"
}
ID403=$(gcs_retry_test '{"storage.objects.list": ["return-403"]}')
PRE=(env STORAGE_EMULATOR_HOST=127.0.0.1:1)
row m-endpoint-named 3 "HTTP 403.*\(via anonymous access to $GCS \(--endpoint; no credentials, as STORAGE_EMULATOR_HOST is set\)\)\$" \
    not_the_variable ls gs://hostile-msg/ --endpoint "$GCS" --header "x-retry-test-id: $ID403"
gcs_expect_consumed "$ID403"
# Both variables: the endpoint is CLOUD_STORAGE_EMULATOR_ENDPOINT's, and so is the variable named.
ID403=$(gcs_retry_test '{"storage.objects.list": ["return-403"]}')
PRE=(env STORAGE_EMULATOR_HOST=127.0.0.1:1 "CLOUD_STORAGE_EMULATOR_ENDPOINT=$GCS")
row m-emulator-variable-named 3 "HTTP 403.*\(via anonymous access \(CLOUD_STORAGE_EMULATOR_ENDPOINT=$GCS\)\)\$" \
    not_the_variable ls gs://hostile-msg/ --header "x-retry-test-id: $ID403"
gcs_expect_consumed "$ID403"

# -- a rejected access token is named once ("the access token from GOOGLE_OAUTH_ACCESS_TOKEN", not "the access token
# from access token from ..."), by a server of its own that wants tokens.
MSG_GCS=("$GCS" "$GCS_PORT" "$STORAGE_EMULATOR_HOST")
GCS_NO_EMULATOR=1 gcs_start --token-required --bucket hostile-auth --accept-token sl-good-token
AUTH_EP=(--endpoint "$GCS")
GCS=${MSG_GCS[0]} GCS_PORT=${MSG_GCS[1]}
export STORAGE_EMULATOR_HOST=${MSG_GCS[2]}
said_once() { ! grep -q 'access token .*access token' "$ERR" || fail "the token named" "once" "$(cat "$ERR")"; }
PRE=(env -u STORAGE_EMULATOR_HOST GOOGLE_OAUTH_ACCESS_TOKEN=sl-stale-token)
row m-token-rejected-env 3 ': the access token from GOOGLE_OAUTH_ACCESS_TOKEN was rejected \(401\): it may have expired; provide a fresh one$' \
    said_once ls gs://hostile-auth/ "${AUTH_EP[@]}"
printf 'sl-stale-token\n' >"$FX/msg/token"
PRE=(env -u STORAGE_EMULATOR_HOST)
row m-token-rejected-file 3 ": the access token in file $FX/msg/token \(--token-file\) was rejected \(401\): it may have expired" \
    said_once ls gs://hostile-auth/ "${AUTH_EP[@]}" --token-file {FX}/msg/token

# -- long keys: a message quoting a 1,024-byte GCS name (twice: the server's 404 quotes it too) or a 4,095-byte local
# key is whole on stderr, in --failures and in --report, with its reason: nothing is cut from it.
whole_everywhere() { # whole_everywhere KEY REASON_RE: the key's FAILED line, --failures and --report say it whole
    python3 - "$ERR" "$AUX/f.jsonl" "$AUX/r.json" "$1" "$2" <<'PY' ||
import json, re, sys
err, log, report, key, reason = sys.argv[1:6]
said = [l.split(": FAILED " + key + ": ", 1)[1] for l in open(err, encoding="utf-8").read().splitlines()
        if ": FAILED " + key + ": " in l]
assert len(said) == 1, "stderr: %d FAILED lines for the key" % len(said)
for where, text in (("stderr", said[0]),):
    assert re.search(reason, text) and " [...] " not in text, "%s: ...%s" % (where, text[-300:])
lines = [json.loads(l) for l in open(log, "rb")]
mine = [l for l in lines if l["key"] == key]
assert len(mine) == 1, "failure log: %d lines for the key (keys: %s)" % (len(mine), [l["key"][:40] for l in lines])
assert mine[0]["error"] == said[0], "failure log: ...%s" % mine[0]["error"][-300:]
sample = [s for s in json.load(open(report, "rb"))["failures_sample"] if s["key"] == key]
assert len(sample) == 1, "report: no sample with the whole key"
assert sample[0]["error"] == said[0], "report: ...%s" % sample[0]["error"][-300:]
PY
        fail "a failure on a long key" "the whole key and message with its reason on stderr, in --failures and --report" \
            "see the assertion above"
}
# The long object is deleted between its listing and its download, by the command run for m14/a (mapped first: -j 1,
# keys in order), so its download is a 404 whose answer quotes the whole name again.
m14_whole() {
    whole_everywhere "${M14_NAME#m14/}" "^$MSG/$M14_NAME: HTTP 404: No such object: hostile-msg/$M14_NAME \(via anonymous access \(STORAGE_EMULATOR_HOST=[^)]*\)\)\$"
    expect_err_contains "1 done (0 skipped), 1 failed of 2 objects"
}
PRE=(env "SL=$SLUICE" "M14_URL=$MSG/$M14_NAME")
row m-long-gcs-name 1 'FAILED n000x+' m14_whole map "$MSG/m14" - -j 1 --shell --exec '"$SL" rm -q "$M14_URL" && cat' \
    --failures {AUX}/f.jsonl --report {AUX}/r.json
make_deep "$FX/m14deep"
m14_deep_whole() {
    whole_everywhere "$DEEP_PATH$DEEP_G" "^$FX/m14deep/${DEEP_PATH}$DEEP_G: skipped: its key would be 4120 bytes long, over the limit of 4095\$"
    whole_everywhere "$DEEP_PATH$DEEP_H/" "/$DEEP_H/: skipped with everything under it: its key would be 4111 bytes long, over the limit of 4095\$"
}
row m-long-local-key 1 'FAILED d01x+' m14_deep_whole cp {FX}/m14deep {DST} --failures {AUX}/f.jsonl --report {AUX}/r.json
rm -rf "$FX/m14deep"
# A job that cannot run says why in one line however long the URL it quotes: a listing refused under a 1,000-byte
# prefix ends with its reason and the credentials used, as every message does.
M14_PREFIX=$(printf '%01000d' 0)
ID403=$(gcs_retry_test '{"storage.objects.list": ["return-403"]}')
row m-long-fatal 3 "^sluice: cp: $MSG/$M14_PREFIX/: HTTP 403: .*\(via anonymous access \(STORAGE_EMULATOR_HOST=[^)]*\)\)\$" \
    nothing_created cp "$MSG/$M14_PREFIX/" {DST} --header "x-retry-test-id: $ID403"
gcs_expect_consumed "$ID403"

# -- what cannot work for any object is refused once, up front (exit 3), not failed object by object (exit 1).
dangling_dst() { ln -s "$C/nowhere" "$DST"; }
no_target() { [ ! -e "$C/nowhere" ] || fail "the link's target" "not created" "$(ls -la "$C/nowhere")"; }
SETUP=dangling_dst
row m-dst-dangling-link 3 "destination file://.*/dst: .*/dst is a symbolic link to .*/nowhere, which does not exist \(create that directory, or give another destination\)" \
    no_target cp {FX}/src {DST}
SETUP=dangling_dst
row m-dst-under-dangling-link 3 "/dst is a symbolic link to .*/nowhere, which does not exist" no_target \
    map {FX}/src {DST}/sub --op md5
row m-exec-directory 3 "cannot run '/tmp': it is a directory, not a command" nothing_created map {FX}/src {DST} --exec /tmp
row m-exec-not-executable 3 "cannot run '/etc/passwd': not an executable file \(check its permissions: chmod \+x\)" \
    nothing_created map {FX}/src {DST} --exec /etc/passwd
path_dir() { mkdir -p "$AUX/bin/cat" && PRE=(env "PATH=$AUX/bin"); }
SETUP=path_dir
row m-exec-path-directory 3 "cannot run 'cat': .*/bin/cat in PATH is a directory, and no executable file of that name comes after it" \
    nothing_created map {FX}/src {DST} --exec cat
# ... while a directory before the command in PATH is only passed over, as execvp does.
path_dir_then_bin() { mkdir -p "$AUX/bin/cat" && PRE=(env "PATH=$AUX/bin:$PATH"); }
SETUP=path_dir_then_bin
row m-exec-path-directory-skipped 0 - src_copied map {FX}/src {DST} --exec cat -q
# A valid range past the end of the object: a fact about the object, exit 3, nothing written (usage errors are 2).
row m-range-past-end 3 'a.txt: range starts at byte 100, past the end of the object \(6 bytes\)' - cat --range 100- {FX}/src/a.txt
row m-range-past-end-gs 3 'three/a: offset 100 is past the end' - cat --range 100-200 gs://hostile-keys/three/a
row m-range-syntax-first 2 "--range takes A-B, A- or -N .* not '1-x'" - cat --range 1-x {C}/no-such-file

# -- option values are parsed strictly: no spaces, no sign, no exponent, no trailing junk; a value that would round to
# 0 where 0 means something else (no limit, at once) is refused.
row m-flag-j-space 2 "-j/--jobs takes a whole number from 1 to 1024, not ' 4'" nothing_created cp -j ' 4' {FX}/src {DST}
row m-flag-j-plus 2 "-j/--jobs takes a whole number from 1 to 1024, not '\+4'" nothing_created cp -j +4 {FX}/src {DST}
row m-flag-j-trailing 2 "not '4 '" nothing_created cp --jobs='4 ' {FX}/src {DST}
row m-flag-timeout-rounds-to-0 2 "--timeout '0.0001s' is shorter than 1 ms and would round to 0, which means no time limit: give at least 1ms \(or 0\)" \
    nothing_created map {FX}/src {DST} --exec cat --timeout 0.0001s
row m-flag-timeout-exponent 2 "--timeout takes a duration .* not '1e3'" nothing_created map {FX}/src {DST} --exec cat --timeout 1e3
row m-flag-timeout-hex 2 "--timeout takes a duration .* not '0x10'" nothing_created map {FX}/src {DST} --exec cat --timeout 0x10
row m-flag-grace-rounds-to-0 2 "--grace '0.0004s' is shorter than 1 ms and would round to 0, which means abandon in-flight objects at once" \
    nothing_created cp {FX}/src {DST} --grace 0.0004s
row m-flag-memory-space 2 "--memory-limit takes a size such as 64M or 1G, not ' 64M'" nothing_created \
    cp --memory-limit ' 64M' {FX}/src {DST}
row m-flag-memory-below-a-byte 2 "--memory-limit takes a size .* not '0.5'" nothing_created cp --memory-limit 0.5 {FX}/src {DST}
row m-flag-upload-chunk-plus 2 "--upload-chunk takes a size of at least 256K such as 8M, not '\+8M'" nothing_created \
    cp --upload-chunk +8M {FX}/src gs://hostile-msg/u
row m-flag-retries-plus 2 "--retries takes a whole number from 0 to 100, not '\+1'" - ls --retries +1 {FX}/src
row m-flag-retry-max-space 2 "--retry-max-ms takes a whole number of milliseconds from 1 to 86400000, not ' 50'" - \
    ls --retry-max-ms ' 50' {FX}/src
row m-flag-mem-interval-trailing 2 "--mem-interval .* not '100ms'" nothing_created cp --mem-interval 100ms {FX}/src {DST}
row m-watch-interval-space 2 "--interval ' 100': want milliseconds, 10 to 86400000" - watch --interval ' 100' -- true
row m-watch-limit-plus 2 "--limit '\+1G': want a size such as 512M or 2G" - watch --limit +1G -- true
row m-flag-j-leading-zero 0 - src_copied cp -j 08 -q {FX}/src {DST}

# -- sluice watch quotes the command as every message quotes names: a newline in it is "\n", in the summary, the
# chart's title, its messages; the report has it as a JSON array. (Its summary is a block of lines: not a row.)
C="$T/case/m-watch-newline" AUX="$T/case/m-watch-newline/aux"
mkdir -p "$AUX"
say "not a row: sluice watch of a command with a newline and a control character in it"
run "$SLUICE" watch --chart "$AUX/c.svg" --report "$AUX/r.json" -- sh -c $'true\ntrue' x $'a\x01b'
expect_rc 0
expect_eq "the summary's first line" 'sluice watch: sh -c true\ntrue x a\x01b' "$(head -1 "$ERR")"
expect_eq "summary lines (the command on one)" 6 "$(wc -l <"$ERR")"
grep -qF '<title>sluice watch: sh -c true\ntrue x a\x01b: memory ' "$AUX/c.svg" ||
    fail "the chart's title" "the command on one line, escaped" "$(grep -m1 -o '<title>[^<]*' "$AUX/c.svg")"
expect_eq "the report's command" '["sh", "-c", "true\ntrue", "x", "a\u0001b"]' "$(json_field "$AUX/r.json" 'd["command"]')"
run "$SLUICE" watch -- $'no-such\ncommand-sl'
expect_rc 127
expect_err_one_line 'sluice: watch: no-such\ncommand-sl: command not found'
# The same in the chart of a job: its title names the source as messages do.
nl_source() { mkdir -p "$AUX/in"$'\n'"put" && echo x >"$AUX/in"$'\n'"put/x"; }
nl_title() {
    grep -qF '<title>sluice map --op count '"$AUX"'/in\nput -&gt; ' "$AUX/c.svg" ||
        fail "the chart's title" "the source on one line, escaped" "$(grep -m1 -o '<title>[^<]*' "$AUX/c.svg")"
}
SETUP=nl_source
row m-chart-title-newline 0 - nl_title map {AUX}/in$'\n'put {DST} --op count --chart {AUX}/c.svg -q

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
# the command itself looks at the temp file sluice is writing its stdout into. (--fsync: those writes have a temp name
# from the start; without it a new file is written without a name where the file system allows it, which nobody can
# open, and then there is no temp file to see: the row after this one.)
tmp_private() {
    # Each command sees its own temp file, 0600 while it is being written, and may see earlier ones complete (their
    # final mode set) and waiting for their group commit's rename.
    [ "$(grep -c '^600 .*sluice-tmp' "$AUX/seen")" -ge 3 ] || fail "temp files seen (mode 0600) while the command ran" \
        "at least 3" "$(cat "$AUX/seen")"
    expect_eq "temp files of other modes" "" "$(awk '$1 != "600" && $1 != "666"' "$AUX/seen")"
    expect_eq "final modes (umask 000)" "666 666 666" \
        "$(stat -c %a "$DST/a.txt" "$DST/b.txt" "$DST/sub/c.txt" | tr '\n' ' ' | sed 's/ $//')"
}
umask_is 000
row umask-000-temp 0 - tmp_private map {FX}/src {DST} -q -j 1 --fsync --shell \
    --exec 'cat; find "{DST}" -name ".sluice-tmp-*" -printf "%m %p\n" >>"{AUX}/seen"'
tmp_none() {
    if python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR, 0o600))' "$DST" 2>/dev/null; then
        expect_eq "temp files seen while the command ran (unnamed files)" 0 "$(grep -c sluice-tmp "$AUX/seen" || true)"
    fi
    expect_eq "final modes (umask 000)" "666 666 666" \
        "$(stat -c %a "$DST/a.txt" "$DST/b.txt" "$DST/sub/c.txt" | tr '\n' ' ' | sed 's/ $//')"
}
umask_is 000
row umask-000-unnamed 0 - tmp_none map {FX}/src {DST} -q -j 1 --shell \
    --exec 'cat; find "{DST}" -name ".sluice-tmp-*" -printf "%m %p\n" >>"{AUX}/seen"; touch "{AUX}/seen"'

say "$NROWS rows, $NSKIPPED skipped"
[ "$NROWS" -ge 40 ] || fail "table size" "at least 40 rows" "$NROWS"
gcs_finish
