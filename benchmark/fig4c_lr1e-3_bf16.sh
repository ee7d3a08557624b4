#!/usr/bin/env bash
# Fig. 4c at lr 1e-3 (fig4c_lr1e-3.sh) re-run at --precision bf16 as a figure of its own, to check that learning is the
# same at bf16: its own Phase I at bf16 (figure fig4c_bf16_phase1; its No DVM Phase II is cut to 2000 steps, only to
# close the run, as fig9.sh does), then the four methods' DVM steps (the exact Eq. (6) sum over 24 permutations) and
# Phase II at Adam lr 1e-3, all at bf16. benchmark/precision_learning.py sets it beside fp32's.
#   SEEDS=1-1 MERGE=1 JOBS=1 bash benchmark/fig4c_lr1e-3_bf16.sh      # one seed, merged into results/
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmark/run.py fig4c_bf16_phase1 maddpg_dvm.py --variants none -- --domain spread --n-agents 4 \
    --phase1-steps 40000 --phase2-steps 2000 --precision bf16 "$@"
python benchmark/run.py fig4c_lr1e-3_bf16 maddpg_dvm.py --phase1-from fig4c_bf16_phase1 --dvm-again -- --domain \
    spread --n-agents 4 --phase1-steps 40000 --phase2-steps 30000 --learning-rate 0.001 --precision bf16 "$@"
