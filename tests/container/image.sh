#!/usr/bin/env bash
# The container image (Containerfile), built and run with podman through scripts/podman.sh (which installs Debian's
# podman, runc and mmdebstrap when they are missing, and makes the base image with mmdebstrap once: cached in
# build/podman of the repository, so a rerun rebuilds only what changed):
#   - the image builds; `sluice --version` in it is the version of the sluice under test; it runs as user 10001,
#     with nothing missing from its libraries;
#   - a real job in it, as that user: a host directory mounted read-only, `cp` and `map --op md5` into a mounted
#     output directory, every output checked on the host;
#   - the seed's failure under one container limit (--memory 64m), over OBJECTS objects (small files generated on the
#     host and mounted in): the hand-written thread pool of tests/mem/leaky_pool.c, leaking 64 KiB per task, is killed
#     by the kernel's OOM killer (exit 137, the container's OOM kill count 1), while `sluice map --worker` with a
#     Python worker leaking as much per object (tests/cli/leaky_worker.py) and --worker-max-rss 24M finishes every
#     object with the memory verdict "flat", no OOM kill, every answer from a worker under the cap. The same worker
#     without --worker-max-rss has the container's OOM killer take its processes: what the recycling prevents.
# Exit 77 (skipped) only when podman cannot run a container here at all (scripts/podman.sh check says why).
#
# Environment: SLUICE (the sluice under test, for its version), SL_LEAKY_POOL (tests/mem/leaky_pool.c built; compiled
# here with cc when unset), SL_CONTAINER_OBJECTS (default 20000; bench/container.sh runs 200,000), SL_PODMAN_DIR
# (scripts/podman.sh's store; default build/podman of the repository).
set -euo pipefail
. "$(dirname "$0")/../cli/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PODMAN="$REPO/scripts/podman.sh"
N=${SL_CONTAINER_OBJECTS:-20000}
IMAGE=localhost/sluice:latest
PYIMAGE=localhost/sluice:python

say "podman can run a container here (scripts/podman.sh check: packages, private store, base image)"
if ! "$PODMAN" check >"$T/check.log" 2>&1; then
    cat "$T/check.log" >&2
    echo "SKIP [$SL_TEST_NAME]: $(tail -1 "$T/check.log")"
    # shellcheck disable=SC2034 # read by lib.sh's exit trap
    SL_FINISHED=1
    rm -rf "$T"
    exit 77
fi

say "the image builds (default target and --target python)"
start=$SECONDS
run "$PODMAN" build
expect_rc 0
run "$PODMAN" build --target python
expect_rc 0
say "built in $((SECONDS - start)) s; $("$PODMAN" podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}') (python: $("$PODMAN" podman image inspect --format '{{.Size}}' "$PYIMAGE" | awk '{printf "%.0f MB", $1 / 1e6}'))"
expect_eq "the image's user" "10001:10001" "$("$PODMAN" podman image inspect --format '{{.Config.User}}' "$IMAGE")"
expect_eq "the image's entrypoint" "[sluice]" "$("$PODMAN" podman image inspect --format '{{.Config.Entrypoint}}' "$IMAGE")"

say "sluice --version in the image is the version under test; it runs as uid 10001; no library is missing"
run "$PODMAN" run "$IMAGE" --version
expect_rc 0
expect_out "$("$SLUICE" --version)"
run "$PODMAN" run --entrypoint /bin/sh "$IMAGE" -c 'id -u; id -g; ldd /usr/local/bin/sluice | grep -c "not found" || true'
expect_rc 0
expect_out 10001 10001 0

# A mounted output directory the container's user may write to.
s_owned_dir() {
    mkdir -p "$1"
    if [ "$(id -u)" = 0 ]; then
        chown 10001:10001 "$1"
    else
        "$PODMAN" podman unshare chown 10001:10001 "$1"
    fi
}

say "a real job in the container: cp and map --op md5 from a read-only mounted directory, outputs checked on the host"
D="$T/data"
python3 - "$D" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(300):
    d = os.path.join(root, "part=%d" % (i % 3), "sub %d" % (i % 5))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "obj-%03d.txt" % i), "wb") as f:
        f.write(b"object %d\n" % i * (i % 11))
with open(os.path.join(root, "big.bin"), "wb") as f:
    f.write(os.urandom(3 << 20) )
PY
s_owned_dir "$T/out"
run "$PODMAN" run -v "$D:/data:ro" -v "$T/out:/out" "$IMAGE" cp /data /out/copy
expect_rc 0
expect_err_contains "sluice: cp: 301 done (0 skipped), 0 failed of 301 objects"
diff -r "$D" "$T/out/copy" >"$T/diff" 2>&1 || fail "cp's copy" "the same tree as the source" "$(head -5 "$T/diff")"
expect_eq "owner of the copies on the host (the image's user)" 10001 "$(stat -c %u "$T/out/copy/big.bin")"
run "$PODMAN" run -v "$D:/data:ro" -v "$T/out:/out" "$IMAGE" map /data /out/md5 --op md5
expect_rc 0
expect_err_contains "sluice: map: 301 done (0 skipped), 0 failed of 301 objects"
python3 - "$D" "$T/out/md5" <<'PY' || fail "map --op md5's outputs" "one per object, each the MD5 of its source" "see above"
import hashlib, json, os, sys
src, dst = sys.argv[1], sys.argv[2]
n = 0
for base, _, files in os.walk(src):
    for name in files:
        key = os.path.relpath(os.path.join(base, name), src)
        with open(os.path.join(dst, key), "rb") as f:
            got = json.loads(f.read())
        with open(os.path.join(base, name), "rb") as f:
            want = hashlib.md5(f.read()).hexdigest()
        assert got["key"] == key and got["md5"] == want, (key, got, want)
        n += 1
