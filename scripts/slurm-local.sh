#!/usr/bin/env bash
# A private single-node Slurm cluster on this machine's loopback, for tests and for trying
# `gunlearn sweep --slurm` without a real cluster.
#
#   scripts/slurm-local.sh start    install slurm-wlm and munge if missing, start munged,
#                                   slurmctld and slurmd, wait until the node is idle
#   scripts/slurm-local.sh stop     stop the daemons this script started
#   scripts/slurm-local.sh status   exit 0 when the cluster answers and its node is usable
#
# Everything (config, munge key and socket, state, spool, logs, pid files) lives under
# $GUNLEARN_SLURM_DIR (default /tmp/gunlearn-slurm); nothing in /etc is used, so a system
# Slurm or munge on the same machine is left alone. Clients find this cluster through
# SLURM_CONF, which `start` and `status` print as `SLURM_CONF=...` (last line of `start`):
#
#   export SLURM_CONF=/tmp/gunlearn-slurm/etc/slurm.conf   # then sbatch, squeue, sinfo ...
#
# Ports: GUNLEARN_SLURM_PORT (default 17817) for slurmctld and the next one for slurmd, away
# from Slurm's usual 6817/6818. Start timeout: GUNLEARN_SLURM_TIMEOUT seconds (default 60).
# Every step is idempotent: `start` on a running cluster only checks it, `stop` on a stopped
# one does nothing.
set -euo pipefail

base="${GUNLEARN_SLURM_DIR:-/tmp/gunlearn-slurm}"
port="${GUNLEARN_SLURM_PORT:-17817}"
timeout="${GUNLEARN_SLURM_TIMEOUT:-60}"
conf="$base/etc/slurm.conf"
munge_socket="$base/munge/munge.socket"
export SLURM_CONF="$conf"

# Root runs everything directly; anyone else needs sudo, because slurmd must be root to start
# jobs as their submitting user.
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
else
  as_root=(sudo -n)
fi

say() { echo "slurm-local: $*" >&2; }

install_if_missing() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null \
    || { say "Slurm is not installed (${missing[*]}) and apt-get is not available"; exit 1; }
  say "installing slurm-wlm munge (missing: ${missing[*]})"
  # The packages' postinst scripts try to start the system services; in a container without
  # an init system that fails harmlessly ("policy-rc.d denied"), and this script does not use
  # those services anyway.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

