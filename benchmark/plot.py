"""Draw a figure and write its results table and per-seed curves.

    python benchmark/plot.py FIG [--merge] [--extra PATH[:LABEL] ...]
        -> benchmark/results/FIG.csv (every seed's curves), benchmark/images/FIG.png, benchmark/results/FIG.md

Where the curves come from: the event files of the finished seeds in benchmark/runs/FIG (a seed counts once all of
its runs have written phase2.pt; a figure still running or cut off is drawn from those). Where results/FIG.csv is
committed already, they are a quick look: the CSV, picture and table go to runs/FIG/quick_look/ (the table names
the seeds it shows) and the committed files are left as they were. With --merge (run.py passes it on for `MERGE=1`),
they are merged with the committed curves instead: a seed present in both is taken from the runs, and one whose curve
differs from its committed one is said in a line (seed, method, by how much); a method the CSV holds and the runs do
not is refused (its curves would be lost). Without runs/FIG the figure is redrawn from the CSV alone. The figure and
table are always computed from the CSV as written, so both ways give the same numbers. Merging refuses a CSV made by
another command or from another Phase I (run.py's command.txt and phase1_from.txt are stored in its header). So a
figure can be finished in pieces: `SEEDS="8 9 10" MERGE=1 bash benchmark/fig5c.sh` on another day or machine adds
seeds 8-10 to the committed 1-7. Every file is written whole or not at all (a full disk leaves the one before).

CSV (long format, one row per evaluation; `#` lines are a header with the command, where Phase I came from, the wall
time of each piece and each run's own duration, from its seconds.txt): seed, variant, step (global step across both
phases), phase, return (eval/return), then return_team0/1 (push box Phase I: team A on Task I, team B on Task II) and
return_target0/1/2 (push box Task III: left, right, up), empty where a run has none. Phase I is one run per seed,
stored under the variant "phase1": it comes from each seed's run that trained it (the first variant), or from the
figure named in runs/FIG/phase1_from.txt (run.py --phase1-from).

`--extra PATH[:LABEL]` draws your own runs over ours, as a dashed curve with a row of its own in the table (no
interval): PATH is one run folder of maddpg_dvm.py or masac_dvm.py, or a folder holding several (each one seed).
Each must have finished (its phase2.pt), be a run of the figure's script with every flag of the figure's command
(those that are not per run, such as --seed, or the method, --dvm-mode), and have as many evaluations as the others.

The paper's way: eval/return against the global step, mean over seeds as a line, shading of +- 1/2 standard
deviation, the DVM step marked. Table, per variant, mean +- std over seeds of
  - Phase II AUC: the area under the Phase II eval/return curve divided by its length in steps, i.e. the
    average evaluation return over Phase II (higher is better, rewards learning fast);
  - final return: the mean eval/return over the last 10 % of Phase II steps;
  - right after the DVM step: the first Phase II evaluation (the policy Phase II starts from), and the depth of the
    post-DVM drop: the lowest point of the mean curve over the first 5,000 Phase II steps;
and the 95 % paired bootstrap interval (10,000 resamples over seeds) of DVM minus each other variant.
Push box figures also get the end of Phase I per team and the final return per Task III target.
The figure's cost: core-minutes, the sum of its runs' own durations, where every run has one; the wall time of its
pieces otherwise (curves committed before runs kept their durations).

Bad input (a CSV line that does not parse, a non-finite return, two evaluations at one step, a Phase II of one
evaluation, curves of another script than the figure's, an --extra run that does not fit the figure, a checkpoint
that cannot be read, a run folder without its command.txt or Phase I) is refused in one line, `error: ...`, before
anything is written.
"""
import argparse
import contextlib
import csv
import functools
import glob
import io
import math
import os
import re
import sys
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

# OUT: where runs/ is read and images/, results/ are written; write_atomically: the benchmark's one writer of results
from run import OUT, OWN_PHASE1, load_script, read_seconds, write_atomically  # noqa: E402

NAMES = {"none": "No DVM", "distill": "Distillation", "vm": "Value Matching", "dvm": "DVM",
         "dvm_no_learning": "DVM, no Phase II learning", "dvm_it1024": "DVM, 1024 iterations",
         "dvm_it256": "DVM, 256 iterations", "dvm_it64": "DVM, 64 iterations",
         "dvm_k1": "DVM, 1 sampled permutation", "dvm_k2": "DVM, 2 sampled permutations",
         "dvm_k4": "DVM, 4 sampled permutations", "dvm_k8": "DVM, 8 sampled permutations",
         "dvm_k4_it8192": "DVM, 4 sampled permutations, 8192 iterations"}
COLOURS = {"none": "tab:grey", "distill": "tab:blue", "vm": "tab:green", "dvm": "tab:red", "dvm_no_learning": "tab:purple",
           "dvm_it1024": "tab:brown", "dvm_it256": "tab:olive", "dvm_it64": "tab:cyan", "dvm_k1": "tab:cyan",
           "dvm_k2": "tab:olive", "dvm_k4": "tab:brown", "dvm_k8": "tab:purple", "dvm_k4_it8192": "tab:pink"}
