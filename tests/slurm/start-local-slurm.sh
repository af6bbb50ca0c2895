#!/usr/bin/env bash
# start-local-slurm.sh -- prefbias: a real single-node Slurm on localhost for tests/test_slurm.py
# (Debian 12, Slurm 22.05 from Debian). Adapted from the tested recipe in shared/reference/; the
# partitions default to the names config.yaml uses (cluster.partitions: cpu, h100), an account
# "prefbias" is created, and the node advertises 4 CPUs / 16 GB so production-like requests submit.
#
# Installs (apt) and starts, WITHOUT systemd, idempotently:
#   munged -> [mariadbd -> slurmdbd] -> slurmctld -> slurmd
# then waits until `sinfo` shows the node idle. Everything (configs, keys, state,
# logs, pid files, sockets, DB files) lives under $LOCAL_SLURM_PREFIX; nothing is
# written to /etc unless LOCAL_SLURM_LINK_ETC=1.
#
# Usage (as root):
#   ./start-local-slurm.sh [start]   install + start + wait for idle node (default)
#   ./start-local-slurm.sh status    show daemons/PIDs and sinfo
#   ./start-local-slurm.sh stop      stop the daemons started from this prefix (by PID file only)
#   . "$LOCAL_SLURM_PREFIX/env.sh"   then run snakemake / sbatch / sinfo ...
#
# IMPORTANT: put "$LOCAL_SLURM_PREFIX/bin" first in PATH for snakemake (env.sh does it).
#   It holds wrappers for all Slurm client commands that set SLURM_CONF. Setting
#   SLURM_CONF alone is NOT enough: snakemake-executor-plugin-slurm-jobstep strips
#   every SLURM_* variable (incl. SLURM_CONF) before its nested `srun`, which then
#   fails with "Could not establish a configuration source". Alternative:
#   LOCAL_SLURM_LINK_ETC=1 (symlink /etc/slurm/slurm.conf -> generated config).
#
# Knobs (environment variables, all optional):
#   LOCAL_SLURM_PREFIX      /tmp/prefbias-slurm where everything lives
#   LOCAL_SLURM_PARTITIONS  "cpu h100" space separated; first one is the default partition
#   LOCAL_SLURM_ACCOUNTING  1        1 = slurmdbd + MariaDB (sacct works, plugin's default
#                                    'sacct' status mode works); 0 = no accounting (then use
#                                    slurm-status-command: squeue in the snakemake profile!)
#   LOCAL_SLURM_FAKE_GPUS   0        N>0: node advertises N gres/gpu backed by dummy device
#                                    files, so gpu=1 / gres=gpu:1 jobs schedule & run
#                                    (CUDA_VISIBLE_DEVICES is set, but there is no GPU).
#                                    0: GresTypes=gpu declared but no GPUs -> GPU jobs are
#                                    rejected at submission ("Requested node configuration
#                                    is not available").
#   LOCAL_SLURM_CPUS        4 (""=detected) advertise more CPUs than the machine has
#   LOCAL_SLURM_MEM_MB      16000 (""=detected-256) advertise RealMemory (MB); if either of these
#                                    exceeds the hardware, SlurmdParameters=config_overrides is set
#   LOCAL_SLURM_CGROUP      0        1: proctrack/cgroup + task/cgroup,task/affinity + cgroup.conf
#                                    (memory limits enforced -> OUT_OF_MEMORY). Needs a writable
#                                    cgroup fs (works on this Debian 12 VM, cgroup v1); 0 needs none.
#   LOCAL_SLURM_ACCOUNT     prefbias   with accounting: create this account, associate root
#                                    (and $SUDO_USER) -> lets profiles set slurm_account
#   LOCAL_SLURM_VENV        ""       if set: python3 -m venv there + pip install snakemake 9
#                                    and snakemake-executor-plugin-slurm
#   LOCAL_SLURM_LINK_ETC    0        1: also symlink /etc/slurm/slurm.conf to generated config
#   LOCAL_SLURM_CLUSTER     localci  ClusterName
#   LOCAL_SLURM_PORT_BASE   6817     slurmctld=base, slurmd=base+1, slurmdbd=base+2
#   LOCAL_SLURM_DB_PORT     3307     MariaDB TCP port (127.0.0.1 only)
#   LOCAL_SLURM_TIMEOUT     90       seconds to wait for each daemon / the idle node
set -euo pipefail

