"""What both scripts do alike, tested on each: videos, divergence stops, progress lines, the critic warm-up, the reuse of
a DVM step.

The scripts stand alone (no shared module), so every test here runs once per script."""
import hashlib
import itertools
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import tyro

import maddpg_dvm
import masac_dvm
import particle_envs as pe
from helpers import ROOT, TINY, all_equal, gif_frames, load, networks, progress_lines, run_script, start_script

SCRIPTS = {"maddpg_dvm.py": maddpg_dvm, "masac_dvm.py": masac_dvm}
# the networks the critic warm-up trains from the first Phase II update: MADDPG's critics, MA-SAC's Q and V
CRITICS = {"maddpg_dvm.py": ["critics"], "masac_dvm.py": ["qfs", "vfs"]}
OPTIMIZERS = {"maddpg_dvm.py": ["actor_optimizer", "q_optimizer"],
              "masac_dvm.py": ["actor_optimizer", "q_optimizer", "v_optimizer"]}


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


def test_a_run_never_writes_into_another_runs_folder(script, spread_run, tmp_path, forked):
    # a folder with another run's checkpoint or events is refused in one line, and nothing in it is touched
    for name in ("phase1.pt", "events.out.tfevents.1.host", "dvm.pt.tmp123"):
        (tmp_path / "taken").mkdir(exist_ok=True)
        for old in (tmp_path / "taken").iterdir():
            old.unlink()
        (tmp_path / "taken" / name).write_bytes(b"someone else's")
        proc = forked.run_script(script, tmp_path, "--run-name", "taken")
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


def test_no_checkpoint_loader_runs_code_or_reads_a_broken_file(script, spread_run, tmp_path, forked):
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
            proc = forked.run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", *flags)
            assert proc.returncode != 0 and "Traceback" not in proc.stderr and "phase " not in proc.stdout
            assert proc.stderr.count("\n") == 1 and f"error: cannot read {str(bad)!r} as a checkpoint" in proc.stderr
        proc = forked.run([os.path.join(ROOT, "benchmark", "render_policy.py"), str(bad)])
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and "error: cannot read" in proc.stderr
    assert not marker.exists()


def test_every_checkpoint_says_what_it_is_and_loaders_refuse_the_wrong_kind(script, spread_run, tmp_path, forked):
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
        proc = forked.run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", *flags)
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


def test_progress_lines_report_every_evaluation_and_the_value_matching(spread_run):
    lines = progress_lines((spread_run / "stdout.txt").read_text())
    assert [int(line.group(2)) for line in lines] == list(range(0, 256 + 128 + 1, 64))[:5] + list(range(256, 385, 64))
    # the DVM step's value matching (47 min at 5 agents with the exact sum) reports too: here each of its 5 iterations
    vm = re.findall(r"^DVM step: value matching (\d+)/5 iterations, loss (\S+)$", (spread_run / "stdout.txt").read_text(),
                    re.M)
    assert [int(it) for it, _ in vm] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(float(loss)) and float(loss) >= 0 for _, loss in vm)


def test_a_started_script_keeps_its_stderr_for_the_message_of_a_failed_test(tmp_path):
    proc = start_script("maddpg_dvm.py", tmp_path, "--gamma", "2")
    assert proc.stdout.read() == "" and proc.wait() != 0
    assert (tmp_path / "stderr.txt").read_text() == "error: --gamma must be in (0, 1], got 2.0\n"


def test_help_gives_each_default_once(script, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit, match="0"):
        tyro.cli(SCRIPTS[script].Args, args=["--help"], prog=script)
    text = capsys.readouterr().out
    options = re.split(r"\n\W*(?=--)", text)  # one block of text per option
    assert len(options) > 30 and all(option.count("(default:") <= 1 for option in options), text


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


def test_phase2_keeps_phase1s_buffer(script, spread_run):
    # catches a Phase II that starts from an empty buffer: its first rows are Phase I's, then come its own 128
    full = spread_run / "full"
    phase1, phase2 = (networks(load(full / name))["buffer"] for name in ("phase1.pt", "phase2.pt"))
    assert len(phase1["obs"]) == 256 and len(phase2["obs"]) == 256 + 128 and phase2["pos"] == 256 + 128
    for key in ("obs", "next_obs", "actions", "rewards"):
        assert torch.equal(phase2[key][:256], phase1[key]), key


