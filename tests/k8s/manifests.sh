#!/usr/bin/env bash
# deploy/k8s/*.yaml, offline: every manifest passes the Kubernetes schema (the npm package kubernetes-models, pinned
# by tests/k8s/package-lock.json and installed with `npm ci` into $K8S_MODULES), with no field the schema does not
# name; the Indexed Job means what deploy/k8s/README.md says (tests/k8s/job_checks.py); and the container's command
# line, run by this build of sluice over a local directory with the environment each pod gets (JOB_COMPLETION_INDEX
# = 0 .. N-1, the manifest's SLUICE_SHARDS), does every object once and merges into a complete report.
#
# Exit 77 (skipped) only when node or npm is missing (scripts/deps.sh installs them).
set -euo pipefail
. "$(dirname "$0")/../cli/lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODULES="${K8S_MODULES:-$T/modules}"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    skip_note "node and npm are needed to validate the manifests (scripts/deps.sh installs them)"
    SL_FINISHED=1
    rm -rf "$T"
    exit 77
fi

say "npm ci of tests/k8s/package-lock.json into $MODULES"
mkdir -p "$MODULES"
(
    # One install at a time into a directory; skipped when that lock file is installed there already.
    flock 9
    want="$(sha256sum <"$HERE/package-lock.json" | cut -d' ' -f1)"
    have="$(cat "$MODULES/node_modules/.sluice-lock-sha256" 2>/dev/null || true)"
    if [ "$want" != "$have" ] || [ ! -f "$MODULES/node_modules/kubernetes-models/package.json" ]; then
        cp "$HERE/package.json" "$HERE/package-lock.json" "$MODULES/"
        (cd "$MODULES" && npm ci --no-audit --no-fund --omit=dev --loglevel=error >&2)
        echo "$want" >"$MODULES/node_modules/.sluice-lock-sha256"
    fi
) 9>"$MODULES/.install.lock"

validate() { run node "$HERE/validate.js" --modules "$MODULES" "$@"; }

mapfile -t manifests < <(find "$ROOT/deploy/k8s" -name '*.yaml' -o -name '*.yml' | sort)
[ "${#manifests[@]}" -gt 0 ] || fail "manifests under deploy/k8s" "at least one" "none"
say "the Kubernetes schema: ${manifests[*]#"$ROOT/"}"
validate --json-out "$T/docs.json" "${manifests[@]}"
expect_rc 0
grep -q ": Job .* (batch/v1): valid$" "$OUT" || fail "a Job among the manifests" "a valid batch/v1 Job" "$(cat "$OUT")"

say "the validator fails, naming the field, on broken copies of the Job"
job_file=$(grep -l '^kind: Job$' "${manifests[@]}" | head -1)
bad() { # bad NAME SED-EXPRESSION EXPECTED-MESSAGE
    sed -e "$2" "$job_file" >"$T/$1.yaml"
    cmp -s "$job_file" "$T/$1.yaml" && fail "$1: the sed expression" "a change to $job_file" "no change"
    validate "$T/$1.yaml"
    expect_rc 1
    expect_err_contains "$3"
}
bad typo 's/backoffLimitPerIndex:/backofLimitPerIndex:/' "Job sluice-md5: field /spec/backofLimitPerIndex is not in the schema of Job"
bad type 's/^  completions: \(.*\)$/  completions: "\1"/' "Job sluice-md5: schema: data/spec/completions must be integer"
bad enum 's/completionMode: Indexed/completionMode: Indexd/' "data/spec/completionMode must be equal to one of the allowed values"
bad nested 's/containerPort: 9464/containerPort: 9464\n              hostPortt: 9464/' "field /spec/template/spec/containers/0/ports/0/hostPortt is not in the schema of Job"
bad duplicate 's/^  parallelism: \(.*\)$/  parallelism: \1\n  parallelism: \1/' "YAML: Map keys must be unique"
bad kind 's/^kind: Job$/kind: Jobb/' "batch/v1 Jobb is not a Kubernetes kind kubernetes-models knows"

say "what the Job means for sluice (tests/k8s/job_checks.py)"
run python3 "$HERE/job_checks.py" check "$T/docs.json"
expect_rc 0
read -r job shards <"$OUT"
say "Job $job: $shards shards"
sed -e 's/^  parallelism: .*$/  parallelism: 3/' -e 's/memory: 512Mi/memory: 256Mi/' -e 's/^      terminationGracePeriodSeconds: .*/      terminationGracePeriodSeconds: 20/' \
    "$job_file" >"$T/meaning.yaml"
validate --json-out "$T/meaning.json" "$T/meaning.yaml"
expect_rc 0
run python3 "$HERE/job_checks.py" check "$T/meaning.json"
expect_rc 1
expect_err_contains "parallelism 3 is not completions"
expect_err_contains "terminationGracePeriodSeconds 20 is not above --grace"
expect_err_contains "+ 16 MiB is over 80 % of the memory limit"

say "the container's command line, run by this build over a local directory, as each of the $shards pods"
drop=()
if ! "$SLUICE" cp --help 2>&1 | grep -q -- '--metrics-addr'; then
    skip_note "this build has no --metrics-addr: the command is run without it"
    drop+=(--drop --metrics-addr)
