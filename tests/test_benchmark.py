"""The figure pipeline end to end on tiny runs: run.py trains and branches, plot.py and fig8.py draw; the push box
exploration diagnostic; render_policy.py's refusals."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch

from helpers import ROOT, TINY, run_script


def test_runner_plot_and_fig8_on_tiny_runs(tmp_path):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), SEEDS="2", JOBS="2")
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "tiny", "maddpg_dvm.py",
           "--variants", "none", "dvm", "--", *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for seed in (1, 2):  # the second variant branched from the first one's Phase I
        assert "loaded Phase I" in (tmp_path / "runs" / "tiny" / f"seed{seed}" / "dvm" / "stdout.txt").read_text()
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "| No DVM |" in table and "| DVM |" in table and "2 seeds" in table
    assert (tmp_path / "images" / "tiny.png").stat().st_size > 0
    wall = float((tmp_path / "runs" / "tiny" / "wall_time.txt").read_text())

    curves = (tmp_path / "results" / "tiny.csv").read_text()
    assert curves.startswith("# command: maddpg_dvm.py --phase1-steps 256")
    assert {line.split(",")[:2][1] for line in curves.splitlines()[3:]} == {"phase1", "none", "dvm"}

    # run again after one run was cut off (no phase2.pt, an events file of its own): that run starts over alone and
    # its stale events go, every finished run is skipped, the wall time adds up; other flags are refused
    (tmp_path / "results" / "tiny.csv").unlink()  # (else the committed curves would stand in for the cut-off seed)
    cut = tmp_path / "runs" / "tiny" / "seed2" / "dvm"
    (cut / "phase2.pt").unlink()
    stale = next(cut.glob("events.out.tfevents.*"))
    stale.rename(cut / "events.out.tfevents.0.cut-off")
    # the plot of a figure with a run not finished draws the seeds that have finished, and says so
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "plot.py"), "tiny"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 of 2 seeds have finished" in proc.stdout
    assert "1 seed (of 2 started; the others had not finished)" in (tmp_path / "results" / "tiny.md").read_text()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": skipped;") == 3 and "(all invocations)" in proc.stdout
    assert "seed 2 dvm: done in" in proc.stdout and (cut / "phase2.pt").exists()
    assert "1 done, 3 skipped, 0 failed, 0 left" in proc.stdout
    events = list(cut.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].name != "events.out.tfevents.0.cut-off"
    assert float((tmp_path / "runs" / "tiny" / "wall_time.txt").read_text()) >= wall
    proc = subprocess.run([*cmd, "--horizon", "10"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode != 0 and "delete that folder to start over" in proc.stderr

    # a second figure that branches from the first one's Phase I (as Fig. 7 from Fig. 6)
    branch = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "branch", "maddpg_dvm.py",
              "--phase1-from", "tiny", "--variants", "dvm_no_learning", "--", *TINY]
    proc = subprocess.run(branch, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for seed in (1, 2):
        log = (tmp_path / "runs" / "branch" / f"seed{seed}" / "dvm_no_learning" / "stdout.txt").read_text()
        assert f"runs/tiny/seed{seed}/none/phase1.pt" in log.replace(os.sep, "/")
        # it takes tiny's DVM step (mode dvm) rather than running it again: the same return right after it
        assert f"DVM step (dvm): loaded from {tmp_path}/runs/tiny/seed{seed}/dvm/dvm.pt".replace(os.sep, "/") in \
            log.replace(os.sep, "/")
        source = (tmp_path / "runs" / "tiny" / f"seed{seed}" / "dvm" / "stdout.txt").read_text()
        after_dvm = [line for line in source.splitlines() if "right after DVM" in line]
        assert len(after_dvm) == 1 and after_dvm[0] in log
    assert "| DVM, no Phase II learning |" in (tmp_path / "results" / "branch.md").read_text()
    proc = subprocess.run(branch, capture_output=True, text=True, cwd=ROOT, env=dict(env, SEEDS="3-3"))
    assert proc.returncode != 0 and "no Phase I checkpoint of seed 3" in proc.stderr
    again = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "again", "maddpg_dvm.py", "--phase1-from", "tiny",
             "--dvm-again", "--variants", "dvm_no_learning", "--", *TINY]  # the DVM step run anew
    proc = subprocess.run(again, capture_output=True, text=True, cwd=ROOT, env=dict(env, SEEDS="1-1"), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (tmp_path / "runs" / "again" / "seed1" / "dvm_no_learning" / "stdout.txt").read_text()
    assert "DVM step (dvm): 5 iterations done" in log and "loaded from" not in log

    (tmp_path / "images" / "tiny.png").unlink()  # fig8.py draws its own picture under the same name
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "fig8.py"), "tiny"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "images" / "tiny.png").stat().st_size > 0

    # without runs/, the committed curves alone redraw the figure with the same numbers
    plot = [sys.executable, os.path.join(ROOT, "benchmark", "plot.py"), "tiny"]
    subprocess.run(plot, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=True)
    from_runs = (tmp_path / "results" / "tiny.md").read_text()
    (tmp_path / "runs" / "tiny").rename(tmp_path / "mine")
    (tmp_path / "images" / "tiny.png").unlink()
    proc = subprocess.run(plot, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "results" / "tiny.md").read_text() == from_runs
    assert (tmp_path / "images" / "tiny.png").stat().st_size > 0

    # a figure finished in pieces: seed 3 elsewhere is merged with the committed seeds 1 and 2; a piece run with other
    # flags is refused before it trains
    proc = subprocess.run([*cmd, "--horizon", "10"], capture_output=True, text=True, cwd=ROOT, env=dict(env, SEEDS="3-3"))
    assert proc.returncode != 0 and "cannot be merged" in proc.stderr
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(env, SEEDS="3-3"), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seed 1" not in proc.stdout and "seed 3 dvm: done" in proc.stdout
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "3 seeds" in table and "in 2 pieces" in table
    assert (tmp_path / "results" / "tiny.csv").read_text().count("# piece: ") == 2

    # your own runs drawn over ours
    proc = subprocess.run([*plot, "--extra", f"{tmp_path / 'mine' / 'seed1'}:my runs"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| my runs (--extra, 2 runs) |" in (tmp_path / "results" / "tiny.md").read_text()


def test_seeds_are_a_count_a_list_or_a_range():
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import run

    assert run.parse_seeds("3") == [1, 2, 3]
    assert run.parse_seeds("8 9 10") == [8, 9, 10] and run.parse_seeds("8-10") == [8, 9, 10]
    for bad in ("", "0", "a b", "3-x"):
        with pytest.raises(SystemExit, match="SEEDS"):
            run.parse_seeds(bad)


def test_wall_time_of_pieces_run_at_once_adds_up(tmp_path):
    # two lanes running pieces of one figure add their time to the same wall_time.txt at the same moments; each
    # addition must count (a lane that read the file once and wrote its own total over it lost the other's time)
    wall_file = tmp_path / "wall_time.txt"
    wall_file.write_text("100\n")  # an earlier invocation
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from run import add_wall_time\n"
            "while time.time() < float(sys.argv[3]): pass\n"  # both lanes start adding at the same moment
            "for _ in range(3000): add_wall_time(sys.argv[2], 0.5)")
    go = f"{time.time() + 3:.3f}"
    lanes = [subprocess.Popen([sys.executable, "-c", code, os.path.join(ROOT, "benchmark"), str(wall_file), go])
             for _ in range(2)]
    assert [lane.wait(timeout=120) for lane in lanes] == [0, 0]
    assert float(wall_file.read_text()) == 100 + 2 * 3000 * 0.5


def test_push_box_exploration_diagnostic(tmp_path):
    run_script("maddpg_dvm.py", tmp_path, "--domain", "push_box", "--run-name", "box")
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "push_box_exploration.py"),
           str(tmp_path / "box" / "phase1.pt")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rings = re.findall(r"rule (\w+), spawn ring [\d.]+: random actions ([\d.]+) % \(at least one agent touching: "
                       r"([\d.]+) %\)", proc.stdout)
    assert [rule for rule, _, _ in rings] == ["heavy", "heavy", "both", "both"]
    for rule, moving, either in rings:
        if rule == "both":  # the box needs both agents: far rarer than one agent touching it
            assert 0 < float(moving) < float(either) / 2
        else:  # one touch is enough, and the box glides on for a few steps after it
            assert float(moving) > float(either)
    assert "team A's greedy actors" in proc.stdout


def test_scripted_pushers_cooperation_pays_only_together_under_the_literal_rule():
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "push_box_pushers.py"), "--masses", "3", "--worlds", "200"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    mean = {(rule, int(pushers)): float(value) for rule, pushers, value in
            re.findall(r"^(heavy|both) +3 +(\d) +\S+ +\S+ +\S+ +(\S+)", proc.stdout, re.MULTILINE)}
    assert len(mean) == 6
    assert mean["heavy", 0] < mean["heavy", 1] - 1.0 and mean["heavy", 1] < mean["heavy", 2] - 0.5
    assert mean["both", 1] == mean["both", 0] < mean["both", 2] - 0.5


def test_cluster_path_runs_resumes_and_reports_a_failed_job(tmp_path):
    # submitit's in-process executor stands in for Slurm: the same jobs, pickled and run by submitit
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), SEEDS="2", CLUSTER="debug")
    run_py = [sys.executable, os.path.join(ROOT, "benchmark", "run.py")]
    cmd = [*run_py, "dbg", "maddpg_dvm.py", "--variants", "none", "dvm", "--", *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 seeds to run, one debug job each" in proc.stdout
    assert "2 seeds" in (tmp_path / "results" / "dbg.md").read_text()
    for seed in (1, 2):
        assert "loaded Phase I" in (tmp_path / "runs" / "dbg" / f"seed{seed}" / "dvm" / "stdout.txt").read_text()
    assert list((tmp_path / "runs" / "dbg" / "submitit").iterdir())  # submitit's pickles and logs
    # resumed: every run finished, nothing is submitted
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 of 2 seeds to run" in proc.stdout and "0 done, 4 skipped" in proc.stdout

    # a job whose run fails (here its Phase I checkpoint is corrupt) is reported with its log; the other completes
    for seed in (1, 2):
        shutil.copytree(tmp_path / "runs" / "dbg" / f"seed{seed}" / "none", tmp_path / "runs" / "src" / f"seed{seed}" / "none")
    (tmp_path / "runs" / "src" / "seed2" / "none" / "phase1.pt").write_bytes(b"not a checkpoint")
    proc = subprocess.run([*run_py, "brk", "maddpg_dvm.py", "--phase1-from", "src", "--variants", "dvm", "--", *TINY],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    log = tmp_path / "runs" / "brk" / "seed2" / "dvm" / "stdout.txt"
    assert proc.returncode != 0 and f"seed 2 dvm failed (exit 1); see {log}" in proc.stderr
    assert (tmp_path / "runs" / "brk" / "seed1" / "dvm" / "phase2.pt").exists()
    assert "1 seed (of 2 started" in (tmp_path / "results" / "brk.md").read_text()


def test_slurm_parameters_of_a_dry_run(tmp_path):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), SEEDS="3", SLURM_PARTITION="gpu")
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "fig", "maddpg_dvm.py", "--cluster", "slurm",
           "--dry-run", "--time-min", "90", "--gpus-per-job", "1", "--log-folder", str(tmp_path / "shared"),
           "--", *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sbatch = (tmp_path / "runs" / "fig" / "sbatch.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --cpus-per-task=3", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --mem=8G", "#SBATCH --job-name=dvm-fig", f"#SBATCH --output={tmp_path / 'shared'}"):
        assert line in sbatch, line
    assert not list((tmp_path / "runs" / "fig").glob("seed*"))  # nothing ran


def test_render_policy_refuses_what_it_cannot_draw(tmp_path):
    script = os.path.join(ROOT, "benchmark", "render_policy.py")
    torch.save({"weights": 1}, tmp_path / "phase2.pt")
    torch.save({"weights": 1}, tmp_path / "model.pt")
    for path, message in ((tmp_path / "phase2.pt", "is not a checkpoint of maddpg_dvm.py or masac_dvm.py"),
                          (tmp_path / "model.pt", "expected one of phase1.pt, dvm.pt, phase2.pt"),
                          (tmp_path / "missing" / "dvm.pt", "does not exist")):
        proc = subprocess.run([sys.executable, script, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