PREFIX=${LOCAL_SLURM_PREFIX:-/tmp/prefbias-slurm}
PARTITIONS=${LOCAL_SLURM_PARTITIONS:-cpu h100}
ACCOUNTING=${LOCAL_SLURM_ACCOUNTING:-1}
FAKE_GPUS=${LOCAL_SLURM_FAKE_GPUS:-0}
CGROUP=${LOCAL_SLURM_CGROUP:-0}
OVR_CPUS=${LOCAL_SLURM_CPUS-4}
OVR_MEM=${LOCAL_SLURM_MEM_MB-16000}
ACCOUNT=${LOCAL_SLURM_ACCOUNT-prefbias}
VENV=${LOCAL_SLURM_VENV:-}
LINK_ETC=${LOCAL_SLURM_LINK_ETC:-0}
CLUSTER=${LOCAL_SLURM_CLUSTER:-localci}
PORT_BASE=${LOCAL_SLURM_PORT_BASE:-6817}
DB_PORT=${LOCAL_SLURM_DB_PORT:-3307}
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-90}
DB_PASS=slurmci   # local-only MariaDB user, bound to 127.0.0.1

ETC=$PREFIX/etc; BIN=$PREFIX/bin; LOG=$PREFIX/log; RUN=$PREFIX/run
MUNGE=$PREFIX/munge; MSOCK=$MUNGE/munge.socket.2; DB=$PREFIX/mysql
export SLURM_CONF=$ETC/slurm.conf
NODE=$(uname -n); NODE=${NODE%%.*}
T0=$(date +%s%N)