assert n == 301, n
PY

# The seed's failure. Objects: small files on the host, 200 folders.
say "the seed's failure in a 64 MiB container: generating $N objects on the host"
L="$T/leak"
python3 - "$L" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i % 200))
    if i < 200:
        os.makedirs(d)
    with open(os.path.join(d, "f%07d" % i), "wb") as f:
        f.write(b"object %d\n" % i * (i % 7 + 1))
PY
if [ -z "${SL_LEAKY_POOL:-}" ]; then
    SL_LEAKY_POOL="$T/leaky_pool"
    cc -O2 -pthread -o "$SL_LEAKY_POOL" "$REPO/tests/mem/leaky_pool.c"
fi
s_owned_dir "$T/o"
# Every run: the same image's user, the same limit, the cgroup's figures appended to $T/o/cgroup.txt by in_cgroup.sh.
s_limited() { # s_limited IMAGE [podman run options] -- COMMAND...
    local image=$1 opts=()
    shift
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    rm -f "$T/o/cgroup.txt"
    run "$PODMAN" run --memory 64m -v "$HERE/in_cgroup.sh:/opt/t/in_cgroup.sh:ro" -v "$T/o:/o" \
        -e SL_CGROUP_OUT=/o/cgroup.txt "${opts[@]}" --entrypoint /bin/sh "$image" /opt/t/in_cgroup.sh "$@"
}
s_cgroup() { # s_cgroup FIELD: from the line in_cgroup.sh wrote
    local v
    v=$(sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$T/o/cgroup.txt")
    [ -n "$v" ] || fail "the container's cgroup figures" "a line with $1=" "$(cat "$T/o/cgroup.txt")"
    echo "$v"
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

say "the hand-written pool (leaky_pool leak: a new 64 KiB client per task, kept) over $N tasks: OOM-killed, exit 137"
s_limited "$IMAGE" -v "$SL_LEAKY_POOL:/opt/t/leaky_pool:ro" -- /opt/t/leaky_pool leak --tasks "$N" --task-ms 0
expect_rc 137
expect_eq "the container's limit" 67108864 "$(s_cgroup limit_bytes)"
expect_eq "the container's OOM kills" 1 "$(s_cgroup oom_kills)"
[ ! -s "$OUT" ] || fail "the pool's output" "nothing: it never finished" "$(cat "$OUT")"
say "pool: exit $RC, killed by the OOM killer at a cgroup peak of $(mib "$(s_cgroup peak_bytes)")"
say "control: the same pool without the leak (leaky_pool fixed: a client per thread) finishes in the same limit"
s_limited "$IMAGE" -v "$SL_LEAKY_POOL:/opt/t/leaky_pool:ro" -- /opt/t/leaky_pool fixed --tasks "$N" --task-ms 0
expect_rc 0
expect_eq "the container's OOM kills" 0 "$(s_cgroup oom_kills)"

say "sluice map --worker (the worker leaking 64 KiB per object) --worker-max-rss 24M over $N objects: flat, no OOM kill"
s_limited "$PYIMAGE" -v "$REPO/tests/cli/leaky_worker.py:/opt/t/leaky_worker.py:ro" -v "$L:/data:ro" -e LEAK_KIB=64 -- \
    sluice map /data - --worker 'python3 /opt/t/leaky_worker.py' --worker-max-rss 24M -j 2 --report /o/report.json
expect_rc 0
expect_err_contains "sluice: map: $N done (0 skipped), 0 failed of $N objects"
expect_eq "the container's OOM kills" 0 "$(s_cgroup oom_kills)"
R="$T/o/report.json"
expect_eq "report: objects done" "$N" "$(json_field "$R" 'd["objects"]["done"]')"
expect_eq "report: the memory verdict" flat "$(json_field "$R" 'd["memory"]["verdict"]')"
expect_eq "report: the container limit sluice saw" 67108864 "$(json_field "$R" 'd["memory"]["limit_bytes"]')"
python3 - "$OUT" "$N" <<'PY' || fail "--worker-max-rss 24M" "$N results, each from a worker at most 24 MiB + one leak step" "see above"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
top = max(r["rss"] for r in rows)
pids = len({r["pid"] for r in rows})
print("results %d, largest worker RSS %.2f MiB, %d worker processes" % (len(rows), top / 2**20, pids))
assert len(rows) == int(sys.argv[2])
assert top <= 24 * 2**20 + 64 * 1024 + 256 * 1024, top
PY
say "sluice: exit 0, verdict $(json_field "$R" 'd["memory"]["verdict"]'), peak $(mib "$(json_field "$R" 'd["memory"]["peak_rss_bytes"]')") (sluice $(mib "$(json_field "$R" 'd["peak_rss_bytes"]')"), workers $(mib "$(json_field "$R" 'd["memory"]["workers_peak_bytes"]')")), $(json_field "$R" 'round(d["objects_per_s"])') objects/s, $(json_field "$R" 'round(d["duration_s"], 1)') s; cgroup peak $(mib "$(s_cgroup peak_bytes)") (page cache included)"

say "control: the same worker without --worker-max-rss: the container's OOM killer takes worker processes"
s_limited "$PYIMAGE" -v "$REPO/tests/cli/leaky_worker.py:/opt/t/leaky_worker.py:ro" -v "$L:/data:ro" -e LEAK_KIB=64 -- \
    sluice map /data - --worker 'python3 /opt/t/leaky_worker.py' -j 2 -q
kills=$(s_cgroup oom_kills)
[ "$kills" -ge 1 ] || fail "the container's OOM kills without recycling" "at least 1" "$kills (exit $RC)"
say "without recycling: exit $RC, $kills worker processes OOM-killed"

finish
