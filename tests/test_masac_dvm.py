"""masac_dvm.py: MA-SAC and DVM functions in process, the whole Phase I -> DVM -> Phase II flow through subprocesses."""
import glob
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
from torch.distributions import Independent, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

import masac_dvm as m
import particle_envs as pe
from helpers import (ROOT, all_equal, gif_frames, load, networks, per_agent, progress_lines, run_script, seconds_left,
                     start_script)


def run(tmp_path, *flags, check=True, prelude=None):
    return run_script("masac_dvm.py", tmp_path, *flags, check=check, prelude=prelude)


# ------------------------------------------------------------------ in process


def test_gaussian_kl_matches_monte_carlo_and_is_zero_for_identical_policies():
    torch.manual_seed(0)
    mean_p, log_std_p = torch.randn(4, 2), 0.5 * torch.randn(4, 2)
    mean_q, log_std_q = torch.randn(4, 2), 0.5 * torch.randn(4, 2)
    kl = m.gaussian_kl(mean_p, log_std_p, mean_q, log_std_q)
    p, q = Independent(Normal(mean_p, log_std_p.exp()), 1), Independent(Normal(mean_q, log_std_q.exp()), 1)
    x = p.sample((200_000,))
    monte_carlo = (p.log_prob(x) - q.log_prob(x)).mean(0)
    assert torch.allclose(kl, monte_carlo, rtol=0.03, atol=0.01)
    assert (kl > 0).all()
    assert torch.equal(m.gaussian_kl(mean_p, log_std_p, mean_p.clone(), log_std_p.clone()), torch.zeros(4))
    # the direction of Eq. (3): the source p weighs the log ratio
    assert not torch.allclose(kl, m.gaussian_kl(mean_q, log_std_q, mean_p, log_std_p))


def test_squashed_log_prob_is_the_density_of_the_action():
    mean, log_std = torch.tensor([0.3, -0.5]), torch.tensor([0.4, 0.7]).log()
    # the density integrates to 1 over the action square (midpoint rule on a 1000 x 1000 grid)
    edges = torch.linspace(-1, 1, 1001, dtype=torch.float64)
    mid = (edges[1:] + edges[:-1]) / 2
    a = torch.stack(torch.meshgrid(mid, mid, indexing="ij"), -1).view(-1, 2)
    density = m.tanh_gaussian_log_prob(torch.atanh(a), mean.double(), log_std.double()).exp()
    assert abs(density.sum().item() * (2 / 1000) ** 2 - 1.0) < 1e-3
    # against torch's change of variables, at actions sampled by the actor
    torch.manual_seed(0)
    actor = m.Actor(6, 2, 16)
    obs = torch.randn(512, 6)
    with torch.no_grad():
        action, log_prob = actor.get_action(obs)
        mu, ls = actor(obs)
    inner = action.abs().max(-1).values < 0.99  # atanh loses precision at the edges
    want = TransformedDistribution(Independent(Normal(mu, ls.exp()), 1), [TanhTransform()]).log_prob(action)
    assert inner.sum() > 400
    assert torch.allclose(log_prob[inner], want[inner], atol=2e-3)
    # finite where a float32 tanh(u) is exactly +-1
    u = torch.tensor([[30.0, -30.0]])
    assert torch.isfinite(m.tanh_gaussian_log_prob(u, u, torch.zeros(1, 2))).all()


def test_actor_log_std_stays_in_bounds_and_mean_action_is_tanh_of_mean():
    actor = m.Actor(6, 2, 16)
    with torch.no_grad():
        actor.fc_logstd.bias.fill_(100.0)
        assert torch.allclose(actor(torch.randn(8, 6))[1], torch.full((8, 2), float(m.LOG_STD_MAX)))
        actor.fc_logstd.bias.fill_(-100.0)
        assert torch.allclose(actor(torch.randn(8, 6))[1], torch.full((8, 2), float(m.LOG_STD_MIN)))
    obs = torch.randn(3, 2, 6).numpy()
    actions = m.select_actions([actor, actor], obs, True, None, "cpu")
    with torch.no_grad():
        want = torch.tanh(actor(torch.as_tensor(obs[:, 1]))[0]).numpy()
    assert actions.shape == (3, 2, 2) and (abs(actions[:, 1] - want) < 1e-6).all()


