#!/usr/bin/env bash
# Quick-start demo on local disk: builds sluice, generates a tree of 2,000 small CSV files in 20 folders, and runs
# one `map` job that gzips each file through a child process, then checks the outputs with the built-in gunzip and
# md5 operations. Needs no server and no account.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build/release -j "$(nproc)" >/dev/null
sluice=build/release/sluice
demo=build/demo
rm -rf "$demo"
mkdir -p "$demo/in"
python3 - "$demo/in" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
for d in range(20):
    folder = os.path.join(root, f"day={d:02d}")
    os.makedirs(folder)
    for i in range(100):
        with open(os.path.join(folder, f"events-{i:03d}.csv"), "w") as f:
            f.write("id,user,amount\n")
            for r in range(rng.randint(5, 60)):
                f.write(f"{d * 10000 + i * 100 + r},user{rng.randint(1, 999)},{rng.random() * 100:.2f}\n")
PY
echo "--- sluice du $demo/in"
"$sluice" du "$demo/in"
# A job this short (a few seconds) needs memory samples more often than the default once a second for a verdict.
echo "--- sluice map $demo/in $demo/out --exec 'gzip -c -n' --suffix .gz --mem-interval 100 --report $demo/report.json"
"$sluice" map "$demo/in" "$demo/out" --exec 'gzip -c -n' --suffix .gz --mem-interval 100 --report "$demo/report.json"
echo "--- sluice map $demo/out - --op md5 --include 'day=07/events-00[0-2].csv.gz' -q"
"$sluice" map "$demo/out" - --op md5 --include 'day=07/events-00[0-2].csv.gz' -q
echo "--- report ($demo/report.json)"
cat "$demo/report.json"
