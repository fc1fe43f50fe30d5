#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for tests: slurmctld, slurmd and munged from Debian's packages
# (installed when missing), every file of theirs under one directory, nothing of the system's used or changed.
#
#   scripts/slurm-cluster.sh up DIR     start it; prints `export SLURM_CONF=DIR/etc/slurm.conf`, also in DIR/env.sh
#   scripts/slurm-cluster.sh down DIR   cancel its jobs, stop its daemons (by the pids in DIR), wait for them to exit
#
# DIR holds: etc/slurm.conf (SLURM_CONF points at it: sbatch, squeue, scancel, scontrol then talk to this cluster),
# munge/ (a key of its own, 0700) and run/ (munged's socket, named in slurm.conf's AuthInfo, and the pid files;
# the socket goes to a directory of its own under /tmp when DIR cannot hold it, see below),
# state/ (slurmctld's), spool/ (slurmd's), log/. The node is `NodeName=<short hostname> NodeAddr=127.0.0.1` with
# CPUs=4 whatever the machine has (a test's array tasks run at once on 2 cores) and the machine's memory (jobs may
# ask for --mem), on ports found free at start.
# Nothing needs cgroups or systemd: proctrack/linuxproc follows a job's processes through /proc, task/none binds
# nothing, no accounting, no job completion log.
#
# Exit status of `up`: 0 running; 77 when Slurm cannot run here at all (not root: slurmd starts jobs as their user;
# packages missing and not installable), with one line saying why; 1 for anything else (the daemons' logs are shown).
set -euo pipefail

s_usage() {
    echo "usage: $0 up DIR | down DIR" >&2
    exit 2
}
[ $# -eq 2 ] || s_usage
action=$1
dir=$2
case "$action" in up | down) ;; *) s_usage ;; esac
if [ "$action" = down ] && [ ! -d "$dir" ]; then
    exit 0
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

s_pid_of() { # s_pid_of FILE: the pid in FILE if that process is alive
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

s_stop() { # s_stop NAME PIDFILE: SIGTERM, then up to 15 s for it to exit, then SIGKILL
    local pid
    pid=$(s_pid_of "$2") || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "slurm-cluster: $1 (pid $pid) did not exit within 15 s of SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

if [ "$action" = down ]; then
    if [ -f "$dir/etc/slurm.conf" ] && s_pid_of "$dir/run/slurmctld.pid" >/dev/null; then
        export SLURM_CONF="$dir/etc/slurm.conf"
        # Cancel every job first, so that no job's process outlives the cluster; slurmd kills them.
        jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || jobs=""
        if [ -n "${jobs// /}" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 100); do
                [ -z "$(squeue -h -t running,completing -o %A 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    s_stop slurmd "$dir/run/slurmd.pid"
    s_stop slurmctld "$dir/run/slurmctld.pid"
    s_stop munged "$dir/run/munged.pid"
    if [ -s "$dir/run/munge-socket-dir" ]; then
        sock_dir=$(cat "$dir/run/munge-socket-dir")
        case "$sock_dir" in /tmp/slurm-cluster-munge.*) rm -rf "$sock_dir" ;; esac
        rm -f "$dir/run/munge-socket-dir"
    fi
    exit 0
fi

# --- up ---
if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-cluster: needs root: slurmd starts each job's processes as the job's user" >&2
    exit 77
fi
missing=()
for p in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "slurm-cluster: ${missing[*]} missing and no apt-get to install them (Debian's packages)" >&2
        exit 77
    fi
    echo "slurm-cluster: installing ${missing[*]}" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null; }; then
        echo "slurm-cluster: ${missing[*]} could not be installed with apt-get" >&2
        exit 77
    fi
fi
for cmd in munged mungekey slurmctld slurmd sbatch squeue scontrol sinfo; do
    command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "slurm-cluster: $cmd not found although its package is installed" >&2
        exit 77
    fi
done
if s_pid_of "$dir/run/slurmctld.pid" >/dev/null; then
    echo "slurm-cluster: a cluster already runs in $dir (stop it with: $0 down $dir)" >&2
    exit 1
fi

node=$(hostname -s)
mkdir -p "$dir/etc" "$dir/state" "$dir/spool" "$dir/log"
mkdir -p "$dir/munge" "$dir/run"
chmod 0700 "$dir/munge"
chmod 0755 "$dir/run"
# munged wants its key private and its socket's directory searchable by everyone, every directory up to / included
# (and a socket path has room for 107 bytes). Where DIR is not (a scratch directory made 0700 by mktemp, a tree
# under /root), the socket goes to a directory of its own under /tmp, named in run/munge-socket-dir for `down`.
s_searchable() { # s_searchable PATH: PATH and every directory above it have the execute bit for others
    local p=$1
    while :; do
        [ -n "$(find "$p" -maxdepth 0 -perm -o+x)" ] || return 1
        [ "$p" = / ] && return 0
        p=$(dirname "$p")
    done
}
chmod 0755 "$dir"
sock_dir="$dir/run"
if ! s_searchable "$dir" || [ "${#sock_dir}" -gt 90 ]; then
    sock_dir=$(mktemp -d /tmp/slurm-cluster-munge.XXXXXX)
    chmod 0755 "$sock_dir"
    echo "$sock_dir" >"$dir/run/munge-socket-dir"
fi
[ -s "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key"
chmod 0600 "$dir/munge/munge.key"

# Two free TCP ports on the loopback, for slurmctld and slurmd (the defaults, 6817/6818, may be a real cluster's).
read -r ctld_port slurmd_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')

mem_mb=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)

cat >"$dir/etc/slurm.conf" <<EOF
# Written by scripts/slurm-cluster.sh: a single-node test cluster, every path under $dir.
ClusterName=sluicetest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock_dir/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no systemd: processes followed through /proc, no binding, no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
# The node's CPUs below are taken as written, not as the hardware says.
SlurmdParameters=config_overrides
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for the length of a test.
MinJobAge=3600
KillWait=30
NodeName=$node NodeAddr=127.0.0.1 CPUs=4 RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/etc/slurm.conf"
printf 'export SLURM_CONF=%q\n' "$SLURM_CONF" >"$dir/env.sh"

s_fail() {
    echo "slurm-cluster: $1" >&2
    local f
    for f in "$dir"/log/*; do
        [ -f "$f" ] || continue
        echo "--- $f (last lines)" >&2
        tail -n 20 "$f" >&2
    done
    "$0" down "$dir" || true
    exit 1
}

munged --key-file="$dir/munge/munge.key" --socket="$sock_dir/munge.sock" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" ||
    s_fail "munged did not start"
# -c: no state of an earlier cluster; -i: ignore what cannot be recovered.
slurmctld -c -i || s_fail "slurmctld did not start"
slurmd || s_fail "slurmd did not start"
for _ in $(seq 300); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || s_fail "node $node is not idle after 60 s (state: '${state:-none}')"
echo "export SLURM_CONF=$(printf %q "$SLURM_CONF")"