def test_hard_updated_networks_start_phase2_with_fresh_adam(script, spread_run):
    # catches optimizers that keep the Adam moments of the weights the DVM step overwrote: after --dvm-mode dvm every
    # optimizer has taken Phase II's 16 steps only, not Phase I's 25 before them
    full = spread_run / "full"
    for key in OPTIMIZERS[script]:
        steps = [[int(state["step"]) for state in networks(load(full / name))[key]["state"].values()]
                 for name in ("phase1.pt", "phase2.pt")]
        assert steps[0] and set(steps[0]) == {25} and steps[1] and set(steps[1]) == {16}, key


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
    # both name the Phase I they come from by its checkpoint's sha256 (the first run saved it, the second loaded it)
    digest = hashlib.sha256((full / "phase1.pt").read_bytes()).hexdigest()
    assert saved["phase1_sha256"] == load(full / "dvm.pt")["phase1_sha256"] == digest


def test_dvm_checkpoint_of_another_run_is_refused(script, spread_run, tmp_path, forked):
    full = spread_run / "full"
    saved = load(full / "dvm.pt")
    torch.save({**saved, "phase1_sha256": "0" * 64}, tmp_path / "other_phase1.pt")
    torch.save({k: v for k, v in saved.items() if k != "phase1_sha256"}, tmp_path / "unnamed.pt")
    torch.save({k: v for k, v in saved.items() if k != "kind"}, tmp_path / "older.pt")
    # another Phase I with the same global step and return (one transition differs): only its sha256 tells them apart
    other = load(full / "phase1.pt")
    other["teams"][0]["buffer"]["rewards"][0] += 1
    torch.save(other, tmp_path / "phase1_other.pt")
    phase1 = ["--phase1-checkpoint", str(full / "phase1.pt")]
    for flags, message in (
            ([*phase1, "--dvm-mode", "vm", "--dvm-checkpoint", str(full / "dvm.pt")],
             "was made with another configuration: dvm_mode=dvm (this run: vm)"),
            ([*phase1, "--dvm-iterations", "6", "--dvm-checkpoint", str(full / "dvm.pt")], "dvm_iterations=5 (this run: 6)"),
            ([*phase1, "--vm-permutations", "2", "--dvm-checkpoint", str(full / "dvm.pt")],
             "vm_permutations=0 (this run: 2)"),
            ([*phase1, "--dvm-checkpoint", str(tmp_path / "other_phase1.pt")], "was made from another Phase I"),
            ([*phase1, "--dvm-checkpoint", str(tmp_path / "unnamed.pt")], "was made from another Phase I"),
            (["--phase1-checkpoint", str(tmp_path / "phase1_other.pt"), "--dvm-checkpoint", str(full / "dvm.pt")],
             "was made from another Phase I"),
            ([*phase1, "--dvm-checkpoint", str(tmp_path / "older.pt")], "DVM step checkpoint (it holds: "),
            ([*phase1, "--dvm-checkpoint", str(tmp_path / "none.pt")], "does not exist"),
            (["--dvm-checkpoint", str(full / "dvm.pt")], "--dvm-checkpoint needs the --phase1-checkpoint")):
        proc = forked.run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", *flags)
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
        loss = m.value_matching_loss(Lookup(), torch.zeros(2, 2, 3), torch.zeros(2, 2, 5), source, perms, 3)
    else:
        loss = m.value_matching_loss(student, source, 3)
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


@pytest.mark.parametrize("learning_starts, update_every", [(64, 1), (60, 3), (0, 10), (100, 4)])
def test_every_agent_updates_after_each_step_once_the_buffer_holds_learning_starts(script, tmp_path, learning_starts,
                                                                                   update_every):
    # TINY: 8 worlds, Phase I 32 steps, Phase II 16 (mode none: the optimizers go on, and so does the buffer). An update
    # follows each step whose index (from 0 in each phase) is a multiple of --update-every once the buffer holds
    # --learning-starts transitions; Adam counts the updates (its "step", the same in every parameter's state)
    run_script(script, tmp_path, "--dvm-mode", "none", "--learning-starts", str(learning_starts), "--update-every",
               str(update_every), "--run-name", "run")
    filled, want = 0, []
    for steps in (32, 16):
        ready = 0
        for step in range(steps):
            filled += 8
            ready += filled >= learning_starts and step % update_every == 0
        want.append(ready)
    for name, updates in (("phase1.pt", want[0]), ("phase2.pt", sum(want))):
        state = networks(load(tmp_path / "run" / name))["q_optimizer"]["state"]
        assert {int(s["step"]) for s in state.values()} == {updates}, name


