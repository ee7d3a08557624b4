"""Beyond the paper: value matching with K sampled permutations against the exact sum of Eq. (6). The table and plot of
benchmark/vm_permutations.sh.

    python benchmark/vm_permutations.py [--merge]
        -> benchmark/results/vm_permutations.md, benchmark/images/vm_permutations.png,
           benchmark/results/vm_permutations_steps.csv (every run's DVM step: duration, losses at its end, and the
           exact Eq. (6) loss of its matched critic on held-out transitions)

Each part (fig4c_lr1e-3: 4 agents; fig4b_lr1e-3: 3 agents; spread5_lr1e-3: 5 agents, beyond the paper's spread) is a
run.py "figure" named vm_permutations_PART whose variants (dvm: the exact sum; dvm_kK: K sampled permutations per
sample) start from one Phase I per seed (run.py --phase1-from); its Phase II curves are
results/vm_permutations_PART.csv, written by plot.py like any figure's.

The sampled steps minimize an estimate of Eq. (6), so their training losses are not the quantity to compare. Every
run's matched critic Q0 (its dvm.pt) is therefore scored the same way: the exact Eq. (6) loss, the sum over all n!
permutations, against each source critic of the seed's Phase I (its phase1.pt), averaged over the sources as the
DVM step logs it, on held-out transitions: 128 fresh Phase I episodes of the Phase I team (3,200 joint samples,
never in the buffer the DVM step sampled), epsilon-greedy with each world's epsilon drawn from Phase I's schedule as
the buffer's rows were collected, the same episodes for every variant of a seed.

The finished runs in runs/ go into results/ as a figure's pieces do (plot.py): a run replaces the committed row of
the same part, seed and variant in results/vm_permutations_steps.csv, so parts finished in pieces add up. Where that
file has rows of a part whose runs are in runs/, this merging takes --merge (MERGE=1): without it, the runs in runs/
alone (their DVM steps and their own Phase II curves) are a quick look, written to runs/vm_permutations/quick_look/
(the table, the plot and the steps' CSV), and results/ is left alone. A part's first piece (no committed rows yet) is
written into results/ directly. Without runs, the committed files are redrawn. Runs of another command than the
committed curves' are refused, and nothing is written.

Per part and setting: the DVM step's duration (one torch thread), the training estimate and the held-out exact loss
at its end, the return right after the DVM step, the Phase II AUC and final return (as in plot.py), and setting minus
exact sum with 95 % paired bootstrap intervals over seeds (from 2 seeds). The verdict, given from 5 seeds, is the
smallest K at 2048 iterations that is not behind the exact sum (no interval below 0), nor is any larger K: level with
it where both intervals contain 0, ahead where one is above 0. A K that beats the exact sum is enough for it too.
"""
import argparse
import csv
import glob
import io
import itertools
import math
import os
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import dvm_iterations  # noqa: E402  (a run's DVM step from its TensorBoard file; mean ± std)
import maddpg_dvm  # noqa: E402  (the networks and the Eq. (6) loss scored here)
import particle_envs  # noqa: E402
import plot  # noqa: E402  (the figures' CSV reader and statistics: one definition of AUC, final return, interval)

OUT = plot.OUT
# part -> (title, agents, {variant: (sampled permutations K, 0 = all n!; DVM iterations)})
PARTS = {"fig4c_lr1e-3": ("4 agents (24 permutations), Fig. 4c's Phase I, Phase II at lr 1e-3", 4,
                          {"dvm": (0, 2048), "dvm_k1": (1, 2048), "dvm_k4": (4, 2048), "dvm_k8": (8, 2048),
                           "dvm_k4_it8192": (4, 8192)}),
         "fig4b_lr1e-3": ("3 agents (6 permutations), Fig. 4b's Phase I, Phase II at lr 1e-3", 3,
                          {"dvm": (0, 2048), "dvm_k1": (1, 2048), "dvm_k2": (2, 2048)}),
         "spread5_lr1e-3": ("5 agents (120 permutations), its own Phase I, Phase II at lr 1e-3", 5,
                            {"dvm": (0, 2048), "dvm_k4": (4, 2048), "dvm_k8": (8, 2048)})}