TITLES = {"fig4a": "Fig. 4a: MADDPG, spread, 2 agents", "fig4b": "Fig. 4b: MADDPG, spread, 3 agents",
          "fig4c": "Fig. 4c: MADDPG, spread, 4 agents", "fig5a": "Fig. 5a: MA-SAC, spread, 2 agents",
          "fig5b": "Fig. 5b: MA-SAC, spread, 3 agents", "fig5c": "Fig. 5c: MA-SAC, spread, 4 agents",
          "fig6": "Fig. 6: MADDPG, push box, Task III", "fig7": "Fig. 7: DVM with and without Phase II learning",
          # beyond the paper: spread past the quadrants, Phase II at lr 1e-3, value matching on sampled permutations
          "fig9_spread6": "Fig. 9 (beyond the paper): MADDPG, spread, 6 agents, Phase II at lr 1e-3",
          "fig9_spread8": "Fig. 9 (beyond the paper): MADDPG, spread, 8 agents, Phase II at lr 1e-3",
          "fig9_spread6_phase1": "Fig. 9 (beyond the paper): its Phase I, spread, 6 agents",
          "fig9_spread8_phase1": "Fig. 9 (beyond the paper): its Phase I, spread, 8 agents",
          "fig9_spread8_long": "Fig. 9 (beyond the paper): MADDPG, spread, 8 agents, Phase I 240k steps",
          "fig9_spread8_long_phase1": "Fig. 9 (beyond the paper): its Phase I of 240k steps, spread, 8 agents",
          "fig10": "Fig. 10 (beyond the paper): MA-SAC, spread, 6 agents",
          "fig10_spread8": "Fig. 10 (beyond the paper): MA-SAC, spread, 8 agents"}
TEAMS = {0: "team A, Task I", 1: "team B, Task II"}
TARGETS = {0: "left (Task I)", 1: "right (Task II)", 2: "up (new)"}
EXTRA_TAGS = [f"return_team{k}" for k in TEAMS] + [f"return_target{k}" for k in TARGETS]
COLUMNS = ["seed", "variant", "step", "phase", "return", *EXTRA_TAGS]
REQUIRED = COLUMNS[:5]  # the team and target columns may be missing (empty) in a curves file
# the script of our figures (and of their variants, fig4c_lr1e-3, ..., and the DVM-iterations parts): a CSV or runs
# of another are refused, not drawn under the figure's title
SCRIPTS = {"fig4": "maddpg_dvm.py", "fig5": "masac_dvm.py", "fig6": "maddpg_dvm.py", "fig7": "maddpg_dvm.py",
           "fig9": "maddpg_dvm.py", "fig10": "masac_dvm.py", "dvm_iterations": "maddpg_dvm.py"}
KINDS = {"phase1": "Phase I (phase1.pt)", "dvm": "DVM step (dvm.pt)", "phase2": "Phase II (phase2.pt)"}
# settings an --extra run may choose freely: per run (run.py sets them) or the method, which is what an extra shows
FREE_SETTINGS = {"seed", "run_name", "runs_dir", "threads", "cuda", "capture_video", "phase1_checkpoint",
                 "dvm_checkpoint", "exp_name", "log_every", "dvm_mode", "phase2_learning"}


def title(fig_name):
    """The paper's figures by name; a variant of one (fig4c_lr1e-3, fig6_delay200, fig5a_bf16) by what it changes."""
    if fig_name in TITLES or not fig_name.startswith("fig"):
        return TITLES.get(fig_name, fig_name)
    for suffix, words in (("_phase1", "its Phase I"), ("_bf16", "at bf16")):
        if fig_name.endswith(suffix):
            return f"{title(fig_name[:-len(suffix)])}, {words}"
    base, _, change = fig_name.partition("_")
    if change.startswith("lr"):
        return f"Fig. {base[3:]} with Phase II at lr {change[2:]}"
    if change.startswith("delay"):
        return f"Fig. {base[3:]} with a critic warm-up of {change[5:]} updates"
    return TITLES.get(fig_name, fig_name)


def fail(message):
    """Refuse bad input: one line on stderr and a non-zero exit, never a traceback."""
    sys.exit(f"error: {message}")


def method(variant):
    return f"{NAMES.get(variant, 'Phase I')} ({variant})"


# ---- checkpoints ----------------------------------------------------------------------------------------------------


