"""maddpg_dvm.py: the DVM functions in process, the whole Phase I -> DVM -> Phase II flow through subprocesses."""
import glob
import itertools
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import maddpg_dvm as m
import particle_envs as pe
from helpers import (ROOT, all_equal, gif_frames, load, networks, per_agent, progress_lines, run_script, seconds_left,
                     start_script)


def run(tmp_path, *flags, check=True, prelude=None):
    return run_script("maddpg_dvm.py", tmp_path, *flags, check=check, prelude=prelude)


# ------------------------------------------------------------------ in process


def test_kl_of_identical_policies_is_zero_and_positive_otherwise():
    torch.manual_seed(0)
    logits = torch.randn(64, 5)
    for tau in (0.5, 1.0, 3.0):
        assert torch.allclose(m.kl_divergence(logits, logits.clone(), tau), torch.zeros(64), atol=1e-6)
        other = logits + torch.randn(64, 5)
        kl = m.kl_divergence(logits, other, tau)
        assert (kl > 0).all()
        want = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=logits / tau),
                                                 torch.distributions.Categorical(logits=other / tau))
        assert torch.allclose(kl, want, atol=1e-6)
    # the direction of Eq. (3): the source policy weighs the log ratio
    assert not torch.allclose(m.kl_divergence(logits, other, 1.0), m.kl_divergence(other, logits, 1.0))


def test_permute_agents_moves_observation_and_action_blocks_together():
    obs = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    actions = F.one_hot(torch.tensor([[0, 1, 2], [3, 4, 0]]), 5).float()
    perms = torch.tensor(list(itertools.permutations(range(3))))
    p_obs, p_actions = m.permute_agents(obs, actions, perms)
    assert p_obs.shape == (12, 3, 4) and p_actions.shape == (12, 3, 5)
    for b in range(2):
        for p, perm in enumerate(perms.tolist()):
            for slot, agent in enumerate(perm):
                assert torch.equal(p_obs[b * 6 + p, slot], obs[b, agent])
                assert torch.equal(p_actions[b * 6 + p, slot], actions[b, agent])


def small_args(**kwargs):
    defaults = dict(n_agents=3, hidden_dim=64, dvm_iterations=600, dvm_batch_size=128, dvm_learning_rate=3e-3,
                    buffer_size=128)
    return m.Args(**{**defaults, **kwargs})


def filled_buffer(args, obs_dim=14, seed=0):
    gen = torch.Generator().manual_seed(seed)
    buffer = m.ReplayBuffer(args.buffer_size, args.n_agents, obs_dim, "cpu")
    n = args.buffer_size
    buffer.add(torch.randn(n, args.n_agents, obs_dim, generator=gen),
               torch.randint(0, 5, (n, args.n_agents), generator=gen), torch.zeros(n),
               torch.randn(n, args.n_agents, obs_dim, generator=gen))
    return buffer


def permutation_spread(critic, obs, actions, perms):
    with torch.no_grad():
        q = critic(*m.permute_agents(obs, actions, perms)).view(len(obs), len(perms))
    return q


def test_value_matched_critic_gives_every_permutation_the_source_value():
    torch.manual_seed(0)
    args = small_args()
    buffer = filled_buffer(args)
    source = m.Critic(3, 14, 5, 32)
    with torch.no_grad():  # values of order 1 around 2, like returns of a short episode
        source.fc3.weight.mul_(10.0)
        source.fc3.bias.fill_(2.0)
    q0, losses = m.match_values([(source, buffer)], args, 14, 5, "cpu")
    assert losses[-20:].mean() < 0.05 * losses[:20].mean()
    obs, actions = buffer.obs, F.one_hot(buffer.actions, 5).float()
    perms = torch.tensor(list(itertools.permutations(range(3))))
    with torch.no_grad():
        q_source = source(obs, actions)
    q_student = permutation_spread(q0, obs, actions, perms)
    scale = q_source.std()
    # the source critic is not symmetric: its own permutation spread is large
    assert (permutation_spread(source, obs, actions, perms).std(1)).mean() > 0.3 * scale
    assert (q_student.std(1)).mean() < 0.1 * scale
    assert (q_student - q_source[:, None]).abs().mean() < 0.1 * scale


