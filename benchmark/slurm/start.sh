#!/usr/bin/env bash
# Starts a single-node Slurm cluster with accounting on this machine, for `run.py --cluster slurm` and its test:
# munged, mariadbd, slurmdbd, slurmctld and slurmd, each started by hand (no systemd needed), as root on Debian 12.
#
#   sudo bash benchmark/slurm/start.sh     # installs the packages if missing; prints the cluster when it is up
#   sudo bash benchmark/slurm/stop.sh      # stops exactly the daemons this script started, by their PIDs
#
# Why accounting: submitit learns that a job died (killed, out of memory, node lost) from `sacct`; without slurmdbd,
# sacct fails and such a job is waited for forever. Everything the cluster keeps goes to DVM_SLURM_DIR (default
# /var/lib/dvm-slurm: the PIDs, logs, Slurm's state, its own MariaDB data served on 127.0.0.1:DVM_SLURM_DB_PORT),
# besides /etc/slurm/slurm.conf and slurmdbd.conf, which Slurm's commands read. A machine that has a Slurm of its
# own (a slurm.conf this script did not write) is left alone. Running it again while the cluster is up does nothing.
set -euo pipefail

STATE=${DVM_SLURM_DIR:-/var/lib/dvm-slurm}
DB_PORT=${DVM_SLURM_DB_PORT:-3316}
MARK="# written by benchmark/slurm/start.sh"  # the first line of the configuration files this script owns
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "slurm/start.sh: $*" >&2; exit 1; }
say() { echo "slurm/start.sh: $*"; }

[ "$(id -u)" = 0 ] || die "run it as root (it installs packages and starts daemons)"
for conf in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf; do
    if [ -e "$conf" ] && [ "$(head -n 1 "$conf")" != "$MARK" ]; then
        die "$conf was not written by this script: this machine has a Slurm of its own; use that one"
    fi
done

# already up? (every daemon of the PID file alive) -- else stop what is left of an earlier start and start anew
if [ -s "$STATE/pids" ]; then
    alive=1
    while read -r name pid; do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && ! grep -q '^State:.*zombie' "/proc/$pid/status" || alive=0
    done < "$STATE/pids"
    if [ "$alive" = 1 ] && sinfo -h >/dev/null 2>&1; then
        say "already running ($(tr '\n' ' ' < "$STATE/pids"))"
        exit 0
    fi
    say "an earlier start is no longer complete; stopping what is left of it"
    bash "$HERE/stop.sh"
fi

# --- packages (about 15-50 s); with a policy that keeps apt from starting the daemons itself
need=()
for cmd in munged slurmctld slurmd slurmdbd sbatch sacct mariadbd mariadb-install-db; do
    command -v "$cmd" >/dev/null 2>&1 || need=(slurm-wlm slurmdbd munge mariadb-server mariadb-client)
done
if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get to install it"
    say "installing ${need[*]}"
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    ok=1
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } > /tmp/dvm-slurm-apt.log 2>&1 || ok=0
    [ "$policy_added" = 0 ] || rm -f /usr/sbin/policy-rc.d
    [ "$ok" = 1 ] || { tail -n 20 /tmp/dvm-slurm-apt.log >&2; die "apt-get could not install ${need[*]} (log above)"; }
fi

mkdir -p "$STATE/log" "$STATE/slurmctld" "$STATE/slurmd" "$STATE/mysql-run"
chmod 755 "$STATE"
chown mysql:mysql "$STATE/mysql-run"  # the database's socket and PID file
: > "$STATE/pids"

# start NAME CMD...: runs CMD in the foreground of its own session, its output in log/NAME.log, and records its PID
start() {
    local name=$1; shift
    setsid "$@" < /dev/null > "$STATE/log/$name.log" 2>&1 &
    echo "$name $!" >> "$STATE/pids"
}

# wait_for NAME SECONDS CMD...: until CMD succeeds; a non-zero exit with the daemon's log if NAME ends or time is up
wait_for() {
    local name=$1 seconds=$2 pid; shift 2
    pid=$(awk -v n="$name" '$1 == n {print $2}' "$STATE/pids")
    for _ in $(seq "$seconds"); do
        "$@" > /dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    tail -n 15 "$STATE/log/$name.log" >&2 || true
    die "$name did not come up (its log above, in $STATE/log)"
}
# a start that fails half-way stops the daemons it had started
trap '[ $? = 0 ] || bash "$HERE/stop.sh" >&2' EXIT

# --- munge: Slurm's authentication. One already working (a system munged) is used and left alone.
if ! { munge -n < /dev/null | unmunge > /dev/null; } 2>/dev/null; then
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    start munged setpriv --reuid=munge --regid=munge --clear-groups /usr/sbin/munged --foreground
    wait_for munged 30 sh -c 'munge -n < /dev/null | unmunge'
fi

# --- MariaDB for slurmdbd: a server of its own (own data folder, 127.0.0.1:DB_PORT), beside any system one
if [ ! -d "$STATE/mysql/mysql" ]; then
    mkdir -p "$STATE/mysql" && chown mysql:mysql "$STATE/mysql"
    mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql" --skip-test-db \
        > "$STATE/log/mariadb-install.log" 2>&1 || { cat "$STATE/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
fi
start mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$STATE/mysql" --socket="$STATE/mysql-run/mysqld.sock" \
    --pid-file="$STATE/mysql-run/mysqld.pid" --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve
wait_for mariadbd 60 mariadb-admin --no-defaults --socket="$STATE/mysql-run/mysqld.sock" -u root ping
DB_PASS=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
mariadb --no-defaults --socket="$STATE/mysql-run/mysqld.sock" -u root -e "CREATE OR REPLACE USER 'slurm'@'127.0.0.1' \
    IDENTIFIED BY '$DB_PASS'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

# --- configuration: the node as `slurmd -C` sees it
read -r NODE CPUS MEM < <(slurmd -C | awk '/^NodeName/ {for (i = 1; i <= NF; i++) {split($i, kv, "=");
    v[kv[1]] = kv[2]} print v["NodeName"], v["CPUs"], v["RealMemory"]}')
[ -n "${MEM:-}" ] || die "slurmd -C did not describe this node"
mkdir -p /etc/slurm
cat > /etc/slurm/slurmdbd.conf <<EOF
$MARK
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
EOF
chmod 600 /etc/slurm/slurmdbd.conf  # slurmdbd refuses a configuration with a password that others can read
# proctrack/linuxproc and task/none: no cgroups needed (containers, no systemd); CR_CPU_Memory: jobs share the node
# by CPUs and memory; MinJobAge: finished jobs stay visible to squeue/scontrol for 10 minutes (sacct keeps them)
cat > /etc/slurm/slurm.conf <<EOF
$MARK
ClusterName=dvm
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld-file.log
SlurmdLogFile=$STATE/log/slurmd-file.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=600
DefMemPerCPU=$((MEM / CPUS))
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# --- the Slurm daemons: the accounting first, the cluster registered in it, then the controller and the node
start slurmdbd /usr/sbin/slurmdbd -D
wait_for slurmdbd 60 sacctmgr -n list cluster
sacctmgr -i add cluster dvm > /dev/null 2>&1 || true  # (already there when the cluster is started again)
start slurmctld /usr/sbin/slurmctld -D
start slurmd /usr/sbin/slurmd -D
wait_for slurmd 60 sh -c 'sinfo -h -o %t | grep -qx idle'
wait_for slurmdbd 30 sacct -n -X
say "up: node $NODE, $CPUS CPUs, $MEM MB; daemons $(tr '\n' ' ' < "$STATE/pids")(PIDs in $STATE/pids)"