def read_checkpoint(path, algorithms, kinds, reader):
    """The checkpoint at `path`, written by one of `algorithms` ("maddpg_dvm", "masac_dvm") and of one of `kinds`
    (KINDS); `reader` (who needs it) names the refusal. Loaded with weights_only=True: plain tensors, numbers, strings,
    lists and dicts only, so that a file whose unpickling would run code is refused before any of it runs. Whatever
    is not such a checkpoint (missing, empty, truncated, another file, another script or kind) is one line of error.
    fig8.py and push_box_exploration.py read theirs through this too."""
    import torch  # (here: only --extra and the checkpoint tools need torch, a second's import)

    if not os.path.isfile(path):
        fail(f"{reader}: checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # (torch warns about old pickle protocols: not a line for the user)
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (every way a file fails to load is the same refusal)
        if "Weights only load failed" in str(e):
            fail(f"{reader}: {path} holds more than tensors, numbers, strings, lists and dicts (loading it could "
                 "run code); refused unread")
        detail = str(e).strip().splitlines()[0].split(". ")[0][:120] if str(e).strip() else ""
        fail(f"{reader}: {path} is not a readable checkpoint, damaged or another file ({type(e).__name__}"
             + (f": {detail}" if detail else "") + ")")
    scripts = " or ".join(f"{a}.py" for a in algorithms)
    if not isinstance(checkpoint, dict) or checkpoint.get("algorithm") not in algorithms:
        fail(f"{reader}: {path} is not a checkpoint of {scripts}")
    if checkpoint.get("kind") not in kinds:
        kind = KINDS.get(checkpoint.get("kind"), f"{checkpoint.get('kind')!r}")
        fail(f"{reader}: {path} is a {kind} checkpoint; this needs a {' or '.join(KINDS[k] for k in kinds)} one")
    teams = checkpoint.get("teams")
    if not (isinstance(checkpoint.get("config"), dict) and isinstance(teams, list) and teams
            and all(isinstance(t, dict) and "actors" in t for t in teams)):
        fail(f"{reader}: {path} is an incomplete checkpoint of {scripts} (no config or networks)")
    return checkpoint


# ---- curves of runs -------------------------------------------------------------------------------------------------


@functools.cache  # Phase I's run is one of the figure's own runs unless --phase1-from: read it once
def read_run(run_dir):
    """Rows {step, phase, return, return_team*/return_target*} of one run's event file, in logging order."""
    event_files = glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))
    if len(event_files) != 1:  # two runs wrote into one folder: their curves would be read as one
        fail(f"{run_dir} holds {len(event_files)} TensorBoard event files, not one: more than one run wrote there")
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0}).Reload()
    tags = events.Tags()["scalars"]
    if "eval/return" not in tags or "charts/phase" not in tags:
        fail(f"{run_dir}: its event file has no evaluation (eval/return, charts/phase)")
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


def seed_dirs(root):
    """{seed: folder} of the runs/FIG/seedS folders, by seed (a copy such as seed1.bak beside them is not one)."""
    found = {int(m[1]): path for path in glob.glob(os.path.join(root, "seed*"))
             if (m := re.fullmatch(r"seed([0-9]+)", os.path.basename(path))) and os.path.isdir(path)}
    return dict(sorted(found.items()))


def rows_from_runs(root):
    """(header, rows, seeds started) of runs/FIG: the curves of its seeds whose runs have all finished, and the header
    of their CSV (command.txt, the Phase I's source, the wall time as one piece, the runs' durations from their
    seconds.txt)."""
    seeds = seed_dirs(root)
    variants = [v for v in NAMES if any(os.path.isdir(os.path.join(s, v)) for s in seeds.values())]
    finished = {seed: s for seed, s in seeds.items()
                if all(os.path.exists(os.path.join(s, v, "phase2.pt")) for v in variants)}
    if not os.path.exists(os.path.join(root, "command.txt")):
        fail(f"{root} has no command.txt (run.py writes it first): the command of its runs is unknown")
    source_file = os.path.join(root, "phase1_from.txt")
    source = open(source_file).read().strip() if os.path.exists(source_file) else OWN_PHASE1
    phase1_root = root if source == OWN_PHASE1 else os.path.join(OUT, "runs", source)
    rows, durations = [], {}
    for seed, s in finished.items():
        # Phase I from the seed's run that trained it, the only one with a phase1.pt
        trainer = glob.glob(os.path.join(phase1_root, f"seed{seed}", "*", "phase1.pt"))
        if len(trainer) != 1:  # (the --phase1-from figure moved or deleted since)
            fail(f"{os.path.join(phase1_root, f'seed{seed}')} holds {len(trainer)} Phase I runs (phase1.pt), not one: "
                 f"the Phase I of {root} cannot be drawn")
        rows += [dict(r, seed=seed, variant="phase1") for r in read_run(os.path.dirname(trainer[0])) if r["phase"] == 1]
        for v in variants:
            rows += [dict(r, seed=seed, variant=v) for r in read_run(os.path.join(s, v)) if r["phase"] == 2]
            seconds = read_seconds(os.path.join(s, v, "seconds.txt"))
            if seconds is not None:
                durations[seed, v] = seconds
    wall = read_seconds(os.path.join(root, "wall_time.txt"))
    header = dict(command=open(os.path.join(root, "command.txt")).read().strip(), phase1_from=source,
                  pieces=[(set(finished), math.nan if wall is None else wall)], durations=durations)
    return header, rows, len(seeds)


# ---- the curves file ------------------------------------------------------------------------------------------------


def read_table(path, columns, types):
    """The lines of a CSV table of results whose header is exactly `columns`, as (where, fields, row) with row's values
    of their types (parse_number); a file that is not such a table, or a line that does not parse or holds a float that
    is not finite ("nan" parses), is one line of error naming them."""
    with open(path, newline="", errors="replace") as f:
        try:
            lines = list(csv.reader(f))
        except csv.Error as e:
            fail(f"{path}: not a CSV table ({e})")
    if not lines or lines[0] != columns:
        fail(f"{path}: its first line is not the header {','.join(columns)}")
    rows = []
    for number, fields in enumerate(lines[1:], 2):
        where = f"{path}, line {number}"
        if len(fields) != len(columns):
            fail(f"{where}: {len(fields)} fields where the header has {len(columns)} (a truncated line?)")
        row = {k: parse_number(text, k, where, types[k]) for k, text in zip(columns, fields)}
        if not all(math.isfinite(x) for k, x in row.items() if types[k] is float):
            fail(f"{where}: a loss or duration that is not finite")
        rows.append((where, fields, row))
    return rows


