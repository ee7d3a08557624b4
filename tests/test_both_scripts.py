"""What both scripts do alike, tested on each: videos, divergence stops, progress lines, the critic warm-up, the reuse of
a DVM step.

The scripts stand alone (no shared module), so every test here runs once per script."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import maddpg_dvm
import masac_dvm
import particle_envs as pe
from helpers import ROOT, all_equal, gif_frames, load, networks, progress_lines, run_script, seconds_left, start_script

SCRIPTS = {"maddpg_dvm.py": maddpg_dvm, "masac_dvm.py": masac_dvm}
# the networks the critic warm-up trains from the first Phase II update: MADDPG's critics, MA-SAC's Q and V
CRITICS = {"maddpg_dvm.py": ["critics"], "masac_dvm.py": ["qfs", "vfs"]}


@pytest.fixture(params=list(SCRIPTS), scope="module")
def script(request):
    return request.param


@pytest.fixture(scope="module")
def spread_run(script, spread_runs):
    return spread_runs(script)


MOMENTS = ("phase1_end", "after_dvm", "phase2_end")


def pixel_of(frame, x, y, header, extent=1.25):
    """The RGB pixel of a video frame at world coordinates (x, y)."""
    size = frame.shape[1]
    return frame[header + int((extent - y) / (2 * extent) * size), int((x + extent) / (2 * extent) * size)]


def centroid(frame, colour, header, extent=1.25):
    """World coordinates of the mean pixel of one colour (up to the GIF palette) in a video frame."""
    rows, cols = np.nonzero((np.abs(frame[header:].astype(int) - colour) < 25).all(-1))
    size = frame.shape[1]
    return (cols.mean() + 0.5) / size * 2 * extent - extent, extent - (rows.mean() + 0.5) / size * 2 * extent


def test_capture_video_draws_both_start_configurations_at_every_moment(script, spread_run):
    header = pe.VIDEO_HEADER
    videos = spread_run / "full" / "videos"
    configurations = ("phase1_quadrants", "phase2_quadrants")
    assert {p.name for p in videos.iterdir()} == {f"{t}__{c}.gif" for t in MOMENTS for c in configurations}
    for moment in MOMENTS:
        for phase, configuration in enumerate(configurations, start=1):
            frames = gif_frames(videos / f"{moment}__{configuration}.gif")
            assert len(frames) == 25 + 1  # the start and every step of the horizon
            assert frames[0].shape == (256 + header, 256, 3)
            assert not np.array_equal(frames[0], frames[-1])
            # agent k starts in quadrant k in Phase I; Phase II shifts n = 3 cyclically (pe.PHASE2_QUADRANTS)
            quadrants = np.arange(3) if phase == 1 else pe.PHASE2_QUADRANTS[3]
            for k in range(3):
                x, y = centroid(frames[0], pe.AGENT_COLOURS[k], header)
                assert np.sign([x, y]).tolist() == np.sign(pe.QUADRANT_CENTRES[quadrants[k]]).tolist(), (moment, k)


def test_push_box_videos_show_every_target_and_render_policy_redraws_them(script, tmp_path):
    run_script(script, tmp_path, "--domain", "push_box", "--run-name", "box", "--capture-video", "--phase2-steps", "64")
    videos = tmp_path / "box" / "videos"
    task3 = [f"task3_{name}" for name in pe.TARGET_NAMES]
    names = {"phase1_end__teamA_task1.gif", "phase1_end__teamB_task2.gif"}
    names |= {f"{t}__{c}.gif" for t in MOMENTS[1:] for c in task3}
    assert {p.name for p in videos.iterdir()} == names
    shown = [("phase1_end__teamA_task1", 0), ("phase1_end__teamB_task2", 1)]
    shown += [(f"{t}__{c}", k) for t in MOMENTS[1:] for k, c in enumerate(task3)]
    for name, target in shown:  # the black target dot sits where each configuration puts it
        frames = gif_frames(videos / f"{name}.gif")
        assert len(frames) == 26
        for k, (x, y) in enumerate(pe.BOX_TARGETS):
            assert (pixel_of(frames[0], x, y, pe.VIDEO_HEADER) < 80).all() == (k == target), (name, k)
    # the same GIFs from the checkpoints, byte for byte: into --out, or by default into rendered_seedN/ beside the
    # checkpoint (not the run's videos/)
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "box" / "dvm.pt", tmp_path / "copy" / "dvm.pt")
    rendered = tmp_path / "copy" / "rendered_seed1"
    for checkpoint, out in ((tmp_path / "box" / "phase1.pt", ["--out", str(rendered)]),
                            (tmp_path / "copy" / "dvm.pt", []),
                            (tmp_path / "box" / "phase2.pt", ["--out", str(rendered)])):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "render_policy.py"), str(checkpoint),
                               *out], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in rendered.iterdir()} == names
    for name in names:
        assert (rendered / name).read_bytes() == (videos / name).read_bytes(), name


class Writer:
    closed = False

    def close(self):
        self.closed = True


def test_stop_if_diverged_names_the_first_bad_tensor_or_parameter(script):
    m = SCRIPTS[script]
    ok, writer = torch.ones(3), Writer()
    m.stop_if_diverged("here", 7, writer, {"a": ok, "b": torch.zeros(()), "net": torch.nn.Linear(2, 2)})
    m.stop_if_diverged("here", 7, writer, {})
    assert not writer.closed
    for watched, named in (({"a": ok, "b": torch.tensor([1.0, float("inf")]), "c": torch.tensor(float("nan"))},
                            "b is infinite"),
                           ({"a": ok, "c": torch.tensor([float("nan"), float("inf")])}, "c is nan")):
        with pytest.raises(SystemExit, match=f"error: diverged in here at global step 7: {named}"):
            m.stop_if_diverged("here", 7, writer, watched)
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.bias[1] = float("nan")
    with pytest.raises(SystemExit, match="net.bias is nan"):
        m.stop_if_diverged("here", 7, writer, {"a": ok, "net": net})
    assert writer.closed  # the TensorBoard file is complete up to the stop


def test_nan_loss_in_phase2_stops_the_run_before_its_checkpoint(script, spread_run, tmp_path):
    phase1 = spread_run / "full" / "phase1.pt"
    before = phase1.read_bytes()
    nan_loss = "import torch.nn.functional as F\nmse = F.mse_loss\nF.mse_loss = lambda *a, **k: mse(*a, **k) * float('nan')"
    proc = run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", "--phase1-checkpoint", str(phase1), "--run-name", "nan",
               prelude=nan_loss, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    found = re.search(r"error: diverged in phase 2 at global step (\d+): losses/qf_loss is nan", proc.stderr)
    assert found, proc.stderr
    assert 256 < int(found.group(1)) <= 256 + 128
    assert (tmp_path / "nan" / "dvm.pt").exists()  # the DVM step was still fine
    assert not (tmp_path / "nan" / "phase2.pt").exists() and not list((tmp_path / "nan").glob("*.tmp*"))
    assert phase1.read_bytes() == before


def test_divergence_in_phase1_writes_no_checkpoint(script, tmp_path):
    proc = run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", "--run-name", "again", "--learning-rate", "1e30",
                      check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    found = re.search(r"error: diverged in phase 1 at global step (\d+): (\S+) is (nan|infinite)", proc.stderr)
    assert found, proc.stderr
    assert 0 < int(found.group(1)) <= 256 and "phase 2" not in proc.stdout
    assert not list((tmp_path / "again").glob("*.pt*"))


def test_a_run_never_writes_into_another_runs_folder(script, spread_run, tmp_path):
    # a folder with another run's checkpoint or events is refused in one line, and nothing in it is touched
    for name in ("phase1.pt", "events.out.tfevents.1.host", "dvm.pt.tmp123"):
        (tmp_path / "taken").mkdir(exist_ok=True)
        for old in (tmp_path / "taken").iterdir():
            old.unlink()
        (tmp_path / "taken" / name).write_bytes(b"someone else's")
        proc = run_script(script, tmp_path, "--run-name", "taken", check=False)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and "phase 1" not in proc.stdout
        assert f"holds another run's files ({name})" in proc.stderr, proc.stderr
        assert [p.name for p in (tmp_path / "taken").iterdir()] == [name]
        assert (tmp_path / "taken" / name).read_bytes() == b"someone else's"
    # a run folder with only run.py's stdout.txt in it is free
    (tmp_path / "taken" / name).unlink()
    (tmp_path / "taken" / "stdout.txt").write_text("")
    run_script(script, tmp_path, "--run-name", "taken", "--phase2-steps", "0")


class RunsCode:
    """Unpickling this object runs a shell command: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_no_checkpoint_loader_runs_code_or_reads_a_broken_file(script, spread_run, tmp_path):
    full = spread_run / "full"
    marker = tmp_path / "code_ran"
    hostile = tmp_path / "hostile" / "phase1.pt"
    hostile.parent.mkdir()
    torch.save({**load(full / "phase1.pt"), "rng": RunsCode(marker)}, hostile)
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "truncated.pt").write_bytes((full / "phase1.pt").read_bytes()[:5000])
    phase1 = ["--phase1-checkpoint", str(full / "phase1.pt")]
    for bad in (hostile, tmp_path / "empty.pt", tmp_path / "truncated.pt"):
        for flags in (["--phase1-checkpoint", str(bad)], [*phase1, "--dvm-checkpoint", str(bad)]):
            proc = run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", *flags, check=False)
            assert proc.returncode != 0 and "Traceback" not in proc.stderr and "phase " not in proc.stdout
            assert proc.stderr.count("\n") == 1 and f"error: cannot read {str(bad)!r} as a checkpoint" in proc.stderr
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "render_policy.py"), str(bad)],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and "error: cannot read" in proc.stderr
    assert not marker.exists()


