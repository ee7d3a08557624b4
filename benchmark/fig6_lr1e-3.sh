#!/usr/bin/env bash
# Fig. 6 with every method's Phase II at Adam lr 1e-3 instead of the paper's 0.01 (the post-DVM drop, see
# benchmark/README.md), from Fig. 6's Phase I checkpoints, so this runs fig6.sh first (a finished Fig. 6 is skipped in
# seconds). SEEDS=3 bash benchmark/fig6_lr1e-3.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benchmark/fig6.sh "$@"
python benchmark/run.py fig6_lr1e-3 maddpg_dvm.py --phase1-from fig6 -- --domain push_box --n-agents 2 \
    --phase1-steps 60000 --phase2-steps 40000 --learning-rate 0.001 "$@"
