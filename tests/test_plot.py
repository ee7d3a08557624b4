"""benchmark/plot.py and the checkpoint readers of fig8.py and push_box_exploration.py, on hand-made curves, runs and
checkpoints (written here in the scripts' formats, so that the tests need no training): the table's arithmetic, the
CSV's run durations and cost, and a one-line refusal, with nothing written, of every bad input."""
import dataclasses
import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import ROOT, RUN_TINY, file_size_limit, files, refused, script

PLOT = os.path.join(ROOT, "benchmark", "plot.py")
HEADER = "seed,variant,step,phase,return,return_team0,return_team1,return_target0,return_target1,return_target2"
PHASE1 = [(0, -10.0), (1000, -8.0), (2000, -6.0)]
PHASE2 = [(step, -6.0) for step in range(2000, 13000, 1000)]
# the figure the --extra runs are checked against: a maddpg_dvm.py command with flags
COMMAND = "maddpg_dvm.py --phase1-steps 2000 --phase2-steps 11000 --hidden-dim 16 --learning-rate 1e-3 --threads 1"
SETTINGS = dict(phase1_steps=2000, phase2_steps=11000, hidden_dim=16, learning_rate=1e-3)


def hand_csv(out, fig="hand", command="maddpg_dvm.py --made-by-hand", rows=None, head=None):
    """results/FIG.csv of two seeds, No DVM flat at -10 and DVM at -6 with a dip one evaluation after the DVM step
    (-12 and -14); `rows` replaces the data lines, `head` the header lines."""
    (out / "results").mkdir(parents=True, exist_ok=True)
    lines = head or [f"# command: {command}", "# piece: seeds 1 2, wall time 120 s", HEADER]
    if rows is None:
        rows = []
        for seed, dip in ((1, -12), (2, -14)):
            rows += [f"{seed},phase1,{step},1,{r},,,,," for step, r in PHASE1]
            rows += [f"{seed},none,{step},2,-10,,,,," for step, _ in PHASE2]
            rows += [f"{seed},dvm,{step},2,{dip if step == 3000 else -6},,,,," for step, _ in PHASE2]
    path = out / "results" / f"{fig}.csv"
    path.write_text("\n".join(lines + rows) + "\n")
    return path


def nothing_written(out, fig, csv_text=None):
    assert not (out / "images" / f"{fig}.png").exists() and not (out / "results" / f"{fig}.md").exists()
    if csv_text is not None:
        assert (out / "results" / f"{fig}.csv").read_text() == csv_text


def write_events(run_dir, phase1=(), phase2=()):
    """A run's TensorBoard event file as the scripts write it: eval/return and charts/phase at every evaluation."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir))
    for phase, curve in ((1, phase1), (2, phase2)):
        for step, value in curve:
            writer.add_scalar("eval/return", value, step)
            writer.add_scalar("charts/phase", phase, step)
    writer.close()


def networks(n_agents=2, hidden=16, obs_dim=None):
    """A team's actors and critics state dicts of maddpg_dvm.py (spread; push box with obs_dim=12)."""
    import maddpg_dvm
    import particle_envs

    obs_dim = obs_dim or particle_envs.make("spread", n_agents=n_agents).single_observation_space.shape[0]
    actors = torch.nn.ModuleList([maddpg_dvm.Actor(obs_dim, 5, hidden) for _ in range(n_agents)])
    critics = torch.nn.ModuleList([maddpg_dvm.Critic(n_agents, obs_dim, 5, hidden) for _ in range(n_agents)])
    return dict(actors=actors.state_dict(), critics=critics.state_dict())


def checkpoint(path, kind, algorithm="maddpg_dvm", teams=None, **settings):
    """A checkpoint in the scripts' format (algorithm, kind, config, global_step, teams), weights_only-loadable."""
    import maddpg_dvm
    import masac_dvm

    args = (maddpg_dvm if algorithm == "maddpg_dvm" else masac_dvm).Args(**settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(algorithm=algorithm, kind=kind, config=dataclasses.asdict(args), global_step=0,
                    teams=teams or [networks(hidden=args.hidden_dim)]), path)
    return path


