"""masac_dvm.py: MA-SAC and DVM functions in process, the whole Phase I -> DVM -> Phase II flow through subprocesses."""
import glob
import itertools
import math

import pytest
import torch
from torch.distributions import Independent, Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

import masac_dvm as m
from helpers import all_equal, load, networks, per_agent, run_script


def run(tmp_path, *flags, check=True, prelude=None):
    return run_script("masac_dvm.py", tmp_path, *flags, check=check, prelude=prelude)


def refused_run(forked, tmp_path, *flags):
    """run(tmp_path, *flags, check=False) for a run refused before it trains: forked (helpers.Forker), at a tenth of
    the cost."""
    return forked.run_script("masac_dvm.py", tmp_path, *flags)


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


def constant_policy(mean, std, obs_dim=4):
    """An actor whose Gaussian is N(mean, std^2) in both action dimensions, whatever the observation."""
    actor = m.Actor(obs_dim, 2, 8)
    bias = math.atanh((math.log(std) - m.LOG_STD_MIN) / (0.5 * (m.LOG_STD_MAX - m.LOG_STD_MIN)) - 1)
    with torch.no_grad():
        for layer, value in ((actor.fc_mean, mean), (actor.fc_logstd, bias)):
            layer.weight.zero_()
            layer.bias.fill_(value)
    return actor


def test_distillation_kl_weighs_by_the_source():
    # catches KL(pi0 || pi^i) in place of Eq. (3)'s KL(pi^i || pi0), in gaussian_kl or in the order distill_actor
    # passes the policies. By hand, p = N(0, 1), q = N(1, 2^2) (and an equal second dimension):
    # KL(p || q) = ln 2 + (1 + 1) / 8 - 1/2 = 0.4431 (KL(q || p) = 1.3069)
    kl = m.gaussian_kl(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]),
                       torch.tensor([[math.log(2), 0.0]]))
    assert math.isclose(kl.item(), math.log(2) + 2 / 8 - 0.5, rel_tol=1e-6)
    # Two sources on the same observations, N(1, 0.2^2) and N(-1, 0.2^2): the sum of KL(pi^i || pi0) is smallest at
    # the Gaussian of their mixture's moments, std (0.2^2 + 1)^(1/2) = 1.02; the sum of the reversed KLs at std 0.2
    torch.manual_seed(0)
    args = m.Args(n_agents=2, hidden_dim=16, dvm_iterations=300, dvm_batch_size=8, dvm_learning_rate=3e-3,
                  buffer_size=8)
    buffer = m.ReplayBuffer(8, 2, 4, 2, "cpu")
    obs = torch.randn(1, 1, 4).expand(8, 2, 4)
    buffer.add(obs, torch.zeros(8, 2, 2), torch.zeros(8), obs)
    sources = [constant_policy(1.0, 0.2), constant_policy(-1.0, 0.2)]
    pi0, _ = m.distill_actor([(a, buffer, i) for i, a in enumerate(sources)], args, 4, 2, "cpu")
    with torch.no_grad():
        mean, log_std = pi0(obs[0, 0])
    assert mean.abs().max() < 0.05 and torch.allclose(log_std.exp(), torch.tensor(1.04 ** 0.5), atol=0.02)


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
def spread_run(spread_runs):
    return spread_runs("masac_dvm.py")


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
    # an overwritten role's Adam starts afresh (no step taken yet), the others keep Phase I's moments
    assert (not team["actor_optimizer"]["state"]) == (mode in ("distill", "dvm"))
    assert (not team["q_optimizer"]["state"]) == (not team["v_optimizer"]["state"]) == (mode in ("vm", "dvm"))


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
    for key in ("actors", "qfs", "vfs", "target_vfs"):
        assert all_equal([a[key], b[key]]), key
    assert len(b["buffer"]["obs"]) == len(a["buffer"]["obs"])  # nothing collected either


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
        (["--alpha", "-1"], "--alpha must be non-negative and finite, got -1.0"),
        (["--alpha", "nan"], "--alpha must be non-negative and finite"),
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


def test_maddpg_checkpoint_is_refused(spread_run, tmp_path, forked):
    # the same configuration, written by the other script: only the algorithm tag tells them apart
    checkpoint = load(spread_run / "full" / "phase1.pt")
    checkpoint["algorithm"] = "maddpg_dvm"
    torch.save(checkpoint, tmp_path / "maddpg_phase1.pt")
    proc = refused_run(forked, tmp_path, "--n-agents", "3", "--seed", "3", "--phase1-checkpoint",
                       str(tmp_path / "maddpg_phase1.pt"))
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