def parse_number(text, column, where, kind=float):
    try:
        return kind(text)
    except ValueError:
        fail(f"{where}: {column} {text!r} is not {'an integer' if kind is int else 'a number'}")


def parse_comment(line, where, header):
    """A `#` line into header (command, phase1_from, pieces, durations): "# command: ...", "# phase1 from: fig6" (or
    OWN_PHASE1; missing in CSVs written before it was kept), "# piece: seeds 1 2 3, wall time 1234 s", "# run: seed 3,
    variant dvm, 123.4 s"; any other `#` line is a comment."""
    try:
        if line.startswith("# command: "):
            header["command"] = line[len("# command: "):].strip()
        elif line.startswith("# phase1 from: "):
            header["phase1_from"] = line[len("# phase1 from: "):].strip()
        elif line.startswith("# piece: "):
            seeds, wall = line[len("# piece: seeds "):].split(", wall time ")
            header["pieces"].append(({int(x) for x in seeds.split()}, float(wall.split()[0])))
        elif line.startswith("# run: "):
            seed, variant, seconds = line[len("# run: seed "):].split(", ")
            variant = variant.removeprefix("variant ")
            if variant not in NAMES:
                raise ValueError(variant)
            header["durations"][int(seed), variant] = float(seconds.removesuffix(" s"))
    except (ValueError, IndexError):
        fail(f"{where}: a header line that does not parse: {line[:80]!r}")


def parse_row(fields, columns, where):
    """One evaluation {seed, variant, step, phase, return, and the team/target returns it has}."""
    if len(fields) != len(columns):
        fail(f"{where}: {len(fields)} fields where the header has {len(columns)} (a truncated line?)")
    r = dict(zip(columns, fields))
    row = dict(seed=parse_number(r["seed"], "seed", where, int), variant=r["variant"],
               step=parse_number(r["step"], "step", where, int), phase=parse_number(r["phase"], "phase", where, int),
               **{"return": parse_number(r["return"], "return", where)})
    row.update({k: parse_number(r[k], k, where) for k in EXTRA_TAGS if r.get(k, "") != ""})
    if row["variant"] != "phase1" and row["variant"] not in NAMES:
        fail(f"{where}: unknown variant {row['variant']!r} (phase1, {', '.join(NAMES)})")
    if row["phase"] != (1 if row["variant"] == "phase1" else 2):  # Phase I rows are the variant "phase1", only they
        fail(f"{where}: phase {row['phase']} for the variant {row['variant']}")
    return row


def read_csv(path):
    """(header, rows) of a committed curves file; header: command, phase1_from (None where unknown), pieces [(seeds,
    wall seconds)], durations {(seed, variant): seconds}. A line that does not parse is one line of error naming the
    file and the line."""
    header, columns, rows = dict(command=None, phase1_from=None, pieces=[], durations={}), None, []
    with open(path, "rb") as f:  # bytes: a binary file is refused at its line, not with a UnicodeDecodeError
        for number, raw in enumerate(f, 1):
            where = f"{path}, line {number}"
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                fail(f"{where}: not text (a binary file?)")
            if "\0" in line:
                fail(f"{where}: not text (a binary file?)")
            if line.startswith("#"):
                parse_comment(line, where, header)
            elif line.strip() and columns is None:
                columns = next(csv.reader([line]))
                missing = [c for c in REQUIRED if c not in columns]
                if missing:
                    fail(f"{where}: the header has no column {', '.join(missing)} (it needs {', '.join(COLUMNS)})")
            elif line.strip():
                rows.append(parse_row(next(csv.reader([line])), columns, where))
    if columns is None:
        fail(f"{path}: no header line ({','.join(COLUMNS)})")
    if header["command"] is None:  # (merging and --extra compare runs with it; it would be written back as "None")
        fail(f"{path}: no '# command: ...' line, the command that made its curves")
    return header, rows


def write_csv(path, header, rows):
    f = io.StringIO(newline="")
    f.write(f"# command: {header['command']}\n")
    if header["phase1_from"] is not None:
        f.write(f"# phase1 from: {header['phase1_from']}\n")
    for seeds, wall in header["pieces"]:
        f.write(f"# piece: seeds {' '.join(map(str, sorted(seeds)))}, wall time {wall:.0f} s\n")
    for (seed, variant), seconds in sorted(header["durations"].items(),
                                           key=lambda d: (d[0][0], list(NAMES).index(d[0][1]))):
        f.write(f"# run: seed {seed}, variant {variant}, {seconds:.1f} s\n")
    writer = csv.DictWriter(f, COLUMNS, restval="")
    writer.writeheader()
    writer.writerows(rows)  # floats as repr: read back bit for bit
    write_atomically(path, f.getvalue())