def test_distilled_actor_matches_every_source_on_its_own_observations():
    torch.manual_seed(0)
    args = small_args(n_agents=2, dvm_iterations=400)
    buffer = filled_buffer(args, obs_dim=10)
    sources = [m.Actor(10, 5, 32), m.Actor(10, 5, 32)]
    pi0, losses = m.distill_actor([(a, buffer, i) for i, a in enumerate(sources)], args, 10, 5, "cpu")
    assert losses[-20:].mean() < 0.1 * losses[:20].mean()
    with torch.no_grad():
        for i, actor in enumerate(sources):
            obs = buffer.obs[:, i]
            assert m.kl_divergence(actor(obs), pi0(obs), 1.0).mean() < 0.02
            assert (actor(obs).argmax(-1) == pi0(obs).argmax(-1)).float().mean() > 0.9


def test_hard_update_copies_into_every_network():
    nets = [m.Actor(10, 5, 16) for _ in range(4)]
    source = m.Actor(10, 5, 16)
    m.hard_update(nets, source)
    assert all_equal([source.state_dict()] + [n.state_dict() for n in nets])
    with torch.no_grad():
        nets[0].fc1.weight.add_(1.0)
    assert not torch.equal(nets[0].fc1.weight, source.fc1.weight)  # copies, not shared tensors


def test_critic_sees_agents_in_order():
    # a centralized critic is not symmetric by construction: value matching has something to do
    torch.manual_seed(0)
    critic = m.Critic(2, 10, 5, 16)
    obs, actions = torch.randn(8, 2, 10), F.one_hot(torch.randint(0, 5, (8, 2)), 5).float()
    assert not torch.allclose(critic(obs, actions), critic(obs.flip(1), actions.flip(1)))


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def spread_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("maddpg_spread")
    proc = run(tmp, "--n-agents", "3", "--dvm-mode", "dvm", "--seed", "3", "--run-name", "full", "--capture-video")
    (tmp / "stdout.txt").write_text(proc.stdout)
    return tmp


def test_smoke_run_writes_events_and_checkpoints(spread_run):
    run_dir = spread_run / "full"
    assert glob.glob(str(run_dir / "events.out.tfevents.*"))
    for name in ("phase1.pt", "dvm.pt", "phase2.pt"):
        checkpoint = load(run_dir / name)
        assert checkpoint["algorithm"] == "maddpg_dvm" and checkpoint["config"]["n_agents"] == 3
    assert not glob.glob(str(run_dir / "*.tmp*"))  # atomic writes leave no temporary file
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir)).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"eval/return", "charts/episodic_return", "charts/SPS", "losses/qf_loss", "losses/actor_loss",
            "dvm/kl_loss", "dvm/vm_loss", "charts/phase"} <= tags
    steps = [e.step for e in events.Scalars("eval/return")]
    assert steps[0] == 0 and steps[-1] == 256 + 128  # one curve across both phases


@pytest.mark.parametrize("mode", ["none", "distill", "vm", "dvm"])
def test_dvm_step_hard_updates_every_network(spread_run, tmp_path, mode):
    # Phase II with 0 steps: the saved team is exactly what the DVM step left.
    run(tmp_path, "--n-agents", "3", "--seed", "3", "--dvm-mode", mode, "--phase2-steps", "0",
        "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt"), "--run-name", mode)
    team = networks(load(tmp_path / mode / "phase2.pt"))
    actors = per_agent(team, "actors", 3) + per_agent(team, "target_actors", 3)
    critics = per_agent(team, "critics", 3) + per_agent(team, "target_critics", 3)
    assert all_equal(actors) == (mode in ("distill", "dvm"))
    assert all_equal(critics) == (mode in ("vm", "dvm"))


def test_resuming_from_phase1_checkpoint_gives_the_same_phase2(spread_run, tmp_path):
    run(tmp_path, "--n-agents", "3", "--dvm-mode", "dvm", "--seed", "3", "--run-name", "resumed",
        "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt"))
    a, b = load(spread_run / "full" / "phase2.pt"), load(tmp_path / "resumed" / "phase2.pt")
    for key in ("actors", "critics", "target_actors", "target_critics"):
        assert all_equal([networks(a)[key], networks(b)[key]]), key
    assert a["eval_return"] == b["eval_return"]


def test_same_seed_same_numbers_and_another_seed_differs(tmp_path):
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        run(tmp_path, "--seed", seed, "--run-name", name, "--phase2-steps", "64")
    a, b, c = (networks(load(tmp_path / name / "phase2.pt")) for name in "abc")
    assert all_equal([a["actors"], b["actors"]]) and all_equal([a["critics"], b["critics"]])
    assert not all_equal([a["actors"], c["actors"]])


