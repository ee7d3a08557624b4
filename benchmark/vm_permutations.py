"""Beyond the paper: value matching with K sampled permutations against the exact sum of Eq. (6). The table and plot of
benchmark/vm_permutations.sh.

    python benchmark/vm_permutations.py [--merge --parts PART ... --seeds SEEDS]
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

The runs scored are those of --parts and --seeds (vm_permutations.sh passes PARTS and SEEDS; by default every part
and seed in runs/), of the seeds that have finished every variant of their part (the others are named and left out,
as plot.py leaves out a seed that has not finished). They go into results/ as a figure's pieces do (plot.py): a run
replaces the committed row of the same part, seed and variant in results/vm_permutations_steps.csv (a re-run whose
losses differ is named), so parts finished in pieces add up, and the rows of every other part and seed are written
back byte for byte: a merge touches only what it was asked to merge, so it takes --parts and --seeds. Where that file
has rows of a part scored, this merging takes --merge (MERGE=1): without it, the runs scored alone (their DVM steps
and their own Phase II curves) are a quick look, written to runs/vm_permutations/quick_look/ (the table, the plot and
the steps' CSV), and results/ is left alone. A part's first piece (no committed rows yet) is written into results/
directly. Without runs, the committed files are redrawn.

What a table says of its runs (the agents and permutations, the rate, each variant's K and iterations) comes from the
runs' own configuration (each run's dvm.pt; for committed curves, their command as maddpg_dvm.py reads it, and the
K and iterations of results/vm_permutations_steps.csv), not from the part's name. Refused in one line, `error: ...`,
with nothing written: runs of another command or Phase I than the committed curves', runs of a part that disagree
among themselves, a part run without --phase1-from (its runs are scored against that Phase I), a steps CSV that does
not parse (a missing column, a number that is not one or not finite).

Per part and setting: the DVM step's duration (one torch thread), the training estimate and the held-out exact loss
at its end, the return right after the DVM step, the Phase II AUC and final return (as in plot.py), and setting minus
exact sum with 95 % paired bootstrap intervals over seeds (from 2 seeds). The verdict, given from 5 seeds, is the
smallest K at the exact sum's iterations (2048) that is not behind the exact sum (no interval below 0), nor is any
larger K: level with it where both intervals contain 0, ahead where one is above 0. A K that beats the exact sum is
enough for it too.
"""
import argparse
import csv
import dataclasses
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
from run import parse_seeds  # noqa: E402  (SEEDS, as the runs were given it)

OUT = plot.OUT
# part -> (its Phase I as the title names it, the settings of the runs it names, the variants: dvm, the exact sum, and
# those with K sampled permutations, in the table's order). What the runs ran (agents, rate, each variant's K and
# iterations) is read from them: a part run with other flags (vm_permutations.sh ... --n-agents 2) is titled as it ran
PARTS = {"fig4c_lr1e-3": ("Fig. 4c's Phase I", dict(n_agents=4, phase1_steps=40000),
                          ["dvm", "dvm_k1", "dvm_k4", "dvm_k8", "dvm_k4_it8192"]),
         "fig4b_lr1e-3": ("Fig. 4b's Phase I", dict(n_agents=3, phase1_steps=30000), ["dvm", "dvm_k1", "dvm_k2"]),
         "spread5_lr1e-3": ("its own Phase I", dict(n_agents=5, phase1_steps=60000), ["dvm", "dvm_k4", "dvm_k8"])}
PAPER_ITERATIONS = 2048  # a setting's label names its iterations where they are not the paper's
STEPS_CSV = os.path.join(OUT, "results", "vm_permutations_steps.csv")
STEP_COLUMNS = ["part", "seed", "variant", "permutations", "iterations", "seconds", "kl_loss", "vm_loss",
                "vm_loss_exact"]
TYPES = dict(part=str, seed=int, variant=str, permutations=int, iterations=int, seconds=float, kl_loss=float,
             vm_loss=float, vm_loss_exact=float)  # (of STEP_COLUMNS)
