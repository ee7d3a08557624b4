# Multiagent Soft Actor-Critic (MA-SAC, continuous actions) with policy distillation and value matching (DVM).
# Docs and the list of implementation choices: README.md, section "masac_dvm.py".
# Paper: Wadhwania et al., "Policy Distillation and Value Matching in Multiagent Reinforcement Learning".
import functools
import hashlib
import itertools
import math
import os
import random
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Literal, Optional

import numpy as np
import tensorboard
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter

import particle_envs


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, cuda will be enabled when available"""
    threads: int = 0
    """torch CPU threads (0: torch's default); benchmarks running jobs side by side use 1"""
    runs_dir: str = "runs"
    """folder that receives the run's TensorBoard logs and checkpoints"""
    run_name: Optional[str] = None
    """the run's folder name inside `runs_dir`; None: {domain}{n_agents}__{exp_name}__{seed}__{dvm_mode}__{unix time}"""
    capture_video: bool = False
    """if toggled, draw one mean-action episode per configuration as a GIF at the end of Phase I, right after the DVM
    step and at the end of Phase II (the run's `videos` folder)"""

    # Algorithm specific arguments
    domain: Literal["spread", "push_box"] = "spread"
    """the particle world: spread (Fig. 5) or push_box"""
    n_agents: int = 2
    """number of agents (spread: 2, 3 or 4 as in the paper, up to 8 beyond it; push_box: 2)"""
    box_rule: Literal["heavy", "both"] = "heavy"
    """push_box only: heavy = a heavy movable box (one agent moves it slowly, two faster; the figures' rule);
    both = the paper's literal rule, the box moves only when both agents touch it (MADDPG learns nothing)"""
    box_mass: float = particle_envs.BOX_MASS
    """push_box only: mass of the box (an agent's is 1)"""
    dvm_mode: Literal["none", "distill", "vm", "dvm"] = "dvm"
    """what happens between the phases: nothing, distillation (Eq. 3), value matching (Eq. 6), or both"""
    phase1_steps: int = 20_000
    """environment transitions (summed over the parallel worlds) of Phase I, per team"""
    phase2_steps: int = 20_000
    """environment transitions of Phase II"""
    phase1_checkpoint: Optional[str] = None
    """load this Phase I checkpoint and skip Phase I (the four modes then branch from one Phase I)"""
    dvm_checkpoint: Optional[str] = None
    """with --phase1-checkpoint: take the DVM step from the dvm.pt of an earlier run from that Phase I (same seed, mode
    and DVM settings) instead of running it again; Phase II then starts exactly as in that run (a sweep over Phase II
    settings need not repeat a value matching that takes minutes with 4 agents)"""
    phase2_learning: bool = True
    """if toggled off (--no-phase2-learning), Phase II only evaluates the post-DVM policy (Fig. 7)"""
    num_envs: int = 16
    """parallel worlds stepped together"""
    horizon: int = 25
    """episode length (MPE's max_cycles)"""
    hidden_dim: int = 256
    """units in each of the two hidden layers (paper: 256)"""
    buffer_size: int = 100_000
    """replay memory size, in transitions"""
    gamma: float = 0.95
    """the discount factor gamma"""
    tau: float = 0.005
    """Polyak rate of the target value networks"""
    learning_rate: float = 3e-4
    """Adam learning rate of actors, Q and V networks (paper: 0.0003); with --phase1-checkpoint, the Phase II rate"""
    alpha: float = 0.1
    """entropy coefficient alpha, fixed (paper: 0.1)"""
    batch_size: int = 1024
    """minibatch size of every update (paper: 1024)"""
    learning_starts: int = 2048
    """transitions collected before the first update"""
    update_every: int = 1
    """one gradient update of every agent per this many batched environment steps"""
    phase2_actor_delay: int = 0
    """beyond the paper: the first N gradient updates of Phase II train only Q and V, the actors keep the policy they
    enter Phase II with (a critic warm-up against the post-DVM drop); 0 = the paper"""
    dvm_iterations: int = 2048
    """iterations of distillation and of value matching (paper: 2048)"""
    dvm_batch_size: int = 256
    """samples drawn from each source agent's buffer per DVM iteration (the paper does not say)"""
    dvm_learning_rate: float = 1e-3
    """Adam learning rate of the distilled actor and the value-matched Q and V networks"""
    vm_permutations: int = 0
    """beyond the paper: match each sample under this many agent permutations, drawn uniformly without replacement
    every iteration, their sum scaled by n!/K to an unbiased estimate of Eq. (6); 0 = the exact sum over all n!"""
    eval_every: int = 1000
    """evaluate every this many environment transitions"""
    eval_episodes: int = 30
    """evaluation episodes (run as parallel worlds) per evaluation"""
    log_every: int = 100
    """write losses to TensorBoard every this many updates"""


# The configuration a Phase I checkpoint must share with the run that loads it.
CHECKPOINT_KEYS = ("domain", "n_agents", "box_rule", "box_mass", "seed", "hidden_dim", "horizon", "buffer_size",
                   "num_envs", "phase1_steps")
# ... and the configuration a DVM step reused with --dvm-checkpoint must share
DVM_KEYS = CHECKPOINT_KEYS + ("dvm_mode", "dvm_iterations", "dvm_batch_size", "dvm_learning_rate", "vm_permutations")


def make_env(args, num_envs, phase, task=None):
    """Phase I or II worlds. Push box: Phase I is Task I or II (one per team), Phase II is Task III."""
    if args.domain == "spread":
        return particle_envs.make("spread", num_envs=num_envs, n_agents=args.n_agents, phase=phase,
                                  continuous=True, horizon=args.horizon)
    return particle_envs.make("push_box", num_envs=num_envs, n_agents=args.n_agents,
                              task=task if phase == 1 else 3, continuous=True, horizon=args.horizon,
                              box_rule=args.box_rule, box_mass=args.box_mass)


LOG_STD_MAX = 2
LOG_STD_MIN = -5


def tanh_gaussian_log_prob(u, mean, log_std):
    """log pi(a|o) of the squashed action a = tanh(u), u ~ N(mean, exp(log_std)), summed over action dimensions.

    Change of variables: log N(u) - log |da/du| with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), exact and
    finite for every u (the form log(1 - a^2 + eps) is off by up to eps / (1 - a^2) and breaks at |a| = 1).
    """
    gaussian = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return (gaussian - 2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)


class Actor(nn.Module):
    """Decentralized actor: agent i's observation -> mean and log std of a Gaussian, squashed by tanh into [-1, 1]."""

    def __init__(self, obs_dim, action_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc_mean = nn.Linear(hidden_dim, action_dim)
        self.fc_logstd = nn.Linear(hidden_dim, action_dim)

    def forward(self, obs):
        x = F.relu(self.fc1(obs))
        x = F.relu(self.fc2(x))
        mean = self.fc_mean(x)
        # log std squashed smoothly into [LOG_STD_MIN, LOG_STD_MAX] (SpinUp, CleanRL): bounds the KL of Eq. (3) too
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(self.fc_logstd(x)) + 1)
        return mean, log_std

    def get_action(self, obs, generator=None):
        """A reparameterized sample a = tanh(mean + std * noise) and its log-probability log pi(a|o)."""
        mean, log_std = self(obs)
        u = mean + log_std.exp() * torch.randn(mean.shape, generator=generator, device=mean.device)
        return torch.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)


