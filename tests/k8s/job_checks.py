#!/usr/bin/env python3
"""What the manifests of deploy/k8s/ must mean for sluice, beyond the Kubernetes schema (tests/k8s/validate.js).

  job_checks.py check DOCS.json
      DOCS.json: the documents validate.js wrote. Checks every Indexed Job whose container runs sluice with
      --shard auto; prints "JOB N" per Job (N its number of shards). Exit 1 with one line per broken rule.
  job_checks.py command DOCS.json JOB ROOT [--drop OPTION]...
      The container's arguments of Job JOB, NUL-separated on stdout, made runnable on this machine: each gs:// or
      s3:// URL becomes the directory ROOT/<scheme>/<bucket>/<path> (the same URL, the same place; a trailing '/'
      kept), --metrics-addr's address becomes 127.0.0.1:0 (loopback, a free port), each --drop OPTION is left out
      with its value. Then, on stderr, the environment the container sets (NAME=VALUE lines, literal values only).

Rules checked (deploy/k8s/README.md says why): completionMode Indexed; completions = parallelism = SLUICE_SHARDS;
backoffLimitPerIndex set and restartPolicy Never; JOB_COMPLETION_INDEX left to Kubernetes or taken from the
job-completion-index annotation; memory request = limit (cpu too when both are given); terminationGracePeriodSeconds
above --grace (25 s when not given); --memory-limit + 16 MiB within 80 % of the memory limit (sluice's budget plus its
fixed cost, below where its guard warns); a port named "metrics" that --metrics-addr serves; --report PLACE/ ending in
'/'; the pod's serviceAccountName is a ServiceAccount of the manifests.
"""
import json
import re
import sys

MIB = 1024 * 1024
SIZE_UNITS = {"": 1, "K": 1024, "KIB": 1024, "M": MIB, "MIB": MIB, "G": 1024 * MIB, "GIB": 1024 * MIB}
QUANTITY_UNITS = {"": 1, "Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB, "Ti": 1024**4, "k": 1000, "M": 1000**2,
                  "G": 1000**3, "T": 1000**4}
OPTIONS_WITH_VALUE = {"--op", "--shard", "--shards", "-j", "--jobs", "--memory-limit", "--grace", "--report",
                      "--failures", "--metrics-addr", "--exec", "--worker", "--plugin", "--plugin-arg", "--include",
                      "--exclude", "--suffix", "--timeout", "--retry-failed", "--timeline", "--chart",
                      "--mem-interval", "--upload-chunk", "--slice-size", "--worker-max-objects", "--worker-max-rss"}


def sluice_size(text):  # sluice's SIZE: digits (one decimal point) and a binary unit, as the README says
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", text)
    if not m or m.group(2).upper() not in SIZE_UNITS:
        raise ValueError("not a sluice size: %r" % text)
    return float(m.group(1)) * SIZE_UNITS[m.group(2).upper()]


def sluice_seconds(text):  # sluice's DURATION: a plain number is seconds
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not m:
        raise ValueError("not a sluice duration: %r" % text)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def quantity(text):  # a Kubernetes quantity (the forms a memory figure takes)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(text))
    if not m or m.group(2) not in QUANTITY_UNITS:
        raise ValueError("not a Kubernetes quantity: %r" % text)
    return float(m.group(1)) * QUANTITY_UNITS[m.group(2)]


