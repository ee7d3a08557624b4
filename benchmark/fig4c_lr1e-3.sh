#!/usr/bin/env bash
# Fig. 4c with every method's Phase II at Adam lr 1e-3 instead of the paper's 0.01 (the post-DVM drop, see
# benchmark/README.md), from Fig. 4c's Phase I checkpoints, so this runs fig4c.sh first (a finished Fig. 4c is skipped in
# seconds). SEEDS=3 bash benchmark/fig4c_lr1e-3.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benchmark/fig4c.sh "$@"
python benchmark/run.py fig4c_lr1e-3 maddpg_dvm.py --phase1-from fig4c -- --domain spread --n-agents 4 \
    --phase1-steps 40000 --phase2-steps 30000 --learning-rate 0.001 "$@"
