#!/usr/bin/env bash
# Fig. 4b: discrete MADDPG, spread with 3 agents. Phase I once per seed, then No DVM, Distillation, Value Matching and DVM
# from the same Phase I checkpoint. SEEDS=3 bash benchmark/fig4b.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmark/run.py fig4b maddpg_dvm.py -- --domain spread --n-agents 3 --phase1-steps 30000 --phase2-steps 30000 "$@"