def check_curves(rows, origin):
    """Refuse curves the table cannot be computed from, naming seed and method: a non-finite value (a diverged run),
    two evaluations at one step (they would be averaged), a seed without a curve of some variant or with another
    number of evaluations than the others (unequal lengths would pair seeds wrongly or fail in the arithmetic), a
    Phase II of fewer than two evaluations (no area under it). origin(seed): where that seed's curves come from."""
    seen = set()
    for r in rows:
        for key in ("return", *EXTRA_TAGS):
            if key in r and not math.isfinite(r[key]):
                fail(f"seed {r['seed']}, {method(r['variant'])}: eval/{key} is {r[key]} at step {r['step']} "
                     f"(a diverged run?), in {origin(r['seed'])}; nothing was written")
        if (r["seed"], r["variant"], r["step"]) in seen:
            fail(f"seed {r['seed']}, {method(r['variant'])}: two evaluations at step {r['step']}, in "
                 f"{origin(r['seed'])}; nothing was written")
        seen.add((r["seed"], r["variant"], r["step"]))
    seeds = sorted({r["seed"] for r in rows})
    if not any(r["variant"] == "phase1" for r in rows):  # the figure draws both phases
        fail(f"{origin(seeds[0])} has no Phase I curve (variant phase1)")
    if all(r["variant"] == "phase1" for r in rows):
        fail(f"{origin(seeds[0])} has no Phase II curve")
    for v in ["phase1", *NAMES]:
        steps = {s: [r["step"] for r in rows if r["seed"] == s and r["variant"] == v] for s in seeds}
        if not any(steps.values()):
            continue
        first = seeds[0] if steps[seeds[0]] else next(s for s in seeds if steps[s])
        for s in seeds:
            if steps[s] != steps[first]:
                fail(f"seed {s}, {method(v)}: {len(steps[s])} evaluations where seed {first} has "
                     f"{len(steps[first])} (curves of unequal length), in {origin(s)}")
        if v != "phase1" and len(steps[first]) < 2:
            fail(f"{method(v)}: {len(steps[first])} Phase II evaluation, the table needs two (--phase2-steps 0?), in "
                 f"{origin(first)}; nothing was written")


# ---- your own runs (--extra) ----------------------------------------------------------------------------------------


def command_settings(command):
    """The script and the settings of a figure's command: `maddpg_dvm.py --n-agents 2 --no-phase2-learning` ->
    ("maddpg_dvm.py", {"n_agents": "2", "phase2_learning": False}); a switch is True or False, a value its text."""
    script, *tokens = command.split()
    settings, i = {}, 0
    while i < len(tokens):
        key, has_value, value = tokens[i].removeprefix("--").partition("=")
        if not has_value and i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            value, i = tokens[i + 1], i + 1
        key, i = key.replace("-", "_"), i + 1
        if not has_value and value == "":  # a switch: --flag or --no-flag
            key, value = (key[3:], False) if key.startswith("no_") else (key, True)
        settings[key] = value
    return script, settings


def script_args(command, where):
    """(script, its Args) of a figure's command, `maddpg_dvm.py --n-agents=8 --learning-rate 0.001`, read as the script
    reads its flags (tyro: `--flag value` or `--flag=value`, `-` or `_`, the last of a flag given twice), not by their
    spelling. The script's module is imported by its path in the repository (its main does not run). A command of
    another script, or flags the script would refuse, is one line of error naming `where` it comes from.
    team_sizes.py and vm_permutations.py read the figures' commands here."""
    import tyro

    script, *flags = command.split()
    if script not in ("maddpg_dvm.py", "masac_dvm.py"):  # (importing whatever a CSV names would run its code)
        fail(f"{where}: its command ({command}) is not one of maddpg_dvm.py or masac_dvm.py")
    module = load_script(script)
    said = io.StringIO()  # tyro's refusal, a box of many lines: its message goes into ours
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            return script, tyro.cli(module.Args, args=flags)
    except SystemExit:
        lines = [line.strip() for line in said.getvalue().splitlines() if line.strip().strip("-")]
        fail(f"{where}: its command ({command}) has flags {script} does not read: "
             f"{lines[1] if len(lines) > 1 else 'tyro refused them'}")


def same_setting(saved, given):
    """Whether a run's config value is the value the figure's command gives (a switch's True/False, or text)."""
    if isinstance(saved, bool) or isinstance(given, bool):
        return saved is given
    if isinstance(saved, (int, float)):
        try:
            return float(given) == saved  # "1e-3" is 0.001, "20_000" is 20000
        except ValueError:
            return False
    return str(saved) == given


def read_extra_run(run_dir, command):
    """{phase: (steps, returns)} of one --extra run, refused unless it finished as a run of the figure's script with
    the figure's settings and did not diverge."""
    reader = f"--extra {run_dir}"
    if not os.path.exists(os.path.join(run_dir, "phase2.pt")):
        fail(f"{reader}: no phase2.pt, the run has not finished")
    script, settings = command_settings(command)
    checkpoint = read_checkpoint(os.path.join(run_dir, "phase2.pt"), ("maddpg_dvm", "masac_dvm"), ("phase2",), reader)
    if f"{checkpoint['algorithm']}.py" != script:
        fail(f"{reader} is a run of {checkpoint['algorithm']}.py, the figure one of {script}")
    config = checkpoint["config"]
    mismatched = [f"{key}={config.get(key, '(none)')} (the figure: {given})" for key, given in settings.items()
                  if key not in FREE_SETTINGS and not same_setting(config.get(key), given)]
    if mismatched:
        fail(f"{reader} was run with another configuration than the figure ({command}): " + ", ".join(mismatched))
    rows = read_run(run_dir)
    if not any(r["phase"] == 2 for r in rows):  # (a finished run has; the table's row is of Phase II)
        fail(f"{reader}: its event file has no Phase II evaluation")
    for r in rows:
        if not math.isfinite(r["return"]):
            fail(f"{reader}: eval/return is {r['return']} at step {r['step']} (a diverged run)")
    return {ph: tuple(np.array([r[k] for r in rows if r["phase"] == ph]) for k in ("step", "return")) for ph in (1, 2)}


