#!/usr/bin/env bash
# Single-node Slurm cluster on loopback, for smoothlab's integration tests.
#
# Usage: scripts/local-slurm.sh install|start|stop|status
#
# Everything lives under DIR=${SMOOTHLAB_SLURM_DIR:-/tmp/smoothlab-slurm}; the
# system's /etc/slurm and /etc/munge are never written, so this is safe on a
# machine that is also a real cluster node. Clients find this cluster only
# through SLURM_CONF.
#
#   install Installs slurmctld, slurmd, slurm-client and munge with apt-get if any is
#           missing (root only); start does this too.
#   start   Installs slurmctld, slurmd, slurm-client and munge with apt-get if
#           any is missing (root only). If a cluster from an earlier start is
#           still running it is stopped first: every start is a fresh cluster
#           (empty job state, job ids from 1, new logs). Then starts munged,
#           slurmctld and slurmd and waits (at most 30 s) until the node is
#           idle. Writes $DIR/slurm.conf and $DIR/env (one line:
#           `export SLURM_CONF=$DIR/slurm.conf`). Progress goes to stderr; the
#           last line on stdout is `SLURM_CONF=$DIR/slurm.conf`, so
#               export "$(scripts/local-slurm.sh start | tail -n1)"
#           works. Must run as root. Exits non-zero (after printing the log
#           tails) if the node does not come up.
#   stop    Stops the daemons that start started (pid files under $DIR),
#           killing them after 5 s if they linger. Keeps $DIR and the logs in
#           it. Succeeds when nothing is running.
#   status  Prints sinfo's output and exits 0, or says it is not running and
#           exits 1.
#
# Without slurmdbd there is no accounting: sacct does not work. Finished jobs
# stay visible to `scontrol show job` for MinJobAge (300 s), and every finished
# job gets a line in $DIR/jobcomp.txt. Logs: $DIR/log/{munged,slurmctld,slurmd}.log.
# The daemons listen on 127.0.0.1 ports SMOOTHLAB_SLURMCTLD_PORT (default
# 16817) and SMOOTHLAB_SLURMD_PORT (default 16818), not Slurm's defaults, so
# they do not clash with a real slurmctld or slurmd on the same machine.
set -euo pipefail