def test_every_checkpoint_says_what_it_is_and_loaders_refuse_the_wrong_kind(script, spread_run, tmp_path):
    full, algorithm = spread_run / "full", script[:-3]
    for name, kind in (("phase1.pt", "phase1"), ("dvm.pt", "dvm"), ("phase2.pt", "phase2")):
        checkpoint = torch.load(full / name, map_location="cpu", weights_only=True)  # plain data: no code can run
        assert (checkpoint["algorithm"], checkpoint["kind"]) == (algorithm, kind)
    phase1 = ["--phase1-checkpoint", str(full / "phase1.pt")]
    for flags, message in ((["--phase1-checkpoint", str(full / "phase2.pt")], "Phase I checkpoint (it holds: "
                            f"{algorithm}, Phase II)"),
                           (["--phase1-checkpoint", str(full / "dvm.pt")], f"Phase I checkpoint (it holds: {algorithm}, "
                            "DVM step)"),
                           ([*phase1, "--dvm-checkpoint", str(full / "phase1.pt")], "DVM step checkpoint")):
        proc = run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", *flags, check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and "phase " not in proc.stdout


def test_checkpoint_size_follows_the_transitions_it_holds(script, tmp_path):
    # 256 transitions in a buffer with room for 400,000: the file holds the 256, not the preallocated storage
    run_script(script, tmp_path, "--buffer-size", "400000", "--run-name", "big", "--phase2-steps", "0")
    small = (tmp_path / "big" / "phase1.pt").stat().st_size
    assert small < 1_000_000, small
    checkpoint = load(tmp_path / "big" / "phase1.pt")
    assert len(checkpoint["teams"][0]["buffer"]["obs"]) == 256


