#!/usr/bin/env bash
# Fig. 5c: MA-SAC, spread with 4 agents. Phase I once per seed, then No DVM, Distillation, Value Matching and DVM
# from the same Phase I checkpoint. SEEDS=3 bash benchmark/fig5c.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmark/run.py fig5c masac_dvm.py -- --domain spread --n-agents 4 --phase1-steps 40000 --phase2-steps 30000 "$@"
