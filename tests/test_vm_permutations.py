"""benchmark/vm_permutations.sh end to end on tiny runs: the exact sum and K sampled permutations from one Phase I per
seed, every run's matched critic scored by the exact Eq. (6) loss on held-out transitions, and a table comparing each
K with the exact sum; in pieces as a figure's, the second a quick look unless MERGE=1, a merge touching only the parts
and seeds it was asked to; labels from what the runs ran; bad input refused in one line, nothing written."""
import csv
import os
import shutil
import subprocess
import sys

import pytest
import torch

from helpers import ROOT, RUN_TINY

sys.path.insert(0, os.path.join(ROOT, "benchmark"))


def committed(tmp_path):
    """{path: bytes} of every file in results/ and images/."""
    return {p: p.read_bytes() for folder in ("results", "images") for p in sorted((tmp_path / folder).iterdir())}


def test_vm_permutations_part_runs_every_k_and_scores_it_on_held_out_transitions(tmp_path, monkeypatch):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), JOBS="2", PARTS="fig4b_lr1e-3")
    env.pop("MERGE", None)
    for seeds in ("1", "2"):  # in two pieces, neither with MERGE=1: the first goes into results/, the second not
        proc = subprocess.run(["bash", "benchmark/vm_permutations.sh", *RUN_TINY], cwd=ROOT, capture_output=True,
                              env=dict(env, SEEDS=seeds), text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        if seeds == "1":  # one seed: a table without intervals
            table = (tmp_path / "results" / "vm_permutations.md").read_text()
            assert "1 seed so far" in table and table.count("| one seed | one seed |") == 2
            first_piece = committed(tmp_path)
    # the second piece is a quick look of the runs in runs/ (both seeds), the committed files byte for byte as they were
    assert committed(tmp_path) == first_piece
    quick = tmp_path / "runs" / "vm_permutations" / "quick_look"
    table = (quick / "vm_permutations.md").read_text()
    assert table.startswith("### Sampled permutations in value matching (`bash benchmark/vm_permutations.sh`, beyond "
                            "the paper): a quick look at the runs in `runs/`, not in `results/`")
    assert "2 seeds (1 2), the runs in `runs/vm_permutations_fig4b_lr1e-3/`" in table
    assert table.rstrip().endswith("![vm_permutations](vm_permutations.png)")
    assert (quick / "vm_permutations.png").stat().st_size > 0
    with open(quick / "vm_permutations_steps.csv") as f:
        assert [(r["seed"], r["variant"]) for r in csv.DictReader(f)] == [(s, v) for s in "12"
                                                                          for v in ("dvm", "dvm_k1", "dvm_k2")]
    # MERGE=1 merges the second piece, curves (as run.py calls plot.py for it) and DVM steps (as vm_permutations.sh
    # calls vm_permutations.py: its parts and seeds)
    for command in (["benchmark/plot.py", "vm_permutations_fig4b_lr1e-3", "--merge"],
                    ["benchmark/vm_permutations.py", "--parts", "fig4b_lr1e-3", "--seeds", "2"]):
        proc = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, env=dict(env, MERGE="1"),
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    root = tmp_path / "runs" / "vm_permutations_fig4b_lr1e-3"
    for seed in (1, 2):
        assert not list((root / f"seed{seed}").glob("*/phase1.pt"))  # every run branches from the Phase I part's
        for variant, k in (("dvm", 0), ("dvm_k1", 1), ("dvm_k2", 2)):
            dvm = torch.load(root / f"seed{seed}" / variant / "dvm.pt", weights_only=True)
            assert dvm["config"]["vm_permutations"] == k and dvm["config"]["learning_rate"] == 0.001
    with open(tmp_path / "results" / "vm_permutations_steps.csv") as f:
        steps = list(csv.DictReader(f))
    assert [(r["seed"], r["variant"], r["permutations"]) for r in steps] == [
        (s, v, k) for s in "12" for v, k in (("dvm", "0"), ("dvm_k1", "1"), ("dvm_k2", "2"))]
    assert all(float(r["seconds"]) > 0 and float(r["vm_loss_exact"]) > 0 for r in steps)

    # the held-out episodes are the seed's: scoring again gives the same number, another seed's episodes another
    monkeypatch.setenv("BENCHMARK_OUT", str(tmp_path))
    import vm_permutations
    phase1 = next((tmp_path / "runs" / "vm_permutations_fig4b_phase1" / "seed1").glob("*/phase1.pt"))
    score = vm_permutations.held_out_exact_loss(str(phase1), str(root / "seed1" / "dvm" / "dvm.pt"), 1)
    assert score == pytest.approx(float(steps[0]["vm_loss_exact"]), rel=1e-12)
    assert score != vm_permutations.held_out_exact_loss(str(phase1), str(root / "seed1" / "dvm" / "dvm.pt"), 2)

    table = (tmp_path / "results" / "vm_permutations.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| all ", "| 1 ", "| 2 "))]
    # (RUN_TINY's 5 DVM iterations, not the paper's 2048, said in every label)
    assert [row.split(" | ")[0] for row in rows] == ["| all 6 (exact), 5 iterations", "| 1 of 6, 5 iterations",
                                                     "| 2 of 6, 5 iterations"]
    assert rows[0].endswith("| | |") and all(row.count("[") == 2 for row in rows[1:])  # K minus exact, intervals
    assert "2 seeds so far: too few for a verdict" in table
    assert (tmp_path / "images" / "vm_permutations.png").stat().st_size > 0

    # a part name that does not exist is refused before any training
    proc = subprocess.run(["bash", "benchmark/vm_permutations.sh"], cwd=ROOT, capture_output=True,
                          env=dict(env, PARTS="fig4b_lr1e-3 bogus"), text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "unknown part bogus (fig4c_lr1e-3, fig4b_lr1e-3 or spread5_lr1e-3)"
    assert "vm_permutations" not in proc.stdout


def test_a_k_ahead_of_the_exact_sum_counts_as_keeping_up_and_one_behind_breaks_the_chain(tmp_path, monkeypatch):
    import numpy as np
    monkeypatch.setenv("BENCHMARK_OUT", str(tmp_path))  # (as above: nothing of the repository's is written from here)
    import dvm_iterations
    import vm_permutations

    def side(auc, final):  # 5 seeds' paired differences to the exact sum, as the table's minus-exact cells
        st = {"auc": np.array(auc, float), "final": np.array(final, float)}
        return dvm_iterations.minus_reference(st, {"auc": np.zeros(5), "final": np.zeros(5)}, 5,
                                              np.random.default_rng(0))[1]

    ahead, level, behind = [0.1, 0.2, 0.1, 0.15, 0.12], [-0.2, 0.3, -0.1, 0.2, 0.0], [-0.3, -0.2, -0.25, -0.3, -0.2]
    assert side(ahead, level) == "ahead" and side(level, level) == "level" and side(behind, level) == "behind"
    assert side(ahead, behind) == "behind"  # ahead on AUC but behind at the end is not keeping up
    assert dvm_iterations.minus_reference({"auc": np.zeros(1), "final": np.zeros(1)},
                                          {"auc": np.zeros(1), "final": np.zeros(1)}, 1, None)[1] is None
    assert vm_permutations.smallest_not_behind({1: "ahead", 2: "level", 4: "level"}) == 1
    assert vm_permutations.smallest_not_behind({1: "level", 2: "behind", 4: "ahead"}) == 4
    assert vm_permutations.smallest_not_behind({1: "ahead", 4: "behind"}) is None


# ---- pieces of two parts: what a merge touches, the labels, refusals ------------------------------------------------

SPREAD5_AT_4 = ["--n-agents", "4"]  # spread5_lr1e-3 run at 4 agents: its runs, not its name, say how many (and quicker)


def run_sh(out, parts, seeds, *flags, merge=False):
    env = dict(os.environ, BENCHMARK_OUT=str(out), JOBS="2", PARTS=parts, SEEDS=seeds, MERGE="1" if merge else "0")
    proc = subprocess.run(["bash", "benchmark/vm_permutations.sh", *RUN_TINY, *flags], cwd=ROOT, capture_output=True,
                          env=env, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def vm_permutations(out, *flags, merge=False):
    env = dict(os.environ, BENCHMARK_OUT=str(out), MERGE="1" if merge else "0")
    return subprocess.run([sys.executable, "benchmark/vm_permutations.py", *flags], cwd=ROOT, capture_output=True,
                          env=env, text=True, timeout=600)


def written(out):
    """{path: bytes} of every file vm_permutations.py may write: results/, images/ and the quick look's folder."""
    return {p: p.read_bytes() for folder in ("results", "images", "runs/vm_permutations") if (out / folder).is_dir()
            for p in sorted((out / folder).rglob("*")) if p.is_file()}


def refused(proc):
    """The one line of a refusal (and its non-zero exit)."""
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    return proc.stderr.strip()


def step_lines(path):
    """{(part, seed, variant): the line's bytes, its end included} of a steps CSV."""
    return {tuple(line.decode().split(",")[:3]): line for line in path.read_bytes().splitlines(keepends=True)[1:]}


def same_scores(lines, runs):
    """Whether steps CSV lines are the runs' own rows (lists of fields): the held-out loss scored again, to rounding."""
    return all(new[:8] == old[:8] and float(new[8]) == pytest.approx(float(old[8]), rel=1e-9)
               for line in lines for new in [line.decode().strip().split(",")]
               for old in [next(r for r in runs if r[:3] == new[:3])])


@pytest.fixture(scope="module")
def two_parts(tmp_path_factory):
    """A folder whose runs/ and results/ hold two parts, seeds 1 and 2, each part's first piece: fig4b_lr1e-3 as
    vm_permutations.sh runs it, and spread5_lr1e-3 at 4 agents; tiny runs, RUN_TINY's 5 DVM iterations."""
    out = tmp_path_factory.mktemp("two_parts")
    run_sh(out, "fig4b_lr1e-3", "2")
    run_sh(out, "spread5_lr1e-3", "2", *SPREAD5_AT_4, merge=True)  # (its first piece goes into results/ either way)
    return out


@pytest.fixture
def out(two_parts, tmp_path):
    """A copy of two_parts of the test's own."""
    shutil.copytree(two_parts, tmp_path / "out")
    return tmp_path / "out"


def test_a_merge_touches_only_the_parts_and_seeds_it_was_asked_to_merge(out):
    path = out / "results" / "vm_permutations_steps.csv"
    with open(path, newline="") as f:
        header, *scored = list(csv.reader(f))
    with open(os.path.join(ROOT, "benchmark", "results", "vm_permutations_steps.csv"), newline="") as f:
        fig4c = [r for r in csv.reader(f) if r[0] == "fig4c_lr1e-3"]  # a part of which runs/ holds nothing
    # the committed rows as another machine scored them: other durations, and another loss for seed 2's exact sum
    committed = [r[:5] + ["999.00"] + r[6:] for r in scored] + fig4c
    next(r for r in committed if r[:3] == ["spread5_lr1e-3", "2", "dvm"])[6] = "0.5"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *committed])
    before = step_lines(path)

    # PARTS=spread5_lr1e-3 SEEDS=2-2 MERGE=1: runs/ holds 3-agent runs and spread5's seed 1 as well, none merged
    proc = run_sh(out, "spread5_lr1e-3", "2-2", *SPREAD5_AT_4, merge=True)
    after = step_lines(path)
    assert after.keys() == before.keys()
    merged = {key for key in before if key[:2] == ("spread5_lr1e-3", "2")}
    assert {key: line for key, line in after.items() if key not in merged} == \
        {key: line for key, line in before.items() if key not in merged}  # byte for byte
    assert same_scores([after[key] for key in merged], scored)  # the runs' own rows again
    assert "now replaced: spread5_lr1e-3 seed 2 dvm" in proc.stdout  # (its loss differed: said, as plot.py does)

    # a seed that has not finished every variant is not merged; its committed rows stay
    os.remove(out / "runs" / "vm_permutations_spread5_lr1e-3" / "seed1" / "dvm_k8" / "phase2.pt")
    proc = vm_permutations(out, "--parts", "spread5_lr1e-3", "--seeds", "1-2", merge=True)
    assert proc.returncode == 0, proc.stderr
    assert ("vm_permutations_spread5_lr1e-3: seed(s) 1 have not finished every variant (dvm, dvm_k4, dvm_k8): left "
            "out") in proc.stdout
    again = step_lines(path)
    assert {key: line for key, line in again.items() if key not in merged} == \
        {key: line for key, line in before.items() if key not in merged}
    assert same_scores([again[key] for key in merged], scored)

    # a merge not told its parts and seeds is refused: it would take every run in runs/
    files = written(out)
    assert refused(vm_permutations(out, merge=True)) == (
        "error: --merge (MERGE=1) takes --parts and --seeds, the parts and seeds to merge into results/ "
        "(vm_permutations.sh passes PARTS and SEEDS)")
    assert written(out) == files


