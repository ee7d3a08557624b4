#!/usr/bin/env bash
# Fig. 8: Agent 1's policy and action-value in the 2-agent spread, at the end of Phase I, right after DVM and at
# the end of Phase II (No DVM and DVM), drawn from the checkpoints of one seed (SEEDS overrides; seed 1 is drawn).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-1} python benchmark/run.py fig8 maddpg_dvm.py --variants none dvm --plot fig8.py -- \
    --domain spread --n-agents 2 --phase1-steps 20000 --phase2-steps 20000 "$@"