@pytest.mark.parametrize("mode", ["none", "distill", "vm", "dvm"])
def test_push_box_runs_every_mode(tmp_path, mode):
    proc = run(tmp_path, "--domain", "push_box", "--dvm-mode", mode, "--run-name", "box")
    checkpoint = load(tmp_path / "box" / "phase1.pt")
    assert len(checkpoint["teams"]) == 2  # two Phase I teams, Tasks I and II
    assert "end of Phase II" in proc.stdout


def test_push_box_rule_reaches_the_worlds_and_the_checkpoint_check(tmp_path):
    # the literal rule and the heavy box give different Phase I data from the same seed, and a Phase I checkpoint
    # of one rule (or mass) is refused by a run of the other
    run(tmp_path, "--domain", "push_box", "--box-rule", "both", "--phase2-steps", "0", "--run-name", "both")
    run(tmp_path, "--domain", "push_box", "--phase2-steps", "0", "--run-name", "heavy")
    both, heavy = (load(tmp_path / name / "phase1.pt") for name in ("both", "heavy"))
    assert both["config"]["box_rule"] == "both" and heavy["config"]["box_rule"] == "heavy"
    assert not torch.equal(both["teams"][0]["buffer"]["obs"], heavy["teams"][0]["buffer"]["obs"])
    for flags, what in ((["--box-rule", "both"], "box_rule=heavy"), (["--box-mass", "2"], "box_mass=")):
        proc = run(tmp_path, "--domain", "push_box", *flags, "--phase1-checkpoint", str(tmp_path / "heavy" / "phase1.pt"),
                   check=False)
        assert proc.returncode != 0 and "another configuration" in proc.stderr and what in proc.stderr


def test_no_phase2_learning_keeps_the_post_dvm_networks(spread_run, tmp_path):
    common = ["--n-agents", "3", "--seed", "3", "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt")]
    run(tmp_path, *common, "--phase2-steps", "0", "--run-name", "after_dvm")
    run(tmp_path, *common, "--no-phase2-learning", "--run-name", "frozen")
    a, b = networks(load(tmp_path / "after_dvm" / "phase2.pt")), networks(load(tmp_path / "frozen" / "phase2.pt"))
    assert all_equal([a["actors"], b["actors"]]) and all_equal([a["critics"], b["critics"]])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dvm-mode", "both"], "dvm-mode"),
        (["--domain", "soccer"], "domain"),
        (["--n-agents", "5"], "spread supports --n-agents 2, 3 or 4"),
        (["--domain", "push_box", "--n-agents", "3"], "push_box supports --n-agents 2 only"),
        (["--domain", "push_box", "--box-rule", "one"], "box-rule"),
        (["--domain", "push_box", "--box-mass", "0"], "--box-mass must be positive"),
        (["--phase1-checkpoint", "/nonexistent/phase1.pt"], "does not exist"),
        (["--batch-size", "0"], "--batch-size must be positive"),
    ],
)
def test_bad_input_is_a_clear_error_before_training(tmp_path, flags, message):
    proc = run(tmp_path, *flags, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr and "phase 1" not in proc.stdout


def test_checkpoint_from_another_configuration_is_refused(spread_run, tmp_path):
    checkpoint = str(spread_run / "full" / "phase1.pt")
    for flags, what in ((["--n-agents", "2"], "n_agents=3"), (["--n-agents", "3", "--hidden-dim", "32"], "hidden_dim=16"),
                        (["--domain", "push_box", "--n-agents", "2"], "domain=spread")):
        proc = run(tmp_path, *flags, "--seed", "3", "--phase1-checkpoint", checkpoint, check=False)
        assert proc.returncode != 0 and "another configuration" in proc.stderr and what in proc.stderr
        assert "Traceback" not in proc.stderr and "phase 2" not in proc.stdout


@pytest.mark.parametrize("mode", ["none", "dvm"])
def test_phase2_runs_at_the_requested_learning_rate(spread_run, tmp_path, mode):
    # the loaded Phase I optimizers carry Phase I's rate; --learning-rate must win for kept and fresh ones alike
    run(tmp_path, "--n-agents", "3", "--seed", "3", "--dvm-mode", mode, "--learning-rate", "0.0007",
        "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt"), "--run-name", mode)
    team = networks(load(tmp_path / mode / "phase2.pt"))
    for key in ("actor_optimizer", "q_optimizer"):
        assert [g["lr"] for g in team[key]["param_groups"]] == [0.0007]


# ------------------------------------------------------------------ videos, divergence, progress

MOMENTS = ("phase1_end", "after_dvm", "phase2_end")


