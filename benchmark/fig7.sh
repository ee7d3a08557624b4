#!/usr/bin/env bash
# Fig. 7: DVM in the push box domain with and without Phase II learning (the latter is multi-task policy
# distillation evaluated as it is), both from Fig. 6's Phase I checkpoints, so this runs fig6.sh first (a
# finished Fig. 6 is skipped in seconds). SEEDS=3 bash benchmark/fig7.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benchmark/fig6.sh "$@"
python benchmark/run.py fig7 maddpg_dvm.py --phase1-from fig6 --variants dvm dvm_no_learning -- --domain push_box \
    --n-agents 2 --phase1-steps 60000 --phase2-steps 40000 "$@"
