#!/usr/bin/env bash
# Fig. 10, beyond the paper: MA-SAC on spread with 6 and with 8 agents (particle_envs.Spread's unit cells in two rows,
# as in Fig. 9), No DVM, Distillation, Value Matching and DVM from one Phase I per seed, at Fig. 5's settings (the
# paper's lr 3e-4 in both phases, under which MA-SAC's DVM holds up to 4 agents), value matching of Q0 and V0 on K = 1
# sampled permutation of n! (--vm-permutations 1, as Fig. 9; the exact sum takes hours to days). Phase I lengths from
# pilots (benchmark/README.md, "Fig. 10"): 6 agents -10.5 at 40k, -8.9 at 60k, -7.6 at 80k: 60k steps; 8 agents -15.9
# at 40k, -12.7 at 60k, -12.3 at 80k, -11.2 at 100k: 80k steps (twice Fig. 5c's 40k for twice the agents). PARTS picks
# the team sizes (default spread6 spread8; spread6 is figure fig10, spread8 fig10_spread8), SEEDS=5 for 5 seeds, JOBS
# the runs side by side, MERGE=1 merges a piece into committed results, as for every figure:
#   PARTS=spread8 SEEDS=1-1 MERGE=1 JOBS=1 bash benchmark/fig10.sh
set -euo pipefail
cd "$(dirname "$0")/.."
parts=${PARTS:-spread6 spread8}
for part in $parts; do  # every part's name checked before any training
    case $part in spread6 | spread8) ;; *) echo "unknown part $part (spread6 or spread8)" >&2; exit 2 ;; esac
done
for part in $parts; do
    case $part in
    spread6) fig=fig10 n=6 steps=60000 ;;
    spread8) fig=fig10_spread8 n=8 steps=80000 ;;
    esac
    python benchmark/run.py $fig masac_dvm.py -- --domain spread --n-agents $n --phase1-steps $steps \
        --phase2-steps 30000 --vm-permutations 1 "$@"
done