FIELDS = maddpg_dvm.Args.__dataclass_fields__
# the settings every run of a part shares: not a run's own (its seed, folder, threads: plot.FREE_SETTINGS, with the
# method) nor what its variant sets (K, iterations)
SHARED = [key for key in FIELDS if key not in plot.FREE_SETTINGS | {"vm_permutations", "dvm_iterations"}]
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


def read_steps_csv(path):
    """{(part, seed, variant): row} of results/vm_permutations_steps.csv, each value of its type and the line's fields
    kept (a row that is not merged over is written back as it was); a file that is not such a table, or a line of it
    that does not parse, is one line of error naming them."""
    rows = {}
    for where, fields, r in plot.read_table(path, STEP_COLUMNS, TYPES):
        if r["part"] not in PARTS or r["variant"] not in PARTS[r["part"]][2]:
            plot.fail(f"{where}: part {r['part']!r} or variant {r['variant']!r} is none of ours")
        key = r.pop("part"), r.pop("seed"), r.pop("variant")
        if key in rows:
            plot.fail(f"{where}: a second row of part {key[0]}, seed {key[1]}, {key[2]}")
        rows[key] = dict(r, fields=fields)
    return rows


def run_config(run_dir):
    """A finished run's configuration, as its DVM step ran (its dvm.pt), every setting of maddpg_dvm.Args (one that
    an older checkpoint lacks had its default then)."""
    config = plot.read_checkpoint(os.path.join(run_dir, "dvm.pt"), ("maddpg_dvm",), ("dvm",), "vm_permutations.py")
    return dataclasses.asdict(maddpg_dvm.Args(**{k: v for k, v in config["config"].items() if k in FIELDS}))


def command_config(csv_path):
    """The configuration of a part's committed curves: their command, as maddpg_dvm.py reads it."""
    _, args = plot.script_args(plot.read_csv(csv_path)[0]["command"], csv_path)
    return dataclasses.asdict(args)


def part_config(part, configs):
    """The settings the runs of a part share ({where: configuration}, of each run or the committed curves' command),
    refused in one line where two differ (the table would average two configurations under one title)."""
    shared = {}
    for where, config in configs.items():
        for key in SHARED:
            value, first = shared.setdefault(key, (config[key], where))
            if config[key] != value:
                plot.fail(f"the runs of part {part} disagree: {key} {value} in {first}, {config[key]} in {where}")
    return {key: value for key, (value, _) in shared.items()}


def finished_seeds(part, root, seeds):
    """The seeds of `seeds` (None: every one in root) whose runs of every variant of the part have finished; the
    others are named and left out, as plot.py leaves out a seed that has not finished all of its runs."""
    found = plot.seed_dirs(root)
    variants = PARTS[part][2]
    done = [s for s in (found if seeds is None else seeds)
            if s in found and all(os.path.exists(os.path.join(found[s], v, "phase2.pt")) for v in variants)]
    left = [s for s in (found if seeds is None else seeds) if s not in done]
    if left:
        print(f"vm_permutations_{part}: seed(s) {' '.join(map(str, left))} have not finished every variant "
              f"({', '.join(variants)}): left out")
    return done


