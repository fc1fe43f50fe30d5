#!/usr/bin/env bash
# Rerunning is resuming: cp, sync and map skip outputs that are already complete (their recorded source fingerprint
# matches), redo what changed (source touched, output edited, another --op or command), --force redoes everything,
# leftover temp files of a killed writer are removed by the rerun (and only those), outputs sluice did not write are
# compared by checksum (cp/sync) or redone (map), on a file system without xattrs too, and the same through gs://
# (custom metadata sluice-source, multipart and resumable uploads).
set -euo pipefail
. "$(dirname "$0")/gcs_lib.sh"

S="$T/src"
python3 - "$S" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
# "a" and "a.b": with --suffix .out their outputs sort the other way round.
for k in ["a", "a.b", "a.b.c", "b/x", "b/y", "c/d/e", "f00", "f01", "f02", "big"]:
    p = os.path.join(root, k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(rng.randbytes(700000 if k == "big" else rng.randrange(1, 2000)))
PY
N=10
counts() { json_field "$1" '"%d %d %d" % (d["objects"]["done"], d["objects"]["skipped"], d["objects"]["failed"])'; }
# job WHAT EXPECTED_COUNTS ARGS...: runs sluice ARGS with a report; "done skipped failed" must be EXPECTED_COUNTS.
job() {
    local what=$1 want=$2
    shift 2
    run "$SLUICE" "$@" -q --report "$T/r.json"
    expect_rc 0
    expect_eq "$what: done skipped failed" "$want" "$(counts "$T/r.json")"
}
same_tree() {
    diff -r "$1" "$2" >"$T/diff.txt" 2>&1 || fail "$3" "no difference between $1 and $2" "$(head -5 "$T/diff.txt")"
}

say "cp records the source's fingerprint in user.sluice.source; a rerun skips everything and reads nothing"
job "first cp" "$N 0 0" cp "$S" "$T/c"
same_tree "$S" "$T/c" "cp"
fp=$(sl_record "$T/c/b/x")
read -r form len < <(sl_record --raw "$T/c/b/x")
[ "$form" = compact ] && [ "$len" -le 56 ] ||
    fail "the record's form" "compact, at most 56 bytes (what ext4 keeps in a 256-byte inode)" "$form, $len bytes"
st=$(stat -c '%s %Y' "$S/b/x")
python3 - "$fp" "$S/b/x" "$T/c/b/x" <<'PY' || fail "xattr of an output" "<size> <mtime_ns> size=<src size> mtime=<src mtime_ns> job=copy out_crc32c=<8 hex>" "$fp"
import os, re, sys
out_size, out_mtime, rest = sys.argv[1].split(" ", 2)
src, dst = os.stat(sys.argv[2]), os.stat(sys.argv[3])
assert int(out_size) == dst.st_size and int(out_mtime) == dst.st_mtime_ns, (out_size, out_mtime)
assert re.fullmatch("size=%d mtime=%d job=copy out_crc32c=[0-9a-f]{8}" % (src.st_size, src.st_mtime_ns), rest), rest
PY
job "cp rerun" "$N $N 0" cp "$S" "$T/c"
expect_eq "cp rerun: bytes read" 0 "$(json_field "$T/r.json" 'd["bytes"]["read"]')"
job "sync after cp" "$N $N 0" sync "$S" "$T/c"
expect_eq "sync after cp: bytes read" 0 "$(json_field "$T/r.json" 'd["bytes"]["read"]')"

say "--force redoes every object"
job "cp --force" "$N 0 0" cp "$S" "$T/c" --force
same_tree "$S" "$T/c" "cp --force"

say "a changed source (same size), an output edited in place (same size) and a deleted output are redone"
python3 -c 'import sys; p=sys.argv[1]; d=bytearray(open(p,"rb").read()); d[-1]^=1; open(p,"r+b").write(d)' "$S/f00"
python3 -c 'import sys; p=sys.argv[1]; d=bytearray(open(p,"rb").read()); d[0]^=1; open(p,"r+b").write(d)' "$T/c/f01"
rm "$T/c/f02"
job "cp after changes" "$N 7 0" cp "$S" "$T/c"
same_tree "$S" "$T/c" "cp after changes"
say "a touched source with the same bytes: cp checks it by checksum and skips it"
touch -d '2001-01-01' "$S/f00"
job "cp after a touch" "$N $N 0" cp "$S" "$T/c"
expect_eq "cp after a touch: bytes read (both sides of one object)" $((2 * $(stat -c %s "$S/f00"))) "$(json_field "$T/r.json" 'd["bytes"]["read"]')"

say "a single-object source resumes too"
job "cp of one file" "1 0 0" cp "$S/b/y" "$T/one"
job "cp of one file, again" "1 1 0" cp "$S/b/y" "$T/one"

say "map: a rerun skips; another --op or another command into the same outputs is not taken for done"
job "map sha256" "$N 0 0" map "$S" "$T/m" --op sha256 --suffix .out
job "map sha256 rerun" "$N $N 0" map "$S" "$T/m" --op sha256 --suffix .out
job "map md5 into the same outputs" "$N 0 0" map "$S" "$T/m" --op md5 --suffix .out
grep -q '"md5"' "$T/m/a.b.out" || fail "map --op md5 output" "an md5 result" "$(cat "$T/m/a.b.out")"
job "map --exec cat" "$N 0 0" map "$S" "$T/m" --exec cat --suffix .out
job "map --exec cat rerun" "$N $N 0" map "$S" "$T/m" --exec cat --suffix .out
job "map --exec 'cat -'" "$N 0 0" map "$S" "$T/m" --exec 'cat -' --suffix .out
job "map --shell" "$N 0 0" map "$S" "$T/m" --shell --exec 'cat' --suffix .out
job "map --shell rerun" "$N $N 0" map "$S" "$T/m" --shell --exec 'cat' --suffix .out
job "map without suffix" "$N 0 0" map "$S" "$T/m2" --exec cat
job "map without suffix rerun" "$N $N 0" map "$S" "$T/m2" --exec cat
touch -d '2003-03-03' "$S/b/x"
job "map after a touch of one source" "$N $((N - 1)) 0" map "$S" "$T/m2" --exec cat
same_tree "$S" "$T/m2" "map --exec cat"
job "map --force" "$N 0 0" map "$S" "$T/m2" --exec cat --force
job "map to - has nothing to resume" "$N 0 0" map "$S" - --op md5
say "map --dry-run after a partial run lists only the objects still to do"
rm "$T/m/a.out" "$T/m/c/d/e.out"
run "$SLUICE" map "$S" "$T/m" --shell --exec 'cat' --suffix .out --dry-run -q
expect_rc 0
expect_eq "dry run keys (b/x was touched)" "a b/x c/d/e" "$(python3 -c 'import json,sys; print(" ".join(sorted(json.loads(l)["key"] for l in open(sys.argv[1]))))' "$OUT")"

say "outputs sluice did not write: cp/sync compare size and CRC32C (skip identical, redo different), map redoes"
cp -r "$S" "$T/plain"
printf 'X' | dd of="$T/plain/b/x" bs=1 seek=0 conv=notrunc 2>/dev/null
job "sync to a plain copy" "$N 9 0" sync "$S" "$T/plain"
same_tree "$S" "$T/plain" "sync to a plain copy"
cp -r "$S" "$T/plain2"
job "cp to a plain copy" "$N $N 0" cp "$S" "$T/plain2"

say "leftover temp files: the rerun removes those no writer holds, keeps one a live writer holds, never lists them"
echo partial >"$T/c/b/.sluice-tmp-dead01"
echo partial >"$T/c/.sluice-tmp-dead02"
mkdir -p "$T/c/only-tmp" && echo partial >"$T/c/only-tmp/.sluice-tmp-dead03"
echo partial >"$T/c/b/.sluice-tmp-live01"
flock -o "$T/c/b/.sluice-tmp-live01" sleep 30 &
HOLDER=$!
for _ in $(seq 100); do
    flock -n "$T/c/b/.sluice-tmp-live01" true 2>/dev/null || break
    sleep 0.05
done
run "$SLUICE" ls -r "$T/c"
expect_rc 0
grep -q sluice-tmp "$OUT" && fail "ls -r of a destination with temp files" "no temp file listed" "$(cat "$OUT")"
job "cp --dry-run" "$N $N 0" cp "$S" "$T/c" --dry-run
expect_eq "temp files after a dry run" 4 "$(find "$T/c" -name '.sluice-tmp-*' | wc -l)"
job "cp rerun over leftovers" "$N $N 0" cp "$S" "$T/c"
expect_eq "temp files left" "$T/c/b/.sluice-tmp-live01" "$(find "$T/c" -name '.sluice-tmp-*')"
kill "$HOLDER" 2>/dev/null || true
wait "$HOLDER" 2>/dev/null || true
job "cp rerun after the writer is gone" "$N $N 0" cp "$S" "$T/c"
no_tmp_files "$T/c"

if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null && unshare -m sh -c "mount -t ramfs none '$T' 2>/dev/null" 2>/dev/null; then
    say "a file system without user xattrs (ramfs): cp/sync fall back to checksums, map redoes, nothing fails"
    mkdir -p "$T/ram"
    unshare -m bash -c '
        set -e
        mount -t ramfs none "$1"
        cp -r "$2" "$1/src"
        "$3" cp "$1/src" "$1/c" -q --report "$4/ram1.json"
        "$3" cp "$1/src" "$1/c" -q --report "$4/ram2.json"
        "$3" map "$1/src" "$1/m" -q --op md5 --report "$4/ram3.json"
        "$3" map "$1/src" "$1/m" -q --op md5 --report "$4/ram4.json"
        diff -r "$1/src" "$1/c"
    ' ram "$T/ram" "$S" "$SLUICE" "$T" || fail "jobs on ramfs" "exit 0" "a failure (above)"
    expect_eq "ramfs: first cp" "$N 0 0" "$(counts "$T/ram1.json")"
    expect_eq "ramfs: cp rerun (identical by checksum)" "$N $N 0" "$(counts "$T/ram2.json")"
    expect_eq "ramfs: cp rerun read both sides" true "$(json_field "$T/ram2.json" 'd["bytes"]["read"] > 0')"
    expect_eq "ramfs: map" "$N 0 0" "$(counts "$T/ram3.json")"
    expect_eq "ramfs: map rerun redoes" "$N 0 0" "$(counts "$T/ram4.json")"
else
    skip_note "no ramfs test of a file system without xattrs (needs root and a private mount namespace)"
fi

say "gs://: uploads record sluice-source in the object's metadata (multipart and resumable); reruns skip"
gcs_start --bucket sl-resume
job "cp local -> gs" "$N 0 0" cp "$S" gs://sl-resume/c --upload-chunk 256K
# The fingerprint of the source, then the output's own size and CRC32C (computed here from the file).
recorded() { # recorded FILE
    python3 -c 'import base64,os,sys; s=os.stat(sys.argv[1]); c=base64.b64decode(sys.argv[2]).hex()
print("size=%d mtime=%d job=copy out_size=%d out_crc32c=%s" % (s.st_size, s.st_mtime_ns, s.st_size, c))' \
        "$1" "$(crc32c_b64 "$1")"
}
expect_eq "metadata of a multipart upload" "$(recorded "$S/a.b")" "$(gcs_meta sl-resume c/a.b 'd["metadata"]["sluice-source"]')"
expect_eq "metadata of a resumable upload" "$(recorded "$S/big")" "$(gcs_meta sl-resume c/big 'd["metadata"]["sluice-source"]')"
job "cp local -> gs rerun" "$N $N 0" cp "$S" gs://sl-resume/c
expect_eq "cp local -> gs rerun: bytes read" 0 "$(json_field "$T/r.json" 'd["bytes"]["read"]')"
job "map local -> gs" "$N 0 0" map "$S" gs://sl-resume/m --op sha256 --suffix .out
job "map local -> gs rerun" "$N $N 0" map "$S" gs://sl-resume/m --op sha256 --suffix .out
job "cp gs -> local" "$N 0 0" cp gs://sl-resume/c "$T/g"
same_tree "$S" "$T/g" "cp gs -> local"
gen=$(gcs_meta sl-resume c/a 'd["generation"]')
crc=$(python3 -c 'import base64,sys; print(base64.b64decode(sys.argv[1]).hex())' "$(gcs_meta sl-resume c/a 'd["crc32c"]')")
fp=$(sl_record "$T/g/a" | cut -d' ' -f3-)
expect_eq "fingerprint of a gs:// source" "size=$(stat -c %s "$S/a") gen=$gen crc32c=$crc job=copy out_crc32c=$crc" "$fp"
job "cp gs -> local rerun" "$N $N 0" cp gs://sl-resume/c "$T/g"
job "map gs -> gs" "$N 0 0" map gs://sl-resume/c gs://sl-resume/m2 --exec cat --suffix .out
job "map gs -> gs rerun" "$N $N 0" map gs://sl-resume/c gs://sl-resume/m2 --exec cat --suffix .out
job "cp gs -> gs (server-side copy)" "$N 0 0" cp gs://sl-resume/c gs://sl-resume/c2
job "cp gs -> gs rerun (same size and CRC32C)" "$N $N 0" cp gs://sl-resume/c gs://sl-resume/c2
expect_eq "cp gs -> gs rerun: bytes read" 0 "$(json_field "$T/r.json" 'd["bytes"]["read"]')"
job "cp local -> gs --force" "$N 0 0" cp "$S" gs://sl-resume/c --force
job "sync local -> gs after --force" "$N $N 0" sync "$S" gs://sl-resume/c
python3 -c 'import sys; p=sys.argv[1]; d=bytearray(open(p,"rb").read()); d[-1]^=1; open(p,"r+b").write(d)' "$S/b/y"
job "cp local -> gs after a change of one source" "$N 9 0" cp "$S" gs://sl-resume/c
job "cp gs -> local after that change" "$N 9 0" cp gs://sl-resume/c "$T/g"
same_tree "$S" "$T/g" "cp gs -> local after a change"

gcs_finish