def read_extra(spec, command):
    """--extra PATH[:LABEL]: ({phase: (steps, returns)} per run, label); runs of unequal length are refused (a run
    branched from a Phase I checkpoint has no Phase I curve of its own, so Phase I is compared where there is one)."""
    path, _, label = spec.partition(":")
    dirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(path, "**", "events.out.tfevents.*"), recursive=True)})
    if not dirs:
        fail(f"--extra {path}: no TensorBoard events file in or under it")
    runs = [read_extra_run(d, command) for d in dirs]
    for ph, name in ((1, "Phase I"), (2, "Phase II")):
        lengths = [(d, r[ph][0]) for d, r in zip(dirs, runs) if len(r[ph][0]) or ph == 2]
        for d, steps in lengths[1:]:
            if not np.array_equal(steps, lengths[0][1]):
                fail(f"--extra {path}: runs of unequal length: {d} has {len(steps)} {name} evaluations, "
                     f"{lengths[0][0]} has {len(lengths[0][1])}")
    return runs, label or os.path.basename(os.path.normpath(path))


# ---- the table ------------------------------------------------------------------------------------------------------


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


def variant_stats(rows):
    """The table's numbers of one variant's curves, and (steps, curves) to draw."""
    steps, curves = curve_array(rows)
    auc, final = auc_and_final(steps, curves)
    per_target = {k: np.nanmean(curves_k[:, final_window(steps)], axis=1) for k in TARGETS
                  if any(f"return_target{k}" in r for r in rows)
                  for curves_k in [curve_array(rows, f"return_target{k}")[1]]}
    early = steps <= steps[0] + 5000  # where the post-DVM drop happens, when it does
    return dict(steps=steps, curves=curves, auc=auc, final=final, per_target=per_target, start=curves[:, 0],
                low=curves.mean(0)[early].min())


def cost_text(pieces, durations, runs):
    """The figure's cost: core-minutes, the sum of its runs' own durations, where every run has one (a wall time
    depends on what else ran beside); else, for curves committed before runs kept their durations, the wall time."""
    if runs and all(run in durations for run in runs):
        text = f"{sum(durations[run] for run in runs) / 60:.0f} core-minutes"
    else:
        wall = sum(w for _, w in pieces)
        text = "wall time " + ("?" if np.isnan(wall) else f"{wall / 60:.0f} min")
    return text + (f" in {len(pieces)} pieces" if len(pieces) > 1 else "")


def band(ax, steps, curves, colour, alpha=0.15, lw=1.5, **style):
    """curves (seeds x points) on ax: their mean as a line, mean +- 1/2 std over seeds as a band; style (label, ls) is
    the line's."""
    mean, std = curves.mean(0), curves.std(0)
    ax.plot(steps, mean, color=colour, lw=lw, **style)
    ax.fill_between(steps, mean - std / 2, mean + std / 2, color=colour, alpha=alpha)


def draw(path, fig_name, n_seeds, phase1, stats, extras):
    """The figure as a PNG at path: mean +- 1/2 std over seeds per variant, Phase I in black, the DVM step marked,
    --extra runs dashed in orange."""
    fig, ax = plt.subplots(figsize=(6, 4))
    steps1, curves1 = phase1
    band(ax, steps1, curves1, "black", label="Phase I")
    for v, s in stats.items():
        band(ax, s["steps"], s["curves"], COLOURS[v], alpha=0.2, label=NAMES[v])
    for (runs, label), style in zip(extras, ("--", ":", "-.")):
        for ph in (1, 2):  # a run branched from a Phase I checkpoint has no Phase I curve of its own
            steps = [r[ph][0] for r in runs if len(r[ph][0])]
            if steps:
                curves = np.stack([r[ph][1] for r in runs if len(r[ph][0])])
                band(ax, steps[0], curves, "tab:orange", ls=style, label=label if ph == 2 else None)
    # named in the legend, not beside the line, where the lower-right legend hid it when the DVM step is late
    ax.axvline(steps1[-1], color="black", ls="--", lw=1, label="DVM step")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    text = f"{title(fig_name)} ({n_seeds})"
    ax.set_title(text if len(text) <= 70 else text.replace(": ", ":\n", 1), fontsize=10)  # long ones on two lines
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    write_atomically(path, png.getvalue())


def dvm_minus(stats, rng):
    """{(variant, "auc" or "final"): (mean, low, high)}: DVM minus every other variant, paired over seeds (the seeds
    share their Phase I), with its 95 % bootstrap interval (low and high None from one seed, which has no spread to
    resample: an interval would be a point); empty without DVM. The draws go variant by variant in stats' order, so
    every reader of a figure (its table, team_sizes.py) gets the same intervals."""
    intervals = {}
    for v, s in stats.items():
        if v != "dvm" and "dvm" in stats:
            for key in ("auc", "final"):
                diffs = stats["dvm"][key] - s[key]
                intervals[v, key] = (diffs.mean(), *(bootstrap_ci(diffs, rng) if len(diffs) > 1 else (None, None)))
    return intervals


