#!/usr/bin/env bash
# Stops exactly the daemons that benchmark/slurm/start.sh started, by the PIDs it recorded (newest first: the node,
# the controller, the accounting, the database, munge), and nothing else. Jobs still running end with slurmd.
set -euo pipefail

STATE=${DVM_SLURM_DIR:-/var/lib/dvm-slurm}
PIDS=$STATE/pids
if [ ! -s "$PIDS" ]; then
    echo "slurm/stop.sh: no daemons recorded in $PIDS; nothing to stop"
    exit 0
fi
# ours: a PID of the file whose process still runs under the recorded name (a PID reused by another program is not
# ours; a zombie has ended)
ours() { [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ] && ! grep -q '^State:.*zombie' "/proc/$2/status"; }

tac "$PIDS" | while read -r name pid; do
    ours "$name" "$pid" || { echo "slurm/stop.sh: $name ($pid) had already ended"; continue; }
    kill -TERM "$pid"
    for _ in $(seq 100); do  # 20 s to stop cleanly, then killed
        ours "$name" "$pid" || break
        sleep 0.2
    done
    if ours "$name" "$pid"; then
        kill -KILL "$pid"
        echo "slurm/stop.sh: $name ($pid) killed"
    else
        echo "slurm/stop.sh: $name ($pid) stopped"
    fi
done
rm -f "$PIDS"
