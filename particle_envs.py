# Vectorized multiagent particle worlds for DVM (Wadhwania et al., "Policy Distillation and Value
# Matching in Multiagent Reinforcement Learning", Sec. V-A). Pure numpy, batched over `num_envs` worlds.
"""Spread (2-8 agents) and push box (2 agents) with the physics of OpenAI's multiagent-particle-envs.

Physics, as in the original MPE `multiagent/core.py` the paper built on:
    force  = action force (unit force x sensitivity) + soft contact forces
    vel    = vel * (1 - damping) + force / mass * dt
    pos    = pos + vel * dt           # velocity first, then position (PettingZoo/MPE2 does the reverse)
Soft contact between two discs a, b with radii summing to d_min:
    f_a = contact_force * (p_a - p_b) / |p_a - p_b| * k * logaddexp(0, -(|p_a - p_b| - d_min) / k),  f_b = -f_a

Discrete actions follow the original MPE one-hot convention that MADDPG used:
    0 no-op, 1 +x, 2 -x, 3 +y, 4 -y
(PettingZoo's MPE orders them no-op, -x, +x, -y, +y; policies trained on one do not transfer to the other.)
Continuous actions are a force (x, y) in [-1, 1]^2, scaled by the sensitivity.

Observations make agents interchangeable (paper Sec. III-B, Eqs. 4-5): the other agents' positions are
listed relative to the observer and sorted by relative heading atan2(dy, dx), as a lidar would return
them, so when agents i and j swap states their observations swap exactly and nobody else's changes.

All worlds of a batch are synchronized: `step` returns `truncated` (all True) at the horizon and the
caller calls `reset`; there is no autoreset.

record_gifs() records an episode of a policy in every world of a batch as animated GIFs (as gymnasium's RecordVideo
records any env); parallel_env() shows one world as a PettingZoo ParallelEnv, for other people's frameworks.
"""
import copy
import functools
import os

import gymnasium as gym
import numpy as np

