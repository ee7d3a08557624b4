"""maddpg_dvm.py: the DVM functions in process, the whole Phase I -> DVM -> Phase II flow through subprocesses."""
import glob
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import maddpg_dvm as m
from helpers import all_equal, load, networks, per_agent, run_script


def run(tmp_path, *flags, check=True, prelude=None):
    return run_script("maddpg_dvm.py", tmp_path, *flags, check=check, prelude=prelude)


def refused_run(forked, tmp_path, *flags):
    """run(tmp_path, *flags, check=False) for a run refused before it trains: forked (helpers.Forker), at a tenth of
    the cost."""
    return forked.run_script("maddpg_dvm.py", tmp_path, *flags)


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


def distill_constant_sources(source_logits, **kwargs):
    """distill_actor from sources whose logits are `source_logits` (one row per source) whatever the observation, on
    a buffer holding one observation: the student's logits there, and the losses."""
    torch.manual_seed(0)
    n = len(source_logits)
    args = m.Args(**{**dict(n_agents=n, hidden_dim=16, dvm_batch_size=8, dvm_learning_rate=3e-3, buffer_size=8),
                     **kwargs})
    buffer = m.ReplayBuffer(8, n, 4, "cpu")
    obs = torch.randn(1, 1, 4).expand(8, n, 4)
    buffer.add(obs, torch.zeros(8, n, dtype=torch.long), torch.zeros(8), obs)
    sources = [m.Actor(4, 5, 8) for _ in range(n)]
    with torch.no_grad():
        for actor, logits in zip(sources, source_logits):
            actor.fc_logits.weight.zero_()
            actor.fc_logits.bias.copy_(logits)
    pi0, losses = m.distill_actor([(a, buffer, i) for i, a in enumerate(sources)], args, 4, 5, "cpu")
    with torch.no_grad():
        return pi0(obs[0, 0]), losses


def test_distillation_kl_weighs_by_the_source():
    # catches KL(pi0 || pi^i) in place of Eq. (3)'s KL(pi^i || pi0), in kl_divergence or in the order distill_actor
    # passes the policies. By hand: p = (1/2, 1/2), q = (9/10, 1/10): KL(p || q) = ln(5/9) / 2 + ln(5) / 2 = 0.5108
    # (KL(q || p) = 0.3681), at any temperature for logits tau times the log-probabilities.
    p, q = torch.tensor([[0.5, 0.5]]).log(), torch.tensor([[0.9, 0.1]]).log()
    for tau in (1.0, 2.0):
        assert math.isclose(m.kl_divergence(tau * p, tau * q, tau).item(), 0.5 * math.log(5 / 9) + 0.5 * math.log(5),
                            rel_tol=1e-5)
    # Two sources on the same observations, one sure of action 0, the other of action 4: the sum of KL(pi^i || pi0)
    # is smallest at their mixture (0.005 on each middle action), the sum of the reversed KLs at their normalized
    # geometric mean (0.032 on each middle action).
    p, q = torch.tensor([0.98] + [0.005] * 4), torch.tensor([0.005] * 4 + [0.98])
    student, _ = distill_constant_sources(torch.stack([p.log(), q.log()]), dvm_iterations=300)
    assert torch.allclose(student.softmax(-1), (p + q) / 2, atol=3e-3)


def test_distillation_loss_is_the_kl_at_the_temperature():
    # catches a distillation that ignores --temperature. At learning rate 0 the student keeps its initial weights, so
    # the first logged loss is Eq. (3) at tau between the source and that student, here by hand.
    source = torch.tensor([4.0, 1.0, 0.0, -1.0, -4.0])
    kls = []
    for tau in (1.0, 3.0):
        student, losses = distill_constant_sources(source[None], temperature=tau, dvm_iterations=1,
                                                   dvm_learning_rate=0.0)
        p, s = (source / tau).softmax(-1), (student / tau).softmax(-1)
        kls.append((p * (p.log() - s.log())).sum().item())
        assert math.isclose(losses[0].item(), kls[-1], rel_tol=1e-5)
    assert kls[1] < 0.5 * kls[0]  # the temperature matters here


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


def constant(net, value):
    """A network whose output is `value` for every input."""
    with torch.no_grad():
        net.fc3.weight.zero_()
        net.fc3.bias.fill_(value)


def indicator_critic(critic, n_agents, obs_dim, agent, action):
    """Q(o, a) = 1 if agent `agent` took action `action`, else 0 (one-hot action blocks follow the observations)."""
    with torch.no_grad():
        for layer in (critic.fc1, critic.fc2, critic.fc3):
            layer.weight.zero_()
            layer.bias.zero_()
        critic.fc1.weight[0, n_agents * obs_dim + 5 * agent + action] = 1.0
        critic.fc2.weight[0, 0] = 1.0
        critic.fc3.weight[0, 0] = 1.0


