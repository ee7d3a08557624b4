"""--vm-permutations K > 0 seen from outside match_values (issue 54): what it logs and what its students evaluate.

The sampled path draws K of the n! agent permutations per sample and scales their sum by n!/K to an unbiased estimate
of Eq. (6). Two wrong implementations train almost as well and pass the tests of the pieces (value_matching_loss,
sample_permutations, permute_agents) in test_both_scripts.py:
- a call site that hands the loss K where it needs n!: Adam absorbs the constant scale, but every logged loss is off
  by K/n! (either script);
- MA-SAC matching V0 on all n! permutations while Q0 takes K: right in expectation, but V0's step costs n!/K times
  more.
The tests below use only the scripts' public names: Args, ReplayBuffer, the critic classes and match_values.
"""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import maddpg_dvm
import masac_dvm

SCRIPTS = {"maddpg_dvm.py": maddpg_dvm, "masac_dvm.py": masac_dvm}
OBS_DIM = 5
N_ACTIONS = 5  # maddpg_dvm.py: discrete actions, one-hot for the critic
ACTION_DIM = 2  # masac_dvm.py: continuous actions in [-1, 1]


@pytest.fixture(params=list(SCRIPTS))
def script(request):
    return request.param


def action_size(script):
    return N_ACTIONS if script == "maddpg_dvm.py" else ACTION_DIM


def source(script, n_agents, rows, seed):
    """A source agent for match_values: its critic(s) (fresh, seeded) and a full buffer of `rows` random transitions.
    -> (the source tuple match_values takes, obs (rows, n, d), the critic's actions (rows, n, k))."""
    m = SCRIPTS[script]
    gen = torch.Generator().manual_seed(seed)
    obs, next_obs = torch.randn(2, rows, n_agents, OBS_DIM, generator=gen)
    torch.manual_seed(seed)
    if script == "maddpg_dvm.py":
        stored = torch.randint(0, N_ACTIONS, (rows, n_agents), generator=gen)
        buffer = m.ReplayBuffer(rows, n_agents, OBS_DIM, "cpu")
        buffer.add(obs, stored, torch.zeros(rows), next_obs)
        critic = m.Critic(n_agents, OBS_DIM, N_ACTIONS, 16)
        return (critic, buffer), obs, F.one_hot(stored, N_ACTIONS).float()
    actions = torch.rand(rows, n_agents, ACTION_DIM, generator=gen) * 2 - 1
    buffer = m.ReplayBuffer(rows, n_agents, OBS_DIM, ACTION_DIM, "cpu")
    buffer.add(obs, actions, torch.zeros(rows), next_obs)
    qf, vf = m.SoftQNetwork(n_agents, OBS_DIM, ACTION_DIM, 16), m.ValueNetwork(n_agents, OBS_DIM, 16)
    return (qf, vf, buffer), obs, actions


@torch.no_grad()
def exact_loss(students, source_tuple, obs, actions):
    """Eq. (6) by hand, the exact sum over all n! permutations, averaged over every transition of the buffer (what a
    batch drawn from it averages to): for MA-SAC the Q0 and the V0 terms added, as match_values logs them."""
    perms = [list(p) for p in itertools.permutations(range(obs.shape[1]))]
    q_source = source_tuple[0](obs, actions)
    total = sum((students[0](obs[:, p], actions[:, p]) - q_source) ** 2 for p in perms)
    if len(students) == 2:  # MA-SAC: V0 on the permuted observations, matched to V^i(o)
        v_source = source_tuple[1](obs)
        total = total + sum((students[1](obs[:, p]) - v_source) ** 2 for p in perms)
    return total.mean().item()


def test_sampled_value_matching_logs_the_exact_eq6_loss_in_expectation(script):
    # catches a call site that passes K (the permutations drawn) where value_matching_loss needs n! (the number Eq. (6)
    # sums over): the logged loss is then K/n! = 1/8 of the exact one. At a learning rate of 0 the fresh students keep
    # their initial weights (Adam's step is lr times a finite number), so every iteration's logged loss is an unbiased
    # estimate of the exact Eq. (6) loss of the returned students, averaged over the buffers and over the sources.
    m = SCRIPTS[script]
    n_agents, k, rows, iterations = 4, 3, 48, 150
    args = m.Args(n_agents=n_agents, hidden_dim=16, buffer_size=rows, dvm_batch_size=rows, dvm_iterations=iterations,
                  dvm_learning_rate=0.0, vm_permutations=k)
    sources = [source(script, n_agents, rows, seed) for seed in (1, 2)]
    torch.manual_seed(0)
    *students, losses = m.match_values([s for s, _, _ in sources], args, OBS_DIM, action_size(script), "cpu")
    losses = torch.as_tensor(losses, dtype=torch.float64).flatten()
    assert len(losses) == iterations
    exact = sum(exact_loss(students, *s) for s in sources) / len(sources)
    mean, stderr = losses.mean().item(), losses.std().item() / iterations ** 0.5
    assert stderr < 0.02 * exact  # the 10 % tolerance below is 5 standard errors: far inside K/n! = 0.125
    assert losses.std() > 0  # the permutations (and rows) are drawn anew every iteration
    assert abs(mean / exact - 1) < 0.1, (
        f"mean logged value-matching loss {mean:.5g} is {mean / exact:.4f} x the exact Eq. (6) loss {exact:.5g} of the "
        f"same students on the same buffers (K/n! = {k}/{math.factorial(n_agents)} = {k / math.factorial(n_agents)})")


@pytest.mark.parametrize("k", [0, 2])
def test_each_student_evaluates_batch_size_times_k_rows_per_source_and_iteration(script, k):
    # catches MA-SAC matching V0 on all n! permutations while Q0 takes K (right in expectation, but V0's step costs
    # n!/K times more), and the same slip for Q0 in either script. Every forward of a student critic is counted, by
    # rows, through a global forward hook: with --vm-permutations K each of Q0 (and V0) sees dvm_batch_size x K
    # rows per source and iteration; with K = 0 (the exact sum) dvm_batch_size x n!.
    m = SCRIPTS[script]
    n_agents, batch, iterations = 3, 8, 4
    args = m.Args(n_agents=n_agents, hidden_dim=8, buffer_size=32, dvm_batch_size=batch, dvm_iterations=iterations,
                  vm_permutations=k)
    sources = [source(script, n_agents, 32, seed)[0] for seed in (1, 2)]
    critic_classes = (m.Critic,) if script == "maddpg_dvm.py" else (m.SoftQNetwork, m.ValueNetwork)
    rows = {}

    def count(module, inputs, output):
        if isinstance(module, critic_classes):
            rows[module] = rows.get(module, 0) + output.shape[0]

    torch.manual_seed(0)
    handle = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        *students, _ = m.match_values(sources, args, OBS_DIM, action_size(script), "cpu")
    finally:
        handle.remove()
    want = iterations * len(sources) * batch * (k or math.factorial(n_agents))
    names = ["Q0"] if script == "maddpg_dvm.py" else ["Q0", "V0"]
    seen = {name: rows.get(student, 0) for name, student in zip(names, students)}
    assert seen == dict.fromkeys(names, want), (
        f"rows each student evaluated over {iterations} iterations x {len(sources)} sources x dvm_batch_size {batch} "
        f"with --vm-permutations {k}: {seen}, want {want} each")
