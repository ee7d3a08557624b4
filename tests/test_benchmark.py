"""The push box exploration diagnostic, the scripted pushers, render_policy.py's refusals. (run.py's tests, the figure
pipeline end to end among them, are in test_run.py.)"""
import os
import re
import shutil
import subprocess
import sys

import torch

from helpers import ROOT, files, run_script


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


def test_render_policy_refuses_what_it_cannot_draw(tmp_path, forked):
    script = os.path.join(ROOT, "benchmark", "render_policy.py")
    torch.save({"weights": 1}, tmp_path / "phase2.pt")
    torch.save({"algorithm": "maddpg_dvm", "kind": "best"}, tmp_path / "model.pt")
    for path, message in ((tmp_path / "phase2.pt", "is not a phase1.pt, dvm.pt or phase2.pt of maddpg_dvm.py or masac"),
                          (tmp_path / "model.pt", "is not a phase1.pt, dvm.pt or phase2.pt of maddpg_dvm.py or masac"),
                          (tmp_path / "missing" / "dvm.pt", "does not exist")):
        proc = forked.run([script, path])
        assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr


def test_render_policy_writes_over_no_file_and_refuses_a_bad_out_or_seed(spread_runs, tmp_path, forked):
    script = os.path.join(ROOT, "benchmark", "render_policy.py")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(spread_runs("maddpg_dvm.py") / "full" / "phase2.pt", run)  # (seed 3, with its --capture-video GIFs)
    shutil.copytree(spread_runs("maddpg_dvm.py") / "full" / "videos", run / "videos")

    def render(*args):
        return subprocess.run([sys.executable, script, str(run / "phase2.pt"), *map(str, args)], capture_output=True,
                              text=True, cwd=ROOT, timeout=300)

    videos = files(run / "videos")
    # by default beside the run's videos/, not into it: the same GIFs, byte for byte
    proc = render()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rendered = {p.name: b for p, b in files(run / "rendered_seed3").items()}
    assert rendered == {p.name: b for p, b in videos.items() if p.name.startswith("phase2_end__")}
    # another seed into the run's videos/ (whose GIFs have those names) is refused, writing nothing
    before = files(run)
    for args, words in ((["--seed", 7, "--out", run / "videos"], f"{run / 'videos'} holds phase2_end__"),
                        (["--out", run / "phase2.pt"], "--out"), (["--seed", -1], "--seed -1")):
        proc = forked.run([script, run / "phase2.pt", *args])  # (refused before it draws)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and len(lines) == 1 and words in lines[0], proc.stderr
    assert files(run) == before