@pytest.mark.parametrize("mode, loss", [("distill", "dvm/kl_loss"), ("vm", "dvm/vm_loss")])
def test_divergence_in_the_dvm_step_stops_before_the_hard_update(script, spread_run, tmp_path, mode, loss):
    proc = run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", "--dvm-mode", mode, "--dvm-learning-rate", "1e30",
               "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt"), "--run-name", mode, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert re.search(rf"error: diverged in the DVM step at global step 256: {loss} is (nan|infinite)", proc.stderr), \
        proc.stderr
    assert not (tmp_path / mode / "dvm.pt").exists() and not (tmp_path / mode / "phase2.pt").exists()


def test_progress_line_ends_with_the_time_left(spread_run):
    lines = progress_lines((spread_run / "stdout.txt").read_text())
    assert [int(line.group(2)) for line in lines] == list(range(0, 256 + 128 + 1, 64))[:5] + list(range(256, 385, 64))
    # "?" only where the phase has done no step yet: no pace to go by
    assert [seconds_left(line) is None for line in lines] == [True, False, False, False, False, True, False, False]
    assert seconds_left(lines[-1]) == 0


def test_time_left(script):
    m = SCRIPTS[script]
    assert [m.time_left(s, 1, 1) for s in (0, 44.6, 200, 3599, 3900)] == ["~0s", "~45s", "~3m20s", "~59m59s", "~1h05m"]
    assert m.time_left(10.0, 100, 300) == "~30s" and m.time_left(0.0, 0, 300) == "?"


def test_time_left_counts_phase2_ahead_at_the_pace_so_far(script, tmp_path):
    # one domain per script: push box (two teams) in maddpg_dvm.py, spread (one team) in masac_dvm.py
    domain, teams = {"maddpg_dvm.py": ("push_box", 2), "masac_dvm.py": ("spread", 1)}[script]
    # a Phase II far longer than Phase I: the end of Phase I must foresee it (push box: Phase I steps two teams)
    proc = start_script(script, tmp_path, "--domain", domain, "--phase2-steps", "1000000")
    try:
        lines = []
        for text in proc.stdout:
            lines += progress_lines(text)
            if len(lines) == 7:  # Phase I's five lines and the first two of Phase II
                break
    finally:
        proc.kill()
        proc.wait()
    end_of_phase1, phase2 = lines[4], lines[6]
    for line, ahead in ((end_of_phase1, 1_000_000 / teams), (phase2, 1_000_000 - 64)):
        want = ahead / int(line.group(3))
        assert abs(seconds_left(line) - want) < 0.05 * want + 1, line.group(0)


