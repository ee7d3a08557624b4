# Multiagent Soft Actor-Critic (MA-SAC, continuous actions) with policy distillation and value matching (DVM).
# Docs and the list of implementation choices: README.md, section "masac_dvm.py".
# Paper: Wadhwania et al., "Policy Distillation and Value Matching in Multiagent Reinforcement Learning".
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
from PIL import Image, ImageDraw, ImageFont
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
    """the run's folder name inside `runs_dir` (default: domain__exp_name__seed__dvm_mode__time)"""
    capture_video: bool = False
    """if toggled, draw one mean-action episode per configuration as a GIF at the end of Phase I, right after the DVM
    step and at the end of Phase II (the run's `videos` folder)"""

    # Algorithm specific arguments
    domain: Literal["spread", "push_box"] = "spread"
    """the particle world: spread (Fig. 5) or push_box"""
    n_agents: int = 2
    """number of agents (spread: 2, 3 or 4; push_box: 2)"""
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
DVM_KEYS = CHECKPOINT_KEYS + ("dvm_mode", "dvm_iterations", "dvm_batch_size", "dvm_learning_rate")


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
        return dict(pos=self.pos, full=self.full, obs=self.obs[:n].cpu(), next_obs=self.next_obs[:n].cpu(),
                    actions=self.actions[:n].cpu(), rewards=self.rewards[:n].cpu())

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


# The moments of a run that --capture-video draws, by file-name prefix (capture_videos).
MOMENT_TITLES = {"phase1_end": "end of Phase I", "after_dvm": "right after DVM", "phase2_end": "end of Phase II"}
TARGET_NAMES = ("left", "right", "up")  # particle_envs.BOX_TARGETS: Tasks I and II, and Task III's new one
VIDEO_HEADER = 34  # pixels of text above the world's picture


def video_frame(image, lines):
    """One GIF frame: the world's picture below a white strip with two lines of text."""
    frame = Image.new("RGB", (image.shape[1], image.shape[0] + VIDEO_HEADER), "white")
    frame.paste(Image.fromarray(image), (0, VIDEO_HEADER))
    font = ImageFont.load_default(size=12)  # Pillow's own font: no font file needed
    ImageDraw.Draw(frame).multiline_text((4, 2), "\n".join(lines), fill=(0, 0, 0), font=font, spacing=3)
    return frame


@torch.no_grad()
def capture_videos(actor_teams, args, device, moment, video_dir, seed):
    """Draw one mean-action episode per configuration as an animated GIF, `video_dir/MOMENT__CONFIGURATION.gif`.

    actor_teams: one list of actors per team. Spread: the Phase I and the Phase II start quadrants
    (phase1_quadrants, phase2_quadrants), played by the first team. Push box, moment "phase1_end": team A on Task I
    and team B on Task II (teamA_task1, teamB_task2); later moments: Task III once with each of its targets, forced
    per world (task3_left, task3_right, task3_up). Every frame (the start and each of the horizon steps) shows the
    agents' earlier positions as a trail, the step and the return so far. Returns the paths written.
    """
    if args.domain == "spread":
        episodes = [(actor_teams[0], make_env(args, 1, phase=p), None,
                     [(f"phase{p}_quadrants", f"Phase {'I' * p} start quadrants")]) for p in (1, 2)]
    elif moment == "phase1_end":
        episodes = [(actors, make_env(args, 1, phase=1, task=k + 1), None,
                     [(f"team{'AB'[k]}_task{k + 1}", f"team {'AB'[k]} on Task {'I' * (k + 1)}")])
                    for k, actors in enumerate(actor_teams)]
    else:
        episodes = [(actor_teams[0], make_env(args, 3, phase=2), np.arange(3),
                     [(f"task3_{name}", f"Task III, target {name}") for name in TARGET_NAMES])]
    os.makedirs(video_dir, exist_ok=True)
    paths = []
    for actors, env, targets, names in episodes:
        obs = env.reset(seed=seed)
        if targets is not None:  # one world per Task III target, whatever the reset drew
            env.target_index[:] = targets
            env.target = particle_envs.BOX_TARGETS[env.target_index]
            obs = env.observe()
        returns, trail = np.zeros(env.num_envs), []  # trail: where everything was at the earlier steps
        frames = [[] for _ in names]
        for t in range(env.horizon + 1):
            if t > 0:
                trail.append(env.movers())
                obs, reward, _, _, _ = env.step(select_actions(actors, obs, True, None, device))
                returns += reward
            for w, (_, title) in enumerate(names):
                image = env.render(w, trail=np.stack(trail)[:, w] if trail else None)
                frames[w].append(video_frame(image, [f"{MOMENT_TITLES[moment]}  |  {title}",
                                                     f"step {t}/{env.horizon}   return {returns[w]:.2f}"]))
        for w, (name, _) in enumerate(names):
            path = os.path.join(video_dir, f"{moment}__{name}.gif")
            # 100 ms a frame: the worlds' dt, so the GIF plays in real time
            frames[w][0].save(path, save_all=True, append_images=frames[w][1:], duration=100, loop=0)
            paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------------------
