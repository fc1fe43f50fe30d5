#!/usr/bin/env python3
"""Runs a command and prints its wall time, its own CPU (user+sys of that process alone) and the CPU of the children
it reaped (its workers), as JSON: the split GNU time cannot make (wait4's rusage adds the reaped children in).

    bench/cpu_of.py CMD ARGS...      stdout and stderr of CMD go to /dev/null

The figures are read from /proc/PID/stat while the finished process is still a zombie (waitid with WNOWAIT): fields
utime/stime are its own threads', cutime/cstime those of the children it waited for."""
import json
import os
import subprocess
import sys
import time

tick = os.sysconf("SC_CLK_TCK")
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
wall = time.monotonic() - t0
with open("/proc/%d/stat" % p.pid) as f:
    fields = f.read().rsplit(")", 1)[1].split()
utime, stime, cutime, cstime = (int(x) / tick for x in fields[11:15])
rc = p.wait()
print(json.dumps({"rc": rc, "wall_s": round(wall, 3), "self_cpu_s": round(utime + stime, 3),
                  "children_cpu_s": round(cutime + cstime, 3)}))
