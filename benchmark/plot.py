"""Draw a figure and write its results table and per-seed curves.

    python benchmark/plot.py FIG [--extra PATH[:LABEL] ...]
        -> benchmark/results/FIG.csv (every seed's curves), benchmark/images/FIG.png, benchmark/results/FIG.md

Where the curves come from: the event files of the finished seeds in benchmark/runs/FIG (a seed counts once all of
its runs have written phase2.pt; a figure still running or cut off is drawn from those), merged with the curves
already committed in results/FIG.csv (a seed present in both is taken from the runs). Without runs/FIG the figure
is redrawn from the CSV alone. The figure and table are always computed from the CSV as written, so both ways give
the same numbers. Merging refuses a CSV made by another command (run.py's command.txt is stored in its header).
So a figure can be finished in pieces: `SEEDS="8 9 10" bash benchmark/fig5c.sh` on another day or machine adds
seeds 8-10 to the committed 1-7.

CSV (long format, one row per evaluation; `#` lines are a header with the command and the wall time of each
piece): seed, variant, step (global step across both phases), phase, return (eval/return), then
return_team0/1 (push box Phase I: team A on Task I, team B on Task II) and return_target0/1/2 (push box Task III:
left, right, up), empty where a run has none. Phase I is one run per seed, stored under the variant "phase1": it
comes from each seed's run that trained it (the first variant), or from the figure named in runs/FIG/phase1_from.txt
(run.py --phase1-from).

`--extra PATH[:LABEL]` draws your own runs over ours, as a dashed curve with a row of its own in the table (no
interval): PATH is one run folder of maddpg_dvm.py or masac_dvm.py, or a folder holding several (each one seed).

The paper's way: eval/return against the global step, mean over seeds as a line, shading of +- 1/2 standard
deviation, the DVM step marked. Table, per variant, mean +- std over seeds of
  - Phase II AUC: the area under the Phase II eval/return curve divided by its length in steps, i.e. the
    average evaluation return over Phase II (higher is better, rewards learning fast);
  - final return: the mean eval/return over the last 10 % of Phase II steps;
  - right after the DVM step: the first Phase II evaluation (the policy Phase II starts from), and the depth of the
    post-DVM drop: the lowest point of the mean curve over the first 5,000 Phase II steps;
and the 95 % paired bootstrap interval (10,000 resamples over seeds) of DVM minus each other variant.
Push box figures also get the end of Phase I per team and the final return per Task III target.
"""
import argparse
import csv
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
         "dvm_no_learning": "DVM, no Phase II learning", "dvm_it1024": "DVM, 1024 iterations",
         "dvm_it256": "DVM, 256 iterations", "dvm_it64": "DVM, 64 iterations"}
COLOURS = {"none": "tab:grey", "distill": "tab:blue", "vm": "tab:green", "dvm": "tab:red", "dvm_no_learning": "tab:purple",
           "dvm_it1024": "tab:brown", "dvm_it256": "tab:olive", "dvm_it64": "tab:cyan"}
TITLES = {"fig4a": "Fig. 4a: MADDPG, spread, 2 agents", "fig4b": "Fig. 4b: MADDPG, spread, 3 agents",
          "fig4c": "Fig. 4c: MADDPG, spread, 4 agents", "fig5a": "Fig. 5a: MA-SAC, spread, 2 agents",
          "fig5b": "Fig. 5b: MA-SAC, spread, 3 agents", "fig5c": "Fig. 5c: MA-SAC, spread, 4 agents",
          "fig6": "Fig. 6: MADDPG, push box, Task III", "fig7": "Fig. 7: DVM with and without Phase II learning"}
TEAMS = {0: "team A, Task I", 1: "team B, Task II"}
TARGETS = {0: "left (Task I)", 1: "right (Task II)", 2: "up (new)"}
EXTRA_TAGS = [f"return_team{k}" for k in TEAMS] + [f"return_target{k}" for k in TARGETS]


def title(fig_name):
    """The paper's figures by name; a variant of one (fig4c_lr1e-3, fig6_delay200) by what it changes."""
    base, _, change = fig_name.partition("_")
    if not base.startswith("fig"):
        return fig_name
    if change.startswith("lr"):
        return f"Fig. {base[3:]} with Phase II at lr {change[2:]}"
    if change.startswith("delay"):
        return f"Fig. {base[3:]} with a critic warm-up of {change[5:]} updates"
    return TITLES.get(fig_name, fig_name)