STEPS_CSV = os.path.join(OUT, "results", "vm_permutations_steps.csv")
STEP_COLUMNS = ["part", "seed", "variant", "permutations", "iterations", "seconds", "kl_loss", "vm_loss",
                "vm_loss_exact"]
HELD_OUT_WORLDS = 128  # held-out Phase I episodes per seed
QUICK_LOOK = os.path.join(OUT, "runs", "vm_permutations", "quick_look")  # without --merge, where results/ has the parts


def part_csv(part):
    """The Phase II curves of a part, written by plot.py."""
    return os.path.join(OUT, "results", f"vm_permutations_{part}.csv")


@torch.no_grad()
def held_out_exact_loss(phase1_path, dvm_path, seed):
    """The exact Eq. (6) loss of dvm.pt's matched critic Q0 against every source critic of phase1.pt, averaged over the
    sources, on held-out transitions of fresh Phase I episodes (see the module's docstring)."""
    phase1 = plot.read_checkpoint(phase1_path, ("maddpg_dvm",), ("phase1",), "vm_permutations.py")
    dvm = plot.read_checkpoint(dvm_path, ("maddpg_dvm",), ("dvm",), "vm_permutations.py")
    args = maddpg_dvm.Args(**{k: v for k, v in phase1["config"].items() if k in maddpg_dvm.Args.__dataclass_fields__})
    n = args.n_agents
    env = particle_envs.make("spread", num_envs=HELD_OUT_WORLDS, n_agents=n, phase=1, horizon=args.horizon)
    obs_dim = env.single_observation_space.shape[0]
    actors = torch.nn.ModuleList([maddpg_dvm.Actor(obs_dim, 5, args.hidden_dim) for _ in range(n)])
    critics = torch.nn.ModuleList([maddpg_dvm.Critic(n, obs_dim, 5, args.hidden_dim) for _ in range(n)])
    actors.load_state_dict(phase1["teams"][0]["actors"])
    critics.load_state_dict(phase1["teams"][0]["critics"])
    q0 = maddpg_dvm.Critic(n, obs_dim, 5, args.hidden_dim)
    q0.load_state_dict(dvm["students"]["Q0"])

    rng = np.random.default_rng(2**20 + seed)  # not a seed of the run's own worlds or exploration
    # each world's epsilon at a uniformly drawn point of Phase I's schedule, as the buffer's rows were collected
    progress = rng.random(HELD_OUT_WORLDS) * args.phase1_steps / max(1.0, args.exploration_fraction * args.phase1_steps)
    epsilon = args.start_e + (args.end_e - args.start_e) * np.minimum(1.0, progress)
    obs, samples = env.reset(seed=2**20 + seed), []
    for _ in range(args.horizon):
        greedy = maddpg_dvm.select_actions(actors, obs, 0.0, None, "cpu")
        actions = np.where(rng.random(greedy.shape) < epsilon[:, None], rng.integers(0, 5, greedy.shape), greedy)
        samples.append((obs, actions))
        obs = env.step(actions)[0]
    obs = torch.as_tensor(np.concatenate([o for o, _ in samples]))
    actions = F.one_hot(torch.as_tensor(np.concatenate([a for _, a in samples])), 5).float()
    perms = torch.tensor(list(itertools.permutations(range(n))))
    losses = [maddpg_dvm.value_matching_loss(q0, obs, actions, critic(obs, actions), perms, len(perms))
              for critic in critics]  # Eq. (6), every source
    return float(torch.stack(losses).mean())


