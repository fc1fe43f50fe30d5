#!/bin/sh
# Runs inside a container (mounted in by tests/container/image.sh): runs "$@", then appends one line to the file
# $SL_CGROUP_OUT with the container's memory cgroup figures as the kernel kept them (cgroup v1 or v2):
#   rc=<the command's exit status> peak_bytes=<highest usage> limit_bytes=<limit> oom_kills=<processes killed by OOM>
# and exits with the command's status (137 when the kernel's OOM killer took it).
"$@"
rc=$?
v1=/sys/fs/cgroup/memory
if [ -f "$v1/memory.max_usage_in_bytes" ]; then
    peak=$(cat "$v1/memory.max_usage_in_bytes")
    limit=$(cat "$v1/memory.limit_in_bytes")
    kills=$(sed -n 's/^oom_kill //p' "$v1/memory.oom_control")
else
    peak=$(cat /sys/fs/cgroup/memory.peak 2>/dev/null || echo unknown)
    limit=$(cat /sys/fs/cgroup/memory.max)
    kills=$(sed -n 's/^oom_kill //p' /sys/fs/cgroup/memory.events)
fi
echo "rc=$rc peak_bytes=$peak limit_bytes=$limit oom_kills=${kills:-unknown}" >>"$SL_CGROUP_OUT"
exit "$rc"
