"""Draw a figure from benchmark/runs/FIG and write its results table.

    python benchmark/plot.py FIG      # -> benchmark/images/FIG.png, benchmark/results/FIG.md

The paper's way: eval/return against the global step, mean over seeds as a line, shading of +- 1/2 standard
deviation, the DVM step marked. Phase I comes from each seed's run that trained it (its first variant), or
from the figure named in runs/FIG/phase1_from.txt (run.py --phase1-from). A figure still running, or cut off, is
drawn from the seeds whose runs have all finished.
Table, per variant, mean +- std over seeds of
  - Phase II AUC: the area under the Phase II eval/return curve divided by its length in steps, i.e. the
    average evaluation return over Phase II (higher is better, rewards learning fast);
  - final return: the mean eval/return over the last 10 % of Phase II steps;
and the 95 % paired bootstrap interval (10,000 resamples over seeds) of DVM minus each other variant.
Push box runs also get the final return per Task III target.
"""
import functools
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.environ.get("BENCHMARK_OUT", HERE)  # where runs/ is read and images/, results/ are written
NAMES = {"none": "No DVM", "distill": "Distillation", "vm": "Value Matching", "dvm": "DVM",
         "dvm_no_learning": "DVM, no Phase II learning"}
COLOURS = {"none": "tab:grey", "distill": "tab:blue", "vm": "tab:green", "dvm": "tab:red", "dvm_no_learning": "tab:purple"}
TITLES = {"fig4a": "Fig. 4a: MADDPG, spread, 2 agents", "fig4b": "Fig. 4b: MADDPG, spread, 3 agents",
          "fig4c": "Fig. 4c: MADDPG, spread, 4 agents", "fig5a": "Fig. 5a: MA-SAC, spread, 2 agents",
          "fig5b": "Fig. 5b: MA-SAC, spread, 3 agents", "fig5c": "Fig. 5c: MA-SAC, spread, 4 agents",
          "fig6": "Fig. 6: MADDPG, push box, Task III", "fig7": "Fig. 7: DVM with and without Phase II learning"}
TARGETS = {0: "left (Task I)", 1: "right (Task II)", 2: "up (new)"}


@functools.cache  # Phase I's run is one of the figure's own runs unless --phase1-from: read it once
def read_run(run_dir):
    """{phase: (steps, returns)} and {target: final returns} of one run's event file."""
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    returns, phases = events.Scalars("eval/return"), events.Scalars("charts/phase")
    curves = {}
    for phase in (1, 2):
        points = [(r.step, r.value) for r, p in zip(returns, phases) if p.value == phase]
        curves[phase] = tuple(np.array(x) for x in zip(*points)) if points else None
    targets = {}
    for tag in events.Tags()["scalars"]:
        if tag.startswith("eval/return_target"):
            values = events.Scalars(tag)
            targets[int(tag[len("eval/return_target"):])] = values
    return curves, targets


def final_window(steps):
    """Evaluations in the last 10 % of Phase II (at least the last one)."""
    start, end = steps[0], steps[-1]
    mask = steps >= end - 0.1 * (end - start)
    mask[-1] = True
    return mask


def bootstrap_ci(diffs, rng, resamples=10_000):
    means = rng.choice(diffs, (resamples, len(diffs))).mean(1)
    return np.percentile(means, [2.5, 97.5])


