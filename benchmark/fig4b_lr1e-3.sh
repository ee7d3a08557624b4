#!/usr/bin/env bash
# Fig. 4b with every method's Phase II at Adam lr 1e-3 instead of the paper's 0.01 (the post-DVM drop, see
# benchmark/README.md), from Fig. 4b's Phase I checkpoints, so this runs fig4b.sh first (a finished Fig. 4b is skipped in
# seconds). SEEDS=3 bash benchmark/fig4b_lr1e-3.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benchmark/fig4b.sh "$@"
python benchmark/run.py fig4b_lr1e-3 maddpg_dvm.py --phase1-from fig4b -- --domain spread --n-agents 3 \
    --phase1-steps 30000 --phase2-steps 30000 --learning-rate 0.001 "$@"