def pixel_of(frame, x, y, header=m.VIDEO_HEADER, extent=1.25):
    """The RGB pixel of a video frame at world coordinates (x, y)."""
    size = frame.shape[1]
    return frame[header + int((extent - y) / (2 * extent) * size), int((x + extent) / (2 * extent) * size)]


def centroid(frame, colour, header=m.VIDEO_HEADER, extent=1.25):
    """World coordinates of the mean pixel of one colour (up to the GIF palette) in a video frame."""
    rows, cols = np.nonzero((np.abs(frame[header:].astype(int) - colour) < 25).all(-1))
    size = frame.shape[1]
    return (cols.mean() + 0.5) / size * 2 * extent - extent, extent - (rows.mean() + 0.5) / size * 2 * extent


def test_capture_video_draws_both_start_configurations_at_every_moment(spread_run):
    videos = spread_run / "full" / "videos"
    configurations = ("phase1_quadrants", "phase2_quadrants")
    assert {p.name for p in videos.iterdir()} == {f"{t}__{c}.gif" for t in MOMENTS for c in configurations}
    for moment in MOMENTS:
        for phase, configuration in enumerate(configurations, start=1):
            frames = gif_frames(videos / f"{moment}__{configuration}.gif")
            assert len(frames) == 25 + 1  # the start and every step of the horizon
            assert frames[0].shape == (256 + m.VIDEO_HEADER, 256, 3)
            assert not np.array_equal(frames[0], frames[-1])
            # agent k starts in quadrant k in Phase I; Phase II shifts n = 3 cyclically (pe.PHASE2_QUADRANTS)
            quadrants = np.arange(3) if phase == 1 else pe.PHASE2_QUADRANTS[3]
            for k in range(3):
                x, y = centroid(frames[0], pe.AGENT_COLOURS[k])
                assert np.sign([x, y]).tolist() == np.sign(pe.QUADRANT_CENTRES[quadrants[k]]).tolist(), (moment, k)


def test_push_box_videos_show_every_target_and_render_policy_redraws_them(tmp_path):
    run(tmp_path, "--domain", "push_box", "--run-name", "box", "--capture-video", "--phase2-steps", "64")
    videos = tmp_path / "box" / "videos"
    task3 = [f"task3_{name}" for name in m.TARGET_NAMES]
    names = {"phase1_end__teamA_task1.gif", "phase1_end__teamB_task2.gif"}
    names |= {f"{t}__{c}.gif" for t in MOMENTS[1:] for c in task3}
    assert {p.name for p in videos.iterdir()} == names
    shown = [("phase1_end__teamA_task1", 0), ("phase1_end__teamB_task2", 1)]
    shown += [(f"{t}__{c}", k) for t in MOMENTS[1:] for k, c in enumerate(task3)]
    for name, target in shown:  # the black target dot sits where each configuration puts it
        frames = gif_frames(videos / f"{name}.gif")
        assert len(frames) == 26
        for k, (x, y) in enumerate(pe.BOX_TARGETS):
            assert (pixel_of(frames[0], x, y) < 80).all() == (k == target), (name, k)
    # the same GIFs from the checkpoints, byte for byte: into --out, or by default into videos/ beside the checkpoint
    (tmp_path / "copy").mkdir()
    shutil.copy(tmp_path / "box" / "dvm.pt", tmp_path / "copy" / "dvm.pt")
    for checkpoint, out in ((tmp_path / "box" / "phase1.pt", ["--out", str(tmp_path / "copy" / "videos")]),
                            (tmp_path / "copy" / "dvm.pt", []),
                            (tmp_path / "box" / "phase2.pt", ["--out", str(tmp_path / "copy" / "videos")])):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "render_policy.py"), str(checkpoint),
                               *out], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in (tmp_path / "copy" / "videos").iterdir()} == names
    for name in names:
        assert (tmp_path / "copy" / "videos" / name).read_bytes() == (videos / name).read_bytes(), name


def test_first_non_finite_names_the_first_bad_tensor():
    ok = torch.ones(3)
    assert m.first_non_finite({"a": ok, "b": torch.zeros(())}) is None
    assert m.first_non_finite({"a": ok, "b": torch.tensor([1.0, float("inf")]), "c": torch.tensor(float("nan"))}) == (
        "b", "infinite")
    assert m.first_non_finite({"a": ok, "c": torch.tensor([float("nan"), float("inf")])}) == ("c", "nan")


