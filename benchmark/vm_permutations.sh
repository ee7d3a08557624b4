#!/usr/bin/env bash
# Beyond the paper: value matching under K sampled agent permutations per sample (--vm-permutations K) against the
# exact sum over all n! of Eq. (6). From each seed's Phase I (the paper's lr 0.01), DVM with the exact sum and with K
# sampled permutations, 2048 iterations, every Phase II at lr 1e-3 (where the matched critic decides Phase II, see
# dvm_iterations.sh), identical otherwise:
#   fig4c_lr1e-3: 4 agents (24 permutations; Phase I of dvm_iterations.sh's part fig4c_lr1e-3): K = 1, 4, 8, and K = 4
#                 at 8192 iterations, about what the exact step costs (an exact iteration takes 4.1-4.6 times a
#                 K = 4 one: benchmark/dvm_step_speed.py);
#   fig4b_lr1e-3: 3 agents (6 permutations; Phase I as Fig. 4b's): K = 1, 2;
#   spread5_lr1e-3: 5 agents (120 permutations; spread beyond the paper, its own Phase I at lr 0.01, 60k steps): K = 4,
#                 8. Not in the default PARTS (hours per seed): run it with PARTS=spread5_lr1e-3.
# Then benchmark/vm_permutations.py measures the exact Eq. (6) loss of every run's matched critic on held-out
# transitions and writes results/vm_permutations.md and images/vm_permutations.png. PARTS picks the parts (default
# fig4c_lr1e-3 fig4b_lr1e-3), SEEDS the seeds (as for the figures). Like a figure, a part with committed results gets a
# quick look of its own (runs/vm_permutations_PART/quick_look/ for the curves, runs/vm_permutations/quick_look/ for the
# table, the plot and the DVM steps' scores); MERGE=1 merges its seeds into results/, curves and DVM steps alike (the
# DVM steps of those parts and seeds only).
#   PARTS=fig4b_lr1e-3 SEEDS=3 bash benchmark/vm_permutations.sh      # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
parts=${PARTS:-fig4c_lr1e-3 fig4b_lr1e-3}
for part in $parts; do  # every part's name checked before any training
    case $part in
    fig4c_lr1e-3 | fig4b_lr1e-3 | spread5_lr1e-3) ;;
    *) echo "unknown part $part (fig4c_lr1e-3, fig4b_lr1e-3 or spread5_lr1e-3)" >&2; exit 2 ;;
    esac
done
for part in $parts; do
    case $part in
    fig4c_lr1e-3)
        python benchmark/run.py dvm_iterations_fig4c_phase1 maddpg_dvm.py --variants none -- --domain spread \
            --n-agents 4 --phase1-steps 40000 --phase2-steps 30000 "$@"
        python benchmark/run.py vm_permutations_fig4c_lr1e-3 maddpg_dvm.py --phase1-from dvm_iterations_fig4c_phase1 \
            --dvm-again --variants dvm dvm_k1 dvm_k4 dvm_k8 dvm_k4_it8192 -- --domain spread --n-agents 4 \
            --phase1-steps 40000 --phase2-steps 30000 --learning-rate 0.001 "$@" ;;
    fig4b_lr1e-3)
        python benchmark/run.py vm_permutations_fig4b_phase1 maddpg_dvm.py --variants none -- --domain spread \
            --n-agents 3 --phase1-steps 30000 --phase2-steps 30000 "$@"
        python benchmark/run.py vm_permutations_fig4b_lr1e-3 maddpg_dvm.py --phase1-from vm_permutations_fig4b_phase1 \
            --dvm-again --variants dvm dvm_k1 dvm_k2 -- --domain spread --n-agents 3 --phase1-steps 30000 \
            --phase2-steps 30000 --learning-rate 0.001 "$@" ;;
    spread5_lr1e-3)
        python benchmark/run.py vm_permutations_spread5_phase1 maddpg_dvm.py --variants none -- --domain spread \
            --n-agents 5 --phase1-steps 60000 --phase2-steps 30000 "$@"
        python benchmark/run.py vm_permutations_spread5_lr1e-3 maddpg_dvm.py \
            --phase1-from vm_permutations_spread5_phase1 --dvm-again --variants dvm dvm_k4 dvm_k8 -- --domain spread \
            --n-agents 5 --phase1-steps 60000 --phase2-steps 30000 --learning-rate 0.001 "$@" ;;
    esac
done
# the parts and seeds of this invocation alone are scored, and merged with MERGE=1: the other rows of
# results/vm_permutations_steps.csv stay as they were, whatever else runs/ holds (SEEDS as run.py reads it, default 10)
python benchmark/vm_permutations.py --parts $parts --seeds "${SEEDS:-10}"
