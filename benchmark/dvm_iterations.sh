#!/usr/bin/env bash
# How many DVM iterations does DVM need? From each seed's Phase I, DVM with the paper's 2048 iterations and with 1024,
# 256 and 64, Phase II identical otherwise, on Fig. 4a (2 agents), Fig. 4a with every Phase II at lr 1e-3 (from Fig.
# 4a's Phase I), Fig. 4b (3 agents) and Fig. 4c with every Phase II at lr 1e-3 (4 agents, where the claim holds). Then
# benchmark/dvm_iterations.py writes results/dvm_iterations.md and images/dvm_iterations.png. PARTS picks the parts
# (default all four), SEEDS the seeds (as for the figures). Like a figure, a part with committed results gets a quick
# look of its own (runs/FIG/quick_look/, runs/dvm_iterations/quick_look/); MERGE=1 merges its seeds into results/.
#   PARTS=fig4a SEEDS=3 bash benchmark/dvm_iterations.sh      # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
ITERATIONS="--variants dvm dvm_it1024 dvm_it256 dvm_it64"
PARTS=${PARTS:-fig4a fig4a_lr1e-3 fig4b fig4c_lr1e-3}
for part in $PARTS; do  # every part checked before any trains
    case $part in
    fig4a | fig4a_lr1e-3 | fig4b | fig4c_lr1e-3) ;;
    *) echo "unknown part $part (fig4a, fig4a_lr1e-3, fig4b or fig4c_lr1e-3)" >&2; exit 2 ;;
    esac
done
for part in $PARTS; do
    case $part in
    fig4a) python benchmark/run.py dvm_iterations_fig4a maddpg_dvm.py $ITERATIONS -- --domain spread --n-agents 2 \
               --phase1-steps 20000 --phase2-steps 20000 "$@" ;;
    fig4a_lr1e-3)  # from the Phase I that part fig4a's 2048 runs trained
        python benchmark/run.py dvm_iterations_fig4a_lr1e-3 maddpg_dvm.py --phase1-from dvm_iterations_fig4a --dvm-again \
            $ITERATIONS -- --domain spread --n-agents 2 --phase1-steps 20000 --phase2-steps 20000 --learning-rate 0.001 \
            "$@" ;;
    fig4b) python benchmark/run.py dvm_iterations_fig4b maddpg_dvm.py $ITERATIONS -- --domain spread --n-agents 3 \
               --phase1-steps 30000 --phase2-steps 30000 "$@" ;;
    fig4c_lr1e-3)
        # Phase I at the paper's lr 0.01 (Fig. 4c's, with its No DVM run), then every Phase II at lr 1e-3 from it
        python benchmark/run.py dvm_iterations_fig4c_phase1 maddpg_dvm.py --variants none -- --domain spread \
            --n-agents 4 --phase1-steps 40000 --phase2-steps 30000 "$@"
        python benchmark/run.py dvm_iterations_fig4c_lr1e-3 maddpg_dvm.py --phase1-from dvm_iterations_fig4c_phase1 \
            --dvm-again $ITERATIONS -- --domain spread --n-agents 4 --phase1-steps 40000 --phase2-steps 30000 \
            --learning-rate 0.001 "$@" ;;
    esac
done
python benchmark/dvm_iterations.py