# Divergence checks: a NaN or infinite loss or parameter stops the run before it writes a checkpoint.


def first_non_finite(named_tensors):
    """(name, "nan" or "infinite") of the first tensor with a non-finite entry, or None.

    One stacked isfinite and one device-to-host copy for all tensors, so a check costs one sync, not one per loss.
    """
    if not named_tensors:
        return None
    names, tensors = list(named_tensors), list(named_tensors.values())
    finite = torch.stack([torch.isfinite(t).all() for t in tensors])
    if bool(finite.all()):
        return None
    k = int((~finite).nonzero()[0])
    return names[k], "nan" if bool(torch.isnan(tensors[k]).any()) else "infinite"


def team_losses(losses):
    """Name the losses that masac_update returned for each team: {"losses/qf_loss": ..., ...}."""
    named = {}
    for k, (qf_loss, vf_loss, actor_loss) in enumerate(losses):
        team = f" (team {'AB'[k]})" if len(losses) > 1 else ""
        named.update({f"losses/qf_loss{team}": qf_loss, f"losses/vf_loss{team}": vf_loss,
                      f"losses/actor_loss{team}": actor_loss})
    return named


def team_parameters(teams):
    """Every network parameter of every team by name, e.g. "qfs.0.fc1.weight"."""
    named = {}
    for k, team in enumerate(teams):
        prefix = f"team {'AB'[k]} " if len(teams) > 1 else ""
        for key in ("actors", "qfs", "vfs", "target_vfs"):
            named.update({f"{prefix}{key}.{name}": p for name, p in getattr(team, key).named_parameters()})
    return named


def student_parameters(**students):
    """The parameters of the DVM step's new networks by name, e.g. "pi0 fc1.weight"."""
    return {f"{key} {name}": p for key, net in students.items() for name, p in net.named_parameters()}