log() { local dt=$(( ($(date +%s%N) - T0) / 100000000 )); printf '[local-slurm +%d.%ds] %s\n' $((dt / 10)) $((dt % 10)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# wait_for <description> <command...>: retry every 0.25 s until success or $TIMEOUT
wait_for() {
  local what=$1; shift; local end=$(( $(date +%s) + TIMEOUT ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timeout (${TIMEOUT}s) waiting for $what"
    sleep 0.25
  done
}

# pid_alive <pidfile> <comm>: pid file exists, process alive and has the expected name
pid_alive() {
  local f=$1 comm=$2 pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$comm" ]
}

# stop_pid <pidfile> <comm>: TERM (then KILL after 20 s) the process named in our pid file
stop_pid() {
  local f=$1 comm=$2 pid i
  pid_alive "$f" "$comm" || { rm -f "$f"; return 0; }
  pid=$(cat "$f"); log "stopping $comm (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then log "$comm did not stop, SIGKILL $pid"; kill -9 "$pid" || true; fi
  rm -f "$f"
}

munge_ok()  { munge -S "$MSOCK" -n 2>/dev/null | unmunge -S "$MSOCK" >/dev/null 2>&1; }
db_ok()     { mariadb-admin --no-defaults -S "$DB/mysqld.sock" ping; }
dbd_ok()    { sacctmgr -n list cluster format=cluster; }
ctld_ok()   { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_state() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

cmd_stop() {
  stop_pid "$RUN/slurmd.pid" slurmd
  stop_pid "$RUN/slurmctld.pid" slurmctld
  stop_pid "$RUN/slurmdbd.pid" slurmdbd
  stop_pid "$DB/mysqld.pid" mariadbd
  stop_pid "$MUNGE/munged.pid" munged
}

cmd_status() {
  local d f c
  for d in "munged:$MUNGE/munged.pid" "mariadbd:$DB/mysqld.pid" "slurmdbd:$RUN/slurmdbd.pid" \
           "slurmctld:$RUN/slurmctld.pid" "slurmd:$RUN/slurmd.pid"; do
    c=${d%%:*}; f=${d#*:}
    if pid_alive "$f" "$c"; then echo "$c pid=$(cat "$f")"; else echo "$c not running"; fi
  done
  [ -f "$SLURM_CONF" ] && sinfo -N -o '%N %P %T %c %m %G %E' || true
}

case "${1:-start}" in
  stop)   cmd_stop; exit 0 ;;
  status) cmd_status; exit 0 ;;
  start)  ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root"

# ---------------------------------------------------------------- 1. packages
need=()
command -v munged    >/dev/null || need+=(munge)
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd    >/dev/null || need+=(slurmd)
command -v sinfo     >/dev/null || need+=(slurm-client)
if [ "$ACCOUNTING" = 1 ]; then
  command -v slurmdbd >/dev/null || need+=(slurmdbd)
  command -v mariadbd >/dev/null || need+=(mariadb-server)
fi
if [ -n "$VENV" ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then need+=(python3-venv); fi
if [ ${#need[@]} -gt 0 ]; then
  log "apt installing: ${need[*]}"
  # never let package maintainer scripts start services (no systemd here anyway)
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT     # temporary; removed right after apt
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o Acquire::Retries=3 update -qq
  apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if trap -p EXIT | grep -q policy-rc.d; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  log "apt done"
fi

# ---------------------------------------------------------------- 2. layout + munge
mkdir -p "$ETC" "$BIN" "$LOG" "$RUN" "$PREFIX/state/ctld" "$PREFIX/state/d" "$MUNGE"
chmod 755 "$MUNGE"   # munged demands a world-executable socket dir; the key itself is 0600
[ -s "$MUNGE/munge.key" ] || mungekey -c -k "$MUNGE/munge.key"
chmod 600 "$MUNGE/munge.key"
if ! munge_ok; then
  stop_pid "$MUNGE/munged.pid" munged        # stale/unresponsive one of ours
  rm -f "$MSOCK" "$MSOCK.lock"
  munged --key-file="$MUNGE/munge.key" --socket="$MSOCK" --pid-file="$MUNGE/munged.pid" \
         --log-file="$LOG/munged.log" --seed-file="$MUNGE/munged.seed" --num-threads=10
  wait_for munged munge_ok
  log "munged up (pid $(cat "$MUNGE/munged.pid"))"
fi

# ---------------------------------------------------------------- 3. configs
read -r -a HW <<<"$(slurmd -C | head -n1)"
declare -A hw=()
for kv in "${HW[@]}"; do hw[${kv%%=*}]=${kv#*=}; done
HW_CPUS=${hw[CPUs]}; HW_MEM=${hw[RealMemory]}
overrides=0
if [ -n "$OVR_CPUS" ]; then
  NODE_CPU_SPEC="CPUs=$OVR_CPUS"; [ "$OVR_CPUS" -gt "$HW_CPUS" ] && overrides=1
else
  NODE_CPU_SPEC="CPUs=$HW_CPUS Boards=${hw[Boards]} SocketsPerBoard=${hw[SocketsPerBoard]} CoresPerSocket=${hw[CoresPerSocket]} ThreadsPerCore=${hw[ThreadsPerCore]}"
fi
if [ -n "$OVR_MEM" ]; then MEM=$OVR_MEM; [ "$OVR_MEM" -gt "$HW_MEM" ] && overrides=1
else MEM=$(( HW_MEM > 1280 ? HW_MEM - 256 : HW_MEM )); fi

GRES_NODE=""
if [ "$FAKE_GPUS" -gt 0 ]; then
  mkdir -p "$PREFIX/dev"
  for i in $(seq 0 $((FAKE_GPUS - 1))); do
    f=$PREFIX/dev/nvidia$i
    # a char device (major 195 = nvidia, no driver behind it); plain file as fallback
    [ -e "$f" ] || mknod -m 666 "$f" c 195 "$i" 2>/dev/null || touch "$f"
  done
  GRES_NODE="Gres=gpu:$FAKE_GPUS"
fi

new=$(mktemp -d)
trap 'rm -rf "$new"' EXIT
{
  cat <<EOF
# generated by start-local-slurm.sh -- single node, localhost only
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MSOCK
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT_BASE
SlurmdPort=$((PORT_BASE + 1))
StateSaveLocation=$PREFIX/state/ctld
SlurmdSpoolDir=$PREFIX/state/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
ProctrackType=$([ "$CGROUP" = 1 ] && echo proctrack/cgroup || echo proctrack/linuxproc)
TaskPlugin=$([ "$CGROUP" = 1 ] && echo task/cgroup,task/affinity || echo task/none)
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
# snakemake slurm plugin only honours slurm-status-command=squeue if MinJobAge >= 3*init-seconds
MinJobAge=300
KillWait=5
InactiveLimit=0
GresTypes=gpu
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
EOF
  if [ "$ACCOUNTING" = 1 ]; then cat <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT_BASE + 2))
# the slurmctld->slurmdbd connection does NOT use AuthInfo's socket; it uses this one
AccountingStoragePass=$MSOCK
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/$([ "$CGROUP" = 1 ] && echo cgroup || echo linux)
EOF
  else cat <<EOF
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
EOF
  fi
  [ "$overrides" = 1 ] && echo "SlurmdParameters=config_overrides"
  echo "NodeName=$NODE NodeAddr=127.0.0.1 $NODE_CPU_SPEC RealMemory=$MEM $GRES_NODE State=UNKNOWN"
  first=1
  for p in $PARTITIONS; do
    echo "PartitionName=$p Nodes=$NODE Default=$([ $first = 1 ] && echo YES || echo NO) MaxTime=INFINITE State=UP"
    first=0
  done
} > "$new/slurm.conf"

if [ "$FAKE_GPUS" -gt 0 ]; then
  printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s/dev/nvidia[0-%d]\n' \
    "$NODE" "$PREFIX" "$((FAKE_GPUS - 1))" > "$new/gres.conf"
fi

if [ "$CGROUP" = 1 ]; then
  printf 'CgroupPlugin=autodetect\nConstrainCores=yes\nConstrainRAMSpace=yes\nConstrainDevices=no\n' > "$new/cgroup.conf"
fi

if [ "$ACCOUNTING" = 1 ]; then cat > "$new/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MSOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT_BASE + 2))
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
fi

changed=0
for f in slurm.conf gres.conf cgroup.conf slurmdbd.conf; do
  if [ -f "$new/$f" ]; then
    cmp -s "$new/$f" "$ETC/$f" || { install -m 644 "$new/$f" "$ETC/$f"; changed=1; }
  elif [ -f "$ETC/$f" ]; then rm -f "$ETC/$f"; changed=1; fi
done
[ -f "$ETC/slurmdbd.conf" ] && chmod 600 "$ETC/slurmdbd.conf"   # slurmdbd insists
if [ "$changed" = 1 ]; then
  log "config written to $ETC"
  # config changed while daemons run -> restart the Slurm daemons
  if pid_alive "$RUN/slurmctld.pid" slurmctld || pid_alive "$RUN/slurmd.pid" slurmd || pid_alive "$RUN/slurmdbd.pid" slurmdbd; then
    log "config changed: restarting Slurm daemons"
    stop_pid "$RUN/slurmd.pid" slurmd; stop_pid "$RUN/slurmctld.pid" slurmctld; stop_pid "$RUN/slurmdbd.pid" slurmdbd
  fi
fi

# client wrappers + env file
for c in sbatch srun salloc squeue sacct sacctmgr scontrol sinfo scancel sshare sprio sstat sdiag sattach sbcast sreport strigger; do
  [ -x "/usr/bin/$c" ] || continue
  printf '#!/bin/sh\n# generated by start-local-slurm.sh: SLURM_CONF survives env scrubbing (slurm-jobstep plugin)\nSLURM_CONF=%s exec /usr/bin/%s "$@"\n' \
    "$SLURM_CONF" "$c" > "$BIN/$c.tmp" && chmod 755 "$BIN/$c.tmp" && mv "$BIN/$c.tmp" "$BIN/$c"
done
cat > "$PREFIX/env.sh" <<EOF
# source me: makes the local Slurm usable (incl. from inside snakemake jobsteps)
export SLURM_CONF=$SLURM_CONF
case ":\$PATH:" in *":$BIN:"*) ;; *) export PATH="$BIN:\$PATH" ;; esac
EOF
[ -n "$VENV" ] && echo "case \":\$PATH:\" in *\":$VENV/bin:\"*) ;; *) export PATH=\"\$PATH:$VENV/bin\" ;; esac" >> "$PREFIX/env.sh"
if [ "$LINK_ETC" = 1 ]; then
  mkdir -p /etc/slurm
  if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    log "WARNING: /etc/slurm/slurm.conf exists and is not a symlink; leaving it alone"
  else ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf; fi
fi
if [ -n "${GITHUB_PATH:-}" ]; then echo "$BIN" >> "$GITHUB_PATH"; echo "SLURM_CONF=$SLURM_CONF" >> "$GITHUB_ENV"; fi
export PATH="$BIN:$PATH"

# ---------------------------------------------------------------- 4. MariaDB + slurmdbd
if [ "$ACCOUNTING" = 1 ]; then
  mkdir -p "$DB"
  if [ ! -d "$DB/data/mysql" ]; then
    log "initialising MariaDB datadir"
    mariadb-install-db --no-defaults --user=root --datadir="$DB/data" \
      --auth-root-authentication-method=socket --skip-test-db > "$LOG/mariadb-install.log" 2>&1
  fi
  cat > "$DB/init.sql" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
  if ! db_ok >/dev/null 2>&1; then
    stop_pid "$DB/mysqld.pid" mariadbd
    setsid -f mariadbd --no-defaults --user=root --datadir="$DB/data" --socket="$DB/mysqld.sock" \
      --pid-file="$DB/mysqld.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
      --log-error="$LOG/mariadb.log" --init-file="$DB/init.sql" \
      --innodb-buffer-pool-size=256M --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 \
      </dev/null >/dev/null 2>&1
    wait_for mariadbd db_ok
    wait_for "mariadbd pid file" test -s "$DB/mysqld.pid"
    log "mariadbd up (pid $(cat "$DB/mysqld.pid"), 127.0.0.1:$DB_PORT)"
  fi
  if ! pid_alive "$RUN/slurmdbd.pid" slurmdbd; then
    slurmdbd            # finds slurmdbd.conf next to $SLURM_CONF; daemonizes
    wait_for slurmdbd dbd_ok
    log "slurmdbd up (pid $(cat "$RUN/slurmdbd.pid"))"
  fi
fi

# ---------------------------------------------------------------- 5. slurmctld + slurmd
if ! pid_alive "$RUN/slurmctld.pid" slurmctld; then
  slurmctld
  wait_for slurmctld ctld_ok
  log "slurmctld up (pid $(cat "$RUN/slurmctld.pid"))"
fi
if ! pid_alive "$RUN/slurmd.pid" slurmd; then
  slurmd -N "$NODE"
  wait_for "slurmd pid file" test -s "$RUN/slurmd.pid"
  log "slurmd up (pid $(cat "$RUN/slurmd.pid"))"
fi

# wait for the node; un-drain it if an earlier config left it DRAIN/DOWN
end=$(( $(date +%s) + TIMEOUT )); last_resume=0
while :; do
  st=$(node_state || true)
  case "$st" in
    idle|mixed|allocated|completing) break ;;
    *drain*|*down*|*fail*|*inval*)
      if [ $(( $(date +%s) - last_resume )) -ge 3 ]; then
        scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true; last_resume=$(date +%s)
      fi ;;
  esac
  [ "$(date +%s)" -lt "$end" ] || { sinfo -N -o '%N %T %E' >&2; die "node $NODE not idle after ${TIMEOUT}s (state '$st'), see $LOG"; }
  sleep 0.25
done
log "node $NODE is $st"

# ---------------------------------------------------------------- 6. accounting objects
if [ "$ACCOUNTING" = 1 ]; then
  wait_for "cluster $CLUSTER registered in slurmdbd" sh -c "sacctmgr -n -P list cluster format=cluster | grep -qx '$CLUSTER'"
  if [ -n "$ACCOUNT" ]; then
    sacctmgr -n -P list account "$ACCOUNT" format=account | grep -qx "$ACCOUNT" \
      || sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=ci Organization=ci >/dev/null
    for u in root ${SUDO_USER:-}; do
      sacctmgr -n -P list assoc user="$u" account="$ACCOUNT" format=user | grep -qx "$u" \
        || sacctmgr -i add user "$u" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
    done
    log "account '$ACCOUNT' ready"
  fi
fi

# ---------------------------------------------------------------- 7. optional snakemake venv
if [ -n "$VENV" ] && [ ! -x "$VENV/bin/snakemake" ]; then
  log "creating venv $VENV with snakemake 9 + slurm executor plugin"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q 'snakemake>=9,<10' snakemake-executor-plugin-slurm
  log "venv ready: $("$VENV/bin/snakemake" --version)"
fi

log "ready: $(sinfo -V), munge $(munged -V 2>&1 | awk '{print $1}')"
cmd_status
echo "use:  . $PREFIX/env.sh"