COLUMNS = ["seed", "variant", "step", "phase", "return", *EXTRA_TAGS]


@functools.cache  # Phase I's run is one of the figure's own runs unless --phase1-from: read it once
def read_run(run_dir):
    """Rows {step, phase, return, return_team*/return_target*} of one run's event file, in logging order."""
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    tags = events.Tags()["scalars"]
    rows = [dict(step=r.step, phase=int(p.value), **{"return": r.value})
            for r, p in zip(events.Scalars("eval/return"), events.Scalars("charts/phase"))]
    # team returns come with Phase I evaluations, target returns with Phase II ones (a target that no evaluation
    # world drew is missing at that step); both phases log at the step where one ends and the other begins
    for tag in EXTRA_TAGS:
        if f"eval/{tag}" in tags:
            values = {e.step: e.value for e in events.Scalars(f"eval/{tag}")}
            for row in rows:
                if row["phase"] == (1 if "team" in tag else 2) and row["step"] in values:
                    row[tag] = values[row["step"]]
    return rows


def rows_from_runs(root):
    """Curves of the seeds in runs/FIG whose runs have all finished; the seeds started; the command; wall time."""
    seed_dirs = sorted(glob.glob(os.path.join(root, "seed*")), key=lambda p: int(p.rsplit("seed", 1)[1]))
    variants = [v for v in NAMES if any(os.path.isdir(os.path.join(s, v)) for s in seed_dirs)]
    finished = [s for s in seed_dirs if all(os.path.exists(os.path.join(s, v, "phase2.pt")) for v in variants)]
    source = os.path.join(root, "phase1_from.txt")
    phase1_root = os.path.join(OUT, "runs", open(source).read().strip()) if os.path.exists(source) else root
    rows = []
    for s in finished:
        seed = int(s.rsplit("seed", 1)[1])
        # Phase I from the seed's run that trained it, the only one with a phase1.pt
        trainer = glob.glob(os.path.join(phase1_root, os.path.basename(s), "*", "phase1.pt"))[0]
        rows += [dict(r, seed=seed, variant="phase1") for r in read_run(os.path.dirname(trainer)) if r["phase"] == 1]
        for v in variants:
            rows += [dict(r, seed=seed, variant=v) for r in read_run(os.path.join(s, v)) if r["phase"] == 2]
    wall_file = os.path.join(root, "wall_time.txt")
    wall = float(open(wall_file).read()) if os.path.exists(wall_file) else float("nan")
    return rows, len(seed_dirs), open(os.path.join(root, "command.txt")).read().strip(), wall


def read_csv(path):
    """(command, [(seeds, wall seconds) per piece], rows) of a committed curves file."""
    command, pieces, lines = None, [], []
    with open(path) as f:
        for line in f:
            if line.startswith("# command: "):
                command = line[len("# command: "):].strip()
            elif line.startswith("# piece: "):  # "# piece: seeds 1 2 3, wall time 1234 s"
                seeds, wall = line[len("# piece: seeds "):].split(", wall time ")
                pieces.append(({int(x) for x in seeds.split()}, float(wall.split()[0])))
            elif not line.startswith("#"):
                lines.append(line)
    rows = []
    for r in csv.DictReader(lines):
        row = dict(seed=int(r["seed"]), variant=r["variant"], step=int(r["step"]), phase=int(r["phase"]),
                   **{"return": float(r["return"])})
        row.update({k: float(r[k]) for k in EXTRA_TAGS if r[k] != ""})
        rows.append(row)
    return command, pieces, rows


def write_csv(path, command, pieces, rows):
    with open(path, "w", newline="") as f:
        f.write(f"# command: {command}\n")
        for seeds, wall in pieces:
            f.write(f"# piece: seeds {' '.join(map(str, sorted(seeds)))}, wall time {wall:.0f} s\n")
        writer = csv.DictWriter(f, COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)  # floats as repr: read back bit for bit


def read_extra(spec):
    """--extra PATH[:LABEL]: ({phase: (steps, returns)} per run, label)."""
    path, _, label = spec.partition(":")
    dirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(path, "**", "events.out.tfevents.*"), recursive=True)})
    if not dirs:
        sys.exit(f"--extra {path}: no TensorBoard events file in or under it")
    runs = []
    for d in dirs:
        rows = read_run(d)
        runs.append({ph: tuple(np.array([r[k] for r in rows if r["phase"] == ph]) for k in ("step", "return"))
                     for ph in (1, 2)})
    return runs, label or os.path.basename(os.path.normpath(path))