def test_a_part_is_labelled_as_its_runs_ran_and_runs_that_disagree_are_refused(out):
    table = (out / "results" / "vm_permutations.md").read_text()
    assert "**3 agents (6 permutations), a Phase I of 256 steps, Phase II at lr 1e-3**, 2 seeds" in table
    # spread5_lr1e-3 run with --n-agents 4: 4 agents, not the 5 of its name
    assert "**4 agents (24 permutations), a Phase I of 256 steps, Phase II at lr 1e-3**, 2 seeds" in table
    labels = [line.split(" | ")[0] for line in table.splitlines() if line.startswith(("| all ", "| 1 ", "| 2 ", "| 4 ",
                                                                                      "| 8 "))]
    assert labels == ["| all 6 (exact), 5 iterations", "| 1 of 6, 5 iterations", "| 2 of 6, 5 iterations",
                      "| all 24 (exact), 5 iterations", "| 4 of 24, 5 iterations", "| 8 of 24, 5 iterations"]

    # seed 2 run at another rate than seed 1 (its runs' configuration says so): refused, nothing written
    files = written(out)
    root = out / "runs" / "vm_permutations_fig4b_lr1e-3"
    for variant in ("dvm", "dvm_k1", "dvm_k2"):
        dvm = torch.load(root / "seed2" / variant / "dvm.pt", weights_only=True)
        dvm["config"]["learning_rate"] = 0.01
        torch.save(dvm, root / "seed2" / variant / "dvm.pt")
    assert refused(vm_permutations(out)) == (  # (a quick look of every part and seed in runs/)
        f"error: the runs of part fig4b_lr1e-3 disagree: learning_rate 0.001 in {root / 'seed1' / 'dvm'}, 0.01 in "
        f"{root / 'seed2' / 'dvm'}")
    assert written(out) == files

    # committed DVM steps of one variant with other iterations on one seed: refused, nothing written
    shutil.rmtree(out / "runs")
    path = out / "results" / "vm_permutations_steps.csv"
    path.write_bytes(path.read_bytes().replace(b"fig4b_lr1e-3,1,dvm_k1,1,5,", b"fig4b_lr1e-3,1,dvm_k1,1,7,"))
    files = written(out)
    assert refused(vm_permutations(out)) == ("error: the runs of part fig4b_lr1e-3 disagree: dvm_k1 ran with K = 1, 7 "
                                             "iterations on seed(s) 1, K = 1, 5 iterations on seed(s) 2")
    assert written(out) == files