if __name__ == "__main__":
    fig_name = sys.argv[1]
    root = os.path.join(OUT, "runs", fig_name)
    seeds = sorted(glob.glob(os.path.join(root, "seed*")), key=lambda p: int(p.rsplit("seed", 1)[1]))
    variants = [v for v in NAMES if any(os.path.isdir(os.path.join(s, v)) for s in seeds)]
    # a figure still running, or cut off, is drawn from the seeds whose runs have all finished (phase2.pt)
    started, seeds = len(seeds), [s for s in seeds if all(os.path.exists(os.path.join(s, v, "phase2.pt")) for v in variants)]
    if not seeds:
        sys.exit(f"no seed of {root} has finished all of its runs yet")
    if len(seeds) < started:
        print(f"{fig_name}: {len(seeds)} of {started} seeds have finished all of their runs; drawing those")
    runs = {v: [read_run(os.path.join(s, v)) for s in seeds] for v in variants}
    # Phase I from each seed's run that trained it, the only one with a phase1.pt: in this figure, or in the one
    # named in phase1_from.txt (run.py --phase1-from)
    source = os.path.join(root, "phase1_from.txt")
    phase1_root = os.path.join(OUT, "runs", open(source).read().strip()) if os.path.exists(source) else root
    trainers = [glob.glob(os.path.join(phase1_root, os.path.basename(s), "*", "phase1.pt"))[0] for s in seeds]
    phase1_curves = [read_run(os.path.dirname(t))[0][1] for t in trainers]

    fig, ax = plt.subplots(figsize=(6, 4))
    steps1 = phase1_curves[0][0]
    phase1 = np.stack([c[1] for c in phase1_curves])
    ax.plot(steps1, phase1.mean(0), color="black", lw=1.5, label="Phase I")
    ax.fill_between(steps1, phase1.mean(0) - phase1.std(0) / 2, phase1.mean(0) + phase1.std(0) / 2, color="black", alpha=0.15)
    stats = {}
    for v in variants:
        steps = runs[v][0][0][2][0]
        curves = np.stack([r[0][2][1] for r in runs[v]])
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(steps, mean, color=COLOURS[v], lw=1.5, label=NAMES[v])
        ax.fill_between(steps, mean - std / 2, mean + std / 2, color=COLOURS[v], alpha=0.2)
        auc = np.trapezoid(curves, steps, axis=1) / (steps[-1] - steps[0])
        final = curves[:, final_window(steps)].mean(1)
        per_target = {}
        for k in sorted(runs[v][0][1]):
            values = []
            for _, targets in runs[v]:
                t_steps = np.array([e.step for e in targets[k]])
                t_values = np.array([e.value for e in targets[k]])
                values.append(t_values[final_window(t_steps)].mean())
            per_target[k] = np.array(values)
        stats[v] = dict(auc=auc, final=final, per_target=per_target)
    ax.axvline(steps1[-1], color="black", ls="--", lw=1)
    ax.text(steps1[-1], ax.get_ylim()[0], " DVM step", va="bottom", fontsize=8)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(f"{TITLES.get(fig_name, fig_name)} ({len(seeds)} seeds)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.join(OUT, "images"), exist_ok=True)
    fig.savefig(os.path.join(OUT, "images", f"{fig_name}.png"), dpi=110)

    rng = np.random.default_rng(0)
    wall_file = os.path.join(root, "wall_time.txt")
    wall = f"{float(open(wall_file).read()) / 60:.0f} min" if os.path.exists(wall_file) else "?"
    lines = [f"### {TITLES.get(fig_name, fig_name)}", "",
             f"{len(seeds)} seeds" + (f" (of {started} started; the others had not finished)" if len(seeds) < started else "")
             + f", wall time {wall}. ![{fig_name}](images/{fig_name}.png)", "",
             "| method | Phase II AUC (mean return) | final return | DVM minus method, AUC (95 % CI) | DVM minus method, final (95 % CI) |",
             "|---|---|---|---|---|"]
    for v in variants:
        row = f"| {NAMES[v]} | {stats[v]['auc'].mean():.2f} ± {stats[v]['auc'].std():.2f} | " \
              f"{stats[v]['final'].mean():.2f} ± {stats[v]['final'].std():.2f} |"
        if v != "dvm" and "dvm" in stats:
            for key in ("auc", "final"):
                diffs = stats["dvm"][key] - stats[v][key]
                lo, hi = bootstrap_ci(diffs, rng)
                row += f" {diffs.mean():+.2f} [{lo:+.2f}, {hi:+.2f}] |"
        else:
            row += " | |"
        lines.append(row)
    if any(stats[v]["per_target"] for v in variants):
        lines += ["", "| method | " + " | ".join(f"final, target {TARGETS[k]}" for k in sorted(stats[variants[0]]["per_target"])) + " |",
                  "|---|" + "---|" * len(stats[variants[0]]["per_target"])]
        for v in variants:
            lines.append(f"| {NAMES[v]} | " + " | ".join(f"{x.mean():.2f} ± {x.std():.2f}"
                                                       for x in stats[v]["per_target"].values()) + " |")
    os.makedirs(os.path.join(OUT, "results"), exist_ok=True)
    with open(os.path.join(OUT, "results", f"{fig_name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
