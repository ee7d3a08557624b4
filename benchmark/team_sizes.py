"""Does DVM's advantage hold as the team grows? One row per number of agents, from the committed curves of the
figures (beyond the paper past 4 agents: fig9.sh, fig10.sh).

    python benchmark/team_sizes.py
        -> benchmark/results/team_sizes.md (and printed)

Per algorithm and team size n, the figure that answers it: MADDPG with Phase II at lr 1e-3, the setting under which
Fig. 4c holds (at the paper's lr 0.01 the drop right after the DVM step decides at 4 agents): fig4a_lr1e-3,
fig4b_lr1e-3 (with the paper's lr 0.01, fig4b, in a row beside it), fig4c_lr1e-3, fig9_spread6, fig9_spread8;
MA-SAC at Fig. 5's settings, under which DVM holds up to 4 agents: fig5a, fig5b, fig5c, fig10, fig10_spread8. Per row:
the seeds, the end of Phase I, the best other method (the highest mean Phase II AUC among No DVM, Distillation and
Value Matching), DVM minus it on Phase II AUC and on the final return with the 95 % paired bootstrap intervals of
plot.py (the same numbers as that method's row in the figure's own table), how value matching summed Eq. (6) (all n!
permutations, or K sampled ones), and the figure's cost in core-minutes. A figure not committed yet is a row saying
so. What the DVM step costs per n is dvm_step_speed.py's table (benchmark/README.md). A figure's settings (its agents,
rate and permutations) are read from its command as its script reads them (tyro), however the flags are spelled.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import plot  # noqa: E402  (the figures' reader and statistics, so the numbers are the figures' own)

BASELINES = ("none", "distill", "vm")
# (algorithm, n, the figures that answer it, the first one committed taken); MADDPG at Phase II lr 1e-3 throughout,
# with 3 agents the paper's lr 0.01 (fig4b) beside it
ROWS = [("MADDPG", 2, ["fig4a_lr1e-3"]), ("MADDPG", 3, ["fig4b_lr1e-3"]), ("MADDPG", 3, ["fig4b"]),
        ("MADDPG", 4, ["fig4c_lr1e-3"]),
        ("MADDPG", 6, ["fig9_spread6"]), ("MADDPG", 8, ["fig9_spread8"]),
        ("MA-SAC", 2, ["fig5a"]), ("MA-SAC", 3, ["fig5b"]), ("MA-SAC", 4, ["fig5c"]), ("MA-SAC", 6, ["fig10"]),
        ("MA-SAC", 8, ["fig10_spread8"])]


def answer(fig_name, n):
    """The row's cells after the algorithm and n, from results/FIG.csv."""
    header, rows = plot.read_csv(os.path.join(plot.OUT, "results", f"{fig_name}.csv"))
    # the settings as the script took them: `--n-agents=8`, `--n_agents 8` and a flag given twice (the last wins) alike
    _, args = plot.script_args(header["command"], f"results/{fig_name}.csv")
    if args.n_agents != n:
        plot.fail(f"results/{fig_name}.csv holds runs with --n-agents {args.n_agents}, not {n}")
    seeds = sorted({r["seed"] for r in rows})
    stats = {v: plot.variant_stats([r for r in rows if r["variant"] == v]) for v in plot.NAMES
             if any(r["variant"] == v for r in rows)}
    missing = [v for v in ("dvm", *BASELINES) if v not in stats]
    if missing:
        plot.fail(f"results/{fig_name}.csv has no curves of {', '.join(map(plot.method, missing))}")
    intervals = plot.dvm_minus(stats, np.random.default_rng(0))  # plot.table's seed: the figure's own intervals
    best = max(BASELINES, key=lambda v: stats[v]["auc"].mean())
    phase1_end = plot.curve_array([r for r in rows if r["variant"] == "phase1"])[1][:, -1]
    k = args.vm_permutations
    matching = f"{k} sampled of {math.factorial(n):,}" if k else f"all {math.factorial(n):,}"
    runs = {(r["seed"], r["variant"]) for r in rows if r["variant"] != "phase1"}
    return [f"`{fig_name}` (Phase II lr {args.learning_rate:g})", str(len(seeds)),
            f"{phase1_end.mean():.2f} ± {phase1_end.std():.2f}",
            plot.NAMES[best], *(plot.difference_text(*intervals[best, key]) for key in ("auc", "final")),
            matching, plot.cost_text(header["pieces"], header["durations"], runs)]


def main():
    lines = ["| algorithm | agents | figure | seeds | end of Phase I | best other method (Phase II AUC) | "
             "DVM minus it, AUC (95 % CI) | DVM minus it, final (95 % CI) | value matching over permutations | cost |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for algorithm, n, figures in ROWS:
        found = [f for f in figures if os.path.exists(os.path.join(plot.OUT, "results", f"{f}.csv"))]
        cells = answer(found[0], n) if found else [f"`{figures[0]}`: not run yet", "", "", "", "", "", "", ""]
        lines.append(f"| {algorithm} | {n} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    try:
        plot.write_atomically(os.path.join(plot.OUT, "results", "team_sizes.md"), text)
    except OSError as e:
        plot.fail(f"cannot write results/team_sizes.md ({e.strerror or e})")
    print(text, end="")


if __name__ == "__main__":
    main()