class SoftQNetwork(nn.Module):
    """Centralized soft Q^i(o^1..o^n, a^1..a^n) (Eq. 11): joint observation and joint action -> value."""

    def __init__(self, n_agents, obs_dim, action_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(n_agents * (obs_dim + action_dim), hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, 1)

    def forward(self, obs, actions):
        # obs (B, n, obs_dim), actions (B, n, action_dim); agent blocks in agent order, observations first
        x = torch.cat([obs.flatten(1), actions.flatten(1)], dim=1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x).squeeze(-1)


class ValueNetwork(nn.Module):
    """Centralized soft V^i(o^1..o^n) (Eq. 10): joint observation -> value."""

    def __init__(self, n_agents, obs_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(n_agents * obs_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, 1)

    def forward(self, obs):
        x = F.relu(self.fc1(obs.flatten(1)))  # agent blocks in agent order
        x = F.relu(self.fc2(x))
        return self.fc3(x).squeeze(-1)


class ReplayBuffer:
    """Preallocated joint transitions, one row per (world, step): obs, actions, team reward, next obs."""

    def __init__(self, size, n_agents, obs_dim, action_dim, device):
        self.size, self.pos, self.full = size, 0, False
        self.obs = torch.zeros((size, n_agents, obs_dim), device=device)
        self.next_obs = torch.zeros((size, n_agents, obs_dim), device=device)
        self.actions = torch.zeros((size, n_agents, action_dim), device=device)
        self.rewards = torch.zeros(size, device=device)

    def add(self, obs, actions, rewards, next_obs):
        rows = (self.pos + torch.arange(len(obs))) % self.size
        self.obs[rows] = torch.as_tensor(obs, device=self.obs.device)
        self.next_obs[rows] = torch.as_tensor(next_obs, device=self.obs.device)
        self.actions[rows] = torch.as_tensor(actions, dtype=torch.float32, device=self.obs.device)
        self.rewards[rows] = torch.as_tensor(rewards, dtype=torch.float32, device=self.obs.device)
        self.full = self.full or self.pos + len(obs) >= self.size
        self.pos = (self.pos + len(obs)) % self.size

    def __len__(self):
        return self.size if self.full else self.pos

    def sample(self, batch_size):
        idx = torch.randint(0, len(self), (batch_size,), device=self.obs.device)
        return self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx]

    def state_dict(self):
        n = len(self)
        # copies of the filled rows: a slice would make torch.save write the whole preallocated storage
        rows = {key: getattr(self, key)[:n].cpu().clone() for key in ("obs", "next_obs", "actions", "rewards")}
        return dict(pos=self.pos, full=self.full, **rows)

    def load_state_dict(self, state):
        n = len(state["obs"])
        self.pos, self.full = state["pos"], state["full"]
        for key in ("obs", "next_obs", "actions", "rewards"):
            getattr(self, key)[:n] = state[key].to(self.obs.device)


class Team:
    """n agents: actors, centralized Q and V networks, target V networks, one Adam per role, the replay buffer.

    One Adam over all actors (and one over all Q, one over all V networks) equals one Adam per agent: Adam's
    statistics are per parameter and each agent's loss reaches only its own networks. SAC v1 has no target
    actor and no target Q: the soft Bellman target of Eq. (12) uses the target value network alone.
    """

    def __init__(self, args, obs_dim, action_dim, device):
        n = args.n_agents
        self.actors = nn.ModuleList([Actor(obs_dim, action_dim, args.hidden_dim) for _ in range(n)]).to(device)
        self.qfs = nn.ModuleList([SoftQNetwork(n, obs_dim, action_dim, args.hidden_dim) for _ in range(n)]).to(device)
        self.vfs = nn.ModuleList([ValueNetwork(n, obs_dim, args.hidden_dim) for _ in range(n)]).to(device)
        self.target_vfs = nn.ModuleList([ValueNetwork(n, obs_dim, args.hidden_dim) for _ in range(n)]).to(device)
        self.target_vfs.load_state_dict(self.vfs.state_dict())
        self.actor_optimizer = torch.optim.Adam(self.actors.parameters(), lr=args.learning_rate)
        self.q_optimizer = torch.optim.Adam(self.qfs.parameters(), lr=args.learning_rate)
        self.v_optimizer = torch.optim.Adam(self.vfs.parameters(), lr=args.learning_rate)
        self.buffer = ReplayBuffer(args.buffer_size, n, obs_dim, action_dim, device)

    def state_dict(self):
        return {key: getattr(self, key).state_dict() for key in
                ("actors", "qfs", "vfs", "target_vfs", "actor_optimizer", "q_optimizer", "v_optimizer", "buffer")}

    def load_state_dict(self, state):
        for key, value in state.items():
            getattr(self, key).load_state_dict(value)


@torch.no_grad()
def select_actions(actors, obs, deterministic, rng, device):
    """Every agent's action sampled from its policy, or its mean action tanh(mean) if deterministic."""
    obs = torch.as_tensor(obs, device=device)
    actions = [torch.tanh(actor(obs[:, i])[0]) if deterministic else actor.get_action(obs[:, i], rng)[0]
               for i, actor in enumerate(actors)]
    return torch.stack(actions, 1).cpu().numpy()


@torch.no_grad()
def evaluate(actors, env, device, seed):
    """Mean return of one batch of mean-action episodes, and the mean per push-box target (empty for spread)."""
    obs = env.reset(seed=seed)
    returns = np.zeros(env.num_envs)
    for _ in range(env.horizon):
        obs, reward, _, _, _ = env.step(select_actions(actors, obs, True, None, device))
        returns += reward
    per_target = {}
    if hasattr(env, "target_index"):
        per_target = {k: returns[env.target_index == k].mean() for k in np.unique(env.target_index)}
    return returns.mean(), per_target


def masac_update(team, args, update_actors=True):
    """One gradient step of every agent's V (Eq. 10), Q (Eqs. 11-12) and actor (SAC v1 policy loss), then V-bar.
    With update_actors False (the first --phase2-actor-delay updates of Phase II) the actors are left as they are.

    The expectation over a ~ pi in Eq. (10) is read centrally: every agent's action is sampled afresh from its
    current policy, a^j ~ pi^j(o^j), and the entropy term is agent i's own, -alpha log pi^i(a^i|o^i). The
    policy loss of agent i replaces only its own action by a fresh sample and takes the others' from the
    buffer (the MADDPG convention). One joint sample serves both, as in SAC v1. V and Q step on the same
    batch before the actor, which then follows the updated Q; V-bar moves last.
    """
    n = args.n_agents
    obs, actions, rewards, next_obs = team.buffer.sample(args.batch_size)
    pi, log_pi = zip(*(team.actors[i].get_action(obs[:, i]) for i in range(n)))
    with torch.no_grad():
        pi_all = torch.stack(pi, 1)
        v_target = [team.qfs[i](obs, pi_all) - args.alpha * log_pi[i] for i in range(n)]  # Eq. (10)
        # Eq. (12); episodes end only by the time limit, a truncation, so every target bootstraps.
        q_target = [rewards + args.gamma * team.target_vfs[i](next_obs) for i in range(n)]
    vf_loss = sum(0.5 * F.mse_loss(team.vfs[i](obs), v_target[i]) for i in range(n))  # Eq. (10)
    qf_loss = sum(0.5 * F.mse_loss(team.qfs[i](obs, actions), q_target[i]) for i in range(n))  # Eq. (11)
    team.q_optimizer.zero_grad()
    team.v_optimizer.zero_grad()
    (qf_loss + vf_loss).backward()  # disjoint parameters: one backward pass serves both optimizers
    team.q_optimizer.step()
    team.v_optimizer.step()

    actor_loss = torch.zeros((), device=obs.device)
    if update_actors:  # else a critic warm-up: the actors keep what they entered Phase II with
        team.qfs.requires_grad_(False)  # the actor loss needs gradients through the Q networks, not of them
        for i in range(n):
            policy_actions = actions.clone()
            policy_actions[:, i] = pi[i]
            # SAC v1 policy loss (Algorithm 1, line 11), reparameterized: E[alpha log pi^i(a^i|o^i) - Q^i(o, a)]
            actor_loss = actor_loss + (args.alpha * log_pi[i] - team.qfs[i](obs, policy_actions)).mean()
        team.actor_optimizer.zero_grad()
        actor_loss.backward()
        team.actor_optimizer.step()
        team.qfs.requires_grad_(True)

    with torch.no_grad():
        for param, target_param in zip(team.vfs.parameters(), team.target_vfs.parameters()):
            target_param.lerp_(param, args.tau)
    return qf_loss.detach(), vf_loss.detach(), actor_loss.detach()


def update_steps(args, num_steps, buffer_len):
    """The batched steps of a phase of `num_steps` transitions after which every agent makes a gradient update: those
    whose index is a multiple of --update-every, once the replay buffer holds --learning-starts transitions (it holds
    `buffer_len` before the phase, --num-envs more after each step, at most --buffer-size). run_phase updates at these
    steps, and check_args refuses a Phase I with none."""
    if args.buffer_size < args.learning_starts:  # it never holds enough
        return range(0)
    # the first step after which buffer_len + (step + 1) * num_envs >= learning_starts (-(-x // y): x / y rounded up)
    first = max(0, -(-(args.learning_starts - buffer_len) // args.num_envs) - 1)
    return range(first + -first % args.update_every, num_steps // args.num_envs, args.update_every)


# ---------------------------------------------------------------------------------------------------------
# DVM: distillation (Sec. III-A), homogeneous value matching (Sec. III-B) and the hard update.


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q):
    """Eq. (3) for Gaussian policies: KL(N_p || N_q) in closed form, summed over action dimensions, one value per row.

    p is the source, q the student (the direction of Eq. 3). On the pre-tanh Gaussians: tanh is a bijection and
    KL does not change under one, so this is also the exact KL of the squashed policies.
    """
    var_ratio = torch.exp(2 * (log_std_p - log_std_q))
    mean_term = ((mean_p - mean_q) / log_std_q.exp()) ** 2
    return (log_std_q - log_std_p + 0.5 * (var_ratio + mean_term - 1)).sum(-1)


def sample_permutations(all_perms, batch_size, k):
    """k distinct permutations per sample, a uniformly random k-subset of the n! rows of all_perms for each of the
    batch_size samples (Floyd's algorithm, vectorized over the batch) -> (batch_size, k, n). k = n! gives each sample
    every permutation."""
    n_perms = len(all_perms)
    chosen = torch.empty((batch_size, k), dtype=torch.long, device=all_perms.device)
    for slot, j in enumerate(range(n_perms - k, n_perms)):
        t = torch.randint(0, j + 1, (batch_size,), device=all_perms.device)
        chosen[:, slot] = torch.where((chosen[:, :slot] == t[:, None]).any(1), j, t)  # taken already: j is not
    return all_perms[chosen]


def permute_agents(obs, actions, perms):
    """Agent permutations of a joint sample, observation and action blocks moved together.

    obs (B, n, d), actions (B, n, k); perms (P, n), the same for every sample, or (B, P, n), each sample's own
    -> (B * P, n, d), (B * P, n, k); row b * P + p is sample b under its permutation p.
    """
    if perms.dim() == 3:
        rows = torch.arange(len(obs), device=obs.device)[:, None, None]
        return obs[rows, perms].flatten(0, 1), actions[rows, perms].flatten(0, 1)
    return obs[:, perms].flatten(0, 1), actions[:, perms].flatten(0, 1)


def value_matching_loss(student_values, source_values, n_perms):
    """Eq. (6): sum over all n_perms = n! permutations X of (student(X) - source(o))^2, averaged over the batch.

    student_values (B, P), one column per permutation: all n! of them, the exact sum, or P drawn per sample without
    replacement, whose sum times n!/P is an unbiased estimate of the exact one (--vm-permutations); source_values (B,).
    """
    return ((student_values - source_values[:, None]) ** 2).sum(1).mean() * (n_perms / student_values.shape[1])


def distill_actor(sources, args, obs_dim, action_dim, device):
    """A fresh actor pi0 trained to match every source agent's policy on that agent's own observations.

    sources: list of (actor, buffer, agent index). Only observations are sampled; the actions are the
    sources' own policies, queried now (Sec. III-A).
    """
    student = Actor(obs_dim, action_dim, args.hidden_dim).to(device)
    optimizer = torch.optim.Adam(student.parameters(), lr=args.dvm_learning_rate)
    losses = torch.zeros(args.dvm_iterations, device=device)
    for it in range(args.dvm_iterations):
        for actor, buffer, i in sources:
            obs = buffer.sample(args.dvm_batch_size)[0][:, i]
            with torch.no_grad():
                source_mean, source_log_std = actor(obs)
            loss = gaussian_kl(source_mean, source_log_std, *student(obs)).mean()  # Eq. (3)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[it] += loss.detach() / len(sources)
    return student, losses


def match_values(sources, args, obs_dim, action_dim, device):
    """A fresh Q0 and V0 that give every agent permutation of a sampled (o, a), and of o, the source's values.

    sources: list of (Q network, V network, buffer); each iteration takes one step per source, as in
    Algorithm 1. Q0 and V0 share one Adam (disjoint parameters: equal to one Adam each); the logged loss is
    the sum of both.
    """
    q_student = SoftQNetwork(args.n_agents, obs_dim, action_dim, args.hidden_dim).to(device)
    v_student = ValueNetwork(args.n_agents, obs_dim, args.hidden_dim).to(device)
    optimizer = torch.optim.Adam(list(q_student.parameters()) + list(v_student.parameters()), lr=args.dvm_learning_rate)
    all_perms = torch.tensor(list(itertools.permutations(range(args.n_agents))), device=device)
    losses = torch.zeros(args.dvm_iterations, device=device)
    start, every = time.time(), max(1, args.dvm_iterations // 8)
    for it in range(args.dvm_iterations):
        for qf, vf, buffer in sources:
            obs, actions, _, _ = buffer.sample(args.dvm_batch_size)
            with torch.no_grad():
                q_source, v_source = qf(obs, actions), vf(obs)
            perms = (sample_permutations(all_perms, len(obs), args.vm_permutations) if args.vm_permutations
                     else all_perms)
            perm_obs, perm_actions = permute_agents(obs, actions, perms)  # V0 sees the same permuted observations
            shape = (len(obs), perms.shape[-2])
            n_perms = len(all_perms)
            loss = (value_matching_loss(q_student(perm_obs, perm_actions).view(shape), q_source, n_perms)  # Eq. (6), Q
                    + value_matching_loss(v_student(perm_obs).view(shape), v_source, n_perms))  # Eq. (6), V
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[it] += loss.detach() / len(sources)
        if (it + 1) % every == 0:  # long work from 5 agents on (the exact sum: 47 min at 5 agents)
            print(f"DVM step: value matching {it + 1}/{args.dvm_iterations} iterations, loss {losses[it]:.4g}, "
                  f"left {time_left(time.time() - start, it + 1, args.dvm_iterations - it - 1)}", flush=True)
    return q_student, v_student, losses


def train_students(teams, args, obs_dim, action_dim, device, saved=None):
    """The DVM step's new networks per --dvm-mode: pi0 distilled from the source agents' actors (Eq. 3), Q0 and V0
    matched to their Q and V networks (Eq. 6), or all three; or those of `saved`, the dvm.pt of an earlier run
    (--dvm-checkpoint).

    Sources: every agent of the spread team; agent 1 of each push-box team, each with its own buffer. Returns the
    students {"pi0": actor, "Q0": Q network, "V0": V network} and their losses per iteration {"kl": ..., "vm": ...}.
    """
    if saved is not None:
        nets = dict(pi0=Actor(obs_dim, action_dim, args.hidden_dim),
                    Q0=SoftQNetwork(args.n_agents, obs_dim, action_dim, args.hidden_dim),
                    V0=ValueNetwork(args.n_agents, obs_dim, args.hidden_dim))
        for name, state in saved["students"].items():
            nets[name].load_state_dict(state)
        return ({name: nets[name].to(device) for name in saved["students"]},
                {name: losses.to(device) for name, losses in saved["losses"].items()})
    agents = range(args.n_agents) if len(teams) == 1 else [0]
    students, losses = {}, {}
    if args.dvm_mode in ("distill", "dvm"):
        students["pi0"], losses["kl"] = distill_actor([(t.actors[i], t.buffer, i) for t in teams for i in agents],
                                                      args, obs_dim, action_dim, device)
    if args.dvm_mode in ("vm", "dvm"):
        students["Q0"], students["V0"], losses["vm"] = match_values(
            [(t.qfs[i], t.vfs[i], t.buffer) for t in teams for i in agents], args, obs_dim, action_dim, device)
    return students, losses


def hard_update(nets, source):
    """Every network in `nets` (agents' online and target networks) becomes a copy of `source`."""
    for net in nets:
        net.load_state_dict(source.state_dict())


# ---------------------------------------------------------------------------------------------------------
# Plumbing: videos, checkpoints, checks of the input, the divergence stop, the time left.


@torch.no_grad()
def capture_videos(actor_teams, args, device, moment, video_dir, seed):
    """--capture-video: one mean-action episode per configuration as a GIF, recorded by particle_envs.record_moment."""
    policies = [lambda obs, actors=actors: select_actions(actors, obs, True, None, device) for actors in actor_teams]
    return particle_envs.record_moment(functools.partial(make_env, args), policies, moment, video_dir, seed)


KINDS = {"phase1": "Phase I", "dvm": "DVM step", "phase2": "Phase II"}  # what a checkpoint holds


def save_checkpoint(path, kind, args, global_step, rng, **contents):
    """Write a checkpoint atomically (a temporary file, then a rename: a crash never leaves half of one), or exit in one
    line if it cannot be written (a full disk, a file-size limit) without leaving the temporary file. It names
    the script that wrote it and its kind, and holds only tensors, numbers, strings, lists, tuples and dicts, which
    torch.load(..., weights_only=True) reads without running any code."""
    kind_, keys, pos, has_gauss, gauss = np.random.get_state()  # numpy's legacy state holds an ndarray: as a tensor
    rng_states = dict(python=random.getstate(), numpy=(kind_, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                       gauss), torch=torch.get_rng_state(), explore=rng.get_state())
    if torch.cuda.is_available():
        rng_states["cuda"] = torch.cuda.get_rng_state_all()
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        torch.save(dict(algorithm="masac_dvm", kind=kind, config=asdict(args), global_step=global_step, rng=rng_states,
                        **contents), tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch reports a full disk or a file-size limit as a RuntimeError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "a full disk, or a file-size limit?"
        raise SystemExit(f"error: cannot write the {KINDS[kind]} checkpoint {path!r} ({reason}); the checkpoints "
                         "saved before are kept") from None
    finally:  # a failed or interrupted save leaves no part of the file behind
        if os.path.exists(tmp):
            os.remove(tmp)


def set_rng_states(states, rng):
    """Every random generator back to where a checkpoint saved it: the run goes on as if it had not stopped."""
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    rng.set_state(states["explore"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def load_checkpoint(path, kind, args, keys):
    """Read a checkpoint with weights_only=True, so that nothing in the file can run code, and refuse in one line one
    that is unreadable, of another script or kind, or made with another configuration (the Args fields `keys`)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SystemExit(f"error: {KINDS[kind]} checkpoint {path!r} does not exist") from None
    except Exception as e:  # noqa: BLE001 (truncated, not a checkpoint, or objects whose unpickling could run code)
        raise SystemExit(f"error: cannot read {path!r} as a checkpoint ({type(e).__name__}): only what the scripts save "
                         "is read, never objects whose unpickling could run code") from None
    found = (checkpoint.get("algorithm"), checkpoint.get("kind")) if isinstance(checkpoint, dict) else (None, None)
    if found != ("masac_dvm", kind):
        raise SystemExit(f"error: {path!r} is not a masac_dvm {KINDS[kind]} checkpoint (it holds: "
                         f"{found[0] or 'not a checkpoint of these scripts'}, {KINDS.get(found[1], 'no kind')})")
    # a key missing from an older checkpoint's configuration had its default then (--vm-permutations came later)
    config = {key: checkpoint["config"].get(key, getattr(Args, key)) for key in keys}
    mismatched = [f"{key}={config[key]} (this run: {getattr(args, key)})" for key in keys
                  if config[key] != getattr(args, key)]
    if mismatched:
        raise SystemExit(f"error: {KINDS[kind]} checkpoint {path!r} was made with another configuration: "
                         + ", ".join(mismatched))
    return checkpoint


def sha256_of(path):
    """The sha256 of a file as a hex string: what names the Phase I checkpoint a dvm.pt was made from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_memory(args):
    """Refuse, before the run folder is made, sizes that this machine's memory cannot hold (else a MemoryError, or the
    kernel's OOM killer, once the run has begun). An estimate: a team's networks and replay buffer built on torch's meta
    device (shapes, no memory), each weight 4 times (with its gradient and Adam's two moments); a batch through the
    widest layer; the worlds."""
    env = make_env(args, 1, phase=1, task=1)
    obs_dim, action_dim = env.single_observation_space.shape[0], env.single_action_space.shape[0]
    with torch.device("meta"):
        team = Team(args, obs_dim, action_dim, "meta")
    weights = sum(p.numel() for net in vars(team).values() if isinstance(net, nn.Module) for p in net.parameters())
    buffer = sum(t.nbytes for t in vars(team.buffer).values() if torch.is_tensor(t))
    # value matching sends each DVM sample through the critic once per permutation (all n!, or K sampled)
    perms = (args.vm_permutations or math.factorial(args.n_agents)) if args.dvm_mode in ("vm", "dvm") else 1
    rows = max(args.batch_size * args.n_agents, args.dvm_batch_size * perms, args.num_envs, args.eval_episodes)
    width = max(args.hidden_dim, args.n_agents * (obs_dim + action_dim))
    worlds = 40 * (args.num_envs + args.eval_episodes) * args.n_agents * obs_dim  # numpy state and temporaries
    needed = (2 if args.domain == "push_box" else 1) * (buffer + 16 * weights) + 16 * rows * width + worlds
    has = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > has:
        raise SystemExit(f"error: these sizes need about {needed / 2**30:.3g} GiB of memory, more than this "
                         f"machine's {has / 2**30:.3g} GiB (--buffer-size, --hidden-dim, --num-envs, --eval-episodes, "
                         "--batch-size, --dvm-batch-size, --vm-permutations)")


def check_args(args):
    """Every flag's range, before any work: one line and a non-zero exit, nothing written."""
    def fail(message):
        raise SystemExit(f"error: {message}")

    if args.domain == "spread" and args.n_agents not in particle_envs.SPREAD_N_AGENTS:
        fail(f"spread supports --n-agents 2 to 8, got {args.n_agents}")
    if args.domain == "push_box" and args.n_agents != 2:
        fail(f"push_box supports --n-agents 2 only, got {args.n_agents}")
    n_perms = math.factorial(args.n_agents)
    if not 0 <= args.vm_permutations <= n_perms:
        fail(f"--vm-permutations must be in [0, {n_perms}] (the {args.n_agents}! agent permutations; 0: all of them), "
             f"got {args.vm_permutations}")
    if args.dvm_mode in ("vm", "dvm") and args.vm_permutations == 0 and args.n_agents >= 7:
        fail(f"the exact value matching sum over all {n_perms} permutations of {args.n_agents} agents cannot finish in "
             "reasonable time: sample them with --vm-permutations K (for example 8)")
    for key in ("num_envs", "horizon", "hidden_dim", "batch_size", "dvm_batch_size", "eval_every", "eval_episodes",
                "update_every", "buffer_size", "log_every"):
        if getattr(args, key) < 1:
            fail(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    for key in ("seed", "threads", "phase1_steps", "phase2_steps", "learning_starts", "phase2_actor_delay"):
        if getattr(args, key) < 0:
            fail(f"--{key.replace('_', '-')} must not be negative, got {getattr(args, key)}")
    if args.seed >= 2**32:
        fail(f"--seed must be below 2**32 = 4294967296 (numpy's seeds), got {args.seed}")
    if args.threads > (os.cpu_count() or 1):  # more only wait for one another, and 100000 crash torch (a segfault)
        fail(f"--threads {args.threads} is more than this machine's {os.cpu_count() or 1} CPUs")
    # "not (0 < x)" rather than "x <= 0": NaN fails every comparison and must fail the check too
    for key in ("box_mass", "learning_rate", "dvm_learning_rate"):
        if not 0 < getattr(args, key) < math.inf:
            fail(f"--{key.replace('_', '-')} must be positive and finite, got {getattr(args, key)}")
    for key in ("gamma", "tau"):
        if not 0 < getattr(args, key) <= 1:
            fail(f"--{key} must be in (0, 1], got {getattr(args, key)}")
    if not 0 <= args.alpha < math.inf:
        fail(f"--alpha must be non-negative and finite, got {args.alpha}")
    if args.dvm_mode != "none" and args.dvm_iterations < 1:
        fail(f"--dvm-mode {args.dvm_mode} needs at least one DVM iteration, got --dvm-iterations {args.dvm_iterations} "
             "(it would hand Phase II untrained networks)")
    if not args.phase1_checkpoint and not update_steps(args, args.phase1_steps, 0):
        steps = args.phase1_steps // args.num_envs
        fail(f"Phase I would make no gradient update, and the DVM step would distil untrained networks: its "
             f"{steps} steps of the --num-envs {args.num_envs} worlds collect {steps * args.num_envs} transitions "
             f"(--phase1-steps {args.phase1_steps}) into --buffer-size {args.buffer_size}; an update follows each step "
             f"whose index is a multiple of --update-every {args.update_every} once it holds --learning-starts "
             f"{args.learning_starts}")
    phase2_updates = len(range(0, args.phase2_steps // args.num_envs, args.update_every))
    if args.phase2_actor_delay > phase2_updates:
        fail(f"--phase2-actor-delay {args.phase2_actor_delay} is longer than Phase II, which has {phase2_updates} "
             "gradient updates")
    if args.dvm_checkpoint and not args.phase1_checkpoint:
        fail("--dvm-checkpoint needs the --phase1-checkpoint it was made from (Phase II keeps that Phase I's buffer)")
    check_memory(args)


def make_run_dir(args, run_name):
    """The run's folder. One that holds another run's files is refused: a run never writes into another's folder."""
    run_dir = os.path.join(args.runs_dir, run_name)
    taken = sorted(f for f in (os.listdir(run_dir) if os.path.isdir(run_dir) else ())
                   if f.startswith("events.out.tfevents.") or ".pt" in f or f == "videos")
    if taken:
        raise SystemExit(f"error: the run folder {run_dir!r} holds another run's files ({', '.join(taken[:3])}); "
                         "choose another --run-name or --runs-dir, or delete them")
    try:
        os.makedirs(run_dir, exist_ok=True)
        open(os.path.join(run_dir, ".writable"), "w").close()
        os.remove(os.path.join(run_dir, ".writable"))
    except OSError as e:
        raise SystemExit(f"error: cannot write the run folder {run_dir!r}: {e.strerror}") from None
    return run_dir


def stop_if_diverged(where, global_step, writer, watched):
    """Stop at once on a NaN or infinite loss or parameter, before a checkpoint could be written over the last good
    one. watched: name -> tensor or network. One isfinite over everything: one device sync per check."""
    named = {}
    for name, value in watched.items():
        named.update({f"{name}.{p}": t for p, t in value.named_parameters()} if isinstance(value, nn.Module)
                     else {name: value})
    finite = torch.stack([torch.isfinite(t).all() for t in named.values()]) if named else torch.ones(1, dtype=bool)
    if not bool(finite.all()):
        name, bad = list(named.items())[int((~finite).nonzero()[0])]
        writer.close()
        raise SystemExit(f"error: diverged in {where} at global step {global_step}: {name} is "
                         f"{'nan' if bool(torch.isnan(bad).any()) else 'infinite'} (checkpoints saved before are kept; "
                         "a lower --learning-rate may help)")


def interrupted(signum, frame):
    """SIGINT (Ctrl-C): one line and the exit status 130 a shell gives it, rather than a KeyboardInterrupt traceback. A
    checkpoint being written is removed (save_checkpoint), those saved before are kept."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut that clean-up short
    print("interrupted (SIGINT): the checkpoints saved before are kept", file=sys.stderr, flush=True)
    raise SystemExit(130)


def log_write_failed(exc):
    """Whether exc is the TensorBoard writer failing to write its log (a full disk, a file-size limit), told in one line
    once: its thread raises it, then the main thread again at its next write to the log, each with a traceback."""
    package = os.path.dirname(tensorboard.__file__) + os.sep
    if not isinstance(exc, OSError) or not any(frame.filename.startswith(package)
                                               for frame in traceback.extract_tb(exc.__traceback__)):
        return False
    if not log_write_failed.told:
        log_write_failed.told = True
        print(f"error: cannot write the TensorBoard log ({exc.strerror or exc}); the checkpoints saved before are kept",
              file=sys.stderr, flush=True)
    return True


log_write_failed.told = False


def time_left(elapsed, done_steps, steps_ahead):
    """"~1h05m", "~3m20s" or "~45s": how long `steps_ahead` more steps take at the pace so far ("?" before any)."""
    if done_steps <= 0:
        return "?"
    s = int(round(steps_ahead * elapsed / done_steps))
    return f"~{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"~{s // 60}m{s % 60:02d}s" if s >= 60 else f"~{s}s"


if __name__ == "__main__":
    signal.signal(signal.SIGINT, interrupted)
    # a TensorBoard log that cannot be written is one line (log_write_failed), not two tracebacks; others as always
    threading.excepthook = lambda hook: log_write_failed(hook.exc_value) or threading.__excepthook__(hook)
    sys.excepthook = lambda kind, exc, tb: log_write_failed(exc) or sys.__excepthook__(kind, exc, tb)
    args = tyro.cli(Args)
    check_args(args)
    checkpoint = load_checkpoint(args.phase1_checkpoint, "phase1", args, CHECKPOINT_KEYS) if args.phase1_checkpoint else None
    saved_dvm = load_checkpoint(args.dvm_checkpoint, "dvm", args, DVM_KEYS) if args.dvm_checkpoint else None
    phase1_sha256 = sha256_of(args.phase1_checkpoint) if checkpoint else None  # what names a Phase I
    # a dvm.pt holds the sha256 of the Phase I checkpoint it was made from; one saved before dvm.pt held it is matched,
    # as then, by its Phase I's global step and return alone (a fallback, so that the runs made then stay reusable)
    if saved_dvm and ((saved_dvm["global_step"], saved_dvm["phase1_eval_return"]) != (checkpoint["global_step"],
                                                                                       checkpoint["eval_return"])
                      or saved_dvm.get("phase1_sha256", phase1_sha256) != phase1_sha256):
        raise SystemExit(f"error: DVM checkpoint {args.dvm_checkpoint!r} was made from another Phase I than "
                         f"{args.phase1_checkpoint!r}")
    run_name = args.run_name or f"{args.domain}{args.n_agents}__{args.exp_name}__{args.seed}__{args.dvm_mode}__{int(time.time())}"
    run_dir = make_run_dir(args, run_name)
    writer = SummaryWriter(run_dir)
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % ("\n".join([f"|{key}|{value}|" for key, value in vars(args).items()])),
    )

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    rng = torch.Generator(device=device).manual_seed(args.seed)  # exploration noise, apart from the updates'

    # Phase I: one team (spread) or two teams on Tasks I and II (push box), each with its own worlds
    n_teams = 2 if args.domain == "push_box" else 1
    envs = [make_env(args, args.num_envs, phase=1, task=k + 1) for k in range(n_teams)]
    eval_envs = [make_env(args, args.eval_episodes, phase=1, task=k + 1) for k in range(n_teams)]
    obs_dim, action_dim = envs[0].single_observation_space.shape[0], envs[0].single_action_space.shape[0]
    teams = [Team(args, obs_dim, action_dim, device) for _ in range(n_teams)]
    start_time = time.time()
    summary = {}
    video_dir = os.path.join(run_dir, "videos")

    def run_phase(phase, teams, envs, eval_envs, num_steps, global_step, learning=True):
        """Collect with the stochastic policies (mean actions when not learning), update every agent, evaluate.

        Returns the global step reached and the first and last evaluation returns of the phase.
        """
        obs = [env.reset(seed=args.seed + 1000 * phase + k) for k, env in enumerate(envs)]
        episode_returns = [np.zeros(env.num_envs) for env in envs]
        phase_start, updates, phase_time = global_step, 0, time.time()
        updates_at = update_steps(args, num_steps, len(teams[0].buffer))  # the steps followed by an update
        evals, watched_losses = [], {}
        label = [f" (team {'AB'[k]})" if len(teams) > 1 else "" for k in range(len(teams))]
        networks = {f"{key}{label[k]}": getattr(team, key) for k, team in enumerate(teams)
                    for key in ("actors", "qfs", "vfs", "target_vfs")}
        for step in range(num_steps // args.num_envs + 1):
            done_steps = step * args.num_envs
            if done_steps % args.eval_every < args.num_envs or step == num_steps // args.num_envs:
                # the last evaluation of a phase comes right before its checkpoint: a diverged one is never saved
                stop_if_diverged(f"phase {phase}", global_step, writer, {**watched_losses, **networks})
                results = [evaluate(team.actors, env, device, seed=args.seed + 7 + global_step)
                           for team, env in zip(teams, eval_envs)]
                evals.append(float(np.mean([r[0] for r in results])))
                writer.add_scalar("eval/return", evals[-1], global_step)
                writer.add_scalar("charts/phase", phase, global_step)
                if len(results) > 1:
                    for k, r in enumerate(results):
                        writer.add_scalar(f"eval/return_team{k}", r[0], global_step)
                for target, value in results[0][1].items() if phase == 2 else ():
                    writer.add_scalar(f"eval/return_target{target}", value, global_step)
                elapsed = time.time() - phase_time
                sps = int(done_steps / max(elapsed, 1e-9))
                # time left in the run at this phase's pace so far: the rest of this phase and, from Phase I, Phase II,
                # which steps one team where push box's Phase I steps two (the DVM step is not counted)
                ahead = num_steps - done_steps + (args.phase2_steps / len(teams) if phase == 1 else 0)
                print(f"phase {phase}  global_step {global_step}  SPS {sps}  eval/return {evals[-1]:.2f}  "
                      f"left {time_left(elapsed, done_steps, ahead)}", flush=True)
                if step == num_steps // args.num_envs:
                    break
            for k, (team, env) in enumerate(zip(teams, envs)):
                actions = select_actions(team.actors, obs[k], not learning, rng, device)
                if not np.isfinite(actions).all():  # on the host already: costs no sync; the worlds refuse NaN
                    stop_if_diverged(f"phase {phase}", global_step, writer, {**watched_losses, **networks})
                    raise SystemExit(f"error: diverged in phase {phase} at global step {global_step}: the actions of "
                                     "the policy are not finite (its parameters are, but too large)")
                next_obs, rewards, _, truncated, _ = env.step(actions)
                if learning:
                    team.buffer.add(obs[k], actions, rewards, next_obs)
                episode_returns[k] += rewards
                if truncated.all():
                    writer.add_scalar("charts/episodic_return", episode_returns[k].mean(), global_step)
                    episode_returns[k][:] = 0.0
                    next_obs = env.reset()
                obs[k] = next_obs
            global_step += args.num_envs

            if learning and step in updates_at:
                warm_up = phase == 2 and updates < args.phase2_actor_delay  # critics only, --phase2-actor-delay
                losses = [masac_update(team, args, not warm_up) for team in teams]  # detached: no sync here
                watched_losses = {f"losses/{name}{label[k]}": loss for k, team_losses in enumerate(losses)
                                  for name, loss in zip(("qf_loss", "vf_loss", "actor_loss"), team_losses)}
                updates += 1
                if updates % args.log_every == 0:
                    stop_if_diverged(f"phase {phase}", global_step, writer, watched_losses)
                    qf_loss, vf_loss, actor_loss = losses[-1]
                    writer.add_scalar("losses/qf_loss", qf_loss.item(), global_step)
                    writer.add_scalar("losses/vf_loss", vf_loss.item(), global_step)
                    writer.add_scalar("losses/actor_loss", actor_loss.item(), global_step)
                    writer.add_scalar("charts/SPS", int((global_step - phase_start) / (time.time() - phase_time)),
                                      global_step)
        return global_step, evals[0], evals[-1]

    # ---- Phase I (or its checkpoint) ----
    if checkpoint is None:
        global_step, _, summary["end of Phase I"] = run_phase(1, teams, envs, eval_envs, args.phase1_steps, 0)
        save_checkpoint(os.path.join(run_dir, "phase1.pt"), "phase1", args, global_step, rng,
                        teams=[team.state_dict() for team in teams], eval_return=summary["end of Phase I"])
        print(f"saved Phase I checkpoint {os.path.join(run_dir, 'phase1.pt')}", flush=True)
        phase1_sha256 = sha256_of(os.path.join(run_dir, "phase1.pt"))
    else:
        for team, state in zip(teams, checkpoint["teams"]):
            team.load_state_dict(state)
            # Phase II runs at this run's --learning-rate
            for optimizer in (team.actor_optimizer, team.q_optimizer, team.v_optimizer):
                for group in optimizer.param_groups:
                    group["lr"] = args.learning_rate
        set_rng_states(checkpoint["rng"], rng)
        global_step, summary["end of Phase I"] = checkpoint["global_step"], checkpoint["eval_return"]
        print(f"loaded Phase I from {args.phase1_checkpoint} (global_step {global_step})", flush=True)
    if args.capture_video:
        capture_videos([t.actors for t in teams], args, device, "phase1_end", video_dir, args.seed)

    # ---- DVM step (or the one saved by an earlier run, --dvm-checkpoint) ----
    dvm_start = time.time()
    team = teams[0]  # the team that goes on into Phase II (push box under "none": team A)
    students, dvm_losses = train_students(teams, args, obs_dim, action_dim, device, saved_dvm)
    stop_if_diverged("the DVM step", global_step, writer,
                     {**{f"dvm/{name}_loss": losses for name, losses in dvm_losses.items()}, **students})
    if "pi0" in students:  # every actor becomes the distilled actor (MA-SAC has no target actor)
        hard_update(team.actors, students["pi0"])
        team.actor_optimizer = torch.optim.Adam(team.actors.parameters(), lr=args.learning_rate)  # fresh moments
    if "Q0" in students:  # every Q becomes the value-matched Q0; every V and target V the value-matched V0
        hard_update(team.qfs, students["Q0"])
        hard_update(list(team.vfs) + list(team.target_vfs), students["V0"])
        team.q_optimizer = torch.optim.Adam(team.qfs.parameters(), lr=args.learning_rate)
        team.v_optimizer = torch.optim.Adam(team.vfs.parameters(), lr=args.learning_rate)
    for name, losses in dvm_losses.items():
        for it, loss in enumerate(losses.tolist()):
            writer.add_scalar(f"dvm/{name}_loss", loss, it)
    if saved_dvm is not None:
        set_rng_states(saved_dvm["rng"], rng)  # where the earlier run's DVM step left them: the same Phase II follows
        print(f"DVM step ({args.dvm_mode}): loaded from {args.dvm_checkpoint}", flush=True)
    elif args.dvm_mode != "none":
        writer.add_scalar("dvm/seconds", time.time() - dvm_start, 0)  # what the step costs (dvm_iterations.sh)
        print(f"DVM step ({args.dvm_mode}): {args.dvm_iterations} iterations done in {time.time() - dvm_start:.0f} s",
              flush=True)
    # the networks that enter Phase II, and the DVM step itself for --dvm-checkpoint; no buffer, so the file stays small
    save_checkpoint(os.path.join(run_dir, "dvm.pt"), "dvm", args, global_step, rng,
                    teams=[dict(actors=team.actors.state_dict(), qfs=team.qfs.state_dict(), vfs=team.vfs.state_dict())],
                    students={name: net.state_dict() for name, net in students.items()}, losses=dvm_losses,
                    phase1_eval_return=summary["end of Phase I"], phase1_sha256=phase1_sha256)
    if args.capture_video:
        capture_videos([team.actors], args, device, "after_dvm", video_dir, args.seed)

    # ---- Phase II ----
    env, eval_env = make_env(args, args.num_envs, phase=2), make_env(args, args.eval_episodes, phase=2)
    global_step, summary["right after DVM"], summary["end of Phase II"] = run_phase(
        2, [team], [env], [eval_env], args.phase2_steps, global_step, learning=args.phase2_learning)
    save_checkpoint(os.path.join(run_dir, "phase2.pt"), "phase2", args, global_step, rng,
                    teams=[team.state_dict()], eval_return=summary["end of Phase II"])
    if args.capture_video:
        capture_videos([team.actors], args, device, "phase2_end", video_dir, args.seed)
    writer.close()

    print(f"\n{args.domain} n={args.n_agents}, mode {args.dvm_mode}, seed {args.seed}: "
          f"{time.time() - start_time:.0f} s")
    for key, value in summary.items():
        print(f"  eval/return {key:<16} {value:9.2f}")
    print(f"TensorBoard logs and checkpoints: {run_dir}  (tensorboard --logdir {args.runs_dir})")
    if args.capture_video:
        print(f"videos (GIFs) of the policy: {video_dir}")