# Quadrant centres in the order LL, UR, UL, LR (paper Fig. 2); agent k starts in quadrant k in Phase I.
QUADRANT_CENTRES = np.array([[-0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [0.5, -0.5]])
# Phase II starts: n = 2 swaps LL <-> UR, n = 3 shifts cyclically; n = 4 draws a permutation per episode.
PHASE2_QUADRANTS = {2: np.array([1, 0]), 3: np.array([1, 2, 0])}
SPREAD_N_AGENTS = range(2, 9)  # beyond 4 (not in the paper): unit cells in two rows, Spread's docstring


def cell_centres(n):
    """Centres of spread's n start cells, (n, 2): the quadrants for n <= 4; for n > 4 the unit cells of a grid of two
    rows (y = -0.5, 0.5) and ceil(n / 2) columns centred on the origin, column by column, lower cell first."""
    if n <= 4:
        return QUADRANT_CENTRES[:n]
    columns = -(-n // 2)
    k = np.arange(n)
    return np.stack([k // 2 - (columns - 1) / 2, np.where(k % 2 == 0, -0.5, 0.5)], axis=1)


def random_derangements(rng, num_envs, n):
    """A uniformly random derangement of range(n) (no k maps to k) per row, (num_envs, n): uniform permutations,
    the rows with a fixed point drawn again (about e = 2.7 draws per row on average; a loop over draws, not worlds)."""
    cells = rng.permuted(np.tile(np.arange(n), (num_envs, 1)), axis=1)
    redraw = (cells == np.arange(n)).any(axis=1)
    while redraw.any():
        cells[redraw] = rng.permuted(np.tile(np.arange(n), (int(redraw.sum()), 1)), axis=1)
        redraw = (cells == np.arange(n)).any(axis=1)
    return cells


# Discrete action index -> unit force (original MPE convention, see the module docstring).
DISCRETE_FORCES = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
# Push box targets: Task I left, Task II right, and the new one of Task III, as far from the box.
BOX_TARGETS = np.array([[-0.75, 0.0], [0.75, 0.0], [0.0, 0.75]])
# Push box rules (PushBox docstring) and the box mass, chosen by measurement (benchmark/README.md, "Push box").
BOX_RULES = ("heavy", "both")
BOX_MASS = 3.0


def action_forces(actions, num_envs, n_agents, continuous):
    """Check a batch of actions and return the unit forces (num_envs, n_agents, 2)."""
    actions = np.asarray(actions)
    if continuous:
        if actions.shape != (num_envs, n_agents, 2):
            raise ValueError(f"continuous actions must have shape (num_envs, n_agents, 2) = "
                             f"{(num_envs, n_agents, 2)}, got {actions.shape}")
        if not np.issubdtype(actions.dtype, np.floating):
            raise ValueError(f"continuous actions must be floats, got dtype {actions.dtype}")
        if not (np.abs(actions) <= 1.0).all():  # also rejects NaN
            raise ValueError("continuous actions must lie in [-1, 1]")
        return actions.astype(np.float64)
    if actions.shape != (num_envs, n_agents):
        raise ValueError(f"discrete actions must have shape (num_envs, n_agents) = {(num_envs, n_agents)}, "
                         f"got {actions.shape}")
    if not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"discrete actions must be integers, got dtype {actions.dtype}")
    if actions.size and (actions.min() < 0 or actions.max() > 4):
        raise ValueError(f"discrete actions must be in 0..4, got values in {actions.min()}..{actions.max()}")
    return np.take(DISCRETE_FORCES, actions, axis=0)


# Speed note for readers: numpy is slow at fancy indexing and at broadcasting along short inner axes
# (here the x, y axis of length 2). np.take, same-shape operands and explicit x/y arithmetic are 3-10x
# faster on (num_envs, n, 2) arrays, which is why the helpers below are written that way.


def contact_forces(pos, radii, pairs, contact_force, contact_margin):
    """MPE soft contact force on every disc from every other disc: pos (N, m, 2), radii (m,) -> (N, m, 2).

    `pairs` = (i, j, scatter) from `make_pairs` lists the unordered pairs once; scatter (2P, 2m) is the
    pair-to-disc incidence (+1 at i, -1 at j) for x and y, so one matrix product hands +f to disc i and
    -f to disc j.
    """
    i, j, scatter = pairs
    delta = np.take(pos, i, axis=1) - np.take(pos, j, axis=1)  # (N, P, 2): p_i - p_j
    dist = np.sqrt(delta[..., 0] ** 2 + delta[..., 1] ** 2)
    k = contact_margin
    penetration = np.logaddexp(0.0, (radii[i] + radii[j] - dist) / k) * k
    scale = contact_force * penetration / np.maximum(dist, 1e-9)  # the floor only avoids 0 / 0
    force = delta * scale[..., None]  # on disc i; -force on disc j
    N, m = pos.shape[:2]
    return (force.reshape(N, -1) @ scatter).reshape(N, m, 2)


def make_pairs(m):
    """The unordered pairs (i < j) of m discs, with the incidence matrix contact_forces uses."""
    i, j = np.triu_indices(m, k=1)
    incidence = np.zeros((m, len(i)))
    incidence[i, np.arange(len(i))] = 1.0
    incidence[j, np.arange(len(i))] = -1.0
    return i, j, np.kron(incidence.T, np.eye(2))


def heading_key(dx, dy):
    """A number that orders vectors exactly as atan2(dy, dx) in (-pi, pi] does, at a fraction of its cost.

    c = dx / (|dx| + |dy|) falls from 1 to -1 as the heading goes from 0 to +-pi, so 1 - c (upper half-plane)
    and c - 1 (lower half-plane) rise monotonically with the heading over (-2, 2].
    """
    c = dx / np.maximum(np.abs(dx) + np.abs(dy), 1e-300)
    return np.where(dy >= 0, 1.0 - c, c - 1.0)


def others_by_heading(pos, others, selves):
    """Positions of the other agents relative to each agent, sorted by heading: (N, n, 2) -> (N, n, n-1, 2).

    `others` (n, n-1) lists agent i's others in index order and `selves` (n, n-1) repeats i. The n-1 entries are
    sorted by an odd-even transposition network (compare-exchange with np.where; stable), much faster than
    np.argsort on rows this short; but its work grows as (n-1)^2, and from 5 agents a stable np.argsort is faster
    up to about 1024 rows (worlds x agents), 4x at 16 worlds of 8 agents. Both give the same numbers.
    """
    rel = np.take(pos, others, axis=1) - np.take(pos, selves, axis=1)
    m = rel.shape[2]
    if m < 2:
        return rel
    key = heading_key(rel[..., 0], rel[..., 1])
    if m > 3 and key.shape[0] * key.shape[1] <= 1024:
        order = np.argsort(key, axis=-1, kind="stable")
        return np.take_along_axis(rel, order[..., None], axis=2)
    keys = [key[:, :, c] for c in range(m)]
    xs = [rel[:, :, c, 0] for c in range(m)]
    ys = [rel[:, :, c, 1] for c in range(m)]
    for sweep in range(m):
        for c in range(sweep % 2, m - 1, 2):
            swap = keys[c] > keys[c + 1]
            for v in (keys, xs, ys):
                v[c], v[c + 1] = np.where(swap, v[c + 1], v[c]), np.where(swap, v[c], v[c + 1])
    for c in range(m):
        rel[:, :, c, 0], rel[:, :, c, 1] = xs[c], ys[c]
    return rel


def draw_discs(centres, radii, colours, size=256, extent=1.25):
    """Rasterize discs (world coordinates, later ones on top) into an RGB uint8 image of [-extent, extent]^2."""
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    coords = (np.arange(size) + 0.5) / size * 2 * extent - extent
    xs, ys = coords, coords[::-1]  # column and row centres; row 0 is the top of the picture
    img[np.abs(ys) < extent / size] = 225  # axes through the origin
    img[:, np.abs(xs) < extent / size] = 225
    pixel = 2 * extent / size
    for (cx, cy), r, colour in zip(centres, radii, colours):
        if not (np.isfinite(cx) and np.isfinite(cy)):
            continue
        # only the disc's bounding box (plus a pixel) is tested: a trail of many small discs stays cheap
        c0, c1 = max(int((cx - r + extent) / pixel) - 1, 0), min(int((cx + r + extent) / pixel) + 2, size)
        r0, r1 = max(int((extent - cy - r) / pixel) - 1, 0), min(int((extent - cy + r) / pixel) + 2, size)
        if c0 >= c1 or r0 >= r1:
            continue
        inside = (xs[None, c0:c1] - cx) ** 2 + (ys[r0:r1, None] - cy) ** 2 <= r**2
        img[r0:r1, c0:c1][inside] = colour
    return img


def trail_discs(trail, colours, radius=0.02):
    """Small discs at the earlier positions (T, m, 2) of m movers, each in a pale version of the mover's colour."""
    trail = np.asarray(trail, dtype=np.float64)
    if trail.ndim != 3 or trail.shape[1:] != (len(colours), 2):
        raise ValueError(f"trail must have shape (steps, {len(colours)}, 2), got {trail.shape}")
    pale = [tuple(int(255 - 0.55 * (255 - c)) for c in colour) for colour in colours]
    return list(trail.reshape(-1, 2)), [radius] * (len(trail) * len(colours)), pale * len(trail)


AGENT_COLOURS = [(220, 60, 60), (60, 90, 220), (60, 170, 80), (230, 160, 30), (150, 70, 190), (40, 170, 190),
                 (200, 90, 150), (130, 100, 40)]


class Spread:
    """Cooperative navigation (MPE simple_spread): n agents cover n targets at the centres of their start cells.

    Agent k starts uniformly inside quadrant k (LL, UR, UL, LR) in Phase I; in Phase II n = 2 swaps the two
    quadrants, n = 3 shifts them cyclically (agent k -> quadrant k+1 mod 3) and n = 4 draws a uniformly random
    permutation of the four quadrants for every world and episode.
    Beyond the paper, n = 5 to 8: the quadrants are the 2 x 2 case of a grid of unit cells in two rows and
    ceil(n / 2) columns (cell_centres; with n odd the last column's upper cell is left empty, as n = 3 leaves LR),
    one target at each used cell's centre, so an agent's share of the floor and its distance to the nearest target
    are the paper's. Agent k starts in cell k in Phase I, so each agent explores only its own cell; in Phase II every
    agent starts in a cell another agent explored: a uniformly random derangement of the cells, drawn for every
    world and episode (random_derangements). Team reward per step:
    -sum over targets of the distance to the nearest agent, minus 1 per pair of colliding agents.
    Observation of agent i: own velocity, own position, targets relative to i (cell order), other agents
    relative to i sorted by heading. Dimension 4 + 2n + 2(n-1).
    """

    def __init__(self, num_envs=1, n_agents=3, phase=1, continuous=False, horizon=25, collisions=True,
                 target_jitter=0.0, agent_radius=0.15, dt=0.1, damping=0.25, mass=1.0, sensitivity=5.0,
                 contact_force=100.0, contact_margin=1e-3):
        if n_agents not in SPREAD_N_AGENTS:
            raise ValueError(f"spread supports n_agents 2 to 8, got {n_agents}")
        if phase not in (1, 2):
            raise ValueError(f"spread phase must be 1 or 2, got {phase}")
        if num_envs < 1 or horizon < 1:
            raise ValueError(f"num_envs and horizon must be positive, got {num_envs} and {horizon}")
        self.num_envs, self.n_agents, self.phase, self.continuous = num_envs, n_agents, phase, continuous
        self.horizon, self.collisions, self.target_jitter = horizon, collisions, target_jitter
        self.agent_radius, self.dt, self.damping, self.mass = agent_radius, dt, damping, mass
        self.sensitivity, self.contact_force, self.contact_margin = sensitivity, contact_force, contact_margin
        obs_dim = 4 + 2 * n_agents + 2 * (n_agents - 1)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.single_action_space = (gym.spaces.Box(-1.0, 1.0, (2,), np.float32) if continuous
                                    else gym.spaces.Discrete(5))
        self.radii = np.full(n_agents, agent_radius)
        self.pairs = make_pairs(n_agents)
        self.others = np.array([[k for k in range(n_agents) if k != i] for i in range(n_agents)])
        self.selves = np.repeat(np.arange(n_agents)[:, None], n_agents - 1, axis=1)
        # observer i and target t for each of the n * n (agent, target) entries, agent-major
        self.obs_agent, self.obs_target = np.repeat(np.arange(n_agents), n_agents), np.tile(np.arange(n_agents), n_agents)
        self.centres = cell_centres(n_agents)
        self.extent = max(1.25, np.abs(self.centres[:, 0]).max() + 0.75)  # render() shows [-extent, extent]^2
        self.rng = np.random.default_rng()
        self.t = None

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        N, n = self.num_envs, self.n_agents
        if self.phase == 1:
            self.quadrants = np.broadcast_to(np.arange(n), (N, n))
        elif n == 4:
            self.quadrants = self.rng.permuted(np.tile(np.arange(4), (N, 1)), axis=1)
        elif n > 4:
            self.quadrants = random_derangements(self.rng, N, n)
        else:
            self.quadrants = np.broadcast_to(PHASE2_QUADRANTS[n], (N, n))
        self.pos = self.centres[self.quadrants] + self.rng.uniform(-0.5, 0.5, (N, n, 2))
        self.vel = np.zeros((N, n, 2))
        self.targets = self.centres + self.target_jitter * self.rng.uniform(-1.0, 1.0, (N, n, 2))
        self.t = 0
        return self.observe()

    def step(self, actions):
        if self.t is None or self.t >= self.horizon:
            raise RuntimeError("call reset() before step() and after every episode (no autoreset)")
        force = action_forces(actions, self.num_envs, self.n_agents, self.continuous) * self.sensitivity
        force += contact_forces(self.pos, self.radii, self.pairs, self.contact_force, self.contact_margin)
        self.vel = self.vel * (1 - self.damping) + force / self.mass * self.dt
        self.pos = self.pos + self.vel * self.dt
        self.t += 1
        done = np.full(self.num_envs, self.t >= self.horizon)
        targets_rel = self.targets_rel()
        return self.observe(targets_rel), self.reward(targets_rel), np.zeros(self.num_envs, bool), done, {}

    def targets_rel(self):
        """Targets relative to each agent: (N, agent, target, 2)."""
        N, n = self.num_envs, self.n_agents
        rel = np.take(self.targets, self.obs_target, axis=1) - np.take(self.pos, self.obs_agent, axis=1)
        return rel.reshape(N, n, n, 2)

    def reward(self, targets_rel=None):
        rel = self.targets_rel() if targets_rel is None else targets_rel
        dist = np.sqrt(rel[..., 0] ** 2 + rel[..., 1] ** 2)  # (N, agent, target)
        nearest = dist[:, 0]
        for k in range(1, self.n_agents):  # n <= 8: 3-4x faster than dist.min(axis=1), which numpy does slowly
            nearest = np.minimum(nearest, dist[:, k])
        reward = -nearest.sum(axis=1)
        if self.collisions:
            i, j, _ = self.pairs
            gap = self.pos[:, i] - self.pos[:, j]  # (N, pair, 2)
            reward -= (gap[..., 0] ** 2 + gap[..., 1] ** 2 < (2 * self.agent_radius) ** 2).sum(axis=1)
        return reward

    def observe(self, targets_rel=None):
        N, n = self.num_envs, self.n_agents
        rel = self.targets_rel() if targets_rel is None else targets_rel
        obs = np.empty((N, n, self.single_observation_space.shape[0]), np.float32)
        obs[..., 0:2] = self.vel
        obs[..., 2:4] = self.pos
        obs[..., 4 : 4 + 2 * n] = rel.reshape(N, n, 2 * n)
        obs[..., 4 + 2 * n :] = others_by_heading(self.pos, self.others, self.selves).reshape(N, n, 2 * (n - 1))
        return obs

    def movers(self):
        """Positions of everything that moves, (num_envs, n, 2): the agents. Stacked over steps, render()'s trail."""
        return self.pos.copy()

    def swap_agents(self, i, j):
        """Agents i and j exchange their states (position, velocity) in every world: swap_consistency_errors' probe."""
        for state in (self.pos, self.vel):
            state[:, [i, j]] = state[:, [j, i]]

    def record_moment(self, make, policies, moment, video_dir, seed=None):
        """The scripts' --capture-video: record_moment(), this world's drawing of a DVM run's moment."""
        return record_moment(make, policies, moment, video_dir, seed)

    def render(self, env_index=0, trail=None):
        """RGB uint8 picture of one world: targets in black, agents in colour.

        trail: optional earlier positions of the world's agents, (steps, n, 2) (`movers()[env_index]` after each
        step), drawn as pale dots under everything else so that a sequence of pictures shows the paths.
        """
        n = self.n_agents
        centres = list(self.targets[env_index]) + list(self.pos[env_index])
        radii = [0.05] * n + [self.agent_radius] * n
        colours = [(40, 40, 40)] * n + AGENT_COLOURS[:n]
        if trail is not None:
            dots = trail_discs(trail, AGENT_COLOURS[:n])
            centres, radii, colours = dots[0] + centres, dots[1] + radii, dots[2] + colours
        return draw_discs(centres, radii, colours, extent=self.extent)


class PushBox:
    """Cooperative push box: two agents move a heavy box to a target (paper Sec. V-A2, Fig. 3).

    The box starts at the centre. How it moves is set by `box_rule`:
      "heavy" (default): an ordinary movable MPE disc of mass `box_mass`, moved by the sum of the contact
          forces on it (damped like every entity), so one agent alone moves it slowly and both clearly faster:
          cooperation pays. The paper's Figs. 6-7 are run on this rule (README, "Implementation details").
      "both": the paper's literal wording: the box moves if and only if both agents touch it (discs overlap)
          in the same step, taking the sum of their contact forces; otherwise it stays exactly where it is,
          with zero velocity, and acts on the agents as a wall. MADDPG learns nothing on it (benchmark/README.md).
    Agents start at uniformly random angles on a ring around it.
    Target: Task I left (-0.75, 0), Task II right (0.75, 0), Task III one of left, right and (0, 0.75), drawn
    uniformly per world and episode (`target_index`). Team reward per step: -|target - box|^2.
    Observation of agent i: own velocity, own position, box relative to i, box velocity, target relative to
    i, other agent relative to i (12 numbers).
    """

    def __init__(self, num_envs=1, n_agents=2, task=1, continuous=False, horizon=25, box_rule="heavy",
                 agent_radius=0.1, box_radius=0.25, box_mass=BOX_MASS, spawn_radius=0.5, dt=0.1, damping=0.25,
                 mass=1.0, sensitivity=5.0, contact_force=100.0, contact_margin=1e-3):
        if n_agents != 2:
            raise ValueError(f"push_box supports n_agents 2 only, got {n_agents}")
        if box_rule not in BOX_RULES:
            raise ValueError(f"unknown push_box box_rule {box_rule!r}; choose one of {list(BOX_RULES)}")
        if not box_mass > 0:
            raise ValueError(f"push_box box_mass must be positive, got {box_mass}")
        if task not in (1, 2, 3):
            raise ValueError(f"push_box task must be 1, 2 or 3, got {task}")
        if num_envs < 1 or horizon < 1:
            raise ValueError(f"num_envs and horizon must be positive, got {num_envs} and {horizon}")
        self.num_envs, self.n_agents, self.task, self.continuous = num_envs, 2, task, continuous
        self.horizon, self.agent_radius, self.box_radius, self.box_mass = horizon, agent_radius, box_radius, box_mass
        self.box_rule = box_rule
        self.spawn_radius, self.dt, self.damping, self.mass = spawn_radius, dt, damping, mass
        self.sensitivity, self.contact_force, self.contact_margin = sensitivity, contact_force, contact_margin
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (12,), np.float32)
        self.single_action_space = (gym.spaces.Box(-1.0, 1.0, (2,), np.float32) if continuous
                                    else gym.spaces.Discrete(5))
        self.radii = np.array([agent_radius, agent_radius, box_radius])
        self.pairs = make_pairs(3)
        self.rng = np.random.default_rng()
        self.t = None

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        N = self.num_envs
        angle = self.rng.uniform(-np.pi, np.pi, (N, 2))
        self.pos = self.spawn_radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
        self.vel = np.zeros((N, 2, 2))
        self.box_pos, self.box_vel = np.zeros((N, 2)), np.zeros((N, 2))
        self.target_index = (self.rng.integers(0, 3, N) if self.task == 3 else np.full(N, self.task - 1))
        self.target = BOX_TARGETS[self.target_index]
        self.t = 0
        return self.observe()

    def step(self, actions):
        if self.t is None or self.t >= self.horizon:
            raise RuntimeError("call reset() before step() and after every episode (no autoreset)")
        force = action_forces(actions, self.num_envs, 2, self.continuous) * self.sensitivity
        everything = np.concatenate([self.pos, self.box_pos[:, None, :]], axis=1)  # agents, then the box
        contact = contact_forces(everything, self.radii, self.pairs, self.contact_force, self.contact_margin)
        force += contact[:, :2]
        self.box_vel = self.box_vel * (1 - self.damping) + contact[:, 2] / self.box_mass * self.dt
        if self.box_rule == "both":  # the box moves only when both agents touch it: it needs their joint push
            gap = self.pos - self.box_pos[:, None, :]
            touching = gap[..., 0] ** 2 + gap[..., 1] ** 2 < (self.agent_radius + self.box_radius) ** 2
            self.box_vel = np.where(touching.all(axis=1)[:, None], self.box_vel, 0.0)
        self.box_pos = self.box_pos + self.box_vel * self.dt
        self.vel = self.vel * (1 - self.damping) + force / self.mass * self.dt
        self.pos = self.pos + self.vel * self.dt
        self.t += 1
        done = np.full(self.num_envs, self.t >= self.horizon)
        return self.observe(), self.reward(), np.zeros(self.num_envs, bool), done, {}

    def reward(self):
        delta = self.target - self.box_pos
        return -(delta[:, 0] ** 2 + delta[:, 1] ** 2)

    def observe(self):
        obs = np.empty((self.num_envs, 2, 12), np.float32)
        obs[..., 0:2] = self.vel
        obs[..., 2:4] = self.pos
        obs[..., 4:6] = self.box_pos[:, None, :] - self.pos
        obs[..., 6:8] = self.box_vel[:, None, :]
        obs[..., 8:10] = self.target[:, None, :] - self.pos
        obs[..., 10:12] = self.pos[:, ::-1] - self.pos
        return obs

    def movers(self):
        """Positions of everything that moves, (num_envs, 3, 2): the two agents, then the box. Stacked over steps,
        render()'s trail."""
        return np.concatenate([self.pos, self.box_pos[:, None, :]], axis=1)

    def swap_agents(self, i, j):
        """Agents i and j exchange their states (position, velocity) in every world: swap_consistency_errors' probe."""
        for state in (self.pos, self.vel):
            state[:, [i, j]] = state[:, [j, i]]

    def record_moment(self, make, policies, moment, video_dir, seed=None):
        """The scripts' --capture-video: record_moment(), this world's drawing of a DVM run's moment."""
        return record_moment(make, policies, moment, video_dir, seed)

    def render(self, env_index=0, trail=None):
        """RGB uint8 picture of one world: target in black, box in grey, agents in colour.

        trail: optional earlier positions of the agents and the box, (steps, 3, 2) (`movers()[env_index]` after
        each step), drawn as pale dots under everything else so that a sequence of pictures shows the paths.
        """
        centres = [self.target[env_index], self.box_pos[env_index], *self.pos[env_index]]
        radii = [0.05, self.box_radius, self.agent_radius, self.agent_radius]
        colours = [(40, 40, 40), (160, 160, 160), *AGENT_COLOURS[:2]]
        if trail is not None:
            dots = trail_discs(trail, [*AGENT_COLOURS[:2], (160, 160, 160)])
            centres, radii, colours = dots[0] + centres, dots[1] + radii, dots[2] + colours
        return draw_discs(centres, radii, colours)


VIDEO_HEADER = 34  # pixels of text above the world's picture in record_gifs()


def record_gifs(env, policy, paths, titles, seed=None, targets=None):
    """Record one episode of `policy` in every world of `env` as an animated GIF: world w goes to paths[w].

    policy: observations (num_envs, n, obs_dim) -> actions. Every frame (the start and each of the horizon steps)
    shows the world with the earlier positions of everything that moves as a trail, below a white header with
    titles[w], the step and the return so far. targets: push box only, the target index forced per world after
    the reset (Task III once with each of its targets, whatever the reset drew). Returns the paths.
    """
    from PIL import Image, ImageDraw, ImageFont  # only recording needs Pillow

    obs = env.reset(seed=seed)
    if targets is not None:
        env.target_index[:] = targets
        env.target = BOX_TARGETS[env.target_index]
        obs = env.observe()
    font = ImageFont.load_default(size=12)  # Pillow's own font: no font file needed
    returns, trail, frames = np.zeros(env.num_envs), [], [[] for _ in paths]
    for t in range(env.horizon + 1):
        if t > 0:
            trail.append(env.movers())
            obs, reward, _, _, _ = env.step(policy(obs))
            returns += reward
        for w, title in enumerate(titles):
            image = env.render(w, trail=np.stack(trail)[:, w] if trail else None)
            frame = Image.new("RGB", (image.shape[1], image.shape[0] + VIDEO_HEADER), "white")
            frame.paste(Image.fromarray(image), (0, VIDEO_HEADER))
            text = f"{title}\nstep {t}/{env.horizon}   return {returns[w]:.2f}"
            ImageDraw.Draw(frame).multiline_text((4, 2), text, fill=(0, 0, 0), font=font, spacing=3)
            frames[w].append(frame)
    for path, world_frames in zip(paths, frames):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        # 100 ms a frame: the worlds' dt, so the GIF plays in real time
        world_frames[0].save(path, save_all=True, append_images=world_frames[1:], duration=100, loop=0)
    return paths


MOMENTS = {"phase1_end": "end of Phase I", "after_dvm": "right after DVM", "phase2_end": "end of Phase II"}
TARGET_NAMES = ("left", "right", "up")  # BOX_TARGETS: Tasks I and II, and Task III's new one


def record_moment(make, policies, moment, video_dir, seed=None):
    """The videos of one moment of a DVM run (the scripts' --capture-video): one episode per configuration, as
    `video_dir/MOMENT__CONFIGURATION.gif`. Returns the paths written.

    make(num_envs, phase, task): the run's worlds; policies: one per team, observations -> actions. Spread: the
    Phase I and Phase II start quadrants (cells past 4 agents), played by the first team. Push box, at the end of
    Phase I ("phase1_end"): team A on Task I and team B on Task II; later: Task III once with each of its targets.
    """
    def gif(name):
        return os.path.join(video_dir, f"{moment}__{name}.gif")

    title = MOMENTS[moment]
    world = make(1, 1, 1)
    if isinstance(world, Spread):  # (the file names say quadrants for every n; past 4 agents the titles say cells)
        cells = "quadrants" if world.n_agents <= 4 else "cells"
        return [path for p in (1, 2) for path in record_gifs(make(1, p, None), policies[0], [gif(f"phase{p}_quadrants")],
                                                             [f"{title}  |  Phase {'I' * p} start {cells}"], seed)]
    if moment == "phase1_end":
        return [path for k, policy in enumerate(policies) for path in record_gifs(
            make(1, 1, k + 1), policy, [gif(f"team{'AB'[k]}_task{k + 1}")],
            [f"{title}  |  team {'AB'[k]} on Task {'I' * (k + 1)}"], seed)]
    return record_gifs(make(3, 2, 3), policies[0], [gif(f"task3_{name}") for name in TARGET_NAMES],
                       [f"{title}  |  Task III, target {name}" for name in TARGET_NAMES], seed, targets=np.arange(3))


DOMAINS = {"spread": Spread, "push_box": PushBox}


def swap_consistency_errors(observe, swap_agents, n_agents):
    """The agent pairs (i, j) for which a world is not swap-consistent; [] for one that is. Value matching (Eqs. 4-6)
    gives a state's value to every agent permutation of it, which is right only if, when agents i and j swap their
    states, their observations swap exactly and every other agent's stays as it was. A world that lists the other
    agents in index order (MPE2's simple_spread) breaks this from 3 agents on.

    observe() -> the observations of the current state, (num_envs, n_agents, obs_dim); swap_agents(i, j) exchanges
    agents i and j's states in every world, in place. Check a world in a few random states (after reset and steps):

        world = make("spread", num_envs=100, n_agents=3); world.reset(seed=0)
        assert swap_consistency_errors(world.observe, world.swap_agents, world.n_agents) == []
    """
    before, errors = np.array(observe()), []
    for i in range(n_agents):
        for j in range(i + 1, n_agents):
            perm = np.arange(n_agents)
            perm[[i, j]] = [j, i]
            swap_agents(i, j)
            after = np.array(observe())
            swap_agents(i, j)  # back
            if not np.array_equal(after, before[:, perm]):
                errors.append((i, j))
    return errors


def make(domain, **kwargs):
    """Build a world batch by name: make("spread", num_envs=64, n_agents=3, phase=2) or make("push_box", task=3)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {sorted(DOMAINS)}")
    return DOMAINS[domain](**kwargs)


def parallel_env(domain, render_mode="rgb_array", **kwargs):
    """One world as a PettingZoo ParallelEnv, for other people's multiagent frameworks.

        env = parallel_env("spread", n_agents=3, phase=2)   # keyword arguments of make(), one world
        observations, infos = env.reset(seed=0)
        while env.agents:
            actions = {agent: env.action_space(agent).sample() for agent in env.agents}
            observations, rewards, terminations, truncations, infos = env.step(actions)

    Agents are "agent_0", "agent_1", ...; every agent gets the team reward; nobody terminates, and at the horizon
    every agent is truncated and `agents` becomes empty. render() returns the RGB picture of the world. state() is
    the joint observation, what a centralized critic sees. A thin layer over the vectorized class with num_envs=1:
    the same seed and actions give the same numbers. The scripts use the vectorized classes, not this.
    """
    if kwargs.get("num_envs", 1) != 1:
        raise ValueError(f"parallel_env is one world: num_envs must be 1, got {kwargs['num_envs']}")
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"parallel_env renders only 'rgb_array' (or None), got render_mode {render_mode!r}")
    return parallel_env_class()(make(domain, **{**kwargs, "num_envs": 1}), domain, render_mode)


@functools.cache
def parallel_env_class():
    """The ParallelEnv subclass behind parallel_env(), built once on first use: pettingzoo is imported only here,
    so a copy of this module without pettingzoo installed still serves the vectorized worlds."""
    from pettingzoo import ParallelEnv

    class ParticleParallelEnv(ParallelEnv):
        metadata = {"render_modes": ["rgb_array"], "is_parallelizable": True}

        def __init__(self, world, domain, render_mode):
            self.world, self.render_mode = world, render_mode
            self.metadata = {**self.metadata, "name": f"particle_envs_{domain}"}
            self.possible_agents = [f"agent_{i}" for i in range(world.n_agents)]
            self.agents = []
            # one space object per agent, so that seeding one agent's space leaves the others' alone
            self.observation_spaces = {a: copy.deepcopy(world.single_observation_space) for a in self.possible_agents}
            self.action_spaces = {a: copy.deepcopy(world.single_action_space) for a in self.possible_agents}
            obs_dim = world.single_observation_space.shape[0]
            self.state_space = gym.spaces.Box(-np.inf, np.inf, (world.n_agents * obs_dim,), np.float32)
            self.obs = None

        def observation_space(self, agent):
            return self.observation_spaces[agent]

        def action_space(self, agent):
            return self.action_spaces[agent]

        def reset(self, seed=None, options=None):
            self.obs = self.world.reset(seed=seed)
            self.agents = self.possible_agents[:]
            return self.per_agent(self.obs[0]), {a: {} for a in self.agents}

        def step(self, actions):
            if not self.agents:
                raise RuntimeError("every agent is done: call reset() before step()")
            missing = [a for a in self.possible_agents if a not in actions]
            if missing:
                raise ValueError(f"step needs an action for every agent, missing {missing}")
            joint = np.stack([np.asarray(actions[a]) for a in self.possible_agents])[None]
            self.obs, reward, terminated, truncated, _ = self.world.step(joint)
            observations = self.per_agent(self.obs[0])
            rewards = {a: float(reward[0]) for a in self.agents}
            terminations = {a: bool(terminated[0]) for a in self.agents}
            truncations = {a: bool(truncated[0]) for a in self.agents}
            infos = {a: {} for a in self.agents}
            if truncated[0] or terminated[0]:
                self.agents = []
            return observations, rewards, terminations, truncations, infos

        def per_agent(self, obs):
            return {a: obs[i] for i, a in enumerate(self.possible_agents)}

        def render(self):
            if self.obs is None:
                raise RuntimeError("call reset() before render()")
            return None if self.render_mode is None else self.world.render(0)

        def state(self):
            if self.obs is None:
                raise RuntimeError("call reset() before state()")
            return self.obs[0].reshape(-1)

    return ParticleParallelEnv
