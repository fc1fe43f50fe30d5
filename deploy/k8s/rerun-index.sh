#!/usr/bin/env bash
# Prints a Job that reruns one index of the Indexed Job in MANIFEST (default: sluice-job.yaml beside this script):
# the same pod, named <job>-index-I, one completion, with `--shard auto` replaced by `--shard I/N`. Its report
# replaces shard-I-of-N.json in the same place, and it resumes: the objects whose outputs are complete are skipped.
#
#   deploy/k8s/rerun-index.sh 3 | kubectl apply -f -
#   deploy/k8s/rerun-index.sh 3 my-job.yaml | kubectl apply -f -
#
# The manifest is read as sluice-job.yaml lays it out: `kind: Job`, then the Job's `  name:`, `  completions:` and
# `  parallelism:` at two spaces, and `--shard` followed by `auto` as two items of the container's args.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 INDEX [MANIFEST.yaml]" >&2
    exit 2
fi
index=$1
manifest=${2:-"$(dirname "$0")/sluice-job.yaml"}
n=$(awk '/^kind: Job$/ { job = 1 } job && /^  completions: *[0-9]+ *$/ { print $2; exit }' "$manifest")
case "$index" in '' | *[!0-9]*)
    echo "$0: INDEX must be a number from 0 to N-1, not '$index'" >&2
    exit 2
    ;;
esac
if [ -z "$n" ]; then
    echo "$0: no '  completions: N' in a Job of $manifest" >&2
    exit 2
fi
if [ "$index" -ge "$n" ]; then
    echo "$0: INDEX $index is not below the Job's completions ($n)" >&2
    exit 2
fi
awk -v i="$index" -v n="$n" '
    /^kind: Job$/ { job = 1 }
    job && !named && /^  name: / { print $0 "-index-" i; named = 1; next }
    job && /^  completions: / { print "  completions: 1"; next }
    job && /^  parallelism: / { print "  parallelism: 1"; next }
    job && shard_next && /- *"?auto"? *$/ { sub(/"?auto"? *$/, i "/" n); print; shard_next = 0; replaced = 1; next }
    { shard_next = job && /- *"?--shard"? *$/; print }
    END { if (!replaced) { print "rerun-index.sh: no `--shard` `auto` in the Job'"'"'s args" > "/dev/stderr"; exit 1 } }
' "$manifest"