fi
# --failures PLACE/ (a failure log per shard in a directory or bucket) where this build has it, else left out.
mkdir -p "$T/probe/src" "$T/probe/failures"
echo x >"$T/probe/src/x"
if ! "$SLUICE" cp "$T/probe/src" "$T/probe/out" -q --failures "$T/probe/failures/" >/dev/null 2>&1; then
    skip_note "this build has no --failures PLACE/: the command is run without --failures"
    drop+=(--drop --failures)
fi
python3 "$HERE/job_checks.py" command "$T/docs.json" "$job" "$T/store" "${drop[@]}" >"$T/args" 2>"$T/env"
mapfile -d '' args <"$T/args"
mapfile -t envs <"$T/env"
say "sluice ${args[*]} (env: ${envs[*]})"
src=${args[1]}
dst=${args[2]}
case "$src" in "$T"/store/*) ;; *) fail "the Job's source" "a gs:// or s3:// URL" "$src" ;; esac
python3 - "$src" <<'PY'
import os, sys
for i in range(240):
    d = os.path.join(sys.argv[1], "d%d" % (i % 6))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "obj-%03d.bin" % i), "wb") as f:
        f.write(b"%d\n" % i * (i % 9 + 1))
PY
for i in $(seq 0 $((shards - 1))); do
    run env "${envs[@]}" JOB_COMPLETION_INDEX="$i" "$SLUICE" "${args[@]}"
    expect_rc 0
done
report_place=""
for ((k = 0; k < ${#args[@]}; k++)); do
    [ "${args[k]}" = --report ] && report_place=${args[k + 1]}
done
run "$SLUICE" report --json "$report_place"
expect_rc 0
expect_eq "merged: complete" true "$(json_field "$OUT" 'd["complete"]')"
expect_eq "merged: shards" "$shards" "$(json_field "$OUT" 'd["shards"]["present"]')"
expect_eq "merged: done" 240 "$(json_field "$OUT" 'd["objects"]["done"]')"
# Every source object has its output under its key, and no other output is there; with `--op md5` (and no --suffix)
# the output holds the object's MD5.
md5=0
[[ " ${args[*]} " == *" --op md5 "* && " ${args[*]} " != *" --suffix "* ]] && md5=1
run python3 - "$src" "$dst" "$md5" <<'PY'
import hashlib, os, sys
src, dst, md5 = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def keys(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
                  if not f.startswith("."))
ks, kd = keys(src), keys(dst)
if ks != kd:
    sys.exit("outputs %d, sources %d; first differences: %r" % (len(kd), len(ks), sorted(set(ks) ^ set(kd))[:5]))
for k in ks if md5 else []:
    want = hashlib.md5(open(os.path.join(src, k), "rb").read()).hexdigest()
    got = open(os.path.join(dst, k)).read()
    if want not in got:
        sys.exit("%s: output %r has not the MD5 %s" % (k, got[:200], want))
print(len(ks))
PY
expect_rc 0
expect_out 240
say "one index rerun alone (deploy/k8s/rerun-index.sh): its report comes back, the merge is complete, it resumed"
last=$((shards - 1))
rm "$report_place/shard-$last-of-$shards.json"
run "$SLUICE" report --json "$report_place"
expect_rc 3
expect_eq "merged without shard $last: missing" "[$last]" "$(json_field "$OUT" 'd["shards"]["missing"]')"
run "$ROOT/deploy/k8s/rerun-index.sh" "$last" "$job_file"
expect_rc 0
cp "$OUT" "$T/rerun.yaml"
validate --json-out "$T/rerun.json" "$T/rerun.yaml"
expect_rc 0
grep -q ": Job $job-index-$last (batch/v1): valid$" "$OUT" || fail "the rerun Job" "Job $job-index-$last, valid" "$(cat "$OUT")"
python3 "$HERE/job_checks.py" command "$T/rerun.json" "$job-index-$last" "$T/store" "${drop[@]}" >"$T/rerun-args" 2>/dev/null
mapfile -d '' rerun_args <"$T/rerun-args"
[[ " ${rerun_args[*]} " == *" --shard $last/$shards "* ]] ||
    fail "the rerun Job's args" "--shard $last/$shards" "${rerun_args[*]}"
# The one pod of that Job gets index 0 of its one completion; --shard I/N does not look at it.
run env "${envs[@]}" JOB_COMPLETION_INDEX=0 "$SLUICE" "${rerun_args[@]}"
expect_rc 0
listed=$(json_field "$report_place/shard-$last-of-$shards.json" 'd["objects"]["listed"]')
[ "$listed" -gt 0 ] || fail "shard $last's objects" "some" "$listed"
expect_eq "the rerun's skipped (all its outputs were complete)" "$listed" \
    "$(json_field "$report_place/shard-$last-of-$shards.json" 'd["objects"]["skipped"]')"
run "$SLUICE" report --json "$report_place"
expect_rc 0
expect_eq "merged after the rerun: done" 240 "$(json_field "$OUT" 'd["objects"]["done"]')"
run "$ROOT/deploy/k8s/rerun-index.sh" "$shards" "$job_file"
expect_rc 2
expect_err_contains "is not below the Job's completions ($shards)"

say "an index outside the Job's completions is refused (exit 2), as podFailurePolicy's FailIndex expects"
run env "${envs[@]}" JOB_COMPLETION_INDEX="$shards" "$SLUICE" "${args[@]}"
expect_rc 2
expect_err_contains "JOB_COMPLETION_INDEX is $shards, not below the $shards shards SLUICE_SHARDS says"

finish