def favour(actor, action):
    """An actor whose logits put (almost) all probability on `action`, whatever the observation."""
    with torch.no_grad():
        actor.fc_logits.weight.zero_()
        actor.fc_logits.bias.fill_(-50.0)
        actor.fc_logits.bias[action] = 50.0


def update_team(n_agents=2, obs_dim=10, **kwargs):
    torch.manual_seed(0)
    args = m.Args(n_agents=n_agents, hidden_dim=16, batch_size=64, buffer_size=256, **kwargs)
    team = m.Team(args, obs_dim, 5, "cpu")
    team.buffer.add(torch.randn(256, n_agents, obs_dim), torch.zeros(256, n_agents, dtype=torch.long),
                    torch.full((256,), -1.0), torch.randn(256, n_agents, obs_dim))
    return args, team


def test_exploration_draws_every_action():
    # catches epsilon-greedy drawing its random action from 0..3 only: at epsilon 1 each of the 5 actions comes up
    # about equally often whatever the greedy one; at epsilon 1/2 the greedy action half the time plus its 1/10
    actor = m.Actor(4, 5, 8)
    favour(actor, 4)
    obs = torch.randn(4000, 2, 4).numpy()
    for epsilon, want in ((1.0, [0.2] * 5), (0.5, [0.1] * 4 + [0.6])):
        actions = m.select_actions([actor, actor], obs, epsilon, np.random.default_rng(0), "cpu")
        assert np.allclose(np.bincount(actions.ravel(), minlength=5) / actions.size, want, atol=0.02), epsilon


def test_every_critic_and_actor_gradient_is_clipped_to_max_grad_norm():
    # catches the critics' (or actors') gradient clipping removed, or clipped jointly instead of network by network:
    # the TD errors of fresh networks give gradients far above 1e-4, so each network's norm must be cut to 1e-4
    args, team = update_team(max_grad_norm=1e-4)
    team.actor_optimizer = torch.optim.SGD(team.actors.parameters(), lr=0.0)  # keep the networks, read gradients
    team.q_optimizer = torch.optim.SGD(team.critics.parameters(), lr=0.0)
    m.maddpg_update(team, args, 5)
    for net in list(team.critics) + list(team.actors):
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()]))
        assert math.isclose(norm.item(), 1e-4, rel_tol=0.02)


def test_td_target_uses_gamma_the_target_critics_and_the_target_actors_next_actions():
    # Q^i = 3 everywhere; target critic Q-bar^i(o', a') = 1 iff agent 0 takes action 2 at o'; the target actors take
    # action 2, the online actors action 4. The target is r + gamma * Q-bar(o', a'(o')) = -1 + 0.9 * 1. Dropping gamma
    # gives -1 + 1, bootstrapping from the online critics -1 + 0.9 * 3, the online actors' next actions -1 + 0.
    args, team = update_team(gamma=0.9)
    for i in range(2):
        constant(team.critics[i], 3.0)
        indicator_critic(team.target_critics[i], 2, 10, agent=0, action=2)
        favour(team.target_actors[i], 2)
        favour(team.actors[i], 4)
    qf_loss, _ = m.maddpg_update(team, args, 5)
    assert abs(qf_loss.item() - 2 * (3.0 - (-1.0 + 0.9 * 1.0)) ** 2) < 1e-4


def test_target_networks_move_by_tau_towards_the_updated_networks():
    args, team = update_team(tau=0.01)
    before = {key: [p.clone() for p in getattr(team, key).parameters()] for key in ("target_actors", "target_critics")}
    qf_loss, actor_loss = m.maddpg_update(team, args, 5)
    assert not qf_loss.requires_grad and not actor_loss.requires_grad
    for key, net in (("target_actors", team.actors), ("target_critics", team.critics)):
        for old, param, target in zip(before[key], net.parameters(), getattr(team, key).parameters()):
            assert torch.allclose(target, old + args.tau * (param - old), atol=1e-7), key
    assert all(p.requires_grad for p in team.critics.parameters())


def test_actor_loss_uses_own_policy_action_and_the_others_from_the_buffer():
    # Q^i = 1 iff agent 1 - i took action 3: actor i has no path into Q^i but through the others' actions, which
    # come from the buffer (all 0), so no actor gets a gradient from the critic, only from the logit penalty.
    args, team = update_team()
    team.actor_optimizer = torch.optim.SGD(team.actors.parameters(), lr=0.0)  # keep the actors, read gradients
    for i in range(2):
        indicator_critic(team.critics[i], 2, 10, agent=1 - i, action=3)
    with torch.no_grad():  # zero logits: the logit penalty's gradient is zero too
        for actor in team.actors:
            actor.fc_logits.weight.zero_()
            actor.fc_logits.bias.zero_()
    m.maddpg_update(team, args, 5)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in team.actors.parameters())
    # and with Q^i = 1 iff agent i itself takes action 3, every actor is pushed towards action 3
    args, team = update_team()
    team.actor_optimizer = torch.optim.SGD(team.actors.parameters(), lr=0.0)
    for i in range(2):
        indicator_critic(team.critics[i], 2, 10, agent=i, action=3)
    m.maddpg_update(team, args, 5)
    for actor in team.actors:
        grad = actor.fc_logits.bias.grad
        assert grad is not None and grad[3] < 0 and grad.argmin() == 3  # gradient descent raises logit 3


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def spread_run(spread_runs):
    return spread_runs("maddpg_dvm.py")


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
    # an overwritten role's Adam starts afresh (no step taken yet), the others keep Phase I's moments
    assert (not team["actor_optimizer"]["state"]) == (mode in ("distill", "dvm"))
    assert (not team["q_optimizer"]["state"]) == (mode in ("vm", "dvm"))