def test_nan_loss_in_phase2_stops_the_run_before_its_checkpoint(spread_run, tmp_path):
    phase1 = spread_run / "full" / "phase1.pt"
    before = phase1.read_bytes()
    nan_loss = "import torch.nn.functional as F\nmse = F.mse_loss\nF.mse_loss = lambda *a, **k: mse(*a, **k) * float('nan')"
    proc = run(tmp_path, "--n-agents", "3", "--seed", "3", "--phase1-checkpoint", str(phase1), "--run-name", "nan",
               prelude=nan_loss, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    found = re.search(r"error: diverged in phase 2 at global step (\d+): losses/qf_loss is nan", proc.stderr)
    assert found, proc.stderr
    assert 256 < int(found.group(1)) <= 256 + 128
    assert (tmp_path / "nan" / "dvm.pt").exists()  # the DVM step was still fine
    assert not (tmp_path / "nan" / "phase2.pt").exists() and not list((tmp_path / "nan").glob("*.tmp*"))
    assert phase1.read_bytes() == before


def test_divergence_in_phase1_leaves_an_existing_phase1_checkpoint_alone(spread_run, tmp_path):
    (tmp_path / "again").mkdir()
    shutil.copy(spread_run / "full" / "phase1.pt", tmp_path / "again" / "phase1.pt")
    before, mtime = (tmp_path / "again" / "phase1.pt").read_bytes(), (tmp_path / "again" / "phase1.pt").stat().st_mtime_ns
    proc = run(tmp_path, "--n-agents", "3", "--seed", "3", "--run-name", "again", "--learning-rate", "1e30",
               check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    found = re.search(r"error: diverged in phase 1 at global step (\d+): (\S+) is (nan|infinite)", proc.stderr)
    assert found, proc.stderr
    assert 0 < int(found.group(1)) <= 256 and "phase 2" not in proc.stdout
    assert (tmp_path / "again" / "phase1.pt").read_bytes() == before
    assert (tmp_path / "again" / "phase1.pt").stat().st_mtime_ns == mtime
    assert not (tmp_path / "again" / "dvm.pt").exists() and not (tmp_path / "again" / "phase2.pt").exists()


@pytest.mark.parametrize("mode, loss", [("distill", "dvm/kl_loss"), ("vm", "dvm/vm_loss")])
def test_divergence_in_the_dvm_step_stops_before_the_hard_update(spread_run, tmp_path, mode, loss):
    proc = run(tmp_path, "--n-agents", "3", "--seed", "3", "--dvm-mode", mode, "--dvm-learning-rate", "1e30",
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


def test_format_duration_and_time_left():
    assert [m.format_duration(s) for s in (0, 44.6, 200, 3599, 3900)] == ["0s", "45s", "3m20s", "59m59s", "1h05m"]
    assert m.time_left(10.0, 100, 300) == "~30s" and m.time_left(0.0, 0, 300) == "?"


# one domain per script: spread (one team) in masac_dvm.py, push box (two teams) in maddpg_dvm.py
@pytest.mark.parametrize("domain, teams", [("push_box", 2)])
def test_time_left_counts_phase2_ahead_at_the_pace_so_far(tmp_path, domain, teams):
    # a Phase II far longer than Phase I: the end of Phase I must foresee it (push box: Phase I steps two teams)
    proc = start_script("maddpg_dvm.py", tmp_path, "--domain", domain, "--phase2-steps", "1000000")
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


def test_phase2_actor_delay_trains_only_the_critics_first(spread_run, tmp_path):
    # --phase2-actor-delay N: the first N Phase II updates leave the actors as the DVM step made them (TINY: 8 worlds,
    # so 32 Phase II steps are 4 updates); the critics learn from the first update on
    common = ["--n-agents", "3", "--seed", "3", "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt")]
    for steps, name in (("32", "held"), ("40", "released")):
        run(tmp_path, *common, "--phase2-steps", steps, "--phase2-actor-delay", "4", "--run-name", name)
    after_dvm = networks(load(tmp_path / "held" / "dvm.pt"))
    held, released = (networks(load(tmp_path / name / "phase2.pt")) for name in ("held", "released"))
    assert all_equal([after_dvm["actors"], held["actors"]])
    assert not all_equal([after_dvm["critics"], held["critics"]])
    assert not all_equal([after_dvm["actors"], released["actors"]])  # the fifth update moves them
    assert all_equal([after_dvm["actors"], held["target_actors"]])  # the target actors stay too
    proc = run(tmp_path, *common, "--phase2-actor-delay", "17", check=False)  # TINY's Phase II has 16 updates
    assert proc.returncode != 0 and "--phase2-actor-delay 17 is longer than Phase II, which has 16" in proc.stderr
    assert "Traceback" not in proc.stderr
