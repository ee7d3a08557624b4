#!/usr/bin/env bash
# Fig. 4a with a critic warm-up at the start of Phase II (beyond the paper; benchmark/README.md, "Critic warm-up"):
# for every method the first DELAY Phase II updates train only the critics (--phase2-actor-delay), the actors keep the
# policy they enter Phase II with; the paper's lr 0.01 otherwise. Figure fig4a_delay$DELAY, from Fig. 4a's Phase I
# checkpoints, so this runs fig4a.sh first (a finished Fig. 4a is skipped in seconds).
# DELAY=1000 SEEDS=3 bash benchmark/fig4a_delay.sh for another delay on three seeds; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
DELAY=${DELAY:-200}
bash benchmark/fig4a.sh "$@"
python benchmark/run.py "fig4a_delay$DELAY" maddpg_dvm.py --phase1-from fig4a -- --domain spread --n-agents 2 \
    --phase1-steps 20000 --phase2-steps 20000 --phase2-actor-delay "$DELAY" "$@"
