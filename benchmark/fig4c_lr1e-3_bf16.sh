#!/usr/bin/env bash
# Fig. 4c at lr 1e-3 (fig4c_lr1e-3.sh) re-run at --precision bf16 as a figure of its own, to check that learning is the
# same at bf16: its own Phase I at bf16 (figure fig4c_bf16_phase1: the No DVM variant alone, whose Phase II at lr 0.01
# is not part of this figure), then the four methods' DVM steps and Phase II at Adam lr 1e-3, all at bf16. Compare
# with fig4c_lr1e-3 (fp32) in benchmark/README.md. SEEDS=3 bash benchmark/fig4c_lr1e-3_bf16.sh for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmark/run.py fig4c_bf16_phase1 maddpg_dvm.py --variants none -- --domain spread --n-agents 4 \
    --phase1-steps 40000 --phase2-steps 30000 --precision bf16 "$@"
python benchmark/run.py fig4c_lr1e-3_bf16 maddpg_dvm.py --phase1-from fig4c_bf16_phase1 -- --domain spread \
    --n-agents 4 --phase1-steps 40000 --phase2-steps 30000 --learning-rate 0.001 --precision bf16 "$@"
