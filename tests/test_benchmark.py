"""The figure pipeline end to end on tiny runs: run.py trains and branches, plot.py and fig8.py draw; the push box
exploration diagnostic."""
import os
import re
import subprocess
import sys

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

    # run again after one run was cut off (no phase2.pt, an events file of its own): that run starts over alone and
    # its stale events go, every finished run is skipped, the wall time adds up; other flags are refused
    cut = tmp_path / "runs" / "tiny" / "seed2" / "dvm"
    (cut / "phase2.pt").unlink()
    stale = next(cut.glob("events.out.tfevents.*"))
    stale.rename(cut / "events.out.tfevents.0.cut-off")
    # the plot of a figure with a run not finished draws the seeds that have finished, and says so
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "plot.py"), "tiny"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 of 2 seeds have finished" in proc.stdout
    assert "1 seeds (of 2 started; the others had not finished)" in (tmp_path / "results" / "tiny.md").read_text()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("done already, skipped") == 3 and "(all invocations)" in proc.stdout
    assert "seed 2 dvm: exit 0" in proc.stdout and (cut / "phase2.pt").exists()
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
    assert "| DVM, no Phase II learning |" in (tmp_path / "results" / "branch.md").read_text()
    proc = subprocess.run(branch, capture_output=True, text=True, cwd=ROOT, env=dict(env, SEEDS="3"))
    assert proc.returncode != 0 and "no Phase I checkpoint of seed 3" in proc.stderr

    (tmp_path / "images" / "tiny.png").unlink()  # fig8.py draws its own picture under the same name
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "fig8.py"), "tiny"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "images" / "tiny.png").stat().st_size > 0


def test_push_box_exploration_diagnostic(tmp_path):
    run_script("maddpg_dvm.py", tmp_path, "--domain", "push_box", "--run-name", "box")
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "push_box_exploration.py"),
           str(tmp_path / "box" / "phase1.pt")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rings = re.findall(r"random actions ([\d.]+) % \(at least one agent touching: ([\d.]+) %\)", proc.stdout)
    assert len(rings) == 2
    for moving, either in rings:  # the box needs both agents: far rarer than one agent touching it
        assert 0 < float(moving) < float(either) / 2
    assert "team A's greedy actors" in proc.stdout