def format_duration(seconds):
    """1h05m, 3m20s or 45s."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def time_left(elapsed, done_steps, steps_ahead):
    """"~3m20s": the time `steps_ahead` more steps take at the pace of `done_steps` in `elapsed` s ("?" before any)."""
    if done_steps <= 0:
        return "?"
    return "~" + format_duration(steps_ahead * elapsed / done_steps)


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


def permute_agents(obs, actions, perms):
    """All agent permutations of a joint sample, observation and action blocks moved together.

    obs (B, n, d), actions (B, n, k), perms (P, n) -> (B * P, n, d), (B * P, n, k); row b * P + p is sample b
    under permutation p.
    """
    return obs[:, perms].flatten(0, 1), actions[:, perms].flatten(0, 1)


def value_matching_loss(student_values, source_values):
    """Eq. (6): sum over all n! permutations X of (student(X) - source(o))^2, averaged over the batch.

    student_values (B, P), one column per permutation; source_values (B,).
    """
    return ((student_values - source_values[:, None]) ** 2).sum(1).mean()


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
    perms = torch.tensor(list(itertools.permutations(range(args.n_agents))), device=device)
    losses = torch.zeros(args.dvm_iterations, device=device)
    for it in range(args.dvm_iterations):
        for qf, vf, buffer in sources:
            obs, actions, _, _ = buffer.sample(args.dvm_batch_size)
            with torch.no_grad():
                q_source, v_source = qf(obs, actions), vf(obs)
            perm_obs, perm_actions = permute_agents(obs, actions, perms)
            shape = (len(obs), len(perms))
            loss = (value_matching_loss(q_student(perm_obs, perm_actions).view(shape), q_source)  # Eq. (6), Q
                    + value_matching_loss(v_student(perm_obs).view(shape), v_source))  # Eq. (6), V
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[it] += loss.detach() / len(sources)
    return q_student, v_student, losses


def hard_update(nets, source):
    """Every network in `nets` (agents' online and target networks) becomes a copy of `source`."""
    for net in nets:
        net.load_state_dict(source.state_dict())


# ---------------------------------------------------------------------------------------------------------


def save_checkpoint(path, payload):
    """torch.save to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def rng_states(rng):
    states = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state(),
                  explore=rng.get_state())
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states, rng):
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    rng.set_state(states["explore"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def load_phase1(path, args, device):
    """Read a Phase I checkpoint, refusing one made with another configuration."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: Phase I checkpoint {path!r} does not exist")
    checkpoint = torch.load(path, map_location=device, weights_only=False)
    if checkpoint.get("algorithm") != "masac_dvm":
        raise SystemExit(f"error: {path!r} is not a masac_dvm Phase I checkpoint "
                         f"(it was written by {checkpoint.get('algorithm')!r})")
    mismatched = [f"{key}={checkpoint['config'].get(key)} (this run: {getattr(args, key)})"
                  for key in CHECKPOINT_KEYS if checkpoint["config"].get(key) != getattr(args, key)]
    if mismatched:
        raise SystemExit(f"error: Phase I checkpoint {path!r} was made with another configuration: "
                         + ", ".join(mismatched))
    return checkpoint