def read_steps(merge, parts, seeds):
    """(steps, merged, configs): the DVM steps keyed by (part, seed, variant), whether they go into results/, and the
    configuration of each part's runs scored ({part: {run folder: config}}). Those of the finished runs of `parts` and
    `seeds` in runs/, scored here, added to the committed rows of results/vm_permutations_steps.csv (a run replaces
    the row of its part, seed and variant; every other row stays) if `merge` or if no part scored has committed rows
    yet (its first piece); else the runs' alone, a quick look. Without runs, the committed rows. Every check comes
    before the scoring, which takes minutes, and nothing is written here."""
    committed = read_steps_csv(STEPS_CSV) if os.path.exists(STEPS_CSV) else {}
    todo, configs = [], {}  # (part, seed, variant, run folder, its Phase I checkpoint) to score
    for part in parts:
        root, csv_path = os.path.join(OUT, "runs", f"vm_permutations_{part}"), part_csv(part)
        if not os.path.isdir(root):
            continue
        done = finished_seeds(part, root, seeds)
        source_file = os.path.join(root, "phase1_from.txt")
        if done and not os.path.exists(source_file):  # (run.py writes it for --phase1-from, as vm_permutations.sh does)
            plot.fail(f"{root} has no phase1_from.txt: its runs did not start from a Phase I part (run.py "
                      "--phase1-from), whose checkpoints score their matched critics; run the part with "
                      "benchmark/vm_permutations.sh")
        phase1_from = open(source_file).read().strip() if done else None
        if done and os.path.exists(os.path.join(root, "command.txt")) and os.path.exists(csv_path):
            # as plot.py refuses to merge them into the curves, so here into the steps: nothing is written
            ran_command, header = open(os.path.join(root, "command.txt")).read().strip(), plot.read_csv(csv_path)[0]
            if (ran_command, phase1_from) != (header["command"], header["phase1_from"] or phase1_from):
                plot.fail(f"{root} holds runs of another command or Phase I ({ran_command}; Phase I from "
                          f"{phase1_from}) than {csv_path} ({header['command']}; Phase I from {header['phase1_from']})")
        for seed in done:
            phase1 = glob.glob(os.path.join(OUT, "runs", phase1_from, f"seed{seed}", "*", "phase1.pt"))
            if len(phase1) != 1:
                plot.fail(f"{root}/seed{seed}: the Phase I checkpoint of seed {seed} in runs/{phase1_from} is gone "
                          f"(found {len(phase1)}); it scores the matched critics")
            for variant in PARTS[part][2]:
                run_dir = os.path.join(root, f"seed{seed}", variant)
                configs.setdefault(part, {})[run_dir] = run_config(run_dir)
                todo.append((part, seed, variant, run_dir, phase1[0]))
        part_config(part, configs.get(part, {}))
    ran = {}
    for part, seed, variant, run_dir, phase1 in todo:
        row, _ = dvm_iterations.step_of_run(run_dir)
        exact = held_out_exact_loss(phase1, os.path.join(run_dir, "dvm.pt"), seed)
        config = configs[part][run_dir]  # (the K and iterations it ran, not its variant's name)
        r = dict(row, permutations=config["vm_permutations"], iterations=config["dvm_iterations"],
                 vm_loss_exact=exact)
        r["fields"] = [part, seed, variant, int(r["permutations"]), int(r["iterations"]), f"{r['seconds']:.2f}",
                       *(repr(float(r[k])) for k in ("kl_loss", "vm_loss", "vm_loss_exact"))]
        ran[part, seed, variant] = r
        print(f"{part} seed {seed} {variant}: DVM step {row['seconds']:.0f} s, exact Eq. (6) loss held out "
              f"{exact:.4g} (training estimate {row['vm_loss']:.4g})", flush=True)
    merge = merge or not {part for part, _, _ in ran} & {part for part, _, _ in committed}
    if merge:  # as plot.py names a re-run seed whose curve differs from its committed one
        changed = [f"{part} seed {seed} {variant}" for (part, seed, variant) in sorted(ran.keys() & committed.keys())
                   if any(ran[part, seed, variant][k] != committed[part, seed, variant][k]
                          for k in ("permutations", "iterations", "kl_loss", "vm_loss", "vm_loss_exact"))]
        if changed:
            print(f"vm_permutations: re-run DVM steps whose losses differ from their committed ones in {STEPS_CSV}, "
                  f"now replaced: {'; '.join(changed)}")
    return (committed | ran if merge else ran), merge, configs


def write_steps(path, steps):
    """The DVM steps as results/vm_permutations_steps.csv has them, each part's variants in PARTS' order; each row's
    fields as read or as scored, so that the rows not merged over stay byte for byte."""
    f = io.StringIO(newline="")
    writer = csv.writer(f)
    writer.writerow(STEP_COLUMNS)
    for _, r in sorted(steps.items(), key=lambda kv: (kv[0][0], kv[0][1], PARTS[kv[0][0]][2].index(kv[0][2]))):
        writer.writerow(r["fields"])
    plot.write_atomically(path, f.getvalue())


