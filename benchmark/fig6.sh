#!/usr/bin/env bash
# Fig. 6: discrete MADDPG, push box (heavy box, the default rule): Phase I teams on Tasks I and II, Phase II on Task III.
# Phase I once per seed, then No DVM, Distillation, Value Matching and DVM from the same Phase I checkpoint, at the
# paper's learning rate 0.01. SEEDS=3 bash benchmark/fig6.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmark/run.py fig6 maddpg_dvm.py -- --domain push_box --n-agents 2 --phase1-steps 60000 --phase2-steps 40000 "$@"