def load_dvm(path, args, phase1):
    """Read a dvm.pt to reuse its DVM step, refusing one of another configuration or another Phase I."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: DVM checkpoint {path!r} does not exist")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if saved.get("algorithm") != "masac_dvm" or "students" not in saved:
        raise SystemExit(f"error: {path!r} is not a masac_dvm dvm.pt that stores its DVM step (older ones do not)")
    mismatched = [f"{key}={saved['config'].get(key)} (this run: {getattr(args, key)})"
                  for key in DVM_KEYS if saved["config"].get(key) != getattr(args, key)]
    if mismatched:
        raise SystemExit(f"error: DVM checkpoint {path!r} was made with another configuration: " + ", ".join(mismatched))
    if (saved["global_step"], saved["phase1_eval_return"]) != (phase1["global_step"], phase1["eval_return"]):
        raise SystemExit(f"error: DVM checkpoint {path!r} was made from another Phase I than {args.phase1_checkpoint!r}")
    return saved


def check_args(args):
    """Clear errors before any work starts."""
    if args.domain == "spread" and args.n_agents not in (2, 3, 4):
        raise SystemExit(f"error: spread supports --n-agents 2, 3 or 4, got {args.n_agents}")
    if args.domain == "push_box" and args.n_agents != 2:
        raise SystemExit(f"error: push_box supports --n-agents 2 only, got {args.n_agents}")
    if not args.box_mass > 0:
        raise SystemExit(f"error: --box-mass must be positive, got {args.box_mass}")
    for key in ("num_envs", "horizon", "hidden_dim", "batch_size", "dvm_batch_size", "eval_every",
                "eval_episodes", "update_every", "buffer_size"):
        if getattr(args, key) < 1:
            raise SystemExit(f"error: --{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    if args.phase1_steps < 0 or args.phase2_steps < 0 or args.dvm_iterations < 0 or args.phase2_actor_delay < 0:
        raise SystemExit("error: --phase1-steps, --phase2-steps, --dvm-iterations and --phase2-actor-delay must not "
                         "be negative")
    phase2_updates = len(range(0, args.phase2_steps // args.num_envs, args.update_every))
    if args.phase2_actor_delay > phase2_updates:
        raise SystemExit(f"error: --phase2-actor-delay {args.phase2_actor_delay} is longer than Phase II, which has "
                         f"{phase2_updates} gradient updates")
    if args.dvm_checkpoint and not args.phase1_checkpoint:
        raise SystemExit("error: --dvm-checkpoint needs the --phase1-checkpoint it was made from (Phase II keeps that "
                         "Phase I's replay buffer)")


if __name__ == "__main__":
    args = tyro.cli(Args)
    check_args(args)
    checkpoint = load_phase1(args.phase1_checkpoint, args, "cpu") if args.phase1_checkpoint else None
    saved_dvm = load_dvm(args.dvm_checkpoint, args, checkpoint) if args.dvm_checkpoint else None
    run_name = args.run_name or f"{args.domain}{args.n_agents}__{args.exp_name}__{args.seed}__{args.dvm_mode}__{int(time.time())}"
    run_dir = os.path.join(args.runs_dir, run_name)
    os.makedirs(run_dir, exist_ok=True)
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

    def stop_if_diverged(where, global_step, named_tensors):
        """Stop at once on a NaN or infinite loss or parameter: nothing is saved over the last good checkpoint."""
        bad = first_non_finite(named_tensors)
        if bad is not None:
            writer.close()
            raise SystemExit(f"error: diverged in {where} at global step {global_step}: {bad[0]} is {bad[1]} "
                             "(checkpoints saved before are kept; a lower --learning-rate may help)")

    def run_phase(phase, teams, envs, eval_envs, num_steps, global_step, learning=True):
        """Collect with the stochastic policies (mean actions when not learning), update every agent, evaluate.

        Returns the global step reached and the first and last evaluation returns of the phase.
        """
        obs = [env.reset(seed=args.seed + 1000 * phase + k) for k, env in enumerate(envs)]
        episode_returns = [np.zeros(env.num_envs) for env in envs]
        phase_start, updates, phase_time = global_step, 0, time.time()
        evals, losses = [], []
        for step in range(num_steps // args.num_envs + 1):
            done_steps = step * args.num_envs
            if done_steps % args.eval_every < args.num_envs or step == num_steps // args.num_envs:
                # the last evaluation of a phase comes right before its checkpoint: a diverged one is never saved
                stop_if_diverged(f"phase {phase}", global_step, {**team_losses(losses), **team_parameters(teams)})
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
                    stop_if_diverged(f"phase {phase}", global_step, {**team_losses(losses), **team_parameters(teams)})
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

            if learning and len(teams[0].buffer) >= args.learning_starts and step % args.update_every == 0:
                warm_up = phase == 2 and updates < args.phase2_actor_delay  # critics only, --phase2-actor-delay
                losses = [masac_update(team, args, not warm_up) for team in teams]  # detached: no sync here
                updates += 1
                if updates % args.log_every == 0:
                    stop_if_diverged(f"phase {phase}", global_step, team_losses(losses))
                    qf_loss, vf_loss, actor_loss = losses[-1]
                    writer.add_scalar("losses/qf_loss", qf_loss.item(), global_step)
                    writer.add_scalar("losses/vf_loss", vf_loss.item(), global_step)
                    writer.add_scalar("losses/actor_loss", actor_loss.item(), global_step)
                    writer.add_scalar("charts/SPS", int((global_step - phase_start) / (time.time() - phase_time)),
                                      global_step)
        return global_step, evals[0], evals[-1]

    # ---- Phase I (or its checkpoint) ----
    phase1_path = os.path.join(run_dir, "phase1.pt")
    if checkpoint is None:
        global_step, _, summary["end of Phase I"] = run_phase(1, teams, envs, eval_envs, args.phase1_steps, 0)
        save_checkpoint(phase1_path, dict(algorithm="masac_dvm", config=asdict(args), global_step=global_step,
                                          teams=[team.state_dict() for team in teams], rng=rng_states(rng),
                                          eval_return=summary["end of Phase I"]))
        print(f"saved Phase I checkpoint {phase1_path}", flush=True)
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
    # Sources: every agent of the spread team; agent 1 of each push-box team (its own buffer for each).
    team = teams[0]  # the team that goes on into Phase II (push box under "none": team A)
    source_agents = range(args.n_agents) if n_teams == 1 else [0]
    students, dvm_losses = {}, {}
    if args.dvm_mode in ("distill", "dvm"):
        if saved_dvm is None:
            sources = [(t.actors[i], t.buffer, i) for t in teams for i in source_agents]
            pi0, kl_losses = distill_actor(sources, args, obs_dim, action_dim, device)
        else:
            pi0, kl_losses = Actor(obs_dim, action_dim, args.hidden_dim).to(device), saved_dvm["losses"]["kl"]
            pi0.load_state_dict(saved_dvm["students"]["pi0"])
        stop_if_diverged("the DVM step", global_step, {"dvm/kl_loss": kl_losses, **student_parameters(pi0=pi0)})
        hard_update(team.actors, pi0)  # MA-SAC has no target actor
        team.actor_optimizer = torch.optim.Adam(team.actors.parameters(), lr=args.learning_rate)  # fresh moments
        for it, loss in enumerate(kl_losses.tolist()):
            writer.add_scalar("dvm/kl_loss", loss, it)
        students["pi0"], dvm_losses["kl"] = pi0.state_dict(), kl_losses
    if args.dvm_mode in ("vm", "dvm"):
        if saved_dvm is None:
            sources = [(t.qfs[i], t.vfs[i], t.buffer) for t in teams for i in source_agents]
            q0, v0, vm_losses = match_values(sources, args, obs_dim, action_dim, device)
        else:
            q0 = SoftQNetwork(args.n_agents, obs_dim, action_dim, args.hidden_dim).to(device)
            v0 = ValueNetwork(args.n_agents, obs_dim, args.hidden_dim).to(device)
            q0.load_state_dict(saved_dvm["students"]["Q0"])
            v0.load_state_dict(saved_dvm["students"]["V0"])
            vm_losses = saved_dvm["losses"]["vm"]
        stop_if_diverged("the DVM step", global_step, {"dvm/vm_loss": vm_losses, **student_parameters(Q0=q0, V0=v0)})
        hard_update(team.qfs, q0)
        hard_update(list(team.vfs) + list(team.target_vfs), v0)
        team.q_optimizer = torch.optim.Adam(team.qfs.parameters(), lr=args.learning_rate)
        team.v_optimizer = torch.optim.Adam(team.vfs.parameters(), lr=args.learning_rate)
        for it, loss in enumerate(vm_losses.tolist()):
            writer.add_scalar("dvm/vm_loss", loss, it)
        students["Q0"], students["V0"], dvm_losses["vm"] = q0.state_dict(), v0.state_dict(), vm_losses
    if saved_dvm is not None:
        set_rng_states(saved_dvm["rng"], rng)  # where the earlier run's DVM step left them: the same Phase II follows
        print(f"DVM step ({args.dvm_mode}): loaded from {args.dvm_checkpoint}", flush=True)
    elif args.dvm_mode != "none":
        writer.add_scalar("dvm/seconds", time.time() - dvm_start, 0)  # what the step costs (dvm_iterations.sh)
        print(f"DVM step ({args.dvm_mode}): {args.dvm_iterations} iterations done in {time.time() - dvm_start:.0f} s",
              flush=True)
    # the networks that enter Phase II, and the DVM step itself for --dvm-checkpoint; no buffer, so the file stays small
    save_checkpoint(os.path.join(run_dir, "dvm.pt"), dict(algorithm="masac_dvm", config=asdict(args),
                                                          global_step=global_step,
                                                          teams=[dict(actors=team.actors.state_dict(),
                                                                      qfs=team.qfs.state_dict(),
                                                                      vfs=team.vfs.state_dict())],
                                                          students=students, losses=dvm_losses, rng=rng_states(rng),
                                                          phase1_eval_return=summary["end of Phase I"]))
    if args.capture_video:
        capture_videos([team.actors], args, device, "after_dvm", video_dir, args.seed)

    # ---- Phase II ----
    env, eval_env = make_env(args, args.num_envs, phase=2), make_env(args, args.eval_episodes, phase=2)
    global_step, summary["right after DVM"], summary["end of Phase II"] = run_phase(
        2, [team], [env], [eval_env], args.phase2_steps, global_step, learning=args.phase2_learning)
    phase2_path = os.path.join(run_dir, "phase2.pt")
    save_checkpoint(phase2_path, dict(algorithm="masac_dvm", config=asdict(args), global_step=global_step,
                                      teams=[team.state_dict()], rng=rng_states(rng),
                                      eval_return=summary["end of Phase II"]))
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
