#!/usr/bin/env bash
# Fig. 5a (fig5a.sh) re-run at --precision bf16 as a figure of its own, to check that learning is the same at bf16:
# every network's forward and backward pass, in Phase I, the DVM step and Phase II, under bfloat16 autocast. Compare
# with fig5a (fp32) in benchmark/precision_learning.py. SEEDS=3 bash benchmark/fig5a_bf16.sh for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmark/run.py fig5a_bf16 masac_dvm.py -- --domain spread --n-agents 2 --phase1-steps 20000 \
    --phase2-steps 20000 --precision bf16 "$@"
