# docs: README.md ("Implementation details"); paper: Wadhwania et al., "Policy Distillation and Value Matching in
# Multiagent Reinforcement Learning". Discrete MADDPG, then the DVM step: distillation (Eq. 3), value matching (Eq. 6).
import functools
import hashlib
import itertools
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter


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
    capture_video: bool = False
    """if toggled, one greedy episode per configuration as a GIF at the end of Phase I, after DVM and at the end"""

    # Algorithm specific arguments
    domain: Literal["spread", "push_box"] = "spread"
    """the particle world: spread (Figs. 4, 8) or push_box (Figs. 6, 7)"""
    n_agents: int = 2
    """number of agents (spread: 2, 3 or 4 as in the paper, up to 8 beyond it; push_box: 2)"""
    box_rule: Literal["heavy", "both"] = "heavy"
    """push_box only: heavy = a heavy movable box (the figures' rule); both = the paper's rule (both must push)"""
    box_mass: float = 3.0
    """push_box only: mass of the box (an agent's is 1; particle_envs.BOX_MASS)"""
    dvm_mode: Literal["none", "distill", "vm", "dvm"] = "dvm"
    """what happens between the phases: nothing, distillation (Eq. 3), value matching (Eq. 6), or both"""
    phase1_steps: int = 20_000
    """environment transitions (summed over the parallel worlds) of Phase I, per team"""
    phase2_steps: int = 20_000
    """environment transitions of Phase II"""
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
    tau: float = 0.01
    """Polyak rate of the target networks"""
    learning_rate: float = 0.01
    """Adam learning rate of actors and critics (paper: 0.01); with --phase1-checkpoint, the Phase II rate"""
    batch_size: int = 1024
    """minibatch size of every update (paper: 1024)"""
    learning_starts: int = 2048
    """transitions collected before the first update"""
    update_every: int = 1
    """one gradient update of every agent per this many batched environment steps"""
    max_grad_norm: float = 0.5
    """gradient clipping of each network (original MADDPG)"""
    start_e: float = 1.0
    """epsilon-greedy: exploration rate at the start of Phase I"""
    end_e: float = 0.1
    """epsilon-greedy: exploration rate after the decay, kept through Phase II"""
    exploration_fraction: float = 0.5
    """fraction of Phase I over which epsilon decays linearly"""
    phase2_actor_delay: int = 0
    """beyond the paper: the first N Phase II updates train only the critics (a warm-up against the post-DVM drop)"""
    dvm_iterations: int = 2048
    """iterations of distillation and of value matching (paper: 2048)"""
    dvm_batch_size: int = 256
    """samples drawn from each source agent's buffer per DVM iteration (the paper does not say)"""
    dvm_learning_rate: float = 1e-3
    """Adam learning rate of the distilled actor and the value-matched critic"""
    temperature: float = 1.0
    """softmax temperature tau that turns actor logits into action distributions (Eq. 3)"""
    vm_permutations: int = 0
    """beyond the paper: K agent permutations drawn per sample, scaled by n!/K (unbiased Eq. 6); 0 = all n!"""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16: forward and backward passes in bfloat16 autocast (updates, DVM step); weights, Adam, buffer stay fp32"""
    eval_every: int = 1000
    """evaluate every this many environment transitions"""
    eval_episodes: int = 30
    """evaluation episodes (run as parallel worlds) per evaluation"""

    # What sweeps (benchmark/run.py) set per run
    threads: int = 0
    """torch CPU threads (0: torch's default); benchmarks running jobs side by side use 1"""
    runs_dir: str = "runs"
    """folder that receives the run's TensorBoard logs and checkpoints"""
    run_name: Optional[str] = None
    """the run's folder in `runs_dir`; None: {domain}{n_agents}__{exp_name}__{seed}__{dvm_mode}__{unix time}"""
    phase1_checkpoint: Optional[str] = None
    """load this Phase I checkpoint and skip Phase I (the four modes then branch from one Phase I)"""
    dvm_checkpoint: Optional[str] = None
    """with --phase1-checkpoint: take the DVM step from an earlier run's dvm.pt made from that Phase I and settings"""
    log_every: int = 100
    """write losses to TensorBoard every this many updates"""


def make_env(args, num_envs, phase, task=None):
    """`num_envs` worlds of Phase `phase` stepped together (push box: Phase I is Task `task`, 1 or 2, one per team;
    Phase II is Task III). The one seam to another world: replace this function, and no other line. A world is
    - a batch with attributes `num_envs`, `horizon` (the episode length), `single_observation_space` (one agent's
      observation, a Box of shape (obs_dim,)) and `single_action_space` (one agent's: Discrete(n), actions 0..n-1);
    - `reset(seed=None)` -> the observations alone (no info dict), float32, (num_envs, n_agents, obs_dim);
    - `step(actions)`, actions (num_envs, n_agents) -> (obs, reward, terminated, truncated, info): one team reward
      per world, (num_envs,); no termination (every TD target bootstraps); every world truncated together at the
      horizon, (num_envs,); no autoreset (the script calls reset);
    - homogeneous agents, with the same observation size and action space in Phase I and Phase II;
    - swap-consistent, for value matching (Eqs. 4-6) to mean anything: when two agents swap states their observations
      swap exactly and no other agent's changes (particle_envs.swap_consistency_errors checks a world).
    check_env tests all but the last on two worlds of each phase before any work; videos need the world's own
    record_moment (particle_envs'), without which --capture-video records nothing."""
    import particle_envs  # (here alone: a copy of this script with its own make_env needs no particle_envs)

    if args.n_agents not in (particle_envs.SPREAD_N_AGENTS if args.domain == "spread" else [2]):
        supported = "2 to 8" if args.domain == "spread" else "2 only"
        raise SystemExit(f"error: {args.domain} supports --n-agents {supported}, got {args.n_agents}")

    if args.domain == "spread":
        return particle_envs.make("spread", num_envs=num_envs, n_agents=args.n_agents, phase=phase,
                                  horizon=args.horizon)
    return particle_envs.make("push_box", num_envs=num_envs, n_agents=args.n_agents, task=task if phase == 1 else 3,
                              horizon=args.horizon, box_rule=args.box_rule, box_mass=args.box_mass)


def check_env(args):
    """make_env's contract on one reset and one episode of two worlds per phase (and push-box task), before any work:
    a breach is one line naming what was expected and what came, not an error deep in numpy or torch later."""
    spaces = []
    for phase, task in [(1, 1), (2, None)] + [(1, 2)] * (args.domain == "push_box"):
        env = make_env(args, 2, phase=phase, task=task)

        def expect(ok, what, came):
            if not ok:
                raise SystemExit(f"error: make_env(args, 2, phase={phase}, task={task}): expected {what}, got {came}")

        needs = ("num_envs", "horizon", "single_observation_space", "single_action_space", "reset", "step")
        missing = [a for a in needs if not hasattr(env, a)]
        expect(not missing, "a batch of worlds with num_envs, horizon, single_observation_space, single_action_space, "
                            "reset and step", f"no {', '.join(missing)}")
        act, dim = env.single_action_space, env.single_observation_space.shape
        expect(isinstance(getattr(act, "n", None), (int, np.integer)) and getattr(act, "start", 0) == 0,
               "a Discrete(n) action space of actions 0..n-1", act)
        expect(env.num_envs == 2 and len(dim) == 1, "num_envs 2 and a flat observation", (env.num_envs, dim))
        spaces.append((dim, act))
        expect(spaces[-1] == spaces[0], "the same observation size and action space in every phase", spaces)
        shape = (2, args.n_agents, dim[0])
        obs = env.reset(seed=0)
        expect(isinstance(obs, np.ndarray), "reset() -> the observations alone (no info)", type(obs).__name__)
        for t in range(1, env.horizon + 1):
            expect(obs.dtype == np.float32 and obs.shape == shape, f"float32 observations {shape}",
                   f"{obs.dtype} {obs.shape}")
            out = env.step(np.zeros((2, args.n_agents), np.int64))
            expect(isinstance(out, tuple) and len(out) == 5, "step() -> (obs, reward, terminated, truncated, info)",
                   type(out).__name__)
            obs, reward, terminated, truncated, _ = out
            expect(np.shape(reward) == (2,), "one team reward per world, (2,)", f"shape {np.shape(reward)}")
            expect(not np.any(terminated), "no termination (the TD targets bootstrap)", f"{terminated} at step {t}")
            expect(np.shape(truncated) == (2,) and np.all(truncated == (t == env.horizon)),
                   f"every world truncated together at the horizon {env.horizon}", f"{truncated} at step {t}")
    if args.capture_video and not hasattr(env, "record_moment"):
        print("--capture-video: this world has no record_moment to draw with; the run records no videos", flush=True)


class Actor(nn.Module):
    """Decentralized actor: agent i's observation -> logits over the discrete actions."""

    def __init__(self, obs_dim, n_actions, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc_logits = nn.Linear(hidden_dim, n_actions)

    def forward(self, obs):
        x = F.relu(self.fc1(obs))
        x = F.relu(self.fc2(x))
        return self.fc_logits(x).float()  # (fp32 under --precision bf16 too, as every network's output)


class Critic(nn.Module):
    """Centralized critic Q^i(o^1..o^n, a^1..a^n) (Eq. 2): joint observation and one-hot joint action -> value."""

    def __init__(self, n_agents, obs_dim, n_actions, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(n_agents * (obs_dim + n_actions), hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, 1)

    def forward(self, obs, actions):
        # obs (B, n, obs_dim), actions (B, n, n_actions); agent blocks in agent order, observations first
        x = torch.cat([obs.flatten(1), actions.flatten(1)], dim=1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x).squeeze(-1).float()


class ReplayBuffer:
    """Preallocated joint transitions, one row per (world, step): obs, actions, team reward, next obs."""

    def __init__(self, size, n_agents, obs_dim, device):
        self.size, self.pos, self.full = size, 0, False
        self.obs = torch.zeros((size, n_agents, obs_dim), device=device)
        self.next_obs = torch.zeros((size, n_agents, obs_dim), device=device)
        self.actions = torch.zeros((size, n_agents), dtype=torch.long, device=device)
        self.rewards = torch.zeros(size, device=device)

    def add(self, obs, actions, rewards, next_obs):
        rows = (self.pos + torch.arange(len(obs))) % self.size
        self.obs[rows] = torch.as_tensor(obs, device=self.obs.device)
        self.next_obs[rows] = torch.as_tensor(next_obs, device=self.obs.device)
        self.actions[rows] = torch.as_tensor(actions, device=self.obs.device)
        self.rewards[rows] = torch.as_tensor(rewards, dtype=torch.float32, device=self.obs.device)
        self.full = self.full or self.pos + len(obs) >= self.size
        self.pos = (self.pos + len(obs)) % self.size

    def __len__(self):
        return self.size if self.full else self.pos

    def sample(self, batch_size):
        idx = torch.randint(0, len(self), (batch_size,), device=self.obs.device)
        return self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx]

    def state_dict(self):  # copies of the filled rows: a slice would make torch.save write the whole storage
        rows = {key: getattr(self, key)[:len(self)].cpu().clone() for key in ("obs", "next_obs", "actions", "rewards")}
        return dict(pos=self.pos, full=self.full, **rows)

    def load_state_dict(self, state):
        self.pos, self.full = state["pos"], state["full"]
        for key in ("obs", "next_obs", "actions", "rewards"):
            getattr(self, key)[:len(state[key])] = state[key].to(self.obs.device)


class Team:
    """n agents: actors, centralized critics, their targets, one Adam per role, and the team's replay buffer.

    One Adam over all actors (and one over all critics) equals one Adam per agent: Adam's statistics are
    per parameter and each agent's loss reaches only its own networks.
    """

    def __init__(self, args, obs_dim, n_actions, device):
        n, h = args.n_agents, args.hidden_dim
        self.actors = nn.ModuleList([Actor(obs_dim, n_actions, h) for _ in range(n)]).to(device)
        self.critics = nn.ModuleList([Critic(n, obs_dim, n_actions, h) for _ in range(n)]).to(device)
        self.target_actors = nn.ModuleList([Actor(obs_dim, n_actions, h) for _ in range(n)]).to(device)
        self.target_critics = nn.ModuleList([Critic(n, obs_dim, n_actions, h) for _ in range(n)]).to(device)
        self.target_actors.load_state_dict(self.actors.state_dict())
        self.target_critics.load_state_dict(self.critics.state_dict())
        self.actor_optimizer = torch.optim.Adam(self.actors.parameters(), lr=args.learning_rate)
        self.q_optimizer = torch.optim.Adam(self.critics.parameters(), lr=args.learning_rate)
        self.buffer = ReplayBuffer(args.buffer_size, n, obs_dim, device)

    def state_dict(self):
        return {key: getattr(self, key).state_dict() for key in
                ("actors", "critics", "target_actors", "target_critics", "actor_optimizer", "q_optimizer", "buffer")}

    def load_state_dict(self, state):
        for key, value in state.items():
            getattr(self, key).load_state_dict(value)


@torch.no_grad()
def select_actions(actors, obs, epsilon, rng, device):
    """Greedy action of every agent, replaced by a uniformly random one of all n_actions with probability epsilon."""
    obs = torch.as_tensor(obs, device=device)
    logits = torch.stack([actor(obs[:, i]) for i, actor in enumerate(actors)], 1)
    greedy = logits.argmax(-1).cpu().numpy()
    if epsilon == 0.0:
        return greedy
    explore = rng.random(greedy.shape) < epsilon
    return np.where(explore, rng.integers(0, logits.shape[-1], greedy.shape), greedy)


@torch.no_grad()
def evaluate(actors, env, device, seed):
    """Mean return of one batch of greedy episodes, and the mean per push-box target (empty for spread)."""
    obs = env.reset(seed=seed)
    returns = np.zeros(env.num_envs)
    for _ in range(env.horizon):
        obs, reward, _, _, _ = env.step(select_actions(actors, obs, 0.0, None, device))
        returns += reward
    targets = getattr(env, "target_index", np.zeros(0))
    return returns.mean(), {k: returns[targets == k].mean() for k in np.unique(targets)}


def autocast(args, device):
    """--precision bf16: the networks' matrix products in bfloat16 (torch.autocast), in the updates and the DVM step;
    weights, Adam's states, targets and losses stay fp32 (every network returns fp32). fp32: a context doing nothing."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=args.precision == "bf16")


def maddpg_update(team, args, n_actions, update_actors=True):
    """One gradient step of every agent's critic (TD) and, unless update_actors is False (the first
    --phase2-actor-delay updates of Phase II), actor (deterministic policy gradient)."""
    n = args.n_agents
    obs, actions, rewards, next_obs = team.buffer.sample(args.batch_size)
    actions = F.one_hot(actions, n_actions).float()
    with autocast(args, obs.device):
        with torch.no_grad():  # straight-through Gumbel-softmax: one-hot forward, softmax gradient (original MADDPG)
            next_actions = torch.stack([F.gumbel_softmax(actor(next_obs[:, i]), hard=True)
                                        for i, actor in enumerate(team.target_actors)], 1)
            # Episodes end only by the time limit, a truncation, so every target bootstraps.
            q_target = [rewards + args.gamma * team.target_critics[i](next_obs, next_actions) for i in range(n)]
        qf_loss = sum(F.mse_loss(team.critics[i](obs, actions), q_target[i]) for i in range(n))
    team.q_optimizer.zero_grad()
    qf_loss.backward()
    for critic in team.critics:
        nn.utils.clip_grad_norm_(critic.parameters(), args.max_grad_norm)
    team.q_optimizer.step()

    actor_loss = torch.zeros((), device=obs.device)
    if update_actors:  # else a critic warm-up: actors and target actors keep what they entered Phase II with
        # Agent i's own action is replaced by its current policy; the others' come from the buffer (MADDPG).
        team.critics.requires_grad_(False)  # the actor loss needs gradients through the critics, not of them
        with autocast(args, obs.device):
            for i in range(n):
                logits = team.actors[i](obs[:, i])
                policy_actions = actions.clone()
                policy_actions[:, i] = F.gumbel_softmax(logits, hard=True)
                # logit penalty of the original MADDPG code keeps the logits, and so the softmax of Eq. (3), bounded
                actor_loss = actor_loss - team.critics[i](obs, policy_actions).mean() + 1e-3 * (logits**2).mean()
        team.actor_optimizer.zero_grad()
        actor_loss.backward()
        for actor in team.actors:
            nn.utils.clip_grad_norm_(actor.parameters(), args.max_grad_norm)
        team.actor_optimizer.step()
        team.critics.requires_grad_(True)

    targets = [(team.critics, team.target_critics)] + ([(team.actors, team.target_actors)] if update_actors else [])
    with torch.no_grad():  # Polyak averaging; in a critic warm-up the target actors stay too
        for net, target in targets:
            for param, target_param in zip(net.parameters(), target.parameters()):
                target_param.lerp_(param, args.tau)
    return qf_loss.detach(), actor_loss.detach()


# ---------------------------------------------------------------------------------------------------------
# DVM: distillation (Sec. III-A, Eq. 3), homogeneous value matching (Sec. III-B, Eq. 6) and the hard update.


def kl_divergence(source_logits, student_logits, temperature):
    """Eq. (3): KL(softmax(source / tau) || softmax(student / tau)), summed over actions, one value per row."""
    source_log_probs = F.log_softmax(source_logits / temperature, dim=-1)
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    return (source_log_probs.exp() * (source_log_probs - student_log_probs)).sum(-1)


def distill_actor(sources, args, obs_dim, n_actions, device):
    """A fresh actor pi0 trained to match every source agent's policy on that agent's own observations.

    sources: list of (actor, buffer, agent index). Only observations are sampled; the actions are the
    sources' own policies, queried now (Sec. III-A).
    """
    student = Actor(obs_dim, n_actions, args.hidden_dim).to(device)
    optimizer = torch.optim.Adam(student.parameters(), lr=args.dvm_learning_rate)
    losses = torch.zeros(args.dvm_iterations, device=device)
    for it in range(args.dvm_iterations):
        for actor, buffer, i in sources:
            obs = buffer.sample(args.dvm_batch_size)[0][:, i]
            with autocast(args, device):
                with torch.no_grad():
                    source_logits = actor(obs)
                loss = kl_divergence(source_logits, student(obs), args.temperature).mean()  # Eq. (3)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[it] += loss.detach() / len(sources)
    return student, losses


def sample_permutations(all_perms, batch_size, k):
    """k distinct permutations per sample, a uniformly random k-subset of the n! rows of all_perms for each of the
    batch_size samples (Floyd's algorithm, vectorized over the batch) -> (batch_size, k, n)."""
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


def value_matching_loss(student, obs, actions, q_source, perms, n_perms):
    """Eq. (6): sum over all n_perms = n! permutations X of (Q0(X) - Q^i(o, a))^2, averaged over the batch.

    perms (P, n): all n! of them, the exact sum; (B, P, n): P drawn per sample without replacement, whose sum times
    n!/P is an unbiased estimate of the exact one (--vm-permutations).
    """
    n_drawn = perms.shape[-2]
    q_student = student(*permute_agents(obs, actions, perms)).view(len(obs), n_drawn)
    return ((q_student - q_source[:, None]) ** 2).sum(1).mean() * (n_perms / n_drawn)


def match_values(sources, args, obs_dim, n_actions, device):
    """A fresh critic Q0 that gives every agent permutation of a sampled (o, a) the source critic's value.

    sources: list of (critic, buffer); each iteration takes one step per source, as in Algorithm 1.
    """
    student = Critic(args.n_agents, obs_dim, n_actions, args.hidden_dim).to(device)
    optimizer = torch.optim.Adam(student.parameters(), lr=args.dvm_learning_rate)
    all_perms = torch.tensor(list(itertools.permutations(range(args.n_agents))), device=device)
    losses = torch.zeros(args.dvm_iterations, device=device)
    for it in range(args.dvm_iterations):
        for critic, buffer in sources:
            obs, actions, _, _ = buffer.sample(args.dvm_batch_size)
            actions = F.one_hot(actions, n_actions).float()
            k = args.vm_permutations
            perms = sample_permutations(all_perms, len(obs), k) if k else all_perms
            with autocast(args, device):
                with torch.no_grad():
                    q_source = critic(obs, actions)
                loss = value_matching_loss(student, obs, actions, q_source, perms, len(all_perms))  # Eq. (6)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[it] += loss.detach() / len(sources)
        if (it + 1) % max(1, args.dvm_iterations // 8) == 0:  # the exact sum takes 47 min at 5 agents
            print(f"DVM step: value matching {it + 1}/{args.dvm_iterations} iterations, loss {losses[it]:.4g}",
                  flush=True)
    return student, losses


def train_students(teams, args, obs_dim, n_actions, device):
    """The DVM step's new networks per --dvm-mode: pi0 distilled from the source agents' actors (Eq. 3), Q0 matched
    to their critics (Eq. 6), or both, and their losses per iteration. Sources: every agent of the spread team; agent 1
    of each push-box team, each with its own buffer."""
    agents = range(args.n_agents) if len(teams) == 1 else [0]
    students, losses = {}, {}
    if args.dvm_mode in ("distill", "dvm"):
        students["pi0"], losses["kl"] = distill_actor([(t.actors[i], t.buffer, i) for t in teams for i in agents],
                                                      args, obs_dim, n_actions, device)
    if args.dvm_mode in ("vm", "dvm"):
        students["Q0"], losses["vm"] = match_values([(t.critics[i], t.buffer) for t in teams for i in agents],
                                                    args, obs_dim, n_actions, device)
    return students, losses


def hard_update(nets, source):
    """Every network in `nets` (agents' online and target networks) becomes a copy of `source`."""
    for net in nets:
        net.load_state_dict(source.state_dict())


def stop_if_diverged(where, global_step, writer, watched):
    """A NaN or infinite loss or parameter (watched: name -> tensor or network) stops the run before it is saved."""
    for name, value in watched.items():
        for key, t in (value.named_parameters(name) if isinstance(value, nn.Module) else [(name, value)]):
            if not torch.isfinite(t).all():
                writer.close()
                raise SystemExit(f"error: diverged in {where} at global step {global_step}: {key} is "
                                 f"{'nan' if t.isnan().any() else 'infinite'} (a lower --learning-rate may help)")


# ---------------------------------------------------------------------------------------------------------
# Checkpoints: plain data (torch.load(weights_only=True) runs no code), written atomically, checked when loaded.
KINDS = {"phase1": "Phase I", "dvm": "DVM step", "phase2": "Phase II"}
# what a Phase I checkpoint must share with the run that loads it, and a DVM step reused with --dvm-checkpoint
PHASE1_KEYS = ("domain", "n_agents", "box_rule", "box_mass", "seed", "hidden_dim", "horizon", "buffer_size", "num_envs",
               "phase1_steps")
DVM_KEYS = PHASE1_KEYS + ("dvm_mode", "dvm_iterations", "dvm_batch_size", "dvm_learning_rate", "temperature",
                          "vm_permutations", "precision")


def save_checkpoint(path, kind, args, global_step, rng, **contents):
    kind_, keys, pos, has_gauss, gauss = np.random.get_state()  # its ndarray as a tensor: plain data
    rng_states = dict(python=random.getstate(), numpy=(kind_, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                      gauss), torch=torch.get_rng_state(), explore=rng.bit_generator.state,
                      cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])
    tmp = f"{path}.tmp{os.getpid()}"
    try:  # a crash or a full disk never leaves half a checkpoint
        torch.save(dict(algorithm="maddpg_dvm", kind=kind, config=asdict(args), global_step=global_step, rng=rng_states,
                        **contents), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path, kind, args, keys):
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (missing, truncated, or objects whose unpickling could run code)
        raise SystemExit(f"error: cannot read {path!r} as a checkpoint ({type(e).__name__}: it does not exist, is "
                         "damaged, or holds more than plain data)") from None
    found = (checkpoint.get("algorithm"), checkpoint.get("kind")) if isinstance(checkpoint, dict) else (None, None)
    if found != ("maddpg_dvm", kind):
        raise SystemExit(f"error: {path!r} is not a maddpg_dvm {KINDS[kind]} checkpoint (it holds: "
                         f"{found[0] or 'not a checkpoint of these scripts'}, {KINDS.get(found[1], 'no kind')})")
    mismatched = [f"{key}={checkpoint['config'].get(key)} (this run: {getattr(args, key)})" for key in keys
                  if checkpoint["config"].get(key) != getattr(args, key)]
    if mismatched:
        raise SystemExit(f"error: {KINDS[kind]} checkpoint {path!r} was made with another configuration: "
                         + ", ".join(mismatched))
    return checkpoint


def set_rng_states(states, rng):
    """Every random generator back to where a checkpoint saved it: the run goes on as if it had not stopped."""
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    rng.bit_generator.state = states["explore"]
    if states.get("cuda") and torch.cuda.is_available():  # a CPU-only run saved none
        torch.cuda.set_rng_state_all(states["cuda"])


def sha256_of(path):  # what names the Phase I a dvm.pt was made from
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def check_args(args):
    """Every flag's range, before any work: one line and a non-zero exit, nothing written."""
    a, n, flag = args, args.n_agents, lambda key: f"--{key.replace('_', '-')} must"
    n_perms = math.factorial(n) if 2 <= n <= 10 else 0
    ne, ue, steps = max(a.num_envs, 1), max(a.update_every, 1), a.phase1_steps // max(a.num_envs, 1)
    # Phase I's first update follows the first step, a multiple of --update-every, after which the buffer holds
    # --learning-starts transitions (--num-envs more after each step)
    first_update = math.ceil(max(0, math.ceil(a.learning_starts / ne) - 1) / ue) * ue
    rules = {
        f"--n-agents must be 2 to 10 (value matching lists the n! agent permutations), got {n}": 2 <= n <= 10,
        **{f"{flag(k)} be positive, got {getattr(a, k)}": getattr(a, k) >= 1 for k in (
            "num_envs", "horizon", "hidden_dim", "batch_size", "dvm_batch_size", "eval_every", "eval_episodes",
            "update_every", "buffer_size", "log_every")},
        **{f"{flag(k)} not be negative, got {getattr(a, k)}": getattr(a, k) >= 0 for k in (
            "seed", "threads", "phase1_steps", "phase2_steps", "learning_starts", "phase2_actor_delay")},
        **{f"{flag(k)} be positive and finite, got {getattr(a, k)}": 0 < getattr(a, k) < math.inf for k in (
            "box_mass", "learning_rate", "dvm_learning_rate", "temperature", "max_grad_norm")},  # (NaN fails too)
        **{f"{flag(k)} be in (0, 1], got {getattr(a, k)}": 0 < getattr(a, k) <= 1 for k in ("gamma", "tau")},
        **{f"{flag(k)} be in [0, 1], got {getattr(a, k)}": 0 <= getattr(a, k) <= 1 for k in (
            "start_e", "end_e", "exploration_fraction")},
        f"--seed must be below 2**32 = 4294967296 (numpy's seeds), got {a.seed}": a.seed < 2**32,
        f"--threads {a.threads} is more than this machine's {os.cpu_count()} CPUs": a.threads <= (os.cpu_count() or 1),
        f"--vm-permutations must be in [0, {n_perms}] (the {n}! agent permutations; 0: all of them), got "
        f"{a.vm_permutations}": 0 <= a.vm_permutations <= n_perms,
        # the exact sum (or all n! drawn, by a sampler quadratic in K) takes days from 7 agents on
        f"the exact value matching sum over all {n_perms} permutations of {n} agents cannot finish in reasonable time: "
        "sample them with --vm-permutations K (for example 8)": a.dvm_mode in ("none", "distill") or n < 7
                                                                or 0 < a.vm_permutations < n_perms,
        f"--dvm-mode {a.dvm_mode} needs a DVM iteration or more, got --dvm-iterations {a.dvm_iterations}":
            a.dvm_mode == "none" or a.dvm_iterations >= 1,
        f"Phase I would make no gradient update, and the DVM step would distil untrained networks: its {steps} steps "
        f"of the --num-envs {a.num_envs} worlds collect {steps * a.num_envs} transitions (--phase1-steps "
        f"{a.phase1_steps}) into --buffer-size {a.buffer_size}; an update follows each step whose index is a multiple "
        f"of --update-every {a.update_every} once it holds --learning-starts {a.learning_starts}":
            a.phase1_checkpoint or (a.buffer_size >= a.learning_starts and first_update < steps),
        f"--phase2-actor-delay {a.phase2_actor_delay} is longer than Phase II, which has "
        f"{len(range(0, a.phase2_steps // ne, ue))} gradient updates":
            a.phase2_actor_delay <= len(range(0, a.phase2_steps // ne, ue)),
        "--dvm-checkpoint needs the --phase1-checkpoint it was made from": a.phase1_checkpoint or not a.dvm_checkpoint,
    }
    for message, ok in rules.items():
        if not ok:
            raise SystemExit(f"error: {message}")


def make_run_dir(args, run_name):
    """The run's folder, refused if it holds another run's files: a run never writes into another's folder."""
    run_dir = os.path.join(args.runs_dir, run_name)
    taken = sorted(f for f in (os.listdir(run_dir) if os.path.isdir(run_dir) else ())
                   if f.startswith("events.out.tfevents.") or ".pt" in f or f == "videos")
    if taken:
        raise SystemExit(f"error: the run folder {run_dir!r} holds another run's files ({', '.join(taken[:3])})")
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"error: cannot write the run folder {run_dir!r}: {e.strerror}") from None
    return run_dir


@torch.no_grad()
def capture_videos(actor_teams, args, device, moment, video_dir, seed):
    """--capture-video: one greedy episode per configuration as a GIF, drawn by the world's own record_moment."""
    policies = [lambda obs, actors=actors: select_actions(actors, obs, 0.0, None, device) for actors in actor_teams]
    world = make_env(args, 1, phase=1, task=1)
    record = getattr(world, "record_moment", lambda *_: [])  # (check_env said so if it has none)
    return record(functools.partial(make_env, args), policies, moment, video_dir, seed)


if __name__ == "__main__":
    args = tyro.cli(Args)
    check_args(args)
    check_env(args)
    phase1 = load_checkpoint(args.phase1_checkpoint, "phase1", args, PHASE1_KEYS) if args.phase1_checkpoint else None
    saved_dvm = load_checkpoint(args.dvm_checkpoint, "dvm", args, DVM_KEYS) if args.dvm_checkpoint else None
    phase1_sha256 = sha256_of(args.phase1_checkpoint) if phase1 else None
    if saved_dvm and saved_dvm.get("phase1_sha256") != phase1_sha256:
        raise SystemExit(f"error: DVM checkpoint {args.dvm_checkpoint!r} was made from another Phase I than "
                         f"{args.phase1_checkpoint!r}")
    run_name = args.run_name or f"{args.domain}{args.n_agents}__{args.exp_name}__{args.seed}__{args.dvm_mode}__" \
                                f"{int(time.time())}"
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
    rng = np.random.default_rng(args.seed)  # exploration noise
    cpu_flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    if args.precision == "bf16" and device.type == "cpu" and not {"amx_bf16", "avx512_bf16"} & set(cpu_flags):
        print("--precision bf16: this CPU has no bf16 matrix instructions (amx_bf16, avx512_bf16): slower than fp32")

    # Phase I: one team (spread) or two teams on Tasks I and II (push box), each with its own worlds
    n_teams = 2 if args.domain == "push_box" else 1
    envs = [make_env(args, args.num_envs, phase=1, task=k + 1) for k in range(n_teams)]
    eval_envs = [make_env(args, args.eval_episodes, phase=1, task=k + 1) for k in range(n_teams)]
    obs_dim, n_actions = envs[0].single_observation_space.shape[0], envs[0].single_action_space.n
    teams = [Team(args, obs_dim, n_actions, device) for _ in range(n_teams)]
    start_time, summary, video_dir = time.time(), {}, os.path.join(run_dir, "videos")

    def run_phase(phase, teams, envs, eval_envs, num_steps, global_step, learning=True):
        """Collect with epsilon-greedy actors, update every agent, evaluate. Returns the global step reached and the
        phase's first and last evaluation returns."""
        obs = [env.reset(seed=args.seed + 1000 * phase + k) for k, env in enumerate(envs)]
        episode_returns = [np.zeros(env.num_envs) for env in envs]
        phase_start, phase_time, evals, losses, updates = global_step, time.time(), [], [], 0

        def watched():  # what stop_if_diverged checks: the last update's losses, then every network
            return {**{f"losses/{name}{' (team B)' * k}": loss for k, pair in enumerate(losses)
                       for name, loss in zip(("qf_loss", "actor_loss"), pair)},
                    **{f"{key}{' (team B)' * k}": getattr(t, key) for k, t in enumerate(teams)
                       for key in ("actors", "critics", "target_actors", "target_critics")}}

        for step in range(num_steps // args.num_envs + 1):
            if step * args.num_envs % args.eval_every < args.num_envs or step == num_steps // args.num_envs:
                # the last evaluation comes right before the phase's checkpoint: a diverged run is never saved
                stop_if_diverged(f"phase {phase}", global_step, writer, watched())
                results = [evaluate(t.actors, env, device, seed=args.seed + 7 + global_step)
                           for t, env in zip(teams, eval_envs)]
                evals.append(float(np.mean([r[0] for r in results])))
                writer.add_scalar("eval/return", evals[-1], global_step)
                writer.add_scalar("charts/phase", phase, global_step)
                for k, r in enumerate(results if len(results) > 1 else []):
                    writer.add_scalar(f"eval/return_team{k}", r[0], global_step)
                for target, value in results[0][1].items() if phase == 2 else ():
                    writer.add_scalar(f"eval/return_target{target}", value, global_step)
                sps = int((global_step - phase_start) / max(time.time() - phase_time, 1e-9))
                print(f"phase {phase}  global_step {global_step}  SPS {sps}  eval/return {evals[-1]:.2f}", flush=True)
                if step == num_steps // args.num_envs:
                    return global_step, evals[0], evals[-1]

            # ALGO LOGIC: epsilon-greedy collection, decaying over Phase I, end_e in Phase II
            decay = min(1.0, step * args.num_envs / max(1.0, args.exploration_fraction * args.phase1_steps))
            epsilon = args.start_e + (args.end_e - args.start_e) * decay if phase == 1 else args.end_e
            for k, (team, env) in enumerate(zip(teams, envs)):
                actions = select_actions(team.actors, obs[k], epsilon if learning else 0.0, rng, device)
                next_obs, rewards, _, truncated, _ = env.step(actions)
                if learning:
                    team.buffer.add(obs[k], actions, rewards, next_obs)
                episode_returns[k] += rewards
                if truncated.all():  # every world ends together at the horizon
                    writer.add_scalar("charts/episodic_return", episode_returns[k].mean(), global_step)
                    episode_returns[k][:] = 0.0
                    next_obs = env.reset()
                obs[k] = next_obs
            global_step += args.num_envs

            # ALGO LOGIC: training, once the buffer holds --learning-starts transitions
            if learning and len(teams[0].buffer) >= args.learning_starts and step % args.update_every == 0:
                warm_up = phase == 2 and updates < args.phase2_actor_delay  # critics only, --phase2-actor-delay
                losses = [maddpg_update(team, args, n_actions, not warm_up) for team in teams]  # detached: no sync
                updates += 1
                if updates % args.log_every == 0:
                    writer.add_scalar("losses/qf_loss", losses[-1][0].item(), global_step)
                    writer.add_scalar("losses/actor_loss", losses[-1][1].item(), global_step)
                    writer.add_scalar("charts/SPS", int((global_step - phase_start) / (time.time() - phase_time)),
                                      global_step)

    # Phase I (or its checkpoint)
    if phase1 is None:
        global_step, _, summary["end of Phase I"] = run_phase(1, teams, envs, eval_envs, args.phase1_steps, 0)
        save_checkpoint(os.path.join(run_dir, "phase1.pt"), "phase1", args, global_step, rng,
                        teams=[team.state_dict() for team in teams], eval_return=summary["end of Phase I"])
        phase1_sha256 = sha256_of(os.path.join(run_dir, "phase1.pt"))
    else:
        for team, state in zip(teams, phase1["teams"]):
            team.load_state_dict(state)
            for group in team.actor_optimizer.param_groups + team.q_optimizer.param_groups:
                group["lr"] = args.learning_rate  # Phase II runs at this run's --learning-rate
        set_rng_states(phase1["rng"], rng)
        global_step, summary["end of Phase I"] = phase1["global_step"], phase1["eval_return"]
        print(f"loaded Phase I from {args.phase1_checkpoint} (global_step {global_step})", flush=True)
    if args.capture_video:
        capture_videos([t.actors for t in teams], args, device, "phase1_end", video_dir, args.seed)

    # ALGO LOGIC: the DVM step (Algorithm 1): train pi0 (Eq. 3) and Q0 (Eq. 6), then every agent becomes a copy
    team = teams[0]  # the team that goes on into Phase II (push box under "none": team A)
    dvm_start = time.time()
    if saved_dvm is None:
        students, dvm_losses = train_students(teams, args, obs_dim, n_actions, device)
    else:  # --dvm-checkpoint: an earlier run's step, from this Phase I with these settings
        students = {name: Actor(obs_dim, n_actions, args.hidden_dim) if name == "pi0" else
                    Critic(args.n_agents, obs_dim, n_actions, args.hidden_dim) for name in saved_dvm["students"]}
        for name, net in students.items():
            net.load_state_dict(saved_dvm["students"][name])
            net.to(device)
        dvm_losses = saved_dvm["losses"]
    stop_if_diverged("the DVM step", global_step, writer,
                     {**{f"dvm/{name}_loss": losses for name, losses in dvm_losses.items()}, **students})
    if "pi0" in students:  # hard update: every actor and target actor becomes the distilled actor, with fresh Adam
        hard_update(list(team.actors) + list(team.target_actors), students["pi0"])
        team.actor_optimizer = torch.optim.Adam(team.actors.parameters(), lr=args.learning_rate)
    if "Q0" in students:  # hard update: every critic and target critic becomes the value-matched critic
        hard_update(list(team.critics) + list(team.target_critics), students["Q0"])
        team.q_optimizer = torch.optim.Adam(team.critics.parameters(), lr=args.learning_rate)

    # TRY NOT TO MODIFY: log and save the step (its students and losses, for --dvm-checkpoint; Fig. 8 draws the team)
    for name, losses in dvm_losses.items():
        for it, loss in enumerate(losses.tolist()):
            writer.add_scalar(f"dvm/{name}_loss", loss, it)
    if saved_dvm is not None:
        set_rng_states(saved_dvm["rng"], rng)  # where the earlier run's DVM step left them: the same Phase II follows
        print(f"DVM step ({args.dvm_mode}): loaded from {args.dvm_checkpoint}", flush=True)
    elif args.dvm_mode != "none":
        writer.add_scalar("dvm/seconds", time.time() - dvm_start, 0)
        print(f"DVM step ({args.dvm_mode}): {args.dvm_iterations} iterations done in {time.time() - dvm_start:.0f} s",
              flush=True)
    save_checkpoint(os.path.join(run_dir, "dvm.pt"), "dvm", args, global_step, rng,
                    teams=[dict(actors=team.actors.state_dict(), critics=team.critics.state_dict())],
                    students={name: net.state_dict() for name, net in students.items()}, losses=dvm_losses,
                    phase1_sha256=phase1_sha256)
    if args.capture_video:
        capture_videos([team.actors], args, device, "after_dvm", video_dir, args.seed)

    # Phase II
    env, eval_env = make_env(args, args.num_envs, phase=2), make_env(args, args.eval_episodes, phase=2)
    global_step, summary["right after DVM"], summary["end of Phase II"] = run_phase(
        2, [team], [env], [eval_env], args.phase2_steps, global_step, learning=args.phase2_learning)
    save_checkpoint(os.path.join(run_dir, "phase2.pt"), "phase2", args, global_step, rng,
                    teams=[team.state_dict()], eval_return=summary["end of Phase II"])
    if args.capture_video:
        capture_videos([team.actors], args, device, "phase2_end", video_dir, args.seed)
    writer.close()

    print(f"\n{args.domain} n={args.n_agents}, {args.dvm_mode}, seed {args.seed}: {time.time() - start_time:.0f} s")
    for key, value in summary.items():
        print(f"  eval/return {key:<16} {value:9.2f}")
    print(f"TensorBoard logs and checkpoints: {run_dir}  (tensorboard --logdir {args.runs_dir})")
