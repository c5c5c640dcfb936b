#!/usr/bin/env bash
# Stop the one-node Slurm started by .ci/slurm-up.sh: slurmd, slurmctld, then munged,
# each by the pid in its pid file (never by name). Safe to run when nothing is up, and
# meant to run whether the CI passed or failed. --quiet: say nothing when nothing is up.
set -uo pipefail

QUIET=0
[[ ${1:-} == --quiet ]] && QUIET=1
say() { echo "slurm-down: $*"; }

# pid file, expected command name: stop it, wait up to 10 s, then SIGKILL.
stop() {
    local pidfile=$1 name=$2 pid
    if [[ ! -s $pidfile ]]; then
        ((QUIET)) || say "$name: no pid file $pidfile"
        return 0
    fi
    pid=$(cat "$pidfile")
    # Only signal the pid if it is still the daemon (pids get reused).
    if [[ ! -r /proc/$pid/comm || $(cat "/proc/$pid/comm") != "$name" ]]; then
        ((QUIET)) || say "$name: pid $pid from $pidfile is not running"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    if [[ -d /proc/$pid ]]; then
        say "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
    say "$name (pid $pid) stopped"
}

# Cancel jobs still queued or running, so no job step outlives the cluster.
if [[ -s /run/slurm/slurmctld.pid ]] && scontrol ping 2>/dev/null | grep -q "is UP"; then
    jobs=$(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
        say "cancelling unfinished jobs: $jobs"
        scancel $jobs
        for _ in $(seq 50); do
            [[ -z $(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
fi
stop /run/slurm/slurmd.pid slurmd
stop /run/slurm/slurmctld.pid slurmctld
stop /run/munge/munged.pid munged
exit 0
