"""How many DVM iterations does DVM need? The table and plot of benchmark/dvm_iterations.sh.

    python benchmark/dvm_iterations.py [--merge]
        -> benchmark/results/dvm_iterations.md, benchmark/images/dvm_iterations.png,
           benchmark/results/dvm_iterations_steps.csv (every run's DVM step: duration and losses at its end),
           benchmark/results/dvm_iterations_losses.csv (the 2048-iteration steps' losses against iterations)

Each part (a figure's settings: fig4a, fig4a_lr1e-3, fig4b, fig4c_lr1e-3) is a run.py "figure" named
dvm_iterations_PART with the variants dvm (the paper's 2048 iterations), dvm_it1024, dvm_it256 and dvm_it64, all from
one Phase I per seed; its Phase II curves are results/dvm_iterations_PART.csv, written by plot.py like any figure's.
The DVM step of each run (dvm/seconds, and dvm/kl_loss and dvm/vm_loss per iteration, from the run's TensorBoard file)
is merged into results/dvm_iterations_steps.csv: a run in runs/ replaces the committed row of the same part, seed and
variant, so parts finished in pieces add up as the figures do. The losses of the 2048-iteration steps against
iterations go the same way into results/dvm_iterations_losses.csv: they show where a shorter step stops on the
paper's loss curve. As for a figure, the merging takes --merge (MERGE=1) where results/ has those files: without it,
the runs in runs/ alone are a quick look, written to runs/dvm_iterations/quick_look/, and results/ is left alone.
Without runs, the committed files are redrawn. A line of those files that does not parse is one line of error.

Per part and iteration count: the DVM step's duration (one torch thread), the KL (Eq. 3) and value-matching (Eq. 6)
losses at the end of the step (mean over its last 5 % of iterations, at least one), the return right after the DVM
step, the Phase II AUC and final return (as in plot.py), and DVM(k) minus DVM(2048) with 95 % paired bootstrap
intervals over seeds (from 2 seeds). A count "cannot be told from 2048" where both intervals contain 0, and so do those
of every larger count; that verdict is given from 5 seeds on.
"""
import argparse
import csv
import io
import os
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot  # noqa: E402  (the figures' CSV reader and statistics: one definition of AUC, final return, interval)

OUT = plot.OUT
PARTS = {"fig4a": "Fig. 4a: MADDPG, spread, 2 agents, lr 0.01",
         "fig4a_lr1e-3": "Fig. 4a: MADDPG, spread, 2 agents, Phase II at lr 1e-3",
         "fig4b": "Fig. 4b: MADDPG, spread, 3 agents, lr 0.01",
         "fig4c_lr1e-3": "Fig. 4c: MADDPG, spread, 4 agents, Phase II at lr 1e-3"}
ITERATIONS = {"dvm": 2048, "dvm_it1024": 1024, "dvm_it256": 256, "dvm_it64": 64}
STEPS_CSV = os.path.join(OUT, "results", "dvm_iterations_steps.csv")
STEP_COLUMNS = ["part", "seed", "variant", "iterations", "seconds", "kl_loss", "vm_loss"]
LOSSES_CSV = os.path.join(OUT, "results", "dvm_iterations_losses.csv")
LOSS_COLUMNS = ["part", "seed", "iteration", "kl_loss", "vm_loss"]
CURVE_POINTS = [1, 2, 4, 8, 16] + list(range(32, 2049, 32))  # where the 2048-iteration loss curves are kept
TYPES = dict(part=str, seed=int, variant=str, iterations=int, iteration=int, seconds=float, kl_loss=float,
             vm_loss=float)  # (of the columns of the two files)
QUICK_LOOK = os.path.join(OUT, "runs", "dvm_iterations", "quick_look")  # without --merge, where results/ has its files


def part_csv(part):
    """The Phase II curves of a part, written by plot.py."""
    return os.path.join(OUT, "results", f"dvm_iterations_{part}.csv")


