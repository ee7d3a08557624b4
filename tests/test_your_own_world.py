"""Copying a script into your own project: each script, copied alone into an empty folder with its make_env replaced by
a world defined here (not particle_envs), runs Phase I -> DVM -> Phase II; a world that breaks make_env's contract is
refused in one line before any work; particle_envs.swap_consistency_errors checks a world of one's own."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import particle_envs as pe
from helpers import ROOT, TINY

# A world that is not ours: agents on a line, one target each, 3 discrete actions (stay, left, right) or a velocity in
# the Box [-2, 2] (bounds other than [-1, 1] on purpose). Phase I: agent k starts near target k; Phase II: reversed.
# Observation of agent i: own position, the targets relative to i, the others relative to i sorted (swap-consistent).
# WORLD_BREACH names a breach of the contract; WORLD_LOG, where the actions it received are written at exit.
LINE_WORLD = '''
import atexit, json, os
import gymnasium as gym
import numpy as np

BREACH = os.environ.get("WORLD_BREACH", "")
SEEN = {"discrete": [], "low": 0.0, "high": 0.0}
if os.environ.get("WORLD_LOG"):
    atexit.register(lambda: json.dump(SEEN, open(os.environ["WORLD_LOG"], "w")))


class LineWorld:
    def __init__(self, num_envs, n_agents, phase, continuous, horizon=10):
        self.num_envs, self.n, self.phase, self.continuous = num_envs, n_agents, phase, continuous
        self.horizon = horizon
        self.targets = np.linspace(-1.0, 1.0, n_agents)
        dim = 1 + 2 * n_agents - 1 + (1 if BREACH == "phase_obs" and phase == 2 else 0)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        bound = np.inf if BREACH == "unbounded" else 2.0
        self.single_action_space = (gym.spaces.Box(-bound, bound, (1,), np.float32) if continuous or BREACH == "box"
                                    else gym.spaces.Discrete(3))
        self.rng = np.random.default_rng()

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        start = self.targets if self.phase == 1 else self.targets[::-1]
        self.pos = start + self.rng.uniform(-0.2, 0.2, (self.num_envs, self.n))
        self.t = 0
        obs = self.observe()
        return (obs, {}) if BREACH == "tuple" else obs

    def observe(self):
        rel = self.targets[None, None, :] - self.pos[:, :, None]
        others = np.stack([np.sort(np.delete(self.pos, i, axis=1) - self.pos[:, i:i + 1], axis=-1)
                           for i in range(self.n)], axis=1)
        extra = [np.zeros((self.num_envs, self.n, 1))] if self.single_observation_space.shape[0] > 2 * self.n else []
        obs = np.concatenate([self.pos[..., None], rel, others, *extra], axis=-1)
        return obs.astype(np.float64 if BREACH == "float64" else np.float32)

    def swap_agents(self, i, j):
        self.pos[:, [i, j]] = self.pos[:, [j, i]]

    def step(self, actions):
        actions = np.asarray(actions)
        if self.continuous:
            space = self.single_action_space
            if not ((actions >= space.low) & (actions <= space.high)).all():
                raise ValueError(f"an action outside {space}")
            SEEN["low"], SEEN["high"] = min(SEEN["low"], float(actions.min())), max(SEEN["high"], float(actions.max()))
            move = 0.1 * actions[..., 0]
        else:
            if not np.isin(actions, [0, 1, 2]).all():
                raise ValueError("an action outside Discrete(3)")
            SEEN["discrete"] = sorted(set(SEEN["discrete"]) | set(np.unique(actions).tolist()))
            move = 0.1 * np.select([actions == 1, actions == 2], [-1.0, 1.0], 0.0)
        self.pos = np.clip(self.pos + move, -1.5, 1.5)
        self.t += 1
        reward = -np.abs(self.pos[:, :, None] - self.targets[None, None, :]).min(1).sum(-1)
        if BREACH == "per_agent_reward":
            reward = np.repeat(reward[:, None], self.n, axis=1)
        terminated = np.full(self.num_envs, BREACH == "terminate" and self.t == 3)
        truncated = np.full(self.num_envs, self.t >= self.horizon)
        if BREACH == "unsynced":
            truncated[0] = self.t >= self.horizon - 1
        return self.observe(), reward, terminated, truncated, {}
'''

MAKE_ENV = '''def make_env(args, num_envs, phase, task=None):
    """LineWorld: agents on a line, one target each (tests/test_your_own_world.py)."""
    import line_world

    return line_world.LineWorld(num_envs, args.n_agents, phase, continuous=CONTINUOUS)


'''


def copy_alone(script, folder):
    """`script` copied alone into `folder`, its make_env (and nothing else) replaced by LineWorld's: the lines a user
    changes. Returns the path of the copy."""
    source = open(os.path.join(ROOT, script)).read()
    start = source.index("def make_env(")
    end = source.index("\ndef ", start + 1) + 1
    make_env = MAKE_ENV.replace("CONTINUOUS", str(script == "masac_dvm.py"))
    folder.mkdir(exist_ok=True)
    (folder / script).write_text(source[:start] + make_env + source[end:].lstrip("\n"))
    (folder / "line_world.py").write_text(LINE_WORLD)
    return folder / script


def run_copy(copy, *flags, breach="", log=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(WORLD_BREACH=breach, WORLD_LOG=str(log or ""))
    # run from the copy's own folder, where particle_envs is not: an import of it would fail
    return subprocess.run([sys.executable, str(copy), "--runs-dir", str(copy.parent / "runs"), *TINY, *flags],
                          capture_output=True, text=True, cwd=copy.parent, env=env, timeout=300)


@pytest.mark.parametrize("script", ["maddpg_dvm.py", "masac_dvm.py"])
def test_a_script_copied_alone_runs_on_another_world_with_only_make_env_replaced(script, tmp_path):
    copy = copy_alone(script, tmp_path / "project")
    assert not (copy.parent / "particle_envs.py").exists()
    proc = subprocess.run([sys.executable, str(copy), "--help"], capture_output=True, text=True, cwd=copy.parent)
    assert proc.returncode == 0 and "--dvm-mode" in proc.stdout, proc.stderr
    log = tmp_path / "actions.json"
    proc = run_copy(copy, "--n-agents", "3", "--dvm-mode", "dvm", "--run-name", "line", "--capture-video", log=log)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "this world has no record_moment to draw with; the run records no videos" in proc.stdout
    assert re.search(r"phase 2  global_step 384  SPS \d+  eval/return -\d+\.\d\d", proc.stdout)
    assert "DVM step (dvm): 5 iterations done" in proc.stdout
    assert {p.name for p in (copy.parent / "runs" / "line").iterdir() if p.suffix == ".pt"} == \
        {"phase1.pt", "dvm.pt", "phase2.pt"}
    seen = json.loads(log.read_text())
    if script == "maddpg_dvm.py":  # exploration reaches every one of the 3 actions, and none outside (the world raises)
        assert seen["discrete"] == [0, 1, 2]
    else:  # the squashed actions are scaled to the Box [-2, 2]: beyond [-1, 1], never outside (the world raises)
        assert seen["low"] < -1.0 and seen["high"] > 1.0


BREACHES = [
    ("tuple", "expected reset() -> the observations alone (no info), got tuple"),
    ("float64", "expected float32 observations (2, 3, 6), got float64 (2, 3, 6)"),
    ("per_agent_reward", "expected one team reward per world, (2,), got shape (2, 3)"),
    ("terminate", "expected no termination (the TD targets bootstrap), got [ True  True] at step 3"),
    ("unsynced", "expected every world truncated together at the horizon 10, got [ True False] at step 9"),
    ("phase_obs", "expected the same observation size and action space in every phase"),
]


@pytest.mark.parametrize("script, breach, message", [
    *[(script, *breach) for script in ("maddpg_dvm.py", "masac_dvm.py") for breach in BREACHES],
    ("maddpg_dvm.py", "box", "expected a Discrete(n) action space of actions 0..n-1, got Box"),
    ("masac_dvm.py", "unbounded", "expected a bounded Box action space of shape (k,), got Box")])
def test_a_world_that_breaks_the_contract_is_one_line_before_any_work(script, tmp_path, breach, message):
    copy = copy_alone(script, tmp_path / "project")
    proc = run_copy(copy, "--n-agents", "3", breach=breach)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: make_env(args, 2, phase=") and message in proc.stderr, proc.stderr
    assert "phase 1" not in proc.stdout and not (copy.parent / "runs").exists()


def test_swap_consistency_errors_checks_a_world_of_ones_own(tmp_path):
    sys.path.insert(0, str(tmp_path))
    (tmp_path / "line_world.py").write_text(LINE_WORLD)
    import line_world

    world = line_world.LineWorld(64, 4, phase=2, continuous=False)
    world.reset(seed=0)
    for _ in range(3):
        assert pe.swap_consistency_errors(world.observe, world.swap_agents, 4) == []
        world.step(np.random.default_rng(0).integers(0, 3, (64, 4)))
    # the same world listing the others in index order instead of sorted: every pair breaks it
    world.observe = lambda: np.concatenate([world.pos[..., None], world.pos[:, None, :] - world.pos[:, :, None]], -1)
    assert pe.swap_consistency_errors(world.observe, world.swap_agents, 4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3),
                                                                               (2, 3)]
