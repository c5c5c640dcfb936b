#!/usr/bin/env bash
# Bring up a one-node Slurm cluster on this machine (Debian 12, root, no systemd):
# munged (as the munge user), then slurmctld, then slurmd, each started by hand with a
# pid file so that .ci/slurm-down.sh can stop exactly these processes.
#
# The node gets this machine's CPUs and memory, and FAKE_GPUS fake GPUs: gres.conf points
# at stand-in device files, so GPU requests are scheduled and jobs see CUDA_VISIBLE_DEVICES
# set by Slurm, without a GPU. Accounting is off (sacct does not work); finished jobs stay visible
# in `squeue --states=all` for a day (MinJobAge) and every finished job is appended to the
# job completion log (JOBCOMP_LOG below), so a test can count what went through sbatch.
#
# Idempotent: if the cluster this script would configure is already up, it only checks
# that the node is idle. Otherwise it stops what is left of an earlier one and starts fresh.
#
# Settings (environment): FAKE_GPUS (default 2), SLURM_UP_TIMEOUT seconds (default 60).
set -euo pipefail

FAKE_GPUS=${FAKE_GPUS:-2}
TIMEOUT=${SLURM_UP_TIMEOUT:-60}

CONF_DIR=/etc/slurm
RUN_DIR=/run/slurm                 # pid files (read by slurm-down.sh)
LOG_DIR=/var/log/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
GPU_DIR=/run/slurm/fake-gpu        # the fake GPU "device" files
JOBCOMP_LOG=$LOG_DIR/jobcomp.log
MUNGE_PID=/run/munge/munged.pid
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { echo "slurm-up: $*"; }
die() { echo "slurm-up: ERROR: $*" >&2; exit 1; }

# Print the tail of a log file to stderr (what went wrong at startup is usually there).
show_log() { [[ -f $1 ]] && { echo "--- last lines of $1:" >&2; tail -n 20 "$1" >&2; } || true; }

# True if the pid file exists and names a live process whose command is $2.
alive() {
    local pidfile=$1 name=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(cat "$pidfile")
    [[ -r /proc/$pid/comm && $(cat "/proc/$pid/comm") == "$name" ]]
}

# True if the daemon wrote its pid file and has exited since.
died() { [[ -s $1 ]] && ! alive "$1" "$2"; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it writes /etc/slurm and starts daemons)"
[[ -r /etc/os-release ]] && . /etc/os-release
[[ ${ID:-} == debian ]] || say "warning: written for Debian 12, this is ${PRETTY_NAME:-unknown}"

# --- 1. packages -----------------------------------------------------------------------
need=()
for cmd in slurmctld slurmd sinfo sbatch squeue scontrol munged munge; do
    command -v "$cmd" >/dev/null || need+=("$cmd")