pid_alive() { # pidfile
  local pid
  [ -r "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && "${as_root[@]}" kill -0 "$pid" 2>/dev/null
}

write_config() {
  # slurmctld only runs on the host named in SlurmctldHost (it compares `hostname -s`), and
  # slurmd registers under the node name; the address in parentheses and NodeAddr keep all
  # traffic on 127.0.0.1 whatever the host name resolves to.
  local host node_line
  host=$(hostname -s)
  # `slurmd -C` reports this machine's CPUs, sockets, cores and memory exactly as slurmd will
  # see them; a node configured with more than it has is drained as invalid.
  # Without SLURM_CONF: slurmd would otherwise wait a minute for the not yet written file.
  node_line=$(env -u SLURM_CONF slurmd -C | head -n 1 | sed -e "s/^NodeName=[^ ]*/NodeName=$host/")
  mkdir -p "$base/etc"
  cat >"$conf.tmp" <<EOF
# Written by scripts/slurm-local.sh: a private single-node cluster on the loopback.
ClusterName=gunlearn
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
StateSaveLocation=$base/state
SlurmdSpoolDir=$base/spool/slurmd-%n
SlurmctldPidFile=$base/run/slurmctld.pid
SlurmdPidFile=$base/run/slurmd.pid
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/slurmd.log
# No cgroups: containers often lack a writable cgroup hierarchy.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# The logs still show mpi/pmix errors at start (the plugin is tried and not installed); harmless.
MpiDefault=none
# Cores are the consumable; memory is not tracked, so a job without --mem does not claim
# the whole node's memory and block the others.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Schedule soon after a job ends or a dependency is met, instead of the default passes.
SchedulerParameters=sched_min_interval=200000,bf_interval=1
# A node that was down comes back by itself when its slurmd registers again.
ReturnToService=2
# Finished jobs stay visible to scontrol show job (there is no accounting database) for 10 min.
MinJobAge=600
KillWait=5
# No mail on this cluster (the default mail program is not installed).
MailProg=/bin/true
InactiveLimit=0
$node_line State=UNKNOWN NodeAddr=127.0.0.1
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$conf.tmp" "$conf"
}

start_munge() {
  pid_alive "$base/munge/munged.pid" && return 0
  mkdir -p "$base/munge"
  # munged wants the socket's folders searchable by everyone (clients of every user connect),
  # and the key file readable by its owner only.
  chmod 755 "$base"
  chmod 711 "$base/munge"
  if [ ! -s "$base/munge/munge.key" ]; then
    # A key of 1024 random bytes, as `mungekey` writes; only this cluster uses it.
    (umask 077 && head -c 1024 /dev/urandom >"$base/munge/munge.key")
  fi
  # munged also refuses key files and logs in folders that other users could write.
  "${as_root[@]}" munged --socket="$munge_socket" --key-file="$base/munge/munge.key" \
    --pid-file="$base/munge/munged.pid" --log-file="$base/munge/munged.log" \
    --seed-file="$base/munge/munged.seed"
}

start_daemons() {
  mkdir -p "$base/state" "$base/spool" "$base/log" "$base/run"
  if ! pid_alive "$base/run/slurmctld.pid"; then
    # -c: start with no jobs from an earlier run of this cluster.
    "${as_root[@]}" env SLURM_CONF="$conf" slurmctld -c
  fi
  if ! pid_alive "$base/run/slurmd.pid"; then
    "${as_root[@]}" env SLURM_CONF="$conf" slurmd
  fi
}

node_state() { sinfo -h -N -o '%T' 2>/dev/null | head -n 1; }

print_logs() {
  local f
  for f in "$base/munge/munged.log" "$base/log/slurmctld.log" "$base/log/slurmd.log"; do
    echo "----- $f (last 40 lines)" >&2
    if [ -r "$f" ]; then tail -n 40 "$f" >&2; else echo "(missing)" >&2; fi
  done
  echo "----- $conf" >&2
  cat "$conf" >&2 2>/dev/null || echo "(missing)" >&2
}

wait_idle() {
  local deadline=$((SECONDS + timeout)) state=""
  while [ $SECONDS -lt $deadline ]; do
    state=$(node_state || true)
    case "$state" in
      idle | mixed | allocated) return 0 ;;
    esac
    sleep 1
  done
  say "the node did not become idle within ${timeout}s (last state: '${state:-no answer}')"
  sinfo -N -l >&2 || true
  print_logs
  return 1
}

stop_one() { # name pidfile
  local pid i
  pid_alive "$2" || return 0
  pid=$(cat "$2")
  "${as_root[@]}" kill "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    "${as_root[@]}" kill -0 "$pid" 2>/dev/null || { rm -f "$2"; return 0; }
    sleep 0.2
  done
  say "$1 (pid $pid) did not stop within 10 s; killing it"
  "${as_root[@]}" kill -9 "$pid" 2>/dev/null || true
  rm -f "$2"
}

case "${1:-}" in
  start)
    install_if_missing
    if pid_alive "$base/run/slurmctld.pid" && pid_alive "$base/run/slurmd.pid" \
      && pid_alive "$base/munge/munged.pid"; then
      say "already running"
    else
      write_config
      start_munge
      start_daemons
    fi
    wait_idle
    say "node $(hostname -s) is $(node_state)"
    echo "SLURM_CONF=$conf"
    ;;
  stop)
    # slurmd first, so it does not log the controller going away; munged last.
    stop_one slurmd "$base/run/slurmd.pid"
    stop_one slurmctld "$base/run/slurmctld.pid"
    stop_one munged "$base/munge/munged.pid"
    say "stopped"
    ;;
  status)
    state=$(node_state || true)
    echo "SLURM_CONF=$conf"
    for d in munged:"$base/munge/munged.pid" slurmctld:"$base/run/slurmctld.pid" \
      slurmd:"$base/run/slurmd.pid"; do
      if pid_alive "${d#*:}"; then echo "${d%%:*}: running"; else echo "${d%%:*}: stopped"; fi
    done
    echo "node: ${state:-no answer}"
    case "$state" in idle | mixed | allocated) exit 0 ;; *) exit 1 ;; esac
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
