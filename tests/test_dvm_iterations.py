"""benchmark/dvm_iterations.sh end to end on tiny runs: every iteration count from one Phase I per seed (a part at lr
1e-3 from another part's Phase I), the DVM step's cost and losses kept with the curves, and a table whose intervals
compare each count with the paper's 2048."""
import csv
import os
import shutil
import subprocess
import sys

from helpers import ROOT, RUN_TINY, files, refused, script

# without --dvm-iterations, which each variant sets
FLAGS = [flag for i, flag in enumerate(RUN_TINY) if "--dvm-iterations" not in (flag, RUN_TINY[i - 1])]


def test_dvm_iterations_parts_run_every_count_and_compare_it_with_2048(tmp_path):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), JOBS="2")
    for parts, seeds in (("fig4a", "2"), ("fig4a_lr1e-3", "1")):  # one seed: a table without intervals
        # (the second piece is merged into the files of the first; without MERGE=1 it would be a quick look)
        proc = subprocess.run(["bash", "benchmark/dvm_iterations.sh", *FLAGS], cwd=ROOT, capture_output=True,
                              env=dict(env, PARTS=parts, SEEDS=seeds, MERGE="1"), text=True, timeout=600)
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


def test_the_committed_ablation_redraws_as_committed_and_bad_files_are_refused_in_one_line(tmp_path, forked):
    # a typo among the parts is refused before any part trains (it was found after an hour of fig4a)
    proc = subprocess.run(["bash", "benchmark/dvm_iterations.sh"], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, BENCHMARK_OUT=str(tmp_path), PARTS="fig4a bogus"), timeout=60)
    assert proc.returncode != 0 and proc.stderr == "unknown part bogus (fig4a, fig4a_lr1e-3, fig4b or fig4c_lr1e-3)\n"
    assert not any(tmp_path.iterdir())
    shutil.copytree(os.path.join(ROOT, "benchmark", "results"), tmp_path / "results")
    committed = files(tmp_path)
    proc = script("dvm_iterations.py", tmp_path)  # no runs: the committed files redrawn, byte for byte
    assert proc.returncode == 0, proc.stderr
    assert {p: b for p, b in files(tmp_path).items() if p.suffix != ".png"} == committed
    steps, losses = (tmp_path / "results" / f"dvm_iterations_{name}.csv" for name in ("steps", "losses"))
    # a full disk: each file whole or as it was, and one line
    before = files(tmp_path)
    refused(script("dvm_iterations.py", tmp_path, "--merge", limit=100),
            f"cannot write {steps} (File too large); the file there before is left as it was")
    assert files(tmp_path) == before
    text = steps.read_text()
    head, first, *rest = text.splitlines()
    png = open(os.path.join(ROOT, "benchmark", "images", "fig4a.png"), "rb").read()
    for path, broken, words in ((steps, [head, first[:20], *rest], "line 2: 5 fields where the header has 7"),
                                (steps, [head, first.replace(",dvm,", ",dvm2,"), *rest], "variant 'dvm2'"),
                                (steps, [head, first.replace(",1,", ",one,", 1), *rest], "seed 'one'"),
                                (steps, [head, first.replace(",21.48,", ",nan,"), *rest],
                                 "line 2: a loss or duration that is not finite"),
                                (steps, ["part;seed"], "its first line is not the header part,seed,variant"),
                                (losses, png, "")):
        saved = path.read_bytes()
        path.write_bytes(broken if isinstance(broken, bytes) else "\n".join(broken).encode() + b"\n")
        refused(forked.script("dvm_iterations.py", tmp_path, "--merge"), str(path), words)
        path.write_bytes(saved)
    assert files(tmp_path) == before

    # a quick look at a new seed of part fig4a (its runs made here, with the DVM steps' losses): its own folder, the
    # committed files left alone
    root = tmp_path / "runs" / "dvm_iterations_fig4a"
    root.mkdir(parents=True)
    (root / "command.txt").write_text((tmp_path / "results" / "dvm_iterations_fig4a.csv").read_text().splitlines()[0]
                                      .removeprefix("# command: ") + "\n")
    for k, (variant, iterations) in enumerate((("dvm", 2048), ("dvm_it1024", 1024), ("dvm_it256", 256),
                                               ("dvm_it64", 64))):
        finished_run(root / "seed11" / variant, iterations, trains_phase1=k == 0)
    proc = script("dvm_iterations.py", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert files(tmp_path / "results") == {p: b for p, b in before.items() if "results" in p.parts}
    quick = tmp_path / "runs" / "dvm_iterations" / "quick_look"
    assert sorted(p.name for p in quick.iterdir()) == ["dvm_iterations.md", "dvm_iterations.png",
                                                        "dvm_iterations_losses.csv", "dvm_iterations_steps.csv"]
    assert "**Fig. 4a: MADDPG, spread, 2 agents, lr 0.01**, 1 seed (11), the runs in" in (quick / "dvm_iterations.md"
                                                                                          ).read_text()
    assert proc.stdout.splitlines()[-1].startswith(f"dvm_iterations: a quick look at the runs in {tmp_path / 'runs'}")


def finished_run(run_dir, iterations, trains_phase1):
    """A finished run as dvm_iterations.py reads it: its evaluations, its DVM step's duration and losses per iteration,
    phase2.pt (and phase1.pt where it trained Phase I)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir))
    for phase, steps in ((1, range(0, 20001, 10000) if trains_phase1 else ()), (2, range(20000, 40001, 10000))):
        for step in steps:
            writer.add_scalar("eval/return", -5.0, step)
            writer.add_scalar("charts/phase", phase, step)
    writer.add_scalar("dvm/seconds", iterations / 100, 20000)
    for i in range(iterations):
        writer.add_scalar("dvm/kl_loss", 1 / (i + 1), i)
        writer.add_scalar("dvm/vm_loss", 2 / (i + 1), i)
    writer.close()
    for name in ("phase2.pt", *["phase1.pt"] * trains_phase1):
        (run_dir / name).write_bytes(b"")