def part_stats(part, steps, merge):
    """Per variant: Phase II curves and their numbers, over the seeds that have every variant and its DVM step. The
    curves of results/vm_permutations_PART.csv (merge), or of the part's finished runs alone (a quick look)."""
    rows = dvm_iterations.part_curves(os.path.join(OUT, "runs", f"vm_permutations_{part}"), part_csv(part), merge)
    return None if rows is None else dvm_iterations.stats_over_seeds(part, rows, steps, PARTS[part][2],
                                                                     ("seconds", "vm_loss", "vm_loss_exact"))


def setting(k, iterations, n_perms):
    text = f"all {n_perms} (exact)" if k == 0 else f"{k} of {n_perms}"
    return text + (f", {iterations} iterations" if iterations != PAPER_ITERATIONS else "")


def rate(lr):
    """A learning rate as the titles write it: 0.001 -> "1e-3"."""
    mantissa, exponent = f"{lr:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def title(part, config):
    """A part's title from its runs' configuration, "3 agents (6 permutations), Fig. 4b's Phase I, Phase II at lr 1e-3";
    its Phase I named by the part only where the runs have the agents and Phase I steps that the name stands for."""
    phase1, settings, _ = PARTS[part]
    if any(config[key] != value for key, value in settings.items()):
        phase1 = f"a Phase I of {config['phase1_steps']} steps"
    n = config["n_agents"]
    return f"{n} agents ({math.factorial(n)} permutations), {phase1}, Phase II at lr {rate(config['learning_rate'])}"