@pytest.mark.parametrize("flags, message", [
    (["--gamma", "1.5"], "--gamma must be in (0, 1], got 1.5"),
    (["--gamma", "0"], "--gamma must be in (0, 1]"),
    (["--tau", "0"], "--tau must be in (0, 1]"),
    (["--learning-rate", "-1"], "--learning-rate must be positive and finite, got -1.0"),
    (["--learning-rate", "nan"], "--learning-rate must be positive and finite, got nan"),
    (["--learning-rate", "inf"], "--learning-rate must be positive and finite"),
    (["--dvm-learning-rate", "0"], "--dvm-learning-rate must be positive and finite"),
    (["--dvm-iterations", "0"], "--dvm-mode dvm needs a DVM iteration or more"),
    (["--phase1-steps", "0"], "Phase I would make no gradient update"),
    (["--phase1-steps", "4", "--learning-starts", "0"], "its 0 steps of the --num-envs 8 worlds collect 0 transitions"),
    (["--seed", "-1"], "--seed must not be negative"),
    (["--runs-dir", "/dev/null"], "cannot write the run folder"),
])
def test_flag_values_out_of_range_are_one_line_before_any_work(script, tmp_path, flags, message, forked):
    proc = forked.run_script(script, tmp_path, *flags)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "phase 1" not in proc.stdout
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("flags, message", [
    # Phase I without a gradient update: the buffer never holds --learning-starts; it would only after the last step
    # (TINY: 8 worlds, so 260 steps collect 256 transitions); --update-every skips every step after which it does
    (["--buffer-size", "63"], "into --buffer-size 63; an update follows each step"),
    (["--phase1-steps", "260", "--learning-starts", "260"], "its 32 steps of the --num-envs 8 worlds collect 256"),
    (["--update-every", "32"], "Phase I would make no gradient update, and the DVM step would distil untrained"),
    (["--domain", "push_box", "--learning-starts", "257"], "collect 256 transitions (--phase1-steps 256)"),  # per team
    # numpy takes seeds below 2**32 only; far more threads than CPUs crash torch
    (["--seed", "4294967296"], "--seed must be below 2**32 = 4294967296 (numpy's seeds), got 4294967296"),
    (["--threads", "100000"], "--threads 100000 is more than this machine's"),
    # Eq. (6)'s exact sum from 7 agents, in both modes that match values (TINY's is dvm); sampled, it is accepted
    # (test_value_matching_beyond_six_agents_is_accepted_sampled)
    (["--n-agents", "7"], "the exact value matching sum over all 5040 permutations of 7 agents cannot finish in"),
    (["--n-agents", "7", "--dvm-mode", "vm"], "all 5040 permutations of 7 agents cannot finish in reasonable time"),
    (["--n-agents", "8"], "all 40320 permutations of 8 agents cannot finish in reasonable time"),
    (["--n-agents", "8", "--dvm-mode", "vm"], "all 40320 permutations of 8 agents cannot finish in reasonable time"),
])
def test_runs_that_cannot_work_are_refused_by_check_args(script, flags, message):
    # check_args runs before any work (test_flag_values_out_of_range_are_one_line_before_any_work): called here alone
    m = SCRIPTS[script]
    with pytest.raises(SystemExit, match=re.escape(message)):
        m.check_args(tyro.cli(m.Args, args=[*TINY, *flags]))
    m.check_args(tyro.cli(m.Args, args=TINY))  # TINY itself passes


def test_value_matching_beyond_six_agents_is_accepted_sampled(script):
    # from 7 agents the exact sum is refused (above), K sampled permutations and the modes without value matching are not
    m = SCRIPTS[script]
    for n in ("7", "8"):
        for flags in (["--vm-permutations", "8"], ["--dvm-mode", "vm", "--vm-permutations", "8"],
                      ["--dvm-mode", "none"], ["--dvm-mode", "distill"]):
            m.check_args(tyro.cli(m.Args, args=["--n-agents", n, *flags]))
    # K = n! draws every permutation, by a sampler quadratic in K: refused like the exact sum
    with pytest.raises(SystemExit, match="cannot finish in reasonable time"):
        m.check_args(tyro.cli(m.Args, args=["--n-agents", "7", "--vm-permutations", "5040"]))


