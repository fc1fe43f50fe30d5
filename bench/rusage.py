#!/usr/bin/env python3
"""Runs a command and writes what GNU time's `-f '%U %S %M %e'` would (user and system CPU in seconds, peak RSS in KiB,
wall seconds) to FILE, but with the CPU times to the microsecond: GNU time prints hundredths, a step of 5 % of a
0.2 s run, larger than the differences a benchmark of small objects looks for. The figures are wait4's rusage of the
command (its threads, and the children it waited for), as GNU time's are.

    bench/rusage.py -o FILE CMD ARGS...      exits with CMD's status (128 + N when a signal N ended it)"""
import os
import sys
import time

if len(sys.argv) < 4 or sys.argv[1] != "-o":
    sys.exit("usage: bench/rusage.py -o FILE CMD ARGS...")
out, argv = sys.argv[2], sys.argv[3:]
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print("bench/rusage.py: %s: %s" % (argv[0], e.strerror), file=sys.stderr)
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - t0
with open(out, "w") as f:
    f.write("%.6f %.6f %d %.3f\n" % (ru.ru_utime, ru.ru_stime, ru.ru_maxrss, wall))
sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
