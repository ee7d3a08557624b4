"""Is learning the same at --precision bf16? Each bf16 figure beside its fp32 one, from their committed curves, and the
exact 4-agent DVM step's matched critic scored on held-out transitions at both precisions.

    python benchmark/precision_learning.py
        -> benchmark/results/precision_learning.md (and printed);
           benchmark/results/precision_steps.csv, the bf16 DVM steps of fig4c_lr1e-3_bf16 (scored from runs/ where
           they are, a run replacing the row of its seed; without runs, the committed rows)

Pairs: Fig. 4c with Phase II at lr 1e-3 (fig4c_lr1e-3.sh against fig4c_lr1e-3_bf16.sh, which trains its own Phase I at
bf16) and Fig. 5a (fig5a.sh against fig5a_bf16.sh). Per figure: seeds, end of Phase I, DVM's Phase II AUC, the best
other method (highest mean Phase II AUC), DVM minus it on AUC and on the final return with plot.py's 95 % paired
bootstrap intervals (the numbers of the figure's own table), and the figure's cost. A figure's precision is read from
its command as its script reads it: a curves file of the other precision is refused, not written up under this one.

The DVM step: the exact Eq. (6) sum over 24 permutations, 2048 iterations, mode dvm. fp32: the vm_permutations.sh part
fig4c_lr1e-3's exact runs (results/vm_permutations_steps.csv); bf16: fig4c_lr1e-3_bf16's DVM runs. Each matched
critic is scored as vm_permutations.py scores it (held_out_exact_loss, in fp32), against its own seed's Phase I: the
Phase I runs differ between precisions, so the comparison is of two sets of seeds, not paired.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dvm_iterations  # noqa: E402  (a run's DVM step: duration and losses)
import plot  # noqa: E402  (the figures' reader and statistics, so the numbers are the figures' own)
import vm_permutations  # noqa: E402  (the held-out exact Eq. (6) loss)

BASELINES = ("none", "distill", "vm")
PAIRS = [("MADDPG, spread, 4 agents, Phase II lr 1e-3", "fig4c_lr1e-3", "fig4c_lr1e-3_bf16"),
         ("MA-SAC, spread, 2 agents", "fig5a", "fig5a_bf16")]
STEPS_CSV = os.path.join(plot.OUT, "results", "precision_steps.csv")
STEP_COLUMNS = ["figure", "seed", "seconds", "vm_loss", "vm_loss_exact"]
TYPES = dict(figure=str, seed=int, seconds=float, vm_loss=float, vm_loss_exact=float)
BF16_STEPS = ("fig4c_lr1e-3_bf16", "fig4c_bf16_phase1")  # (figure of the DVM runs, figure of their Phase I)


def figure_row(fig_name, precision):
    """The cells of one figure, from results/FIG.csv; None where it is not committed yet."""
    path = os.path.join(plot.OUT, "results", f"{fig_name}.csv")
    if not os.path.exists(path):
        return None
    header, rows = plot.read_csv(path)
    _, args = plot.script_args(header["command"], f"results/{fig_name}.csv")
    if args.precision != precision:
        plot.fail(f"results/{fig_name}.csv holds runs at --precision {args.precision}, not {precision}")
    stats = {v: plot.variant_stats([r for r in rows if r["variant"] == v]) for v in plot.NAMES
             if any(r["variant"] == v for r in rows)}
    missing = [v for v in ("dvm", *BASELINES) if v not in stats]
    if missing:
        plot.fail(f"results/{fig_name}.csv has no curves of {', '.join(map(plot.method, missing))}")
    intervals = plot.dvm_minus(stats, np.random.default_rng(0))  # plot.table's seed: the figure's own intervals
    best = max(BASELINES, key=lambda v: stats[v]["auc"].mean())
    phase1_end = plot.curve_array([r for r in rows if r["variant"] == "phase1"])[1][:, -1]
    runs = {(r["seed"], r["variant"]) for r in rows if r["variant"] != "phase1"}
    return [f"`{fig_name}`", precision, str(len(stats["dvm"]["auc"])), f"{phase1_end.mean():.2f} ± {phase1_end.std():.2f}",
            f"{stats['dvm']['auc'].mean():.2f} ± {stats['dvm']['auc'].std():.2f}", plot.NAMES[best],
            *(plot.difference_text(*intervals[best, key]) for key in ("auc", "final")),
            plot.cost_text(header["pieces"], header["durations"], runs)]


def bf16_steps():
    """{seed: row} of the bf16 DVM steps: the committed rows, replaced by those of the finished runs in runs/."""
    steps = {r["seed"]: r for _, _, r in plot.read_table(STEPS_CSV, STEP_COLUMNS, TYPES)} \
        if os.path.exists(STEPS_CSV) else {}
    dvm_fig, phase1_fig = BF16_STEPS
    root = os.path.join(plot.OUT, "runs", dvm_fig)
    for seed, seed_dir in plot.seed_dirs(root).items():
        run_dir = os.path.join(seed_dir, "dvm")
        phase1 = os.path.join(plot.OUT, "runs", phase1_fig, f"seed{seed}", "none", "phase1.pt")
        if not (os.path.exists(os.path.join(run_dir, "phase2.pt")) and os.path.exists(phase1)):
            continue  # not finished (or its Phase I gone): the committed row, if any, stays
        config = vm_permutations.run_config(run_dir)
        setting = tuple(config[k] for k in ("precision", "n_agents", "vm_permutations", "dvm_iterations"))
        if setting != ("bf16", 4, 0, 2048):
            plot.fail(f"{run_dir} is not the exact 4-agent DVM step of 2048 iterations at bf16 (it ran: --precision "
                      "{}, --n-agents {}, --vm-permutations {}, --dvm-iterations {})".format(*setting))
        row, _ = dvm_iterations.step_of_run(run_dir)
        exact = vm_permutations.held_out_exact_loss(phase1, os.path.join(run_dir, "dvm.pt"), seed)
        steps[seed] = dict(figure=dvm_fig, seed=seed, seconds=row["seconds"], vm_loss=float(row["vm_loss"]),
                           vm_loss_exact=exact)
        print(f"{dvm_fig} seed {seed}: DVM step {row['seconds']:.0f} s, exact Eq. (6) loss held out {exact:.4g} "
              f"(training {row['vm_loss']:.4g})", flush=True)
    return steps


def step_cells(label, rows):
    if not rows:
        return f"| {label}: not run yet | | | | |"
    seconds, train, exact = (np.array([r[k] for r in rows]) for k in ("seconds", "vm_loss", "vm_loss_exact"))
    return (f"| {label} | {len(rows)} | {seconds.mean():.0f} ± {seconds.std():.0f} | {train.mean():.3g} ± "
            f"{train.std():.2g} | {exact.mean():.3g} ± {exact.std():.2g} (median {np.median(exact):.3g}) |")


def main():
    lines = ["| setting | figure | precision | seeds | end of Phase I | DVM, Phase II AUC | best other method | "
             "DVM minus it, AUC (95 % CI) | DVM minus it, final (95 % CI) | cost |", "|---" * 10 + "|"]
    for setting, fp32, bf16 in PAIRS:
        for fig_name, precision in ((fp32, "fp32"), (bf16, "bf16")):
            cells = figure_row(fig_name, precision) or [f"`{fig_name}`: not run yet", precision] + [""] * 7
            lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    steps = bf16_steps()
    committed = vm_permutations.read_steps_csv(vm_permutations.STEPS_CSV) \
        if os.path.exists(vm_permutations.STEPS_CSV) else {}
    fp32_steps = [r for (part, _, variant), r in committed.items()
                  if part == "fig4c_lr1e-3" and variant == "dvm" and r["permutations"] == 0]
    lines += ["", "The exact DVM step at 4 agents (24 permutations, 2048 iterations): its duration (one torch thread, "
              "two jobs on the machine), the Eq. (6) training loss at its end and the exact loss of its matched critic "
              "on held-out transitions (mean ± std over seeds).", "",
              "| precision | seeds | seconds | training loss | held-out exact loss |", "|---|---|---|---|---|",
              step_cells("fp32 (`vm_permutations_fig4c_lr1e-3`, exact)", fp32_steps)]
    if steps:
        lines.append(step_cells("bf16 (`fig4c_lr1e-3_bf16`)", [steps[s] for s in sorted(steps)]))
        table = "\n".join([",".join(STEP_COLUMNS)] + [f"{r['figure']},{s},{r['seconds']:.2f},{r['vm_loss']!r},"
                                                      f"{r['vm_loss_exact']!r}" for s, r in sorted(steps.items())])
    text = "\n".join(lines) + "\n"
    try:
        if steps:
            plot.write_atomically(STEPS_CSV, table + "\n")
        plot.write_atomically(os.path.join(plot.OUT, "results", "precision_learning.md"), text)
    except OSError as e:
        plot.fail(f"cannot write the results ({e.strerror or e})")
    print(text, end="")


if __name__ == "__main__":
    main()
