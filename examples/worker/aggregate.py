#!/usr/bin/env python3
"""Per-object totals of JSON-lines event files, as a long-lived sluice worker (one process per worker thread).

    sluice map events/ totals/ --worker 'python3 examples/worker/aggregate.py' --suffix .json
    sluice map events/ - --worker 'python3 examples/worker/aggregate.py'

Each object holds one event per line, {"user": "u17", "amount": 12.5, ...}. The answer is a small JSON result:
lines, bad_lines (not JSON, or without a user or a numeric amount), users (distinct), amount_sum, amount_max and
top_user (the user with the largest total). With a destination, sluice writes it as the output object:
{"key":"day=03/events-007.jsonl","size":5120,"lines":40,...}. The object is streamed line by line, so its size
does not matter. examples/exec/aggregate.py is the same job as an --exec command (one process per object).
"""
import json
import os
import sys
from collections import defaultdict

try:
    import sluice_worker
except ImportError:  # run from a checkout: the module is in python/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    import sluice_worker


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


def process(obj, out):
    # The result alone (nothing written to out): sluice makes it the object's result line.
    return aggregate(obj.stream)


if __name__ == "__main__":
    sluice_worker.run_stream(process)