def test_a_part_run_without_phase1_from_is_refused_in_one_line(out):
    root = out / "runs" / "vm_permutations_fig4b_lr1e-3"
    os.remove(root / "phase1_from.txt")  # as run.py leaves a part run without --phase1-from
    files = written(out)
    assert refused(vm_permutations(out)) == (
        f"error: {root} has no phase1_from.txt: its runs did not start from a Phase I part (run.py --phase1-from), "
        "whose checkpoints score their matched critics; run the part with benchmark/vm_permutations.sh")
    assert written(out) == files


@pytest.mark.parametrize("damage, message", [
    (lambda lines: [",".join(line.split(",")[:-1]) for line in lines],
     ": its first line is not the header part,seed,variant,permutations,iterations,seconds,kl_loss,vm_loss,"
     "vm_loss_exact"),
    (lambda lines: [lines[0], ",".join(lines[1].split(",")[:5] + ["fast"] + lines[1].split(",")[6:]), *lines[2:]],
     ", line 2: seconds 'fast' is not a number"),
    (lambda lines: [lines[0], ",".join(lines[1].split(",")[:8] + ["nan"]), *lines[2:]],
     ", line 2: a loss or duration that is not finite")], ids=["missing column", "not a number", "nan"])
def test_a_damaged_steps_csv_is_refused_in_one_line_and_nothing_is_written(out, damage, message):
    shutil.rmtree(out / "runs")  # the committed files alone, redrawn
    path = out / "results" / "vm_permutations_steps.csv"
    path.write_text("\r\n".join(damage(path.read_text().splitlines())) + "\r\n")
    files = written(out)
    assert refused(vm_permutations(out)) == f"error: {path}{message}"
    assert written(out) == files