def test_phase2_actor_delay_trains_only_the_critics_first(script, spread_run, tmp_path):
    # --phase2-actor-delay N: the first N Phase II updates leave the actors as the DVM step made them (TINY: 8 worlds,
    # so 32 Phase II steps are 4 updates); the critics learn from the first update on
    common = ["--n-agents", "3", "--seed", "3", "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt")]
    for steps, name in (("32", "held"), ("40", "released")):
        run_script(script, tmp_path, *common, "--phase2-steps", steps, "--phase2-actor-delay", "4", "--run-name", name)
    after_dvm = networks(load(tmp_path / "held" / "dvm.pt"))
    held, released = (networks(load(tmp_path / name / "phase2.pt")) for name in ("held", "released"))
    assert all_equal([after_dvm["actors"], held["actors"]])
    for critics in CRITICS[script]:
        assert not all_equal([after_dvm[critics], held[critics]])
    assert not all_equal([after_dvm["actors"], released["actors"]])  # the fifth update moves them
    if "target_actors" in held:  # MADDPG: the target actors stay too
        assert all_equal([after_dvm["actors"], held["target_actors"]])
    proc = run_script(script, tmp_path, *common, "--phase2-actor-delay", "17", check=False)  # TINY's Phase II has 16 updates
    assert proc.returncode != 0 and "--phase2-actor-delay 17 is longer than Phase II, which has 16" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dvm_checkpoint_gives_the_same_phase2_without_the_dvm_step(script, spread_run, tmp_path):
    # --dvm-checkpoint takes the fixture run's DVM step (same Phase I): Phase II must follow number for number
    full = spread_run / "full"
    proc = run_script(script, tmp_path, "--n-agents", "3", "--dvm-mode", "dvm", "--seed", "3", "--run-name", "reused",
                      "--phase1-checkpoint", str(full / "phase1.pt"), "--dvm-checkpoint", str(full / "dvm.pt"))
    assert f"DVM step (dvm): loaded from {full / 'dvm.pt'}" in proc.stdout and "iterations done" not in proc.stdout
    phase2 = lambda stdout: [(m.group(2), m.group(4)) for m in progress_lines(stdout) if m.group(1) == "2"]  # step, return
    assert phase2(proc.stdout) == phase2((spread_run / "stdout.txt").read_text())
    a, b = networks(load(full / "phase2.pt")), networks(load(tmp_path / "reused" / "phase2.pt"))
    nets = [key for key in a if key != "buffer" and "optimizer" not in key]
    assert len(nets) >= 3
    for key in nets:
        assert all_equal([a[key], b[key]]), key
    assert torch.equal(a["buffer"]["obs"], b["buffer"]["obs"])  # the same transitions collected in Phase II
    saved = load(tmp_path / "reused" / "dvm.pt")  # which can be reused in turn
    assert saved["students"].keys() == load(full / "dvm.pt")["students"].keys() and "pi0" in saved["students"]


def test_dvm_checkpoint_of_another_run_is_refused(script, spread_run, tmp_path):
    full = spread_run / "full"
    saved = load(full / "dvm.pt")
    torch.save({**saved, "phase1_eval_return": saved["phase1_eval_return"] + 1}, tmp_path / "other_phase1.pt")
    torch.save({k: v for k, v in saved.items() if k != "kind"}, tmp_path / "older.pt")
    phase1 = ["--phase1-checkpoint", str(full / "phase1.pt")]
    for flags, message in (
            ([*phase1, "--dvm-mode", "vm", "--dvm-checkpoint", str(full / "dvm.pt")],
             "was made with another configuration: dvm_mode=dvm (this run: vm)"),
            ([*phase1, "--dvm-iterations", "6", "--dvm-checkpoint", str(full / "dvm.pt")], "dvm_iterations=5 (this run: 6)"),
            ([*phase1, "--dvm-checkpoint", str(tmp_path / "other_phase1.pt")], "was made from another Phase I"),
            ([*phase1, "--dvm-checkpoint", str(tmp_path / "older.pt")], "DVM step checkpoint (it holds: "),
            ([*phase1, "--dvm-checkpoint", str(tmp_path / "none.pt")], "does not exist"),
            (["--dvm-checkpoint", str(full / "dvm.pt")], "--dvm-checkpoint needs the --phase1-checkpoint")):
        proc = run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", *flags, check=False)
        assert proc.returncode != 0 and message in proc.stderr, (flags, proc.stderr)
        assert "Traceback" not in proc.stderr and "phase " not in proc.stdout