class RunsCode:
    """Unpickling this creates the file `marker`: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def hostile_files(tmp_path, genuine):
    """(name, path) of files no checkpoint reader may accept: two that would run code when unpickled (a torch.save
    zip and a bare pickle), a truncated and an empty copy of `genuine`, a text file and a torch file that is no
    checkpoint of the scripts; the marker file whose creation would show code ran."""
    marker, made = tmp_path / "code_ran", tmp_path / "hostile"
    made.mkdir()
    torch.save(dict(algorithm="maddpg_dvm", kind="phase1", config={}, teams=[RunsCode(marker)]), made / "zip.pt")
    (made / "pickle.pt").write_bytes(pickle.dumps(dict(algorithm="maddpg_dvm", x=RunsCode(marker))))
    data = genuine.read_bytes()
    (made / "truncated.pt").write_bytes(data[:len(data) // 2])
    (made / "empty.pt").write_bytes(b"")
    (made / "text.pt").write_text("seed,variant\n1,dvm\n")
    torch.save({"weights": torch.zeros(3)}, made / "other.pt")
    files = [("would run code (zip)", made / "zip.pt", "refused unread"),
             ("would run code (pickle)", made / "pickle.pt", "refused unread"),
             ("truncated", made / "truncated.pt", "not a readable checkpoint"),
             ("empty", made / "empty.pt", "not a readable checkpoint"),
             ("text", made / "text.pt", "not a readable checkpoint"),
             ("not ours", made / "other.pt", "is not a checkpoint of maddpg_dvm.py")]
    return files, marker


# ---------------------------------------------------------------------------------------------------- checkpoints


def fig8_runs(out):
    """runs/f8/seed1 with the four checkpoints Fig. 8 draws."""
    seed = out / "runs" / "f8" / "seed1"
    checkpoint(seed / "none" / "phase1.pt", "phase1", hidden_dim=16)
    checkpoint(seed / "dvm" / "dvm.pt", "dvm", hidden_dim=16)
    checkpoint(seed / "none" / "phase2.pt", "phase2", hidden_dim=16)
    checkpoint(seed / "dvm" / "phase2.pt", "phase2", hidden_dim=16)
    return seed


def test_fig8_reads_checkpoints_safely_and_refuses_the_wrong_kind_in_one_line(tmp_path, forked):
    seed = fig8_runs(tmp_path)
    proc = script("fig8.py", tmp_path, "f8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    drawn = (tmp_path / "images" / "f8.png").read_bytes()
    # drawn again where images/ has its picture: a quick look of its own, the picture left alone
    proc = script("fig8.py", tmp_path, "f8")
    assert proc.returncode == 0 and "images/ is left as it was" in proc.stdout, proc.stdout + proc.stderr
    assert (tmp_path / "runs" / "f8" / "quick_look" / "f8.png").read_bytes() == drawn
    assert (tmp_path / "images" / "f8.png").read_bytes() == drawn
    (tmp_path / "images" / "f8.png").unlink()

    genuine = seed / "none" / "phase1.pt"
    saved = genuine.read_bytes()
    files, marker = hostile_files(tmp_path, genuine)
    for name, path, message in files:
        shutil.copy(path, genuine)
        proc = forked.script("fig8.py", tmp_path, "f8")
        refused(proc, str(genuine), message)
        assert not marker.exists(), f"{name}: the checkpoint's code ran"
    assert not (tmp_path / "images" / "f8.png").exists()
    genuine.write_bytes(saved)

    # a checkpoint of another kind, another script, or another domain where Fig. 8 reads one
    checkpoint(seed / "dvm" / "dvm.pt", "phase2", hidden_dim=16)
    refused(forked.script("fig8.py", tmp_path, "f8"), "dvm.pt is a Phase II (phase2.pt) checkpoint",
            "DVM step (dvm.pt)")
    checkpoint(seed / "dvm" / "dvm.pt", "dvm", algorithm="masac_dvm", hidden_dim=16)
    refused(forked.script("fig8.py", tmp_path, "f8"), "is not a checkpoint of maddpg_dvm.py")
    checkpoint(seed / "dvm" / "dvm.pt", "dvm", teams=[networks(hidden=16)], hidden_dim=32)  # not what its config says
    refused(forked.script("fig8.py", tmp_path, "f8"), "does not hold the networks")
    (seed / "dvm" / "dvm.pt").unlink()
    refused(forked.script("fig8.py", tmp_path, "f8"), "dvm.pt does not exist")
    assert not (tmp_path / "images" / "f8.png").exists()


def test_push_box_exploration_reads_a_phase1_checkpoint_safely_or_refuses_it_in_one_line(tmp_path, forked):
    teams = [networks(obs_dim=12), networks(obs_dim=12)]
    genuine = checkpoint(tmp_path / "box" / "phase1.pt", "phase1", teams=teams, domain="push_box", hidden_dim=16)
    files, marker = hostile_files(tmp_path, genuine)
    for name, path, message in files:
        refused(forked.script("push_box_exploration.py", tmp_path, path), str(path), message)
        assert not marker.exists(), f"{name}: the checkpoint's code ran"
    # refused before the rollouts: no line of them
    wrong = checkpoint(tmp_path / "box" / "phase2.pt", "phase2", teams=teams, domain="push_box", hidden_dim=16)
    proc = forked.script("push_box_exploration.py", tmp_path, wrong)
    refused(proc, "is a Phase II (phase2.pt) checkpoint", "Phase I (phase1.pt)")
    assert proc.stdout == ""
    spread = checkpoint(tmp_path / "spread" / "phase1.pt", "phase1", hidden_dim=16)
    refused(forked.script("push_box_exploration.py", tmp_path, spread), "needs a push_box run's phase1.pt")
    refused(forked.script("push_box_exploration.py", tmp_path, tmp_path / "missing.pt"), "does not exist")


# ---------------------------------------------------------------------------------------------------- the CSV


def test_table_numbers_of_hand_made_curves(tmp_path):
    """plot.py's arithmetic on curves whose numbers are known: two seeds, No DVM flat at -10, DVM at -6 with a dip
    one evaluation after the DVM step (-12 and -14) that the 'lowest, first 5k steps' column must show."""
    hand_csv(tmp_path)
    proc = script("plot.py", tmp_path, "hand")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "results" / "hand.md").read_text()
    # no run durations in the CSV (curves committed before runs kept them): the wall time, labelled as such
    assert "2 seeds, wall time 2 min" in table and "End of Phase I: -6.00 ± 0.00." in table
    # AUC of DVM: (two segments at the mean of the dip and -6, eight at -6) / 10 = -6.6 and -6.8; final: last 10 % = -6
    assert "| No DVM | -10.00 ± 0.00 | -10.00 | -10.00 ± 0.00 | -10.00 ± 0.00 | +3.30 [+3.20, +3.40] | " \
           "+4.00 [+4.00, +4.00] |" in table
    assert "| DVM | -6.00 ± 0.00 | -13.00 | -6.70 ± 0.10 | -6.00 ± 0.00 | | |" in table


def test_bootstrap_pairs_the_methods_seed_by_seed(tmp_path):
    """catches an unpaired bootstrap (each method's seeds resampled on their own): six seeds from -20 to -1, DVM 2
    above No DVM on each (within 0.1), so the paired interval of DVM minus No DVM lies within [1.9, 2.1], where an
    unpaired one spans the spread between seeds (about 9 wide)."""
    levels, wobble = [-20.0, -14.0, -10.0, -6.0, -3.0, -1.0], [0.1, -0.1, 0.0, 0.05, -0.05, 0.1]
    rows = []
    for seed, (level, w) in enumerate(zip(levels, wobble), start=1):
        rows += [f"{seed},phase1,{step},1,{level},,,,," for step, _ in PHASE1]
        rows += [f"{seed},none,{step},2,{level},,,,," for step, _ in PHASE2]
        rows += [f"{seed},dvm,{step},2,{level + 2 + w},,,,," for step, _ in PHASE2]
    hand_csv(tmp_path, rows=rows, head=["# command: maddpg_dvm.py --made-by-hand",
                                        "# piece: seeds 1 2 3 4 5 6, wall time 120 s", HEADER])
    proc = script("plot.py", tmp_path, "hand")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in (tmp_path / "results" / "hand.md").read_text().splitlines()
               if line.startswith("| No DVM |"))
    intervals = re.findall(r"\+2\.\d\d \[([+-]\d+\.\d\d), ([+-]\d+\.\d\d)\]", row)
    assert len(intervals) == 2, row  # AUC and final
    for lo, hi in intervals:
        assert 1.9 <= float(lo) <= float(hi) <= 2.1, row
    # the premise: unpaired, the same numbers give an interval many times wider
    rng, a = np.random.default_rng(0), np.array(levels)
    unpaired = rng.choice(a + 2 + np.array(wobble), (10_000, 6)).mean(1) - rng.choice(a, (10_000, 6)).mean(1)
    lo, hi = np.percentile(unpaired, [2.5, 97.5])
    assert hi - lo > 5


def test_a_committed_figure_redraws_with_the_committed_table(tmp_path):
    for folder in ("results", "images"):
        shutil.copytree(os.path.join(ROOT, "benchmark", folder), tmp_path / folder)
    proc = script("plot.py", tmp_path, "fig4a")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    committed = open(os.path.join(ROOT, "benchmark", "results", "fig4a.md")).read()
    assert (tmp_path / "results" / "fig4a.md").read_text() == committed
    assert [line for line in committed.splitlines() if line.startswith("| ")]  # (the table rows compared above)
    assert (tmp_path / "results" / "fig4a.csv").read_text() == \
        open(os.path.join(ROOT, "benchmark", "results", "fig4a.csv")).read()


MALFORMED = {  # what breaks the hand-made CSV -> the line named in the refusal
    "a bad field": (lambda lines: lines[:9] + ["1,none,30x0,2,-10,,,,,"] + lines[10:], 10, "step '30x0'"),
    "a truncated line": (lambda lines: lines[:-1] + ["2,dvm,12000,2"], 53, "4 fields where the header has 10"),
    "a missing column": (lambda lines: lines[:2] + [HEADER.replace(",return,", ",")] + lines[3:], 3, "no column return"),
    "a bad header line": (lambda lines: lines[:1] + ["# piece: seeds 1 2, wall 120 s"] + lines[2:], 2, "header line"),
    "an unknown variant": (lambda lines: lines[:20] + ["1,dvm2,12000,2,-6,,,,,"] + lines[21:], 21, "'dvm2'"),
    "a non-number return": (lambda lines: lines[:5] + ["1,phase1,2000,1,-6..0,,,,,"] + lines[6:], 6, "return '-6..0'"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_csv_is_refused_in_one_line_naming_file_and_line(tmp_path, case, forked):
    path = hand_csv(tmp_path)
    edit, line, words = MALFORMED[case]
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    text = path.read_text()
    refused(forked.script("plot.py", tmp_path, "hand"), f"{path}, line {line}:", words)
    nothing_written(tmp_path, "hand", text)


def test_a_binary_file_as_csv_is_refused_in_one_line(tmp_path, forked):
    path = tmp_path / "results" / "hand.csv"
    path.parent.mkdir()
    shutil.copy(os.path.join(ROOT, "benchmark", "images", "fig4a.png"), path)
    refused(forked.script("plot.py", tmp_path, "hand"), f"{path}, line 1: not text")
    path.write_bytes(b"# command: x\n" + HEADER.encode() + b"\n1,phase1,0\x00\x01,1,-10,,,,,\n")
    refused(forked.script("plot.py", tmp_path, "hand"), f"{path}, line 3: not text")
    nothing_written(tmp_path, "hand")


def test_a_csv_without_its_command_is_refused(tmp_path, forked):
    # (--extra and merging compare with the command; plot.py wrote "# command: None" back, --extra had a traceback)
    path = hand_csv(tmp_path, head=["# piece: seeds 1 2, wall time 120 s", HEADER])
    refused(forked.script("plot.py", tmp_path, "hand"), f"{path}: no '# command: ...' line")
    nothing_written(tmp_path, "hand", path.read_text())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_return_is_refused_naming_seed_and_method(tmp_path, value, forked):
    path = hand_csv(tmp_path)
    lines = path.read_text().splitlines()
    at = lines.index("2,dvm,8000,2,-6,,,,,")
    lines[at] = f"2,dvm,8000,2,{value},,,,,"
    path.write_text("\n".join(lines) + "\n")
    refused(forked.script("plot.py", tmp_path, "hand"), "seed 2, DVM (dvm)", f"is {float(value)} at step 8000",
            str(path))
    nothing_written(tmp_path, "hand", path.read_text())


def test_curves_of_unequal_length_are_refused(tmp_path, forked):
    path = hand_csv(tmp_path)
    lines = [line for line in path.read_text().splitlines() if line != "2,none,12000,2,-10,,,,,"]  # cut short
    path.write_text("\n".join(lines) + "\n")
    refused(forked.script("plot.py", tmp_path, "hand"), "seed 2, No DVM (none): 10 evaluations where seed 1 has 11")
    nothing_written(tmp_path, "hand", path.read_text())


# ---------------------------------------------------------------------------------------------------- runs


def fake_runs(out, fig, seeds, variants, seconds=None, command=COMMAND, dvm_return=-6.0):
    """runs/FIG as run.py leaves it: command.txt, wall_time.txt, and per seed and variant a finished run (event file,
    phase2.pt; phase1.pt in the first variant) with seconds.txt where `seconds(seed, variant)` gives a number."""
    root = out / "runs" / fig
    root.mkdir(parents=True, exist_ok=True)
    (root / "command.txt").write_text(command + "\n")
    (root / "wall_time.txt").write_text("600.0\n")
    for seed in seeds:
        for k, variant in enumerate(variants):
            run = root / f"seed{seed}" / variant
            value = dvm_return + seed if variant.startswith("dvm") else -10.0
            write_events(run, PHASE1 if k == 0 else (), [(step, value) for step, _ in PHASE2])
            (run / "phase2.pt").write_bytes(b"")  # only its existence counts here: the run finished
            if k == 0:
                (run / "phase1.pt").write_bytes(b"")
            if seconds and seconds(seed, variant) is not None:
                (run / "seconds.txt").write_text(f"{seconds(seed, variant)}\n")
    return root


def test_each_runs_duration_goes_into_the_csv_and_the_cost_in_core_minutes(tmp_path):
    durations = {"none": 120.0, "dvm": 60.0}
    root = fake_runs(tmp_path, "cost", (1, 2), ("none", "dvm"), seconds=lambda seed, v: durations[v] * seed)
    proc = script("plot.py", tmp_path, "cost")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    curves = (tmp_path / "results" / "cost.csv").read_text()
    assert "# run: seed 1, variant none, 120.0 s\n# run: seed 1, variant dvm, 60.0 s\n" \
           "# run: seed 2, variant none, 240.0 s\n# run: seed 2, variant dvm, 120.0 s\n" in curves
    table = (tmp_path / "results" / "cost.md").read_text()
    assert "2 seeds, 9 core-minutes;" in table  # (120 + 60 + 240 + 120) s
    # the same from the CSV alone
    root.rename(tmp_path / "elsewhere")
    proc = script("plot.py", tmp_path, "cost")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "results" / "cost.md").read_text() == table

    # a piece with seed 3 (and seed 2 again, which replaces the committed one's curves and durations)
    fake_runs(tmp_path, "cost", (2, 3), ("none", "dvm"), seconds=lambda seed, v: 30.0)
    proc = script("plot.py", tmp_path, "cost", "--merge")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    curves = (tmp_path / "results" / "cost.csv").read_text()
    assert curves.count("# run: ") == 6 and "# run: seed 2, variant none, 30.0 s" in curves
    assert "3 seeds, 5 core-minutes in 2 pieces;" in (tmp_path / "results" / "cost.md").read_text()  # 180 + 4 x 30 s

    # a piece whose runs kept no duration: the cost cannot be summed, the wall time stands in, labelled
    shutil.rmtree(tmp_path / "runs" / "cost")
    fake_runs(tmp_path, "cost", (4,), ("none", "dvm"), seconds=lambda seed, v: None if v == "dvm" else 60.0)
    proc = script("plot.py", tmp_path, "cost", "--merge")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 seeds, wall time 30 min in 3 pieces;" in (tmp_path / "results" / "cost.md").read_text()


def test_a_diverged_or_doubled_run_of_the_figure_is_refused_before_anything_is_written(tmp_path, forked):
    root = fake_runs(tmp_path, "div", (1, 2), ("none", "dvm"), dvm_return=float("nan"))
    refused(forked.script("plot.py", tmp_path, "div"), "seed 1, DVM (dvm): eval/return is nan", str(root))
    nothing_written(tmp_path, "div")
    shutil.rmtree(root)
    root = fake_runs(tmp_path, "div", (1, 2), ("none", "dvm"))
    write_events(root / "seed2" / "dvm", (), PHASE2)  # a second run wrote into the folder
    refused(forked.script("plot.py", tmp_path, "div"), f"{root / 'seed2' / 'dvm'} holds 2 TensorBoard event files")
    nothing_written(tmp_path, "div")


def test_a_quick_look_leaves_the_committed_results_alone_and_merge_says_which_rerun_differs(tmp_path):
    # the first piece of a figure goes into results/ directly
    fake_runs(tmp_path, "ql", (1, 2), ("none", "dvm"))
    assert script("plot.py", tmp_path, "ql").returncode == 0
    assert "2 seeds" in (tmp_path / "results" / "ql.md").read_text()
    shutil.rmtree(tmp_path / "runs")
    committed = files(tmp_path)
    # a quick look at seeds 2 (run again, with another curve) and 3: its own folder, its seeds named
    quick = fake_runs(tmp_path, "ql", (2, 3), ("none", "dvm"), dvm_return=-5.0) / "quick_look"
    proc = script("plot.py", tmp_path, "ql")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p: b for p, b in files(tmp_path).items() if p in committed} == committed
    assert sorted(p.name for p in quick.iterdir()) == ["ql.csv", "ql.md", "ql.png"]
    assert "2 seeds (2 3; a quick look, not in `results/`)" in (quick / "ql.md").read_text()
    assert proc.stdout.splitlines()[-1] == (f"ql: a quick look at seeds 2 3, in {quick}; {tmp_path}/results/ql.csv is "
                                            "left as it was: run again with MERGE=1 (plot.py --merge) to merge them "
                                            "into it")
    assert "differ" not in proc.stdout
    # merged on request: seed 2's re-run replaces its committed curves, and says by how much they differ
    proc = script("plot.py", tmp_path, "ql", "--merge")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ql: re-run curves that differ from their committed ones in {tmp_path}/results/ql.csv, now replaced " \
           "(eval/return): seed 2 DVM (dvm) by up to 1.00\n" in proc.stdout
    assert "3 seeds, wall time 20 min in 2 pieces;" in (tmp_path / "results" / "ql.md").read_text()


def test_merging_never_drops_the_committed_curves_of_a_method_not_run_again(tmp_path, forked):
    fake_runs(tmp_path, "drop", (1, 2), ("none", "dvm"))
    assert script("plot.py", tmp_path, "drop").returncode == 0
    shutil.rmtree(tmp_path / "runs" / "drop")  # (the README's way to start a figure over) and fewer variants
    fake_runs(tmp_path, "drop", (1, 2), ("dvm",))
    committed = files(tmp_path / "results")
    refused(forked.script("plot.py", tmp_path, "drop", "--merge"), "results/drop.csv holds No DVM (none), which",
            "has not run: merging would drop those curves")
    assert files(tmp_path / "results") == committed


def test_a_failed_write_leaves_the_committed_csv_whole_and_says_so_in_one_line(tmp_path):
    # a full disk, as a file-size limit below the CSV's size: redrawn from the committed curves, the CSV was written over
    # in place and left cut mid-row (the next plot refused it)
    path = hand_csv(tmp_path)
    before = files(tmp_path)
    refused(script("plot.py", tmp_path, "hand", limit=path.stat().st_size // 2),
            f"cannot write {path} (File too large); the file there before is left as it was")
    assert files(tmp_path) == before  # (no temporary file left either)


def test_duplicate_evaluations_a_phase2_of_one_evaluation_and_a_csv_of_another_script_are_refused(tmp_path, forked):
    path = hand_csv(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + ["1,dvm,8000,2,-7,,,,,", "2,dvm,8000,2,-7,,,,,"]) + "\n")  # a second step 8000
    refused(forked.script("plot.py", tmp_path, "hand"), "seed 1, DVM (dvm): two evaluations at step 8000", str(path))
    nothing_written(tmp_path, "hand", path.read_text())
    path.write_text("\n".join(line for line in lines if ",2," not in line or ",2000,2," in line) + "\n")
    refused(forked.script("plot.py", tmp_path, "hand"), "No DVM (none): 1 Phase II evaluation, the table needs two")
    nothing_written(tmp_path, "hand", path.read_text())
    # a maddpg_dvm.py CSV copied to the name of a MA-SAC figure
    path = hand_csv(tmp_path, fig="fig5a", command="maddpg_dvm.py --n-agents 2")
    refused(forked.script("plot.py", tmp_path, "fig5a"), f"{path} holds curves of maddpg_dvm.py, Fig. 5a: MA-SAC, "
            "spread, 2 agents is one of masac_dvm.py")
    nothing_written(tmp_path, "fig5a", path.read_text())


def test_broken_run_folders_are_refused_in_one_line_before_anything_is_written(tmp_path, forked):
    root = fake_runs(tmp_path, "brk", (1,), ("none", "dvm"))
    (root / "seed1.bak").mkdir()  # a copy left beside the seeds is no seed
    proc = script("plot.py", tmp_path, "brk")
    assert proc.returncode == 0 and "1 seed, " in (tmp_path / "results" / "brk.md").read_text(), proc.stderr
    for folder in ("results", "images"):
        shutil.rmtree(tmp_path / folder)
    (root / "wall_time.txt").write_text("")  # (an older run.py on a full disk left it empty)
    refused(forked.script("plot.py", tmp_path, "brk"), f"{root / 'wall_time.txt'}: not a duration in seconds")
    (root / "wall_time.txt").write_text("600.0\n")
    (root / "command.txt").unlink()
    refused(forked.script("plot.py", tmp_path, "brk"), f"{root} has no command.txt")
    # a figure whose Phase I came from another figure (--phase1-from), that figure deleted since
    branch = fake_runs(tmp_path, "brn", (1,), ("dvm",))
    (branch / "seed1" / "dvm" / "phase1.pt").unlink()
    (branch / "phase1_from.txt").write_text("gone\n")
    refused(forked.script("plot.py", tmp_path, "brn"), f"{tmp_path / 'runs' / 'gone'}/seed1 holds 0 Phase I runs")
    assert not (tmp_path / "results").exists() and not (tmp_path / "images").exists()


def test_the_ablation_variants_are_drawn(tmp_path):
    variants = ("dvm", "dvm_it1024", "dvm_it256", "dvm_it64")
    fake_runs(tmp_path, "dvm_iterations_fig4a", (1, 2), variants, seconds=lambda seed, v: 60.0)
    proc = script("plot.py", tmp_path, "dvm_iterations_fig4a")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "results" / "dvm_iterations_fig4a.md").read_text()
    for name in ("DVM", "DVM, 1024 iterations", "DVM, 256 iterations", "DVM, 64 iterations"):
        assert f"| {name} | " in table
    assert "2 seeds, 8 core-minutes;" in table


# ---------------------------------------------------------------------------------------------------- --extra


def extra_run(folder, algorithm="maddpg_dvm", phase2=PHASE2, finished=True, **settings):
    """A run of your own: its event file (Phase II only, as if branched from a Phase I checkpoint) and phase2.pt."""
    write_events(folder, (), phase2)
    if finished:
        checkpoint(folder / "phase2.pt", "phase2", algorithm=algorithm, **{**SETTINGS, **settings})
    return folder


def test_extra_runs_that_do_not_fit_the_figure_are_refused_before_anything_is_written(tmp_path, forked):
    path = hand_csv(tmp_path, command=COMMAND)
    text = path.read_text()
    mine = tmp_path / "mine"
    extra_run(mine / "seed1", seed=1)
    extra_run(mine / "seed2", seed=2, threads=4, dvm_mode="vm")  # per-run settings and the method are free
    bad = tmp_path / "bad"
    cases = [
        (extra_run(bad / "masac", algorithm="masac_dvm"), "is a run of masac_dvm.py, the figure one of maddpg_dvm.py"),
        (extra_run(bad / "config", hidden_dim=32), "hidden_dim=32 (the figure: 16)"),
        (extra_run(bad / "lr", learning_rate=0.01), "learning_rate=0.01 (the figure: 1e-3)"),
        (extra_run(bad / "unfinished", finished=False), "no phase2.pt, the run has not finished"),
        (extra_run(bad / "diverged", phase2=PHASE2[:5] + [(7000, float("nan"))] + PHASE2[6:]),
         "eval/return is nan at step 7000 (a diverged run)"),
    ]
    shutil.copytree(mine, bad / "short")
    shutil.rmtree(bad / "short" / "seed2")
    extra_run(bad / "short" / "seed2", phase2=PHASE2[:-2])
    cases.append((bad / "short", "runs of unequal length"))
    shutil.copytree(mine / "seed1", bad / "doubled")
    write_events(bad / "doubled", (), PHASE2)
    cases.append((bad / "doubled", "holds 2 TensorBoard event files"))
    shutil.copytree(mine / "seed1", bad / "hostile")
    files, marker = hostile_files(tmp_path, mine / "seed1" / "phase2.pt")
    shutil.copy(files[0][1], bad / "hostile" / "phase2.pt")
    cases.append((bad / "hostile", "refused unread"))
    for folder, message in cases:
        refused(forked.script("plot.py", tmp_path, "hand", "--extra", f"{folder}:theirs"), message)
        nothing_written(tmp_path, "hand", text)
    assert not marker.exists()

    proc = script("plot.py", tmp_path, "hand", "--extra", f"{mine}:my runs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| my runs (--extra, 2 runs) | | | -6.00 ± 0.00 | -6.00 ± 0.00 | | |" in \
        (tmp_path / "results" / "hand.md").read_text()


def test_the_settings_of_a_figures_command(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import plot

    assert plot.command_settings("maddpg_dvm.py --n-agents 2 --no-phase2-learning --alpha -1 --gamma=0.9 --cuda") == \
        ("maddpg_dvm.py", {"n_agents": "2", "phase2_learning": False, "alpha": "-1", "gamma": "0.9", "cuda": True})
    assert plot.same_setting(0.001, "1e-3") and plot.same_setting(20000, "20_000") and plot.same_setting("spread", "spread")
    assert not plot.same_setting(True, "1") and not plot.same_setting(None, "x") and not plot.same_setting(2, "two")


# ---------------------------------------------------------------------------------------------------- with run.py


def test_push_box_figure_keeps_team_and_target_curves_in_its_csv(tmp_path):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), SEEDS="1", JOBS="2")
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "box", "maddpg_dvm.py", "--variants", "none", "dvm",
           "--", *RUN_TINY, "--domain", "push_box", "--eval-episodes", "12"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (tmp_path / "results" / "box.md").read_text()
    assert "team A, Task I" in table and "Per seed (team A / team B): 1: " in table and "final, target up (new)" in table
    header, *rows = [line for line in (tmp_path / "results" / "box.csv").read_text().splitlines()
                     if not line.startswith("#")]
    columns = header.split(",")
    for row in rows:
        values = dict(zip(columns, row.split(",")))
        assert (values["return_team0"] != "") == (values["phase"] == "1")  # team returns in Phase I only
        assert values["return_target0"] == "" or values["phase"] == "2"
    (tmp_path / "runs" / "box").rename(tmp_path / "elsewhere")
    proc = script("plot.py", tmp_path, "box")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "results" / "box.md").read_text() == table

    # the scripts' own checkpoints are read: the diagnostic's Phase I, an --extra run's phase2.pt and config
    proc = script("push_box_exploration.py", tmp_path, tmp_path / "elsewhere" / "seed1" / "none" / "phase1.pt")
    assert proc.returncode == 0 and "team A's greedy actors" in proc.stdout, proc.stdout + proc.stderr
    proc = script("plot.py", tmp_path, "box", "--extra", f"{tmp_path / 'elsewhere' / 'seed1'}:again")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| again (--extra, 2 runs) |" in (tmp_path / "results" / "box.md").read_text()


def test_fig8_draws_the_scripts_own_checkpoints(tmp_path):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), SEEDS="1", JOBS="2")
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "f8", "maddpg_dvm.py", "--variants", "none", "dvm",
           "--plot", "fig8.py", "--", *RUN_TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "images" / "f8.png").stat().st_size > 0


def test_run_py_passes_on_a_refusal_of_the_plot_in_one_line(tmp_path):
    # every run finished before (nothing trains), but one diverged: plot.py refuses, run.py says so without a traceback
    fake_runs(tmp_path, "div", (1,), ("none", "dvm"), command="maddpg_dvm.py --hidden-dim 16", dvm_return=float("nan"))
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "div", "maddpg_dvm.py", "--variants", "none",
           "dvm", "--", "--hidden-dim", "16"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=dict(os.environ, BENCHMARK_OUT=str(tmp_path), SEEDS="1", JOBS="1"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1] == "div: plot.py drew nothing (exit 1); see its error above", proc.stderr
    nothing_written(tmp_path, "div")


def test_run_py_on_a_full_disk_leaves_its_files_whole_and_says_so(tmp_path):
    # every run finished before (nothing trains); wall_time.txt cannot be written again, nor can the plot's CSV: each
    # is left as it was (it was left empty, and plot.py then failed on it), and each says so
    root = fake_runs(tmp_path, "disk", (1,), ("none", "dvm"), command="maddpg_dvm.py --hidden-dim 16")
    before = files(tmp_path)
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "disk", "maddpg_dvm.py", "--variants", "none",
           "dvm", "--", "--hidden-dim", "16"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300, preexec_fn=file_size_limit(3),
                          env=dict(os.environ, BENCHMARK_OUT=str(tmp_path), SEEDS="1", JOBS="1"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: cannot write {tmp_path / 'results' / 'disk.csv'} (File too large); nothing written\n" in proc.stderr
    assert proc.stderr.endswith(f"plot.py drew nothing (exit 1); see its error above; run the script again to retry:\n"
                                f"  cannot write {root / 'wall_time.txt'} (File too large); the file there before is "
                                "left as it was\n"), proc.stderr
    assert {p: b for p, b in files(tmp_path).items() if p.name != ".lock"} == before