def test_resuming_from_phase1_checkpoint_gives_the_same_phase2(spread_run, tmp_path):
    run(tmp_path, "--n-agents", "3", "--dvm-mode", "dvm", "--seed", "3", "--run-name", "resumed",
        "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt"))
    a, b = load(spread_run / "full" / "phase2.pt"), load(tmp_path / "resumed" / "phase2.pt")
    for key in ("actors", "critics", "target_actors", "target_critics"):
        assert all_equal([networks(a)[key], networks(b)[key]]), key
    assert a["eval_return"] == b["eval_return"]


def test_phase2_explores_at_end_e(spread_run, tmp_path):
    # catches Phase II exploring at --start-e (1 here) instead of --end-e (0 here): with the actors held through all
    # of Phase II's 16 updates (--phase2-actor-delay), every action Phase II adds to the buffer is their greedy one
    run(tmp_path, "--n-agents", "3", "--seed", "3", "--end-e", "0", "--phase2-actor-delay", "16",
        "--phase1-checkpoint", str(spread_run / "full" / "phase1.pt"), "--run-name", "greedy")
    team = networks(load(tmp_path / "greedy" / "phase2.pt"))
    obs, actions = team["buffer"]["obs"][256:], team["buffer"]["actions"][256:]
    assert len(obs) == 128
    for i, state in enumerate(per_agent(team, "actors", 3)):
        actor = m.Actor(obs.shape[-1], 5, 16)
        actor.load_state_dict(state)
        with torch.no_grad():
            assert torch.equal(actor(obs[:, i]).argmax(-1), actions[:, i]), i


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


def test_push_box_rule_reaches_the_worlds_and_the_checkpoint_check(tmp_path, forked):
    # the literal rule and the heavy box give different Phase I data from the same seed, and a Phase I checkpoint
    # of one rule (or mass) is refused by a run of the other
    run(tmp_path, "--domain", "push_box", "--box-rule", "both", "--phase2-steps", "0", "--run-name", "both")
    run(tmp_path, "--domain", "push_box", "--phase2-steps", "0", "--run-name", "heavy")
    both, heavy = (load(tmp_path / name / "phase1.pt") for name in ("both", "heavy"))
    assert both["config"]["box_rule"] == "both" and heavy["config"]["box_rule"] == "heavy"
    assert not torch.equal(both["teams"][0]["buffer"]["obs"], heavy["teams"][0]["buffer"]["obs"])
    for flags, what in ((["--box-rule", "both"], "box_rule=heavy"), (["--box-mass", "2"], "box_mass=")):
        proc = refused_run(forked, tmp_path, "--domain", "push_box", *flags, "--phase1-checkpoint",
                           str(tmp_path / "heavy" / "phase1.pt"))
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
        (["--n-agents", "9", "--vm-permutations", "8"], "spread supports --n-agents 2 to 8"),
        (["--domain", "push_box", "--n-agents", "3"], "push_box supports --n-agents 2 only"),
        (["--domain", "push_box", "--box-rule", "one"], "box-rule"),
        (["--domain", "push_box", "--box-mass", "0"], "--box-mass must be positive"),
        (["--phase1-checkpoint", "/nonexistent/phase1.pt"], "does not exist"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--temperature", "0"], "--temperature must be positive and finite, got 0.0"),
        (["--start-e", "1.5"], "--start-e must be in [0, 1]"),
    ],
)
def test_bad_input_is_a_clear_error_before_training(tmp_path, flags, message, forked):
    proc = refused_run(forked, tmp_path, *flags)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr and "phase 1" not in proc.stdout
    assert proc.stderr.startswith("╭") or proc.stderr.count("\n") == 1  # tyro's box for what it parses, else one line
    assert not list(tmp_path.iterdir())  # nothing written


def test_checkpoint_from_another_configuration_is_refused(spread_run, tmp_path, forked):
    checkpoint = str(spread_run / "full" / "phase1.pt")
    for flags, what in ((["--n-agents", "2"], "n_agents=3"), (["--n-agents", "3", "--hidden-dim", "32"], "hidden_dim=16"),
                        (["--domain", "push_box", "--n-agents", "2"], "domain=spread")):
        proc = refused_run(forked, tmp_path, *flags, "--seed", "3", "--phase1-checkpoint", checkpoint)
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
