#!/usr/bin/env bash
# Fig. 5a: MA-SAC, spread with 2 agents. Phase I once per seed, then No DVM, Distillation, Value Matching and DVM
# from the same Phase I checkpoint. SEEDS=3 bash benchmark/fig5a.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmark/run.py fig5a masac_dvm.py -- --domain spread --n-agents 2 --phase1-steps 20000 --phase2-steps 20000 "$@"
