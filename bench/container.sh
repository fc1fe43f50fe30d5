#!/usr/bin/env bash
# The seed's failure at full scale in the container image: tests/container/image.sh with OBJECTS objects (default
# 200,000 small files, generated on the host and mounted in) instead of the test suite's 20,000. In one 64 MiB
# container limit (podman run --memory 64m) the hand-written leaking thread pool (tests/mem/leaky_pool.c, 64 KiB per
# task) is OOM-killed, and `sluice map --worker` with a Python worker leaking 64 KiB per object and
# --worker-max-rss 24M finishes every object with a flat memory verdict. Prints the image's build time and size, the
# pool's exit and cgroup peak, sluice's verdict, peaks and objects/s.
#
#   bench/container.sh            OBJECTS=200000; SLUICE (only its --version is compared) defaults to the release build
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_release
export SLUICE SL_CONTAINER_OBJECTS="${OBJECTS:-200000}" SL_TEST_TMP="${SL_TEST_TMP:-/tmp/sluice-bench}"
start=$SECONDS
bash tests/container/image.sh
echo "== bench/container.sh: $SL_CONTAINER_OBJECTS objects, $((SECONDS - start)) s in all"
