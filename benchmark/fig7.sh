#!/usr/bin/env bash
# Fig. 7: DVM in the push box domain with and without Phase II learning (the latter is multi-task policy
# distillation evaluated as it is), both from Fig. 6's Phase I checkpoints, so this runs fig6.sh first (a
# finished Fig. 6 is skipped in seconds). SEEDS=3 bash benchmark/fig7.sh for a quick look; JOBS sets parallel jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash benchmark/fig6.sh "$@"
# Fig. 7's DVM runs are Fig. 6's: the same Phase I checkpoint, seed and flags give the same numbers bit for bit
# (tests/test_maddpg_dvm.py), so they are copied rather than trained again; run.py then skips them as finished.
runs=${BENCHMARK_OUT:-benchmark}/runs
for run in "$runs"/fig6/seed*/dvm; do
    seed=$(basename "$(dirname "$run")")
    if [ -f "$run/phase2.pt" ] && [ ! -f "$runs/fig7/$seed/dvm/phase2.pt" ]; then
        mkdir -p "$runs/fig7/$seed" && rm -rf "$runs/fig7/$seed/dvm" && cp -r "$run" "$runs/fig7/$seed/dvm"
    fi
done
python benchmark/run.py fig7 maddpg_dvm.py --phase1-from fig6 --variants dvm dvm_no_learning -- --domain push_box \
    --n-agents 2 --phase1-steps 60000 --phase2-steps 40000 "$@"
