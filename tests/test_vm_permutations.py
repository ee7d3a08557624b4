"""benchmark/vm_permutations.sh end to end on tiny runs: the exact sum and K sampled permutations from one Phase I per
seed, every run's matched critic scored by the exact Eq. (6) loss on held-out transitions, and a table comparing each
K with the exact sum; in pieces as a figure's, the second a quick look unless MERGE=1."""
import csv
import os
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
    # MERGE=1 merges the second piece, curves (as run.py calls plot.py for it) and DVM steps
    for command in (["benchmark/plot.py", "vm_permutations_fig4b_lr1e-3", "--merge"], ["benchmark/vm_permutations.py"]):
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
    assert [row.split(" | ")[0] for row in rows] == ["| all 6 (exact)", "| 1 of 6", "| 2 of 6"]
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