def loss_at(losses, k):
    """The loss of a DVM step stopped after k iterations: the mean over its last 5 % of iterations (at least one), so
    that a point of the 2048-iteration curve at k is measured as the end of a k-iteration step is."""
    return losses[k - max(1, k // 20):k].mean()


def step_of_run(run_dir):
    """The DVM step of one finished run: its duration, the KL and VM losses at its end, and its curve of losses
    against iterations at CURVE_POINTS ({iteration: {"kl_loss": ..., "vm_loss": ...}})."""
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    row, curve = dict(seconds=events.Scalars("dvm/seconds")[0].value), {}
    for name in ("kl", "vm"):
        losses = np.array([e.value for e in events.Scalars(f"dvm/{name}_loss")])
        row[f"{name}_loss"] = loss_at(losses, len(losses))
        for k in CURVE_POINTS[:np.searchsorted(CURVE_POINTS, len(losses), side="right")]:
            curve.setdefault(k, {})[f"{name}_loss"] = loss_at(losses, k)
    return row, curve


def read_table(path, columns):
    """The rows of results/dvm_iterations_steps.csv or _losses.csv, each value of its type (TYPES); a file that is not
    such a table, or a line of it that does not parse, is one line of error naming them."""
    rows = []
    for where, _, r in plot.read_table(path, columns, TYPES):
        if r["part"] not in PARTS or r.get("variant", "dvm") not in ITERATIONS:
            plot.fail(f"{where}: part {r['part']!r} or variant {r.get('variant')!r} is none of ours")
        rows.append(r)
    return rows


def read_steps(merge):
    """The DVM steps keyed by (part, seed, variant) and the 2048-iteration loss curves by (part, seed): those of every
    finished run in runs/, added to (merge) the committed rows of results/dvm_iterations_steps.csv and _losses.csv."""
    steps, curves = {}, {}
    if merge and os.path.exists(STEPS_CSV):
        for r in read_table(STEPS_CSV, STEP_COLUMNS):
            steps[r["part"], r["seed"], r["variant"]] = {k: r[k] for k in STEP_COLUMNS[3:]}
    if merge and os.path.exists(LOSSES_CSV):
        for r in read_table(LOSSES_CSV, LOSS_COLUMNS):
            curves.setdefault((r["part"], r["seed"]), {})[r["iteration"]] = {k: r[k] for k in LOSS_COLUMNS[3:]}
    for part in PARTS:
        root, csv_path = os.path.join(OUT, "runs", f"dvm_iterations_{part}"), part_csv(part)
        if os.path.exists(os.path.join(root, "command.txt")) and os.path.exists(csv_path):
            # as plot.py refuses to merge them into the curves, so here into the steps: nothing is written
            ran, command = open(os.path.join(root, "command.txt")).read().strip(), plot.read_csv(csv_path)[0]["command"]
            if ran != command:
                plot.fail(f"{root} holds runs of another command ({ran}) than {csv_path} ({command})")
        for seed, seed_dir in plot.seed_dirs(root).items():
            for variant in ITERATIONS:
                if os.path.exists(os.path.join(seed_dir, variant, "phase2.pt")):
                    row, curve = step_of_run(os.path.join(seed_dir, variant))
                    steps[part, seed, variant] = dict(iterations=ITERATIONS[variant], **row)
                    if variant == "dvm":
                        curves[part, seed] = curve
    return steps, curves


def write_steps(path, steps):
    f = io.StringIO(newline="")
    writer = csv.writer(f)
    writer.writerow(STEP_COLUMNS)
    for (part, seed, variant), r in sorted(steps.items(), key=lambda kv: (kv[0][0], kv[0][1], -ITERATIONS[kv[0][2]])):
        writer.writerow([part, seed, variant, int(r["iterations"]), f"{r['seconds']:.2f}", repr(float(r["kl_loss"])),
                         repr(float(r["vm_loss"]))])
    plot.write_atomically(path, f.getvalue())


def write_curves(path, curves):
    f = io.StringIO(newline="")
    writer = csv.writer(f)
    writer.writerow(LOSS_COLUMNS)
    for (part, seed), curve in sorted(curves.items()):
        for k, r in sorted(curve.items()):
            writer.writerow([part, seed, k, f"{r['kl_loss']:.6g}", f"{r['vm_loss']:.6g}"])
    plot.write_atomically(path, f.getvalue())


def write_study(name, lines, fig, merge, quick_look, csvs):
    """The last step of this study and of vm_permutations.py: NAME.md (lines, the picture's link appended), NAME.png
    (fig) and the CSVs ({file name: function writing it at a path}) into results/ and images/ (merge), or all into
    quick_look (a quick look of the runs alone); each file whole or as it was, a failure refused in one line. The
    table goes to stdout."""
    folder, images = (os.path.join(OUT, "results"), os.path.join(OUT, "images")) if merge else (quick_look, quick_look)
    lines.append(f"![{name}]({'images/' if merge else ''}{name}.png)")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    try:  # each file whole or as it was (a full disk, a read-only folder)
        for path in (folder, images):
            os.makedirs(path, exist_ok=True)
        for csv_name, write in csvs.items():
            write(os.path.join(folder, csv_name))
        plot.write_atomically(os.path.join(images, f"{name}.png"), png.getvalue())
        plot.write_atomically(os.path.join(folder, f"{name}.md"), "\n".join(lines) + "\n")
    except OSError as e:
        plot.fail(str(e) if e.strerror is None else f"cannot write in {folder} ({e.strerror})")
    print("\n".join(lines))
    if not merge:
        print(f"{name}: a quick look at the runs in {os.path.join(OUT, 'runs')}, in {quick_look}; results/ is left as "
              f"it was: run again with MERGE=1 ({name}.py --merge) to merge them into it")


def minus_reference(st, ref, n_seeds, rng):
    """A table row's last two cells, a setting's Phase II AUC and final return minus the reference's with 95 % paired
    bootstrap intervals, and where the setting stands: "behind" (an interval below 0), "ahead" (none below, one above),
    "level" (both contain 0), or None from one seed, which has no spread to resample: an interval would be a point.
    vm_permutations.py's table uses it too."""
    if n_seeds < 2:
        return " one seed | one seed |", None
    cells, bounds = "", []
    for key in ("auc", "final"):
        diffs = st[key] - ref[key]
        lo, hi = plot.bootstrap_ci(diffs, rng)
        cells += f" {plot.difference_text(diffs.mean(), lo, hi)} |"
        bounds.append((lo, hi))
    if any(hi < 0 for lo, hi in bounds):
        return cells, "behind"
    return cells, "ahead" if any(lo > 0 for lo, hi in bounds) else "level"


def part_curves(root, csv_path, merge):
    """A part's Phase II curves, checked: those of its committed csv_path (merge), or of its finished runs in root alone
    (a quick look); None where there are none. vm_permutations.py reads its parts' curves here too."""
    source = csv_path if merge else root
    if not os.path.exists(source):
        return None
    rows = plot.read_csv(source)[1] if merge else plot.rows_from_runs(root)[1]
    if not rows:
        return None
    plot.check_curves(rows, lambda seed: source)
    return rows


def part_stats(part, steps, merge):
    """Per variant: Phase II curves and their numbers, over the seeds that have every variant and its DVM step. The
    curves of results/dvm_iterations_PART.csv (merge), or of the part's finished runs alone (a quick look)."""
    rows = part_curves(os.path.join(OUT, "runs", f"dvm_iterations_{part}"), part_csv(part), merge)
    return None if rows is None else stats_over_seeds(part, rows, steps, ITERATIONS, ("seconds", "kl_loss", "vm_loss"))


def stats_over_seeds(part, rows, steps, variants, keys):
    """(seeds, {variant: Phase II numbers and the DVM step's `keys`}) over the seeds of the curves `rows` that have
    every variant and its DVM step in `steps`, or None; vm_permutations.py's table takes its numbers from here too."""
    seeds = sorted(s for s in {r["seed"] for r in rows}
                   if all((part, s, v) in steps and any(r["seed"] == s and r["variant"] == v for r in rows)
                          for v in variants))
    if not seeds:
        return None
    stats = {}
    for variant in variants:
        mine = sorted((r for r in rows if r["variant"] == variant and r["seed"] in seeds),
                      key=lambda r: (r["seed"], r["step"]))
        stats[variant] = plot.variant_stats(mine)
        for key in keys:
            stats[variant][key] = np.array([steps[part, s, variant][key] for s in seeds])
    return seeds, stats


def mean_std(x, digits=2):
    return f"{x.mean():.{digits}f} ± {x.std():.{digits}f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--merge", action="store_true", default=os.environ.get("MERGE") == "1",
                        help="merge the runs into results/ where it has the files (env MERGE=1); without it, a quick "
                             f"look of the runs alone goes into {QUICK_LOOK}")
    merge = parser.parse_args().merge or not os.path.exists(STEPS_CSV)
    steps, curves = read_steps(merge)
    if not steps and not merge:  # no finished run in runs/: the committed results alone, redrawn
        merge = True
        steps, curves = read_steps(merge)
    parts = {part: s for part in PARTS if (s := part_stats(part, steps, merge)) is not None}
    if not parts:
        sys.exit("no finished part: run benchmark/dvm_iterations.sh first")
    rng = np.random.default_rng(0)
    lines = ["### How many DVM iterations? (`bash benchmark/dvm_iterations.sh`)", ""]
    if not merge:
        lines[0] += ": a quick look at the runs in `runs/`, not in `results/`"
    # top row: Phase II; below, the losses of the 2048-iteration step against iterations, the shorter steps' ends
    fig, axes = plt.subplots(3, len(parts), figsize=(5 * len(parts), 10), squeeze=False)
    for (ax, ax_vm, ax_kl), (part, (seeds, stats)) in zip(axes.T, parts.items()):
        n_seeds = f"{len(seeds)} seed" + "s" * (len(seeds) != 1)
        lines += [(f"**{PARTS[part]}**, {n_seeds}; Phase II curves in `results/dvm_iterations_{part}.csv`, DVM steps "
                   "in `results/dvm_iterations_steps.csv`, losses against iterations in "
                   "`results/dvm_iterations_losses.csv`." if merge else f"**{PARTS[part]}**, {n_seeds} "
                   f"({' '.join(map(str, seeds))}), the runs in `runs/dvm_iterations_{part}/`."), "",
                  "| iterations | DVM step (s) | KL loss at the end | VM loss at the end | right after DVM | "
                  "Phase II AUC | final return | minus 2048, AUC (95 % CI) | minus 2048, final (95 % CI) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        smallest, chain = 2048, True  # the smallest count that, with every larger one, cannot be told from 2048
        for variant, k in ITERATIONS.items():
            st = stats[variant]
            row = (f"| {k} | {mean_std(st['seconds'], 1)} | {mean_std(st['kl_loss'], 4)} | {mean_std(st['vm_loss'], 3)} | "
                   f"{mean_std(st['start'])} | {mean_std(st['auc'])} | {mean_std(st['final'])} |")
            if variant == "dvm":
                row += " | |"
            else:
                cells, side = minus_reference(st, stats["dvm"], len(seeds), rng)
                row += cells
                if side is not None:
                    chain &= side == "level"
                    smallest = k if chain else smallest
            lines.append(row)
            plot.band(ax, st["steps"], st["curves"], plot.COLOURS[variant], label=f"{k} iterations")
            for loss_ax, key in ((ax_vm, "vm_loss"), (ax_kl, "kl_loss")):
                loss_ax.plot(k, st[key].mean(), "o", color=plot.COLOURS[variant], label=f"end of the {k}-iteration step")
        points = sorted(set.intersection(*(set(curves.get((part, s), {})) for s in seeds)))
        for loss_ax, key, name in ((ax_vm, "vm_loss", "value matching, Eq. (6)"), (ax_kl, "kl_loss", "KL, Eq. (3)")):
            if points:
                values = np.array([[curves[part, s][k][key] for k in points] for s in seeds])
                plot.band(loss_ax, points, values, plot.COLOURS["dvm"], lw=1.2, label="2048-iteration step")
            loss_ax.set_xscale("log", base=2)
            loss_ax.set_yscale("log")
            loss_ax.set_xlabel("DVM iteration")
            loss_ax.set_ylabel(f"{name} loss")
        ax_vm.legend(fontsize=7, loc="upper right")
        if len(seeds) < 5:
            verdict = f"{n_seeds} so far: too few for a verdict (it takes 5)."
        elif smallest == 2048:
            verdict = ("No count below 2048 gives a Phase II that cannot be told from 2048's: of the counts tried, only "
                       "the paper's 2048 will do.")
        else:
            saved = stats["dvm"]["seconds"].mean() - stats[f"dvm_it{smallest}"]["seconds"].mean()
            verdict = (f"Smallest count whose Phase II cannot be told from 2048's (both intervals contain 0, and so do "
                       f"those of every larger count): **{smallest}**; it saves {saved:.1f} s per run, "
                       f"{100 * saved / stats['dvm']['seconds'].mean():.0f} % of the 2048-iteration step.")
        lines += ["", verdict, ""]
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
        ax.set_title(f"{PARTS[part]} ({n_seeds})", fontsize=9)
        ax.set_xlabel("environment steps (Phase II)")
        ax.set_ylabel("evaluation return")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    write_study("dvm_iterations", lines, fig, merge, QUICK_LOOK,
                {"dvm_iterations_steps.csv": lambda path: write_steps(path, steps),
                 "dvm_iterations_losses.csv": lambda path: write_curves(path, curves)})