def test_permute_agents_moves_observation_and_action_blocks_together():
    obs = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    actions = -torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    perms = torch.tensor(list(itertools.permutations(range(3))))
    p_obs, p_actions = m.permute_agents(obs, actions, perms)
    assert p_obs.shape == (12, 3, 4) and p_actions.shape == (12, 3, 2)
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
    buffer = m.ReplayBuffer(args.buffer_size, args.n_agents, obs_dim, 2, "cpu")
    n = args.buffer_size
    buffer.add(torch.randn(n, args.n_agents, obs_dim, generator=gen),
               torch.rand(n, args.n_agents, 2, generator=gen) * 2 - 1, torch.zeros(n),
               torch.randn(n, args.n_agents, obs_dim, generator=gen))
    return buffer


def test_value_matched_q_and_v_give_every_permutation_the_source_value():
    torch.manual_seed(0)
    args = small_args(buffer_size=64, dvm_batch_size=64)
    buffer = filled_buffer(args)
    qf, vf = m.SoftQNetwork(3, 14, 2, 32), m.ValueNetwork(3, 14, 32)
    with torch.no_grad():  # values of order 1 around 2, like returns of a short episode
        for net in (qf, vf):
            net.fc3.weight.mul_(10.0)
            net.fc3.bias.fill_(2.0)
    q0, v0, losses = m.match_values([(qf, vf, buffer)], args, 14, 2, "cpu")
    assert losses[-20:].mean() < 0.05 * losses[:20].mean()
    obs, actions = buffer.obs, buffer.actions
    perms = torch.tensor(list(itertools.permutations(range(3))))
    p_obs, p_actions = m.permute_agents(obs, actions, perms)
    with torch.no_grad():
        for source, student, args_ in ((qf, q0, (obs, actions)), (vf, v0, (obs,))):
            p_args = (p_obs, p_actions) if len(args_) == 2 else (p_obs,)
            values = source(*args_)
            scale = values.std()
            # the source is not symmetric: its own permutation spread is large
            assert source(*p_args).view(64, 6).std(1).mean() > 0.3 * scale
            matched = student(*p_args).view(64, 6)
            assert matched.std(1).mean() < 0.1 * scale
            assert (matched - values[:, None]).abs().mean() < 0.1 * scale


def test_distilled_actor_matches_every_source_on_its_own_observations():
    torch.manual_seed(0)
    args = small_args(n_agents=2, dvm_iterations=800)
    buffer = filled_buffer(args, obs_dim=10)
    sources = [m.Actor(10, 2, 32), m.Actor(10, 2, 32)]
    with torch.no_grad():  # standard deviations from 0.1 to 1.6: the KL must get both moments right
        for actor in sources:
            actor.fc_mean.weight.mul_(5.0)
            actor.fc_logstd.weight.mul_(1.5)
    pi0, losses = m.distill_actor([(a, buffer, i) for i, a in enumerate(sources)], args, 10, 2, "cpu")
    assert losses[-20:].mean() < 0.05 * losses[:20].mean()
    with torch.no_grad():
        for i, actor in enumerate(sources):
            obs = buffer.obs[:, i]
            (mean, log_std), (mean0, log_std0) = actor(obs), pi0(obs)
            # on the whole buffer, not just the training batches: within 4 % of where the distillation started
            assert m.gaussian_kl(mean, log_std, mean0, log_std0).mean() < 0.04 * losses[:20].mean()
            assert (torch.tanh(mean) - torch.tanh(mean0)).abs().mean() < 0.25 * torch.tanh(mean).std()


