"""benchmark/dvm_iterations.sh end to end on tiny runs: every iteration count from one Phase I per seed (a part at lr
1e-3 from another part's Phase I), the DVM step's cost and losses kept with the curves, and a table whose intervals
compare each count with the paper's 2048."""
import csv
import os
import subprocess
import sys

from helpers import ROOT, RUN_TINY

# without --dvm-iterations, which each variant sets
FLAGS = [flag for i, flag in enumerate(RUN_TINY) if "--dvm-iterations" not in (flag, RUN_TINY[i - 1])]


def test_dvm_iterations_parts_run_every_count_and_compare_it_with_2048(tmp_path):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), JOBS="2")
    for parts, seeds in (("fig4a", "2"), ("fig4a_lr1e-3", "1")):  # one seed: a table without intervals
        proc = subprocess.run(["bash", "benchmark/dvm_iterations.sh", *FLAGS], cwd=ROOT, capture_output=True,
                              env=dict(env, PARTS=parts, SEEDS=seeds), text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs, branch = tmp_path / "runs" / "dvm_iterations_fig4a", tmp_path / "runs" / "dvm_iterations_fig4a_lr1e-3"
    for root, seeds in ((runs, (1, 2)), (branch, (1,))):
        for seed in seeds:  # one Phase I per seed, trained by fig4a's 2048 run; every other run branches from it
            trainers = sorted(p.parent.name for p in (root / f"seed{seed}").glob("*/phase1.pt"))
            assert trainers == (["dvm"] if root == runs else [])
            for variant, k in (("dvm", 2048), ("dvm_it1024", 1024), ("dvm_it256", 256), ("dvm_it64", 64)):
                stdout = (root / f"seed{seed}" / variant / "stdout.txt").read_text()
                assert f"DVM step (dvm): {k} iterations done" in stdout
    with open(tmp_path / "results" / "dvm_iterations_steps.csv") as f:
        steps = list(csv.DictReader(f))
    assert [(r["part"], r["seed"], r["iterations"]) for r in steps] == [
        (part, s, k) for part, seeds in (("fig4a", "12"), ("fig4a_lr1e-3", "1")) for s in seeds
        for k in ("2048", "1024", "256", "64")]
    assert all(float(r["seconds"]) > 0 and float(r["kl_loss"]) >= 0 and float(r["vm_loss"]) >= 0 for r in steps)
    by_run = {(r["part"], r["seed"], r["variant"]): r for r in steps}
    for (part, seed, variant), r in by_run.items():  # the lr 1e-3 part does fig4a's DVM step again, exactly
        assert (r["kl_loss"], r["vm_loss"]) == (by_run["fig4a", seed, variant]["kl_loss"],
                                                by_run["fig4a", seed, variant]["vm_loss"])
    with open(tmp_path / "results" / "dvm_iterations_losses.csv") as f:
        curves = {(r["part"], r["seed"], int(r["iteration"])): r for r in csv.DictReader(f)}
    assert sorted(curves) == [(part, s, k) for part, seeds in (("fig4a", "12"), ("fig4a_lr1e-3", "1")) for s in seeds
                              for k in [1, 2, 4, 8, 16, *range(32, 2049, 32)]]
    for r in steps:
        # a shorter step distils exactly as the first k iterations of the 2048 one (same Phase I, same random state):
        # its loss at the end is the 2048 curve's point at k, measured over the same window
        point = curves[r["part"], r["seed"], int(r["iterations"])]
        assert abs(float(r["kl_loss"]) - float(point["kl_loss"])) <= 1e-5 * float(r["kl_loss"])
        if r["iterations"] == "2048":
            assert abs(float(r["vm_loss"]) - float(point["vm_loss"])) <= 1e-5 * float(r["vm_loss"])
    table = (tmp_path / "results" / "dvm_iterations.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| 2048", "| 1024", "| 256", "| 64"] * 2  # one table per part
    assert rows[0].endswith("| | |") and all("[" in row for row in rows[1:4])  # DVM(k) - DVM(2048) with intervals
    assert rows[4].endswith("| | |") and all(row.endswith("| one seed | one seed |") for row in rows[5:])
    assert "2 seeds so far: too few for a verdict" in table and "1 seed so far" in table
    assert (tmp_path / "images" / "dvm_iterations.png").stat().st_size > 0

    # runs of another command are refused in one line, before anything is written (as plot.py refuses them)
    (runs / "command.txt").write_text("maddpg_dvm.py --domain spread --n-agents 3\n")
    before = {p.name: p.read_bytes() for p in (tmp_path / "results").iterdir()}
    proc = subprocess.run([sys.executable, "benchmark/dvm_iterations.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert "another command" in proc.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "results").iterdir()} == before