def variant_settings(part, seeds, steps):
    """{variant: (K, iterations)} as the DVM steps of the table's seeds ran them (K = 0: the exact sum). A variant whose
    seeds ran it differently, or a reference (dvm) that sampled, is refused in one line: its row would be mislabeled."""
    settings = {}
    for variant in PARTS[part][2]:
        ran = {}  # (K, iterations) -> seeds
        for seed in seeds:
            ran.setdefault((steps[part, seed, variant]["permutations"], steps[part, seed, variant]["iterations"]),
                           []).append(str(seed))
        if len(ran) > 1:
            plot.fail(f"the runs of part {part} disagree: {variant} ran with " + ", ".join(
                f"K = {k}, {it} iterations on seed(s) {' '.join(on)}" for (k, it), on in ran.items()))
        settings[variant] = next(iter(ran))
    if settings["dvm"][0] != 0:
        plot.fail(f"the runs of part {part}: its exact sum (dvm) ran with {settings['dvm'][0]} sampled permutations")
    return settings


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
    parser.add_argument("--parts", nargs="+", choices=list(PARTS),
                        help="the parts whose runs are scored, and merged (default: every part in runs/)")
    parser.add_argument("--seeds", type=parse_seeds,
                        help="their seeds, as SEEDS gives them (10, 8-10, \"8 9 10\"; default: every seed in runs/)")
    cli = parser.parse_args()
    if cli.merge and (cli.parts is None or cli.seeds is None):  # (every run in runs/ would replace committed rows)
        plot.fail("--merge (MERGE=1) takes --parts and --seeds, the parts and seeds to merge into results/ "
                  "(vm_permutations.sh passes PARTS and SEEDS)")
    steps, merge, configs = read_steps(cli.merge, [p for p in PARTS if p in (cli.parts or PARTS)], cli.seeds)
    # the parts of results/ (merged), or those of the runs scored (a quick look)
    parts = {part: s for part in PARTS if (merge or part in (cli.parts or PARTS))
             and (s := part_stats(part, steps, merge)) is not None}
    if not parts:
        sys.exit("no finished part: run benchmark/vm_permutations.sh first")
    rng = np.random.default_rng(0)
    lines = ["### Sampled permutations in value matching (`bash benchmark/vm_permutations.sh`, beyond the paper)", ""]
    if not merge:
        lines[0] += ": a quick look at the runs in `runs/`, not in `results/`"
    fig, axes = plt.subplots(2, len(parts), figsize=(5.5 * len(parts), 8), squeeze=False)
    for (ax, ax_loss), (part, (seeds, stats)) in zip(axes.T, parts.items()):
        # what the runs ran, not what the part's name says: the runs scored, and the committed curves' command
        config = part_config(part, configs.get(part, {}) | ({part_csv(part): command_config(part_csv(part))}
                                                            if merge else {}))
        heading, n_perms, variants = title(part, config), math.factorial(config["n_agents"]), PARTS[part][2]
        settings = variant_settings(part, seeds, steps)
        exact_iterations = settings["dvm"][1]
        n_seeds = f"{len(seeds)} seed" + "s" * (len(seeds) != 1)
        lines += [(f"**{heading}**, {n_seeds}; Phase II curves in `results/vm_permutations_{part}.csv`, DVM steps in "
                   "`results/vm_permutations_steps.csv`." if merge else f"**{heading}**, {n_seeds} "
                   f"({' '.join(map(str, seeds))}), the runs in `runs/vm_permutations_{part}/`."), "",
                  "| permutations per sample | DVM step (s) | VM loss, training estimate | exact Eq. (6) loss, held out | "
                  "right after DVM | Phase II AUC | final return | minus exact, AUC (95 % CI) | "
                  "minus exact, final (95 % CI) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        sides, at_k = {}, {}  # K at the exact sum's iterations -> "behind", "level" or "ahead" of it; its variant
        for variant in variants:
            (k, iterations), st = settings[variant], stats[variant]
            row = (f"| {setting(k, iterations, n_perms)} | {dvm_iterations.mean_std(st['seconds'], 1)} | "
                   f"{dvm_iterations.mean_std(st['vm_loss'], 3)} | {dvm_iterations.mean_std(st['vm_loss_exact'], 3)} | "
                   f"{dvm_iterations.mean_std(st['start'])} | {dvm_iterations.mean_std(st['auc'])} | "
                   f"{dvm_iterations.mean_std(st['final'])} |")
            if variant == "dvm":
                row += " | |"
            else:
                cells, side = dvm_iterations.minus_reference(st, stats["dvm"], len(seeds), rng)
                row += cells
                if side is not None and iterations == exact_iterations:
                    sides[k], at_k[k] = side, variant
            lines.append(row)
            label = setting(k, iterations, n_perms)
            plot.band(ax, st["steps"], st["curves"], plot.COLOURS[variant], label=label)
            ax_loss.errorbar(st["seconds"].mean(), st["vm_loss_exact"].mean(), xerr=st["seconds"].std(),
                             yerr=st["vm_loss_exact"].std(), fmt="o", color=plot.COLOURS[variant], label=label)
        smallest = smallest_not_behind(sides)
        if len(seeds) < 5:
            verdict = f"{n_seeds} so far: too few for a verdict (it takes 5)."
        elif smallest is None:
            verdict = (f"No K tried at {exact_iterations} iterations keeps up with the exact sum over all {n_perms} "
                       "permutations: the largest falls behind it (an interval below 0).")
        else:
            exact, sampled = stats["dvm"]["seconds"].mean(), stats[at_k[smallest]]["seconds"].mean()
            where = ("level with it (both intervals contain 0)" if sides[smallest] == "level" else
                     "ahead of it (an interval above 0, none below)")
            verdict = (f"Smallest K not behind the exact sum (no interval below 0, nor for any larger K): "
                       f"**{smallest} of {n_perms}**, {where}; its DVM step takes {sampled:.0f} s, "
                       f"{100 * sampled / exact:.0f} % of the exact step's {exact:.0f} s.")
        lines += ["", verdict, ""]
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
        ax.set_title(f"{heading} ({n_seeds})", fontsize=9)
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