def difference_text(mean, low, high):
    """A cell of dvm_minus: "+1.23 [+0.45, +2.01]", or "+1.23 (one seed)" without an interval."""
    return f"{mean:+.2f} (one seed)" if low is None else f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def table(fig_name, summary, phase1_rows, seeds, stats, extras):
    """The lines of results/FIG.md; summary: the line of seeds, cost and files under the title."""
    rng = np.random.default_rng(0)
    phase1_end = curve_array(phase1_rows)[1][:, -1]
    team_ends = {k: curve_array(phase1_rows, f"return_team{k}")[1][:, -1] for k in TEAMS
                 if f"return_team{k}" in phase1_rows[0]}  # push box: team A on Task I, team B on Task II
    lines = [f"### {title(fig_name)}", "", summary, "",
             f"End of Phase I: {phase1_end.mean():.2f} ± {phase1_end.std():.2f}"
             + "".join(f"; {TEAMS[k]} {x.mean():.2f} ± {x.std():.2f}" for k, x in team_ends.items()) + "."
             + (" Per seed (team A / team B): " + ", ".join(f"{s}: {a:.2f} / {b:.2f}" for s, a, b in
                                                           zip(seeds, team_ends[0], team_ends[1])) + "."
                if team_ends else ""), "",
             "| method | right after DVM | lowest, first 5k steps | Phase II AUC (mean return) | final return | "
             "DVM minus method, AUC (95 % CI) | DVM minus method, final (95 % CI) |",
             "|---|---|---|---|---|---|---|"]
    intervals = dvm_minus(stats, rng)
    for v, s in stats.items():
        row = f"| {NAMES[v]} | {s['start'].mean():.2f} ± {s['start'].std():.2f} | {s['low']:.2f} | " \
              f"{s['auc'].mean():.2f} ± {s['auc'].std():.2f} | {s['final'].mean():.2f} ± {s['final'].std():.2f} |"
        if (v, "auc") in intervals:
            for key in ("auc", "final"):
                row += f" {difference_text(*intervals[v, key])} |"
        else:
            row += " | |"
        lines.append(row)
    for runs, label in extras:
        auc, final = np.array([[x[0] for x in auc_and_final(r[2][0], r[2][1][None])] for r in runs]).T
        lines.append(f"| {label} (--extra, {len(runs)} runs) | | | {auc.mean():.2f} ± {auc.std():.2f} | "
                     f"{final.mean():.2f} ± {final.std():.2f} | | |")
    first = next(iter(stats.values()))
    if any(s["per_target"] for s in stats.values()):
        lines += ["", "| method | " + " | ".join(f"final, target {TARGETS[k]}" for k in sorted(first["per_target"])) + " |",
                  "|---|" + "---|" * len(first["per_target"])]
        for v, s in stats.items():
            lines.append(f"| {NAMES[v]} | " + " | ".join(f"{x.mean():.2f} ± {x.std():.2f}" for x in s["per_target"].values())
                         + " |")
    return lines


# ---- the figure -----------------------------------------------------------------------------------------------------


def merge(fig_name, committed, csv_path, ran, root):
    """The committed curves (header, rows) with those of the runs (header, rows) added, for results/FIG.csv: a seed in
    both is taken from the runs (its curves, wall time and durations), and where its curve differs from the committed
    one this says so in one line. A method the CSV holds and the runs do not is refused: its curves would be lost."""
    (header, rows), (new_header, new_rows) = committed, ran
    lost = {r["variant"] for r in rows} - {r["variant"] for r in new_rows}
    if lost:
        fail(f"{csv_path} holds {', '.join(method(v) for v in sorted(lost))}, which {root} has not run: merging would "
             f"drop those curves; run them too (--variants), or move {csv_path} away to start the figure anew")
    new_seeds = {r["seed"] for r in new_rows}
    curves = [{}, {}]  # committed, re-run: {(seed, variant): {step: return}} of the seeds in both
    for k, source in enumerate((rows, new_rows)):
        for r in source:
            if r["seed"] in new_seeds:
                curves[k].setdefault((r["seed"], r["variant"]), {})[r["step"]] = r["return"]
    changed = [f"seed {seed} {method(v)} " + (f"by up to {max(abs(new[t] - old[t]) for t in old):.2f}"
                                              if old.keys() == new.keys() else "at other steps")
               for (seed, v), old in sorted(curves[0].items()) if (new := curves[1][seed, v]) != old]
    if changed:
        print(f"{fig_name}: re-run curves that differ from their committed ones in {csv_path}, now replaced "
              f"(eval/return): {'; '.join(changed)}")
    pieces = [p for p in header["pieces"] if not p[0] <= new_seeds] + new_header["pieces"]
    durations = {k: x for k, x in header["durations"].items() if k[0] not in new_seeds} | new_header["durations"]
    return dict(new_header, pieces=pieces, durations=durations), \
        [r for r in rows if r["seed"] not in new_seeds] + new_rows