done
if ((${#need[@]})); then
    say "installing slurmctld slurmd slurm-client munge (missing: ${need[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed (is the Debian mirror reachable?)"
    apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
        || die "apt-get install slurmctld slurmd slurm-client munge failed"
fi
getent passwd munge >/dev/null || die "no 'munge' user (the munge package creates it)"
getent passwd slurm >/dev/null || die "no 'slurm' user (the slurm-wlm packages create it)"

# --- 2. configuration from this machine ---------------------------------------------------
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(free -m | awk '/^Mem:/ {print $2}')
[[ $CPUS =~ ^[0-9]+$ && $MEM_MB =~ ^[0-9]+$ ]] || die "could not read CPUs ($CPUS) or memory ($MEM_MB MB)"
[[ $FAKE_GPUS =~ ^[1-9][0-9]*$ ]] || die "FAKE_GPUS must be a positive integer, got '$FAKE_GPUS'"
LAST_GPU=$((FAKE_GPUS - 1))

# slurmd wants GRES files to be character devices and takes the number at the end of each
# name as the GPU index it exports in CUDA_VISIBLE_DEVICES. The fake ones are copies of
# /dev/null (char 1:3): nothing opens them, and no cgroup device constraint is configured.
new_slurm_conf=$(cat <<EOF
# Written by .ci/slurm-up.sh: a one-node test cluster on $NODE. Do not use in production.
ClusterName=stellarspec-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SchedulerType=sched/backfill
SelectType=select/cons_tres
# Memory is a consumable resource: a job without --mem gets the whole node.
SelectTypeParameters=CR_CPU_Memory
GresTypes=gpu
# No accounting (sacct does not work): status comes from squeue, which keeps finished
# jobs for MinJobAge seconds; completions are appended to JobCompLoc.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
MinJobAge=86400
KillWait=5
InactiveLimit=0
SlurmdTimeout=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:$FAKE_GPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
new_gres_conf=$(cat <<EOF
# Written by .ci/slurm-up.sh: $FAKE_GPUS fake GPUs (plain files, no hardware).
AutoDetect=off
NodeName=$NODE Name=gpu File=$GPU_DIR/gpu[0-$LAST_GPU]
EOF
)

# --- 3. already up with this configuration? ---------------------------------------------------
node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n 1; }
if alive "$MUNGE_PID" munged && alive "$RUN_DIR/slurmctld.pid" slurmctld \
        && alive "$RUN_DIR/slurmd.pid" slurmd \
        && [[ "$(cat $CONF_DIR/slurm.conf 2>/dev/null)" == "$new_slurm_conf" ]] \
        && [[ "$(cat $CONF_DIR/gres.conf 2>/dev/null)" == "$new_gres_conf" ]]; then
    state=$(node_state)
    if [[ $state == idle || $state == mix || $state == alloc ]]; then
        say "already up: node $NODE is $state"
        exit 0
    fi
    say "daemons are running but node $NODE is '$state'; restarting"
fi
# Something is missing or stale: stop whatever this script started before.
"$HERE/slurm-down.sh" --quiet || true

# --- 4. files and directories -------------------------------------------------------------
mkdir -p "$CONF_DIR" "$RUN_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR" "$GPU_DIR"
chown slurm:slurm "$LOG_DIR" "$STATE_DIR"
for i in $(seq 0 "$LAST_GPU"); do
    [[ -c $GPU_DIR/gpu$i ]] || { rm -f "$GPU_DIR/gpu$i"; mknod -m 0666 "$GPU_DIR/gpu$i" c 1 3; } \
        || die "cannot create the fake GPU device $GPU_DIR/gpu$i (mknod; is $GPU_DIR on a nodev mount?)"
done
printf '%s\n' "$new_slurm_conf" >"$CONF_DIR/slurm.conf"
printf '%s\n' "$new_gres_conf" >"$CONF_DIR/gres.conf"
chmod 644 "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"
touch "$JOBCOMP_LOG" && chown slurm:slurm "$JOBCOMP_LOG"

# --- 5. munged, as the munge user ---------------------------------------------------------------
mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0700 /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" \
    || { show_log /var/log/munge/munged.log; die "munged did not start"; }
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n | unmunge >/dev/null || { show_log /var/log/munge/munged.log; die "munge credentials do not round-trip"; }
say "munged up (pid $(cat $MUNGE_PID))"

# --- 6. slurmctld (clean state: a CI cluster starts with no jobs) ---------------------------------
/usr/sbin/slurmctld -c || { show_log "$LOG_DIR/slurmctld.log"; die "slurmctld did not start"; }
for _ in $(seq $((TIMEOUT * 5))); do
    scontrol ping 2>/dev/null | grep -q "is UP" && break
    died "$RUN_DIR/slurmctld.pid" slurmctld && break    # it exited: the log says why
    sleep 0.2
done
scontrol ping 2>/dev/null | grep -q "is UP" \
    || { show_log "$LOG_DIR/slurmctld.log"; die "slurmctld does not answer 'scontrol ping' after ${TIMEOUT}s"; }
say "slurmctld up (pid $(cat $RUN_DIR/slurmctld.pid))"

# --- 7. slurmd, then wait for the node to be idle -------------------------------------------------
/usr/sbin/slurmd || { show_log "$LOG_DIR/slurmd.log"; die "slurmd did not start"; }
state=
for _ in $(seq $((TIMEOUT * 5))); do
    state=$(node_state)
    [[ $state == idle ]] && break
    died "$RUN_DIR/slurmd.pid" slurmd && break
    sleep 0.2
done
if [[ $state != idle ]]; then
    scontrol show node "$NODE" >&2 || true
    show_log "$LOG_DIR/slurmd.log"
    show_log "$LOG_DIR/slurmctld.log"
    die "node $NODE is '$state', not idle, after ${TIMEOUT}s"
fi
say "slurmd up (pid $(cat $RUN_DIR/slurmd.pid)); node $NODE idle: CPUs=$CPUS RealMemory=${MEM_MB}MB gpu:$FAKE_GPUS"
say "$(sinfo --version); check with: sinfo -N -l; squeue --states=all; tail $JOBCOMP_LOG"
