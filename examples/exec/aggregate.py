#!/usr/bin/env python3
"""Per-object totals of JSON-lines event files, as an --exec command: sluice starts one process per object.

    sluice map events/ totals/ --exec 'python3 -S examples/exec/aggregate.py' --suffix .json

The same job as examples/worker/aggregate.py, for comparison: the object's bytes arrive on stdin, its key in
$SLUICE_KEY and its size in $SLUICE_SIZE, and what this prints on stdout is the output object, the same line the
worker form gets from sluice ({"key":...,"size":...,"lines":...}). Starting Python for every object is what costs:
about 20 ms of CPU per object, where the worker form pays it once per worker thread.
"""
import json
import os
import sys
from collections import defaultdict


def aggregate(lines):
    count = bad = 0
    per_user = defaultdict(float)
    amount_max = None
    for line in lines:
        if not line.strip():
            continue
        count += 1
        try:
            event = json.loads(line)
            user, amount = event["user"], event["amount"]
            if not isinstance(user, str) or isinstance(amount, bool) or not isinstance(amount, (int, float)):
                raise ValueError("bad event")
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        per_user[user] += amount
        amount_max = amount if amount_max is None else max(amount_max, amount)
    top = max(sorted(per_user), key=lambda u: per_user[u]) if per_user else None
    return {"lines": count, "bad_lines": bad, "users": len(per_user),
            "amount_sum": round(sum(per_user[u] for u in sorted(per_user)), 2),
            "amount_max": amount_max, "top_user": top}


def main():
    result = {"key": os.environ.get("SLUICE_KEY", ""), "size": int(os.environ.get("SLUICE_SIZE", "0"))}
    result.update(aggregate(sys.stdin.buffer))
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
