#!/usr/bin/env bash
# Fig. 10, beyond the paper: MA-SAC on spread with 6 agents (particle_envs.Spread's unit cells in two rows, as in
# Fig. 9), No DVM, Distillation, Value Matching and DVM from one Phase I per seed, at Fig. 5's settings (the paper's
# lr 3e-4 in both phases, under which MA-SAC's DVM holds up to 4 agents), value matching of Q0 and V0 on K = 1
# sampled permutation of 720 (--vm-permutations 1, as Fig. 9; the exact sum takes hours). Phase I 60,000 steps, from
# a pilot (benchmark/README.md, "Fig. 10"): -10.5 at 40k, -8.9 at 60k, -7.6 at 80k. SEEDS=5 for 5 seeds, JOBS the
# runs side by side, MERGE=1 merges a piece into committed results, as for every figure:
#   SEEDS=1-1 MERGE=1 JOBS=1 bash benchmark/fig10.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmark/run.py fig10 masac_dvm.py -- --domain spread --n-agents 6 --phase1-steps 60000 \
    --phase2-steps 30000 --vm-permutations 1 "$@"