def read_steps(merge):
    """(steps, merged): the DVM steps keyed by (part, seed, variant) and whether they go into results/. Those of every
    finished run in runs/, scored here, added to the committed rows of results/vm_permutations_steps.csv (a run
    replaces the row of its part, seed and variant) if `merge` or if no part of the runs has committed rows yet (its
    first piece); else the runs' alone, a quick look. Without runs, the committed rows."""
    committed, ran = {}, {}
    if os.path.exists(STEPS_CSV):
        with open(STEPS_CSV) as f:
            for r in csv.DictReader(f):
                committed[r["part"], int(r["seed"]), r["variant"]] = {k: float(r[k]) for k in STEP_COLUMNS[3:]}
    for part, (_, _, variants) in PARTS.items():
        root, csv_path = os.path.join(OUT, "runs", f"vm_permutations_{part}"), part_csv(part)
        if os.path.exists(os.path.join(root, "command.txt")) and os.path.exists(csv_path):
            # as plot.py refuses to merge them into the curves, so here into the steps: nothing is written
            ran_command = open(os.path.join(root, "command.txt")).read().strip()
            command = plot.read_csv(csv_path)[0]["command"]
            if ran_command != command:
                plot.fail(f"{root} holds runs of another command ({ran_command}) than {csv_path} ({command})")
        for done in sorted(glob.glob(os.path.join(root, "seed*", "*", "phase2.pt"))):
            run_dir = os.path.dirname(done)
            variant, seed = os.path.basename(run_dir), int(os.path.basename(os.path.dirname(run_dir))[4:])
            if variant not in variants:
                continue
            phase1_from = open(os.path.join(root, "phase1_from.txt")).read().strip()
            phase1 = glob.glob(os.path.join(OUT, "runs", phase1_from, f"seed{seed}", "*", "phase1.pt"))
            if len(phase1) != 1:
                plot.fail(f"{run_dir}: the Phase I checkpoint of seed {seed} in runs/{phase1_from} is gone (found "
                          f"{len(phase1)}); it scores the matched critic")
            row, _ = dvm_iterations.step_of_run(run_dir)
            exact = held_out_exact_loss(phase1[0], os.path.join(run_dir, "dvm.pt"), seed)
            k, iterations = variants[variant]
            ran[part, seed, variant] = dict(permutations=k, iterations=iterations, vm_loss_exact=exact, **row)
            print(f"{part} seed {seed} {variant}: DVM step {row['seconds']:.0f} s, exact Eq. (6) loss held out "
                  f"{exact:.4g} (training estimate {row['vm_loss']:.4g})", flush=True)
    merge = merge or not {part for part, _, _ in ran} & {part for part, _, _ in committed}
    return (committed | ran if merge else ran), merge


def write_steps(path, steps):
    """The DVM steps as results/vm_permutations_steps.csv has them, each part's variants in PARTS' order."""
    f = io.StringIO(newline="")
    writer = csv.writer(f)
    writer.writerow(STEP_COLUMNS)
    for (part, seed, variant), r in sorted(steps.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                          list(PARTS[kv[0][0]][2]).index(kv[0][2]))):
        writer.writerow([part, seed, variant, int(r["permutations"]), int(r["iterations"]), f"{r['seconds']:.2f}",
                         repr(float(r["kl_loss"])), repr(float(r["vm_loss"])), repr(float(r["vm_loss_exact"]))])
    plot.write_atomically(path, f.getvalue())


def part_stats(part, steps, merge):
    """Per variant: Phase II curves and their numbers, over the seeds that have every variant and its DVM step. The
    curves of results/vm_permutations_PART.csv (merge), or of the part's finished runs alone (a quick look)."""
    rows = dvm_iterations.part_curves(os.path.join(OUT, "runs", f"vm_permutations_{part}"), part_csv(part), merge)
    return None if rows is None else dvm_iterations.stats_over_seeds(part, rows, steps, PARTS[part][2],
                                                                     ("seconds", "vm_loss", "vm_loss_exact"))


def setting(k, iterations, n_perms):
    text = f"all {n_perms} (exact)" if k == 0 else f"{k} of {n_perms}"
    return text + (f", {iterations} iterations" if iterations != 2048 else "")