def test_value_matching_loss_sums_over_permutations_and_averages_over_the_batch(script):
    # Eq. (6): sum over X in S(o) of (student(X) - source(o))^2; a mean over permutations would be n! times smaller
    m = SCRIPTS[script]
    student = torch.tensor([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]])  # (batch 2, 3 permutations)
    source = torch.tensor([1.0, 3.0])
    want = ((0 + 1 + 9) + (9 + 9 + 0)) / 2
    if script == "maddpg_dvm.py":
        class Lookup(torch.nn.Module):  # a "critic" that returns the values above, row b * P + p
            def forward(self, obs, actions):
                return student.flatten()
        perms = torch.tensor([[0, 1], [1, 0], [0, 1]])
        loss = m.value_matching_loss(Lookup(), torch.zeros(2, 2, 3), torch.zeros(2, 2, 5), source, perms)
    else:
        loss = m.value_matching_loss(student, source)
    assert abs(loss.item() - want) < 1e-6


@pytest.mark.parametrize("domain, n_teams, n_agents", [("spread", 1, 3), ("push_box", 2, 2)])
def test_dvm_sources_are_every_spread_agent_and_agent_1_of_each_push_box_team(script, monkeypatch, domain, n_teams,
                                                                                n_agents):
    m = SCRIPTS[script]
    args = m.Args(domain=domain, n_agents=n_agents, hidden_dim=8, buffer_size=16, dvm_iterations=1, dvm_mode="dvm")
    teams = [m.Team(args, 6, 2 if script == "masac_dvm.py" else 5, "cpu") for _ in range(n_teams)]
    seen = {}
    monkeypatch.setattr(m, "distill_actor", lambda sources, *a: seen.setdefault("kl", sources) and (None, None))
    monkeypatch.setattr(m, "match_values", lambda sources, *a: seen.setdefault("vm", sources) and (None,) * (
        3 if script == "masac_dvm.py" else 2))
    m.train_students(teams, args, 6, 2 if script == "masac_dvm.py" else 5, "cpu")
    agents = range(n_agents) if n_teams == 1 else [0]
    assert seen["kl"] == [(t.actors[i], t.buffer, i) for t in teams for i in agents]
    if script == "maddpg_dvm.py":
        assert seen["vm"] == [(t.critics[i], t.buffer) for t in teams for i in agents]
    else:
        assert seen["vm"] == [(t.qfs[i], t.vfs[i], t.buffer) for t in teams for i in agents]


@pytest.mark.parametrize("flags, message", [
    (["--gamma", "1.5"], "--gamma must be in (0, 1], got 1.5"),
    (["--gamma", "0"], "--gamma must be in (0, 1]"),
    (["--tau", "0"], "--tau must be in (0, 1]"),
    (["--learning-rate", "-1"], "--learning-rate must be positive and finite, got -1.0"),
    (["--learning-rate", "nan"], "--learning-rate must be positive and finite, got nan"),
    (["--learning-rate", "inf"], "--learning-rate must be positive and finite"),
    (["--dvm-learning-rate", "0"], "--dvm-learning-rate must be positive and finite"),
    (["--dvm-iterations", "0"], "--dvm-mode dvm needs at least one DVM iteration"),
    (["--phase1-steps", "0"], "--phase1-steps 0 is shorter than --learning-starts 64"),
    (["--phase1-steps", "4", "--learning-starts", "0"], "or one step of the --num-envs 8 worlds"),
    (["--seed", "-1"], "--seed must not be negative"),
    (["--runs-dir", "/dev/null"], "cannot write the run folder"),
])
def test_flag_values_out_of_range_are_one_line_before_any_work(script, tmp_path, flags, message):
    proc = run_script(script, tmp_path, *flags, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "phase 1" not in proc.stdout
    assert not list(tmp_path.iterdir())  # nothing written


def test_cuda_flag_runs_on_a_cpu_machine_with_the_same_numbers(script, tmp_path):
    # CleanRL's --cuda: used when a GPU is there, else the run goes on on the CPU, number for number
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --cuda would run there")
    for name, flag in (("gpu", "--cuda"), ("cpu", "--no-cuda")):
        run_script(script, tmp_path, flag, "--run-name", name, "--phase2-steps", "64")
    a, b = (networks(load(tmp_path / name / "phase2.pt")) for name in ("gpu", "cpu"))
    assert all_equal([a["actors"], b["actors"]])