def test_hard_update_copies_into_every_network():
    nets = [m.ValueNetwork(2, 10, 16) for _ in range(4)]
    source = m.ValueNetwork(2, 10, 16)
    m.hard_update(nets, source)
    assert all_equal([source.state_dict()] + [n.state_dict() for n in nets])
    with torch.no_grad():
        nets[0].fc1.weight.add_(1.0)
    assert not torch.equal(nets[0].fc1.weight, source.fc1.weight)  # copies, not shared tensors


def test_q_and_v_see_agents_in_order():
    # centralized Q and V are not symmetric by construction: value matching has something to do
    torch.manual_seed(0)
    qf, vf = m.SoftQNetwork(2, 10, 2, 16), m.ValueNetwork(2, 10, 16)
    obs, actions = torch.randn(8, 2, 10), torch.rand(8, 2, 2) * 2 - 1
    assert not torch.allclose(qf(obs, actions), qf(obs.flip(1), actions.flip(1)))
    assert not torch.allclose(vf(obs), vf(obs.flip(1)))


def constant(net, value):
    with torch.no_grad():
        net.fc3.weight.zero_()
        net.fc3.bias.fill_(value)


def test_update_losses_follow_eqs_10_to_12():
    # With constant networks the losses are known: Q = c, V = d, V-bar = b, reward r, alpha 0 for Eq. (10).
    torch.manual_seed(0)
    args = m.Args(n_agents=2, hidden_dim=16, batch_size=64, buffer_size=256, alpha=0.0, gamma=0.9)
    team = m.Team(args, 10, 2, "cpu")
    team.buffer.add(torch.randn(256, 2, 10), torch.rand(256, 2, 2) * 2 - 1, torch.full((256,), -1.0),
                    torch.randn(256, 2, 10))
    for i in range(2):
        constant(team.qfs[i], 3.0)
        constant(team.vfs[i], 5.0)
        constant(team.target_vfs[i], 2.0)
    target_before = [p.clone() for p in team.target_vfs.parameters()]
    qf_loss, vf_loss, actor_loss = m.masac_update(team, args)
    assert math.isclose(qf_loss.item(), 2 * 0.5 * (3.0 - (-1.0 + 0.9 * 2.0)) ** 2, rel_tol=1e-5)  # Eqs. (11), (12)
    assert math.isclose(vf_loss.item(), 2 * 0.5 * (5.0 - 3.0) ** 2, rel_tol=1e-5)  # Eq. (10)
    assert not qf_loss.requires_grad and not vf_loss.requires_grad and not actor_loss.requires_grad
    # every role moved; V-bar moved by exactly tau towards the updated V; Q trainable again
    for before, param, target in zip(target_before, team.vfs.parameters(), team.target_vfs.parameters()):
        assert torch.allclose(target, before + args.tau * (param - before), atol=1e-7)
    assert all(p.requires_grad for p in team.qfs.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in team.actors.parameters())


def test_value_target_subtracts_alpha_times_the_agents_own_log_prob():
    # Eq. (10) with Q = 0, V = 5, alpha = 1 and actors N(0, e^-4) per dimension: log pi^i(a^i|o^i) = L with
    # E[L] = 2 (4 - log(2 pi) / 2) - 1 (+ a tanh correction below 1e-3) and Var[L] = 1, so the loss per agent
    # is E[(5 + L)^2] / 2. A wrong sign would give about (5 - 5.16)^2 / 2, both agents' entropies (5 + 2L)^2 / 2.
    torch.manual_seed(0)
    args = m.Args(n_agents=2, hidden_dim=16, batch_size=8192, buffer_size=8192, alpha=1.0)
    team = m.Team(args, 10, 2, "cpu")
    team.buffer.add(torch.randn(8192, 2, 10), torch.rand(8192, 2, 2) * 2 - 1, torch.zeros(8192),
                    torch.randn(8192, 2, 10))
    bias = math.atanh((-4.0 - m.LOG_STD_MIN) / (0.5 * (m.LOG_STD_MAX - m.LOG_STD_MIN)) - 1)
    for i in range(2):
        constant(team.qfs[i], 0.0)
        constant(team.vfs[i], 5.0)
        with torch.no_grad():
            for layer, value in ((team.actors[i].fc_mean, 0.0), (team.actors[i].fc_logstd, bias)):
                layer.weight.zero_()
                layer.bias.fill_(value)
    _, vf_loss, _ = m.masac_update(team, args)
    mean_log_prob = 2 * (4.0 - 0.5 * math.log(2 * math.pi)) - 1
    assert math.isclose(vf_loss.item(), 2 * 0.5 * ((5.0 + mean_log_prob) ** 2 + 1.0), rel_tol=0.02)