def gather(fig_name, merge_asked):
    """(header, rows, seeds started, origin(seed), quick) of a figure, checked, nothing written. The finished seeds of
    runs/FIG alone where results/FIG.csv is not committed yet (the first piece) or unless merge_asked (quick: a quick
    look); else merged with the committed curves. Those alone where no seed of runs/FIG has finished."""
    root, csv_path = os.path.join(OUT, "runs", fig_name), os.path.join(OUT, "results", f"{fig_name}.csv")
    committed = read_csv(csv_path) if os.path.exists(csv_path) else None
    ran = rows_from_runs(root) if os.path.isdir(root) else None
    expected = next((script for prefix, script in SCRIPTS.items() if fig_name.startswith(prefix)), None)
    for where, found in ((csv_path, committed), (root, ran)):
        script = found and found[0]["command"].split(" ")[0]
        if script and expected and script != expected:
            fail(f"{where} holds curves of {script}, {title(fig_name)} is one of {expected}")
    new_header, new_rows, started = ran or (None, [], 0)
    new_seeds = {r["seed"] for r in new_rows}
    if len(new_seeds) < started:
        print(f"{fig_name}: {len(new_seeds)} of {started} seeds have finished all of their runs; drawing those")
    if not new_rows:
        if not committed:
            fail(f"no curves for {fig_name}: neither a finished seed in {root} nor {csv_path}")
        return *committed, 0, lambda seed: csv_path, False
    origin = lambda seed: root if seed in new_seeds else csv_path  # noqa: E731
    if not committed:
        return new_header, new_rows, started, origin, False
    header = committed[0]
    if (new_header["command"], new_header["phase1_from"]) != (header["command"],
                                                               header["phase1_from"] or new_header["phase1_from"]):
        fail(f"{root} holds runs of another command or Phase I ({new_header['command']}; Phase I from "
             f"{new_header['phase1_from']}) than {csv_path} ({header['command']}; Phase I from "
             f"{header['phase1_from'] or '?'}); move one of them away to draw the other")
    if not merge_asked:
        return new_header, new_rows, started, origin, True
    return *merge(fig_name, committed, csv_path, (new_header, new_rows), root), started, origin, False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("fig")
    parser.add_argument("--extra", action="append", default=[], metavar="PATH[:LABEL]",
                        help="draw your own run folder(s) over the figure, with a table row")
    parser.add_argument("--merge", action="store_true",
                        help="merge the finished seeds of runs/FIG into results/FIG.csv where it exists; without it, "
                             "they get a quick look of their own in runs/FIG/quick_look/")
    cli = parser.parse_args()
    fig_name = cli.fig
    header, rows, started, origin, quick = gather(fig_name, cli.merge)
    check_curves(rows, origin)
    extras = [read_extra(spec, header["command"]) for spec in cli.extra]  # refused, too, before anything is written

    quick_look = os.path.join(OUT, "runs", fig_name, "quick_look")
    folder, images = (quick_look, quick_look) if quick else (os.path.join(OUT, "results"), os.path.join(OUT, "images"))
    csv_path = os.path.join(folder, f"{fig_name}.csv")
    rows.sort(key=lambda r: (r["seed"], list(NAMES).index(r["variant"]) if r["variant"] in NAMES else -1, r["step"]))
    try:  # each file whole or as it was (a full disk, a read-only folder)
        for path in (folder, images):
            os.makedirs(path, exist_ok=True)
        write_csv(csv_path, header, rows)
        header, rows = read_csv(csv_path)  # what follows sees exactly what a reader of the CSV sees

        seeds = sorted({r["seed"] for r in rows})
        n_seeds = f"{len(seeds)} seed" + "s" * (len(seeds) != 1)
        variants = [v for v in NAMES if any(r["variant"] == v for r in rows)]
        phase1_rows = [r for r in rows if r["variant"] == "phase1"]
        stats = {v: variant_stats([r for r in rows if r["variant"] == v]) for v in variants}
        draw(os.path.join(images, f"{fig_name}.png"), fig_name, n_seeds, curve_array(phase1_rows), stats, extras)
        runs = {(r["seed"], r["variant"]) for r in rows if r["variant"] != "phase1"}
        others = "the other had" if started - len(seeds) == 1 else "the others had"
        unfinished = f" (of {started} started; {others} not finished)" if started > len(seeds) else ""
        cost = cost_text(header["pieces"], header["durations"], runs)
        summary = (f"{n_seeds} ({' '.join(map(str, seeds))}; a quick look, not in `results/`){unfinished}, {cost}; "
                   f"per-seed curves in `{fig_name}.csv`. ![{fig_name}]({fig_name}.png)" if quick else
                   f"{n_seeds}{unfinished}, {cost}; per-seed curves in `results/{fig_name}.csv`. "
                   f"![{fig_name}](images/{fig_name}.png)")
        lines = table(fig_name, summary, phase1_rows, seeds, stats, extras)
        write_atomically(os.path.join(folder, f"{fig_name}.md"), "\n".join(lines) + "\n")
    except OSError as e:
        fail(str(e) if e.strerror is None else f"cannot write in {folder} ({e.strerror})")
    print("\n".join(lines))
    if quick:
        print(f"{fig_name}: a quick look at seeds {' '.join(map(str, seeds))}, in {folder}; "
              f"{os.path.join(OUT, 'results', fig_name + '.csv')} is left as it was: run again with MERGE=1 "
              "(plot.py --merge) to merge them into it")


if __name__ == "__main__":
    main()