@pytest.mark.parametrize("cause, prelude", [
    ("a file-size limit", "import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))"),
    ("SIGINT in the middle of the save", "import os, signal, torch\nsave = torch.save\n"
     "torch.save = lambda *a, **k: (save(*a, **k), os.kill(os.getpid(), signal.SIGINT))"),
])
def test_a_save_that_fails_or_is_interrupted_leaves_no_temporary_file(script, tmp_path, cause, prelude):
    # TINY's phase1.pt is about 140 kB: the limit stops it mid-write (its events file stays below it); the run ends in
    # Python's own traceback, and the checkpoint is either whole or not there
    proc = run_script(script, tmp_path, "--run-name", "cut", prelude=prelude, check=False)
    assert proc.returncode != 0 and ("KeyboardInterrupt" if "SIGINT" in cause else "RuntimeError") in proc.stderr
    assert "phase 1  global_step 256" in proc.stdout
    assert [p.name for p in (tmp_path / "cut").iterdir() if not p.name.startswith("events.out.tfevents.")] == []


def test_cuda_flag_runs_on_a_cpu_machine_with_the_same_numbers(script, tmp_path):
    # CleanRL's --cuda: used when a GPU is there, else the run goes on on the CPU, number for number
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --cuda would run there")
    for name, flag in (("gpu", "--cuda"), ("cpu", "--no-cuda")):
        run_script(script, tmp_path, flag, "--run-name", name, "--phase2-steps", "64")
    a, b = (networks(load(tmp_path / name / "phase2.pt")) for name in ("gpu", "cpu"))
    assert all_equal([a["actors"], b["actors"]])


# ---- --vm-permutations: Eq. (6)'s sum over n! permutations estimated from K drawn per sample ----

def sampled_vm_loss(script, obs, actions, q_source, perms, n_perms, critic):
    """One value of each script's Eq. (6) loss for a critic of (obs, actions) and per-sample permutations perms."""
    m = SCRIPTS[script]
    if script == "maddpg_dvm.py":
        return m.value_matching_loss(critic, obs, actions, q_source, perms, n_perms)
    values = critic(*m.permute_agents(obs, actions, perms)).view(len(obs), perms.shape[-2])
    return m.value_matching_loss(values, q_source, n_perms)


def vm_batch(script, n=4, batch=12, obs_dim=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch, n, obs_dim, generator=gen)
    if script == "maddpg_dvm.py":
        actions = torch.nn.functional.one_hot(torch.randint(0, 5, (batch, n), generator=gen), 5).float()
        critic = SCRIPTS[script].Critic(n, obs_dim, 5, 16)
    else:
        actions = torch.rand(batch, n, 2, generator=gen) * 2 - 1
        critic = SCRIPTS[script].SoftQNetwork(n, obs_dim, 2, 16)
    return obs, actions, torch.randn(batch, generator=gen), critic


def all_permutations(n):
    return torch.tensor(list(itertools.permutations(range(n))))


def test_sampled_permutations_are_distinct_per_sample_and_uniform(script):
    m = SCRIPTS[script]
    torch.manual_seed(0)
    perms = all_permutations(4)
    drawn = m.sample_permutations(perms, 6000, 5)  # (6000, 5, 4)
    index = (drawn[:, :, None, :] == perms[None, None]).all(-1).int().argmax(-1)  # which of the 24 rows
    assert all(len(set(row)) == 5 for row in index.tolist())  # without replacement
    counts = torch.bincount(index.flatten(), minlength=24).float()
    expected = 6000 * 5 / 24
    # each permutation in a sample's set with probability 5/24: counts within 5 standard deviations of the mean
    assert (counts - expected).abs().max() < 5 * (6000 * 5 / 24 * (1 - 5 / 24)) ** 0.5, counts
    # pairs too: a uniform 5-subset holds two given permutations with probability (5 * 4) / (24 * 23)
    together = ((index == 0).any(1) & (index == 1).any(1)).float().sum()
    assert abs(together - 6000 * 20 / 552) < 5 * (6000 * 20 / 552) ** 0.5, together


def test_sampled_value_matching_loss_is_an_unbiased_estimate_of_the_exact_sum(script):
    m = SCRIPTS[script]
    torch.manual_seed(0)
    obs, actions, q_source, critic = vm_batch(script)
    perms = all_permutations(4)
    with torch.no_grad():
        exact = sampled_vm_loss(script, obs, actions, q_source, perms, 24, critic)
        for k in (1, 3):
            draws = torch.stack([sampled_vm_loss(script, obs, actions, q_source,
                                                 m.sample_permutations(perms, len(obs), k), 24, critic)
                                 for _ in range(2000)])
            # the mean of 2000 draws is within 4 standard errors of the exact sum; a mean over the K terms (not
            # scaled by n!/K) would be 24/K times too small, far outside
            assert abs(draws.mean() - exact) < 4 * draws.std() / 2000 ** 0.5, (k, draws.mean(), exact)
            assert draws.std() > 0  # they are random