def test_actor_loss_uses_own_fresh_action_and_the_others_from_the_buffer():
    # Q^i = sum of agent j's first action coordinate: the actor of agent i only gets a gradient through a^i.
    torch.manual_seed(0)
    args = m.Args(n_agents=2, hidden_dim=16, batch_size=64, buffer_size=256, alpha=0.0)
    team = m.Team(args, 10, 2, "cpu")
    team.buffer.add(torch.randn(256, 2, 10), torch.rand(256, 2, 2) * 2 - 1, torch.zeros(256), torch.randn(256, 2, 10))
    team.actor_optimizer = torch.optim.SGD(team.actors.parameters(), lr=0.0)  # keep the actors, read gradients
    team.q_optimizer = torch.optim.SGD(team.qfs.parameters(), lr=0.0)
    for i in range(2):
        with torch.no_grad():  # Q^i(o, a) = a^j_x for agent j = 1 - i: no path to actor i at all
            team.qfs[i].fc1.weight.zero_()
            team.qfs[i].fc1.bias.zero_()
            team.qfs[i].fc1.weight[0, 2 * 10 + 2 * (1 - i)] = 1.0
            team.qfs[i].fc2.weight.zero_()
            team.qfs[i].fc2.bias.zero_()
            team.qfs[i].fc2.weight[0, 0] = 1.0
            team.qfs[i].fc3.weight.zero_()
            team.qfs[i].fc3.bias.zero_()
            team.qfs[i].fc3.weight[0, 0] = 1.0
    m.masac_update(team, args)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in team.actors.parameters())


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def spread_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("masac_spread")
    proc = run(tmp, "--n-agents", "3", "--dvm-mode", "dvm", "--seed", "3", "--run-name", "full", "--capture-video")
    (tmp / "stdout.txt").write_text(proc.stdout)
    return tmp


def test_smoke_run_writes_events_and_checkpoints(spread_run):
    run_dir = spread_run / "full"
    assert glob.glob(str(run_dir / "events.out.tfevents.*"))
    for name in ("phase1.pt", "dvm.pt", "phase2.pt"):
        checkpoint = load(run_dir / name)
        assert checkpoint["algorithm"] == "masac_dvm" and checkpoint["config"]["n_agents"] == 3
        if name != "dvm.pt":  # dvm.pt holds the networks only
            assert networks(checkpoint)["buffer"]["actions"].dtype == torch.float32
    assert not glob.glob(str(run_dir / "*.tmp*"))  # atomic writes leave no temporary file
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir)).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"eval/return", "charts/episodic_return", "charts/SPS", "losses/qf_loss", "losses/vf_loss",
            "losses/actor_loss", "dvm/kl_loss", "dvm/vm_loss", "charts/phase"} <= tags
    steps = [e.step for e in events.Scalars("eval/return")]
    assert steps[0] == 0 and steps[-1] == 256 + 128  # one curve across both phases