def options(args):  # {option: value} of the arguments, and the positional ones
    opts, pos, i = {}, [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and "=" in a and a.split("=", 1)[0] in OPTIONS_WITH_VALUE:
            k, v = a.split("=", 1)
            opts[k] = v
        elif a in OPTIONS_WITH_VALUE:
            opts[a] = args[i + 1] if i + 1 < len(args) else None
            i += 1
        elif a.startswith("-"):
            opts[a] = True
        else:
            pos.append(a)
        i += 1
    return opts, pos


def sluice_container(job):
    spec = job["spec"]["template"]["spec"]
    for c in spec.get("containers", []):
        args = [str(a) for a in c.get("command", [])[1:] + c.get("args", [])]
        if "--shard" in args or any(a.startswith("--shard=") for a in args):
            return c, args
    return None, None


def check(docs):
    problems = []
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    jobs = [d for d in docs if d["kind"] == "Job"]
    if not jobs:
        problems.append("no Job in the manifests")
    for job in jobs:
        name = job["metadata"]["name"]

        def bad(msg):
            problems.append("Job %s: %s" % (name, msg))

        spec = job["spec"]
        pod = spec["template"]["spec"]
        c, args = sluice_container(job)
        if c is None:
            bad("no container runs sluice with --shard")
            continue
        opts, pos = options(args)
        env = {e["name"]: e for e in c.get("env", [])}
        if spec.get("completionMode") != "Indexed":
            bad("completionMode is %r, not Indexed" % spec.get("completionMode"))
        if opts.get("--shard") != "auto":
            bad("--shard is %r, not auto" % opts.get("--shard"))
        n = spec.get("completions")
        if spec.get("parallelism") != n:
            bad("parallelism %r is not completions %r" % (spec.get("parallelism"), n))
        shards = env.get("SLUICE_SHARDS", {}).get("value")
        if "--shards" in opts:
            shards = opts["--shards"]
        if shards is None or str(shards) != str(n):
            bad("the number of shards (SLUICE_SHARDS or --shards: %r) is not completions %r" % (shards, n))
        jci = env.get("JOB_COMPLETION_INDEX")
        if jci is not None:
            path = jci.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if path != "metadata.annotations['batch.kubernetes.io/job-completion-index']":
                bad("JOB_COMPLETION_INDEX comes from %r, not the job-completion-index annotation" % (path or jci))
        if not isinstance(spec.get("backoffLimitPerIndex"), int):
            bad("no backoffLimitPerIndex (a failed index would fail the whole Job, or be retried with the others)")
        if pod.get("restartPolicy") != "Never":
            bad("restartPolicy is %r: backoffLimitPerIndex needs Never" % pod.get("restartPolicy"))
        res = c.get("resources", {})
        req, lim = res.get("requests", {}), res.get("limits", {})
        if "memory" not in lim or quantity(req.get("memory", "0")) != quantity(lim["memory"]):
            bad("memory request %r is not the limit %r" % (req.get("memory"), lim.get("memory")))
        if "cpu" in req and "cpu" in lim and quantity(req["cpu"]) != quantity(lim["cpu"]):
            bad("cpu request %r is not the limit %r" % (req["cpu"], lim["cpu"]))
        grace = sluice_seconds(opts["--grace"]) if "--grace" in opts else 25
        tgps = pod.get("terminationGracePeriodSeconds", 30)
        if not tgps > grace:
            bad("terminationGracePeriodSeconds %r is not above --grace (%g s)" % (tgps, grace))
        if "memory" in lim:
            budget = sluice_size(opts["--memory-limit"]) if "--memory-limit" in opts else min(
                256 * MIB, quantity(lim["memory"]) / 4)
            if budget + 16 * MIB > 0.8 * quantity(lim["memory"]):
                bad("--memory-limit %s + 16 MiB is over 80 %% of the memory limit %s" % (
                    opts.get("--memory-limit", "(default)"), lim["memory"]))
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        if "--metrics-addr" in opts:
            port = int(str(opts["--metrics-addr"]).rsplit(":", 1)[1])
            if ports.get("metrics") != port:
                bad("--metrics-addr %s: no container port named metrics with that number (ports: %r)" % (
                    opts["--metrics-addr"], ports))
        elif "metrics" in ports:
            bad("a metrics port %r but no --metrics-addr serving it" % ports["metrics"])
        report = opts.get("--report")
        if not isinstance(report, str) or not report.endswith("/"):
            bad("--report %r is not a place ending in '/' (where every shard writes shard-I-of-N.json)" % report)
        if len(pos) < 1 or pos[0] not in ("cp", "sync", "map"):
            bad("the command %r is not cp, sync or map" % (pos[:1],))
        sa = pod.get("serviceAccountName")
        if sa is not None and sa not in accounts:
            bad("serviceAccountName %r is not a ServiceAccount of the manifests (%s)" % (sa, sorted(accounts)))
        if not problems:
            print(name, n)
    return problems


def command(docs, job_name, root, drop):
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == job_name)
    c, args = sluice_container(job)
    out, i = [], 0
    while i < len(args):
        a, value = args[i], None
        if a in OPTIONS_WITH_VALUE:
            value = args[i + 1]
            i += 1
        i += 1
        if a in drop:
            continue
        if a == "--metrics-addr":
            value = "127.0.0.1:0"
        for part in ([a] if value is None else [a, value]):
            m = re.fullmatch(r"(gs|s3)://([^/]+)(/.*)?", part)
            if m:
                part = "%s/%s/%s%s" % (root, m.group(1), m.group(2), m.group(3) or "/")
            out.append(part)
    sys.stdout.buffer.write(b"".join(a.encode() + b"\0" for a in out))
    for e in c.get("env", []):
        if "value" in e:
            sys.stderr.write("%s=%s\n" % (e["name"], e["value"]))


def main():
    docs = json.load(open(sys.argv[2]))
    if sys.argv[1] == "check":
        problems = check(docs)
        for p in problems:
            sys.stderr.write(p + "\n")
        sys.exit(1 if problems else 0)
    if sys.argv[1] == "command":
        drop, rest = set(), sys.argv[5:]
        while rest[:1] == ["--drop"]:
            drop.add(rest[1])
            rest = rest[2:]
        command(docs, sys.argv[3], sys.argv[4], drop)
        return
    sys.exit("usage: job_checks.py check DOCS.json | command DOCS.json JOB ROOT [--drop OPTION]...")


if __name__ == "__main__":
    main()
