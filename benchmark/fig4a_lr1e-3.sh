#!/usr/bin/env bash
# Fig. 4a with every method's Phase II at Adam lr 1e-3 instead of the paper's 0.01 (the post-DVM drop, see
# benchmark/README.md), from Fig. 4a's Phase I checkpoints, so this runs fig4a.sh first (a finished Fig. 4a is skipped in
# seconds). SEEDS=3 bash benchmark/fig4a_lr1e-3.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benchmark/fig4a.sh "$@"
python benchmark/run.py fig4a_lr1e-3 maddpg_dvm.py --phase1-from fig4a -- --domain spread --n-agents 2 \
    --phase1-steps 20000 --phase2-steps 20000 --learning-rate 0.001 "$@"