@pytest.mark.parametrize("mode", ["none", "distill", "vm", "dvm"])
def test_dvm_step_hard_updates_every_network(spread_run, tmp_path, mode):
    # Phase II with 0 steps: the saved team is exactly what the DVM step left.
    run(tmp_path, "--n-agents", "3", "--seed", "3", "--dvm-mode", mode, "--phase2-steps", "0",
        "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt"), "--run-name", mode)
    team = networks(load(tmp_path / mode / "phase2.pt"))
    assert all_equal(per_agent(team, "actors", 3)) == (mode in ("distill", "dvm"))
    assert all_equal(per_agent(team, "qfs", 3)) == (mode in ("vm", "dvm"))
    assert all_equal(per_agent(team, "vfs", 3) + per_agent(team, "target_vfs", 3)) == (mode in ("vm", "dvm"))


def test_resuming_from_phase1_checkpoint_gives_the_same_phase2(spread_run, tmp_path):
    run(tmp_path, "--n-agents", "3", "--dvm-mode", "dvm", "--seed", "3", "--run-name", "resumed",
        "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt"))
    a, b = load(spread_run / "full" / "phase2.pt"), load(tmp_path / "resumed" / "phase2.pt")
    for key in ("actors", "qfs", "vfs", "target_vfs"):
        assert all_equal([networks(a)[key], networks(b)[key]]), key
    assert a["eval_return"] == b["eval_return"]


def test_same_seed_same_numbers_and_another_seed_differs(tmp_path):
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        run(tmp_path, "--seed", seed, "--run-name", name, "--phase2-steps", "64")
    a, b, c = (networks(load(tmp_path / name / "phase2.pt")) for name in "abc")
    for key in ("actors", "qfs", "vfs", "target_vfs"):
        assert all_equal([a[key], b[key]]), key
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
    for key in ("actors", "qfs", "vfs", "target_vfs"):
        assert all_equal([a[key], b[key]]), key
    assert len(b["buffer"]["obs"]) == len(a["buffer"]["obs"])  # nothing collected either


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


def test_maddpg_checkpoint_is_refused(spread_run, tmp_path):
    # the same configuration, written by the other script: only the algorithm tag tells them apart
    checkpoint = load(spread_run / "full" / "phase1.pt")
    checkpoint["algorithm"] = "maddpg_dvm"
    torch.save(checkpoint, tmp_path / "maddpg_phase1.pt")
    proc = run(tmp_path, "--n-agents", "3", "--seed", "3", "--phase1-checkpoint", str(tmp_path / "maddpg_phase1.pt"),
               check=False)
    assert proc.returncode != 0 and "is not a masac_dvm Phase I checkpoint" in proc.stderr
    assert "maddpg_dvm" in proc.stderr
    assert "Traceback" not in proc.stderr and "phase 2" not in proc.stdout


@pytest.mark.parametrize("mode", ["none", "dvm"])
def test_phase2_runs_at_the_requested_learning_rate(spread_run, tmp_path, mode):
    # the loaded Phase I optimizers carry Phase I's rate; --learning-rate must win for kept and fresh ones alike
    run(tmp_path, "--n-agents", "3", "--seed", "3", "--dvm-mode", mode, "--learning-rate", "0.0007",
        "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt"), "--run-name", mode)
    team = networks(load(tmp_path / mode / "phase2.pt"))
    for key in ("actor_optimizer", "q_optimizer", "v_optimizer"):
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
@pytest.mark.parametrize("domain, teams", [("spread", 1)])
def test_time_left_counts_phase2_ahead_at_the_pace_so_far(tmp_path, domain, teams):
    # a Phase II far longer than Phase I: the end of Phase I must foresee it (push box: Phase I steps two teams)
    proc = start_script("masac_dvm.py", tmp_path, "--domain", domain, "--phase2-steps", "1000000")
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
    assert not all_equal([after_dvm["qfs"], held["qfs"]])
    assert not all_equal([after_dvm["actors"], released["actors"]])  # the fifth update moves them
    proc = run(tmp_path, *common, "--phase2-actor-delay", "17", check=False)  # TINY's Phase II has 16 updates
    assert proc.returncode != 0 and "--phase2-actor-delay 17 is longer than Phase II, which has 16" in proc.stderr
    assert "Traceback" not in proc.stderr