def smallest_not_behind(sides):
    """The smallest K that, with every larger K tried, is not behind the exact sum; None where the largest is."""
    smallest = None
    for k in sorted(sides, reverse=True):
        if sides[k] == "behind":
            break
        smallest = k
    return smallest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--merge", action="store_true", default=os.environ.get("MERGE") == "1",
                        help="merge the runs into results/ where it has their parts' DVM steps (env MERGE=1); without "
                             f"it, a quick look of the runs alone goes into {QUICK_LOOK}")
    steps, merge = read_steps(parser.parse_args().merge)
    parts = {part: s for part in PARTS if (s := part_stats(part, steps, merge)) is not None}
    if not parts:
        sys.exit("no finished part: run benchmark/vm_permutations.sh first")
    rng = np.random.default_rng(0)
    lines = ["### Sampled permutations in value matching (`bash benchmark/vm_permutations.sh`, beyond the paper)", ""]
    if not merge:
        lines[0] += ": a quick look at the runs in `runs/`, not in `results/`"
    fig, axes = plt.subplots(2, len(parts), figsize=(5.5 * len(parts), 8), squeeze=False)
    for (ax, ax_loss), (part, (seeds, stats)) in zip(axes.T, parts.items()):
        title, n_agents, variants = PARTS[part]
        n_perms = math.factorial(n_agents)
        n_seeds = f"{len(seeds)} seed" + "s" * (len(seeds) != 1)
        lines += [(f"**{title}**, {n_seeds}; Phase II curves in `results/vm_permutations_{part}.csv`, DVM steps in "
                   "`results/vm_permutations_steps.csv`." if merge else f"**{title}**, {n_seeds} "
                   f"({' '.join(map(str, seeds))}), the runs in `runs/vm_permutations_{part}/`."), "",
                  "| permutations per sample | DVM step (s) | VM loss, training estimate | exact Eq. (6) loss, held out | "
                  "right after DVM | Phase II AUC | final return | minus exact, AUC (95 % CI) | "
                  "minus exact, final (95 % CI) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        sides = {}  # K at 2048 iterations -> "behind", "level" or "ahead" of the exact sum
        for variant, (k, iterations) in variants.items():
            st = stats[variant]
            row = (f"| {setting(k, iterations, n_perms)} | {dvm_iterations.mean_std(st['seconds'], 1)} | "
                   f"{dvm_iterations.mean_std(st['vm_loss'], 3)} | {dvm_iterations.mean_std(st['vm_loss_exact'], 3)} | "
                   f"{dvm_iterations.mean_std(st['start'])} | {dvm_iterations.mean_std(st['auc'])} | "
                   f"{dvm_iterations.mean_std(st['final'])} |")
            if variant == "dvm":
                row += " | |"
            else:
                cells, side = dvm_iterations.minus_reference(st, stats["dvm"], len(seeds), rng)
                row += cells
                if side is not None and iterations == 2048:
                    sides[k] = side
            lines.append(row)
            label = setting(k, iterations, n_perms)
            plot.band(ax, st["steps"], st["curves"], plot.COLOURS[variant], label=label)
            ax_loss.errorbar(st["seconds"].mean(), st["vm_loss_exact"].mean(), xerr=st["seconds"].std(),
                             yerr=st["vm_loss_exact"].std(), fmt="o", color=plot.COLOURS[variant], label=label)
        smallest = smallest_not_behind(sides)
        if len(seeds) < 5:
            verdict = f"{n_seeds} so far: too few for a verdict (it takes 5)."
        elif smallest is None:
            verdict = (f"No K tried at 2048 iterations keeps up with the exact sum over all {n_perms} permutations: the "
                       "largest falls behind it (an interval below 0).")
        else:
            exact, sampled = stats["dvm"]["seconds"].mean(), stats[f"dvm_k{smallest}"]["seconds"].mean()
            where = ("level with it (both intervals contain 0)" if sides[smallest] == "level" else
                     "ahead of it (an interval above 0, none below)")
            verdict = (f"Smallest K not behind the exact sum (no interval below 0, nor for any larger K): "
                       f"**{smallest} of {n_perms}**, {where}; its DVM step takes {sampled:.0f} s, "
                       f"{100 * sampled / exact:.0f} % of the exact step's {exact:.0f} s.")
        lines += ["", verdict, ""]
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
        ax.set_title(f"{title} ({n_seeds})", fontsize=9)
        ax.set_xlabel("environment steps (Phase II)")
        ax.set_ylabel("evaluation return")
        ax.legend(fontsize=7, loc="lower right")
        ax_loss.set_yscale("log")
        ax_loss.set_xlabel("DVM step (s, one thread)")
        ax_loss.set_ylabel("exact Eq. (6) loss of Q0, held out")
        ax_loss.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    dvm_iterations.write_study("vm_permutations", lines, fig, merge, QUICK_LOOK,
                               {"vm_permutations_steps.csv": lambda path: write_steps(path, steps)})