DIR=${SMOOTHLAB_SLURM_DIR:-/tmp/smoothlab-slurm}
CTLD_PORT=${SMOOTHLAB_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${SMOOTHLAB_SLURMD_PORT:-16818}
CONF=$DIR/slurm.conf
MUNGE_DIR=$DIR/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
MUNGE_KEY=/etc/munge/munge.key
LOG_DIR=$DIR/log
# Stop order: slurmd before slurmctld (so it does not retry a gone controller),
# munged last (both Slurm daemons authenticate through it).
DAEMONS=(slurmd slurmctld munged)

log() { echo "local-slurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_file() { echo "$DIR/$1.pid"; }

# Pid recorded for daemon $1, printed only if that process still runs the
# daemon's program: a stale pid file may name a pid reused by something else.
live_pid() {
    local file pid
    file=$(pid_file "$1")
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
    alive "$pid" || return 1
    echo "$pid"
}

# True while pid $1 exists and is not a zombie: the daemons are reparented to
# pid 1, which in a container may never reap them.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

any_running() {
    local d
    for d in "${DAEMONS[@]}"; do
        live_pid "$d" >/dev/null && return 0
    done
    return 1
}

install_packages() {
    local missing=0 cmd
    for cmd in slurmctld slurmd sbatch munged; do
        command -v "$cmd" >/dev/null || missing=1
    done
    ((missing)) || return 0
    ((EUID == 0)) || die "Slurm or munge is not installed; install slurmctld slurmd slurm-client munge (needs root)"
    log "installing slurmctld slurmd slurm-client munge"
    local pkgs=(slurmctld slurmd slurm-client munge)
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be stale or absent on a fresh machine; refresh them
    # only when the plain install fails, since an update costs time.
    if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
    fi
}

write_conf() {
    local cpus
    cpus=$(nproc)
    # SlurmUser=root: the daemons run as root anyway (slurmd must, to start
    # jobs as their users), and root owns the state directory.
    # config_overrides: trust CPUs= here rather than the detected topology, so
    # a container whose visible CPUs differ from the hardware is not drained.
    # RealMemory is left out: with CR_CPU memory is not scheduled, and its
    # default (1 MB) never makes slurmd's registration look short of memory.
    # AuthInfo points Slurm (daemons and clients) at our own munged's socket.
    cat >"$CONF" <<EOF
# Written by smoothlab's scripts/local-slurm.sh; rewritten on every start.
ClusterName=smoothlab-local
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.txt
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    echo "export SLURM_CONF=$CONF" >"$DIR/env"
}

# A fresh cluster each time: old job state and spool would otherwise be
# recovered, and old log lines would confuse the tails printed on failure.
prepare_dirs() {
    rm -rf "$DIR/state" "$DIR/spool" "$MUNGE_DIR" "$LOG_DIR" "$DIR/jobcomp.txt"
    mkdir -p "$DIR/state" "$DIR/spool" "$MUNGE_DIR" "$LOG_DIR"
    # munged runs as munge: it must own its socket directory and log file, and
    # insists that neither is writable by others; clients need to reach the
    # socket, so the directory is world-searchable.
    chmod 0755 "$DIR"
    chown munge:munge "$MUNGE_DIR"
    chmod 0755 "$MUNGE_DIR"
    install -o munge -g munge -m 0640 /dev/null "$LOG_DIR/munged.log"
}

start_munged() {
    [[ -r $MUNGE_KEY ]] || die "$MUNGE_KEY is missing; the munge package should have created it"
    # The pid file lives in munge's own directory because munged, running as
    # munge, writes it itself; it is copied to $DIR for stop.
    runuser -u munge -- munged \
        --socket="$MUNGE_SOCKET" \
        --key-file="$MUNGE_KEY" \
        --pid-file="$MUNGE_DIR/munged.pid" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        --log-file="$LOG_DIR/munged.log" ||
        die "munged did not start; see $LOG_DIR/munged.log"
    cp "$MUNGE_DIR/munged.pid" "$(pid_file munged)"
    munge --socket="$MUNGE_SOCKET" -n </dev/null | unmunge --socket="$MUNGE_SOCKET" >/dev/null ||
        die "munged does not answer on $MUNGE_SOCKET"
}

print_log_tails() {
    local f
    for f in "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.log "$LOG_DIR"/munged.log; do
        [[ -e $f ]] || continue
        echo "---- tail of $f" >&2
        tail -n 30 "$f" >&2
    done
}

wait_idle() {
    local i state
    for ((i = 0; i < 60; i++)); do
        state=$(SLURM_CONF=$CONF sinfo -h -N -n localhost -o %T 2>/dev/null || true)
        [[ $state == idle ]] && return 0
        sleep 0.5
    done
    log "node did not become idle within 30 s (state: ${state:-unknown})"
    print_log_tails
    return 1
}

start() {
    ((EUID == 0)) || die "start must run as root (munged runs as munge, slurmd as root)"
    install_packages
    mkdir -p "$DIR"
    if any_running; then
        log "already running; stopping it first"
        stop
    fi
    prepare_dirs
    write_conf
    log "starting munged"
    start_munged
    log "starting slurmctld and slurmd"
    # Both daemonize once they are set up; -f pins them to our config even if
    # the caller's environment points elsewhere.
    SLURM_CONF=$CONF slurmctld -f "$CONF" || { print_log_tails; die "slurmctld did not start"; }
    SLURM_CONF=$CONF slurmd -f "$CONF" -N localhost || { print_log_tails; die "slurmd did not start"; }
    wait_idle || { stop; exit 1; }
    log "up; node localhost idle with $(nproc) CPUs"
    echo "SLURM_CONF=$CONF"
}

stop_daemon() {
    local name=$1 pid i
    if pid=$(live_pid "$name"); then
        log "stopping $name ($pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "$name ignored SIGTERM for 5 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            while alive "$pid"; do sleep 0.1; done
        fi
    fi
    rm -f "$(pid_file "$name")"
}

stop() {
    local d
    for d in "${DAEMONS[@]}"; do
        stop_daemon "$d"
    done
}

status() {
    if [[ -f $CONF ]] && live_pid slurmctld >/dev/null; then
        SLURM_CONF=$CONF sinfo
    else
        echo "local Slurm cluster is not running (state dir: $DIR)"
        return 1
    fi
}

case ${1:-} in
install) install_packages ;;
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 install|start|stop|status" >&2
    exit 2
    ;;
esac