def test_all_n_factorial_permutations_drawn_without_replacement_give_the_exact_sum(script):
    m = SCRIPTS[script]
    torch.manual_seed(1)
    obs, actions, q_source, critic = vm_batch(script, n=3)
    perms = all_permutations(3)
    drawn = m.sample_permutations(perms, len(obs), 6)
    assert all(sorted(map(tuple, d.tolist())) == sorted(map(tuple, perms.tolist())) for d in drawn)
    with torch.no_grad():
        exact = sampled_vm_loss(script, obs, actions, q_source, perms, 6, critic)
        assert torch.allclose(sampled_vm_loss(script, obs, actions, q_source, drawn, 6, critic), exact, rtol=1e-5)


def test_sampled_permutations_move_observation_and_action_blocks_together(script):
    # a critic that sums a function of each agent's (observation, action) pair is permutation-invariant: matched to its
    # own values it has zero loss under any permutation, unless observations and actions were permuted apart
    m = SCRIPTS[script]
    torch.manual_seed(2)
    obs, actions, _, _ = vm_batch(script, n=4, batch=32)
    pair = torch.nn.Linear(obs.shape[2] + actions.shape[2], 1)
    with torch.no_grad():
        pair.weight[:, obs.shape[2]:] = 3 * torch.randn(actions.shape[2])  # actions weigh as much as observations

    class Symmetric(torch.nn.Module):
        def forward(self, obs, actions):
            return (pair(torch.cat([obs, actions], -1)) ** 2).squeeze(-1).sum(1)

    critic = Symmetric()
    perms = m.sample_permutations(all_permutations(4), len(obs), 3)
    with torch.no_grad():
        q_source = critic(obs, actions)
        # zero but for the rounding of sums taken in another order (values of order 50)
        assert sampled_vm_loss(script, obs, actions, q_source, perms, 24, critic) < 1e-8 * (q_source**2).mean()
        # the same critic with the actions left in agent order sees other pairs: a non-zero loss
        p_obs, _ = m.permute_agents(obs, actions, perms)
        apart = critic(p_obs, actions.repeat_interleave(3, 0)).view(32, 3)
        assert ((apart - q_source[:, None]) ** 2).sum(1).mean() > 0.1


@pytest.mark.parametrize("k", [0, 2])
def test_vm_permutations_zero_is_the_exact_sum_and_k_draws(script, monkeypatch, k):
    # K = 0 takes the exact sum over the n! rows, drawing nothing; K > 0 draws K per sample every step
    m = SCRIPTS[script]
    torch.manual_seed(0)
    args = m.Args(n_agents=3, hidden_dim=8, buffer_size=32, dvm_iterations=3, dvm_batch_size=4, vm_permutations=k)
    team = m.Team(args, 6, 2 if script == "masac_dvm.py" else 5, "cpu")
    team.buffer.add(torch.randn(32, 3, 6), torch.randint(0, 5, (32, 3)) if script == "maddpg_dvm.py"
                    else torch.rand(32, 3, 2), torch.zeros(32), torch.randn(32, 3, 6))
    calls, draw = [], m.sample_permutations
    monkeypatch.setattr(m, "sample_permutations", lambda *a: calls.append(a[1:]) or draw(*a))
    sources = [(team.critics[0], team.buffer)] if script == "maddpg_dvm.py" else [(team.qfs[0], team.vfs[0], team.buffer)]
    m.match_values(sources, args, 6, 2 if script == "masac_dvm.py" else 5, "cpu")
    assert calls == ([] if k == 0 else [(4, k)] * 3)


@pytest.mark.parametrize("flags, message", [
    (["--vm-permutations", "-1"], "--vm-permutations must be in [0, 6] (the 3! agent permutations; 0: all of them)"),
    (["--vm-permutations", "7"], "--vm-permutations must be in [0, 6]"),
    (["--n-agents", "8"], "cannot finish in reasonable time: sample them with --vm-permutations K (for example 8)"),
])
def test_vm_permutations_out_of_range_is_one_line_before_any_work(script, tmp_path, flags, message, forked):
    proc = forked.run_script(script, tmp_path, "--n-agents", "3", *flags)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and not list(tmp_path.iterdir())


def test_the_push_box_mass_default_is_the_worlds(script):
    # written out in Args (the script needs no particle_envs before make_env); particle_envs.BOX_MASS is the world's
    assert SCRIPTS[script].Args.box_mass == pe.BOX_MASS