def final_window(steps):
    """Evaluations in the last 10 % of Phase II (at least the last one)."""
    start, end = steps[0], steps[-1]
    mask = steps >= end - 0.1 * (end - start)
    mask[-1] = True
    return mask


def auc_and_final(steps, curves):
    return np.trapezoid(curves, steps, axis=1) / (steps[-1] - steps[0]), curves[:, final_window(steps)].mean(1)


def bootstrap_ci(diffs, rng, resamples=10_000):
    means = rng.choice(diffs, (resamples, len(diffs))).mean(1)
    return np.percentile(means, [2.5, 97.5])


def curve_array(rows, key="return"):
    """(steps, seeds x steps array) of rows already in (seed, step) order, one curve per seed."""
    seeds = sorted({r["seed"] for r in rows})
    steps = np.array([r["step"] for r in rows if r["seed"] == seeds[0]])
    return steps, np.array([[r.get(key, np.nan) for r in rows if r["seed"] == s] for s in seeds])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("fig")
    parser.add_argument("--extra", action="append", default=[], metavar="PATH[:LABEL]",
                        help="draw your own run folder(s) over the figure, with a table row")
    cli = parser.parse_args()
    fig_name = cli.fig
    root = os.path.join(OUT, "runs", fig_name)
    csv_path = os.path.join(OUT, "results", f"{fig_name}.csv")
    command, pieces, rows, started = None, [], [], 0
    if os.path.exists(csv_path):
        command, pieces, rows = read_csv(csv_path)
    if os.path.isdir(root):
        new_rows, started, new_command, wall = rows_from_runs(root)
        if command is not None and new_command != command:
            sys.exit(f"{root} holds runs of another command than {csv_path}:\n  {new_command}\n  {command}\n"
                     f"move one of them away to draw the other")
        command, new_seeds = new_command, {r["seed"] for r in new_rows}
        if new_seeds:  # the runs' seeds replace the committed ones, and so does their wall time
            rows = [r for r in rows if r["seed"] not in new_seeds] + new_rows
            pieces = [p for p in pieces if not p[0] <= new_seeds] + [(new_seeds, wall)]
        finished = len(new_seeds)
        if finished < started:
            print(f"{fig_name}: {finished} of {started} seeds have finished all of their runs; drawing those")
    if not rows:
        sys.exit(f"no curves for {fig_name}: neither a finished seed in {root} nor {csv_path}")
    os.makedirs(os.path.join(OUT, "results"), exist_ok=True)
    rows.sort(key=lambda r: (r["seed"], list(NAMES).index(r["variant"]) if r["variant"] in NAMES else -1, r["step"]))
    write_csv(csv_path, command, pieces, rows)
    _, pieces, rows = read_csv(csv_path)  # what follows sees exactly what a reader of the CSV sees

    seeds = sorted({r["seed"] for r in rows})
    n_seeds = f"{len(seeds)} seed" + "s" * (len(seeds) != 1)
    variants = [v for v in NAMES if any(r["variant"] == v for r in rows)]
    by_variant = {v: [r for r in rows if r["variant"] == v] for v in ["phase1", *variants]}
    fig, ax = plt.subplots(figsize=(6, 4))
    steps1, phase1 = curve_array(by_variant["phase1"])
    ax.plot(steps1, phase1.mean(0), color="black", lw=1.5, label="Phase I")
    ax.fill_between(steps1, phase1.mean(0) - phase1.std(0) / 2, phase1.mean(0) + phase1.std(0) / 2, color="black", alpha=0.15)
    stats = {}
    for v in variants:
        steps, curves = curve_array(by_variant[v])
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(steps, mean, color=COLOURS[v], lw=1.5, label=NAMES[v])
        ax.fill_between(steps, mean - std / 2, mean + std / 2, color=COLOURS[v], alpha=0.2)
        auc, final = auc_and_final(steps, curves)
        per_target = {k: np.nanmean(curves_k[:, final_window(steps)], axis=1) for k in TARGETS
                      if any(f"return_target{k}" in r for r in by_variant[v])
                      for curves_k in [curve_array(by_variant[v], f"return_target{k}")[1]]}
        early = steps <= steps[0] + 5000  # where the post-DVM drop happens, when it does
        stats[v] = dict(auc=auc, final=final, per_target=per_target, start=curves[:, 0], low=mean[early].min())
    extras = [read_extra(spec) for spec in cli.extra]
    for (runs, label), style in zip(extras, ("--", ":", "-.")):
        for ph in (1, 2):  # a run branched from a Phase I checkpoint has no Phase I curve of its own
            steps = [r[ph][0] for r in runs if len(r[ph][0])]
            if steps:
                curves = np.stack([r[ph][1] for r in runs if len(r[ph][0])])
                ax.plot(steps[0], curves.mean(0), color="tab:orange", ls=style, lw=1.5, label=label if ph == 2 else None)
                ax.fill_between(steps[0], curves.mean(0) - curves.std(0) / 2, curves.mean(0) + curves.std(0) / 2,
                                color="tab:orange", alpha=0.15)
    ax.axvline(steps1[-1], color="black", ls="--", lw=1)
    ax.text(steps1[-1], ax.get_ylim()[0], " DVM step", va="bottom", fontsize=8)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(f"{title(fig_name)} ({n_seeds})", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.join(OUT, "images"), exist_ok=True)
    fig.savefig(os.path.join(OUT, "images", f"{fig_name}.png"), dpi=110)

    rng = np.random.default_rng(0)
    wall = sum(w for _, w in pieces)
    wall_text = "?" if np.isnan(wall) else f"{wall / 60:.0f} min" + (f" in {len(pieces)} pieces" if len(pieces) > 1 else "")
    unfinished = f" (of {started} started; the others had not finished)" if started > len(seeds) else ""
    phase1_end = phase1[:, -1]
    team_ends = {k: curve_array(by_variant["phase1"], f"return_team{k}")[1][:, -1] for k in TEAMS
                 if f"return_team{k}" in by_variant["phase1"][0]}  # push box: team A on Task I, team B on Task II
    lines = [f"### {title(fig_name)}", "",
             f"{n_seeds}{unfinished}, wall time {wall_text}; per-seed curves in `results/{fig_name}.csv`. "
             f"![{fig_name}](images/{fig_name}.png)", "",
             f"End of Phase I: {phase1_end.mean():.2f} ± {phase1_end.std():.2f}"
             + "".join(f"; {TEAMS[k]} {x.mean():.2f} ± {x.std():.2f}" for k, x in team_ends.items()) + "."
             + (" Per seed (team A / team B): " + ", ".join(f"{s}: {a:.2f} / {b:.2f}" for s, a, b in
                                                           zip(seeds, team_ends[0], team_ends[1])) + "."
                if team_ends else ""), "",
             "| method | right after DVM | lowest, first 5k steps | Phase II AUC (mean return) | final return | "
             "DVM minus method, AUC (95 % CI) | DVM minus method, final (95 % CI) |",
             "|---|---|---|---|---|---|---|"]
    for v in variants:
        row = f"| {NAMES[v]} | {stats[v]['start'].mean():.2f} ± {stats[v]['start'].std():.2f} | {stats[v]['low']:.2f} | " \
              f"{stats[v]['auc'].mean():.2f} ± {stats[v]['auc'].std():.2f} | " \
              f"{stats[v]['final'].mean():.2f} ± {stats[v]['final'].std():.2f} |"
        if v != "dvm" and "dvm" in stats:
            for key in ("auc", "final"):
                diffs = stats["dvm"][key] - stats[v][key]
                lo, hi = bootstrap_ci(diffs, rng)
                row += f" {diffs.mean():+.2f} [{lo:+.2f}, {hi:+.2f}] |"
        else:
            row += " | |"
        lines.append(row)
    for runs, label in extras:
        auc, final = np.array([[x[0] for x in auc_and_final(r[2][0], r[2][1][None])] for r in runs]).T
        lines.append(f"| {label} (--extra, {len(runs)} runs) | | | {auc.mean():.2f} ± {auc.std():.2f} | "
                     f"{final.mean():.2f} ± {final.std():.2f} | | |")
    if any(stats[v]["per_target"] for v in variants):
        lines += ["", "| method | " + " | ".join(f"final, target {TARGETS[k]}" for k in sorted(stats[variants[0]]["per_target"])) + " |",
                  "|---|" + "---|" * len(stats[variants[0]]["per_target"])]
        for v in variants:
            lines.append(f"| {NAMES[v]} | " + " | ".join(f"{x.mean():.2f} ± {x.std():.2f}"
                                                       for x in stats[v]["per_target"].values()) + " |")
    with open(os.path.join(OUT, "results", f"{fig_name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
