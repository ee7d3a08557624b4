"""How often does the push box move? A diagnostic for the push box's exploration problem (Figs. 6, 7).

    python benchmark/push_box_exploration.py [PHASE1_CHECKPOINT]

For each box rule ("heavy", the figures' default, and "both", the paper's literal rule), prints the share of steps
in which the box moves (speed above 1e-3) on Task I, 4,096 worlds x 25 steps, next to the share in which at least
one agent touches it, under uniformly random discrete actions and under one constant direction per agent and
episode (roughly what an untrained greedy actor does), for agents spawned on rings of radius 0.5 (default) and
0.35 (just outside contact). Given a maddpg_dvm.py push-box Phase I checkpoint (phase1.pt), also for team A's
greedy actors (in the checkpoint's own rule and mass): the share of steps each agent touches the box, the share in
which the box moves, and how far the agents are from the box at the end. The checkpoint is read first, with
weights_only=True: one that is missing, damaged, of another script, kind or domain, or not loadable that way (its
loading could run code) is refused in one line.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import maddpg_dvm  # noqa: E402
import particle_envs  # noqa: E402
from plot import fail, read_checkpoint  # noqa: E402  (the benchmark's one checkpoint reader and refusal)

WORLDS = 4096


def rollout(env, policy):
    """One batch of Task I episodes: share of steps the box moves, share each agent touches it, share at least
    one does, final distances."""
    obs = env.reset(seed=0)
    moving, touching, either = 0.0, np.zeros(2), 0.0
    for _ in range(env.horizon):
        obs, *_ = env.step(policy(obs))
        moving += (np.linalg.norm(env.box_vel, axis=1) > 1e-3).mean()
        gap = np.linalg.norm(env.pos - env.box_pos[:, None], axis=-1)
        touch = gap < env.agent_radius + env.box_radius
        touching, either = touching + touch.mean(0), either + touch.any(1).mean()
    return moving / env.horizon, touching / env.horizon, either / env.horizon, gap.mean(0)


def load_team_a(path):
    """Team A's actors and the config of a maddpg_dvm.py push-box Phase I checkpoint (the only kind that holds both
    teams), read with weights_only=True (plot.read_checkpoint): anything else is one line of error, and no file can
    run code here."""
    checkpoint = read_checkpoint(path, ("maddpg_dvm",), ("phase1",), "push_box_exploration.py")
    config = checkpoint["config"]
    if not {"domain", "hidden_dim", "box_rule", "box_mass"} <= config.keys():
        fail(f"push_box_exploration.py: {path!r} is an incomplete checkpoint (its config lacks settings)")
    if config["domain"] != "push_box" or len(checkpoint["teams"]) != 2:
        fail(f"push_box_exploration.py needs a push_box run's phase1.pt, {path!r} is of {config['domain']}")
    actors = torch.nn.ModuleList([maddpg_dvm.Actor(12, 5, config["hidden_dim"]) for _ in range(2)])
    try:
        actors.load_state_dict(checkpoint["teams"][0]["actors"])  # team A
    except (KeyError, RuntimeError, TypeError) as e:  # networks of another shape: a damaged checkpoint
        fail(f"push_box_exploration.py: {path!r} does not hold the networks its config describes "
             f"({type(e).__name__})")
    return actors, config


if __name__ == "__main__":
    team_a = load_team_a(sys.argv[1]) if len(sys.argv) > 1 else None  # refused before the minutes of rollouts
    rng = np.random.default_rng(0)
    print("share of steps in which the box moves, Task I")
    for rule in particle_envs.BOX_RULES:
        for spawn in (0.5, 0.35):
            env = particle_envs.make("push_box", num_envs=WORLDS, task=1, spawn_radius=spawn, box_rule=rule)
            random_share, _, random_either, _ = rollout(env, lambda obs: rng.integers(0, 5, (WORLDS, 2)))
            directions = rng.integers(1, 5, (WORLDS, 2))
            constant_share = rollout(env, lambda obs: directions)[0]
            print(f"  rule {rule}, spawn ring {spawn}: random actions {100 * random_share:.2f} % (at least one agent "
                  f"touching: {100 * random_either:.2f} %), constant directions {100 * constant_share:.2f} %")
    if team_a:
        actors, config = team_a

        @torch.no_grad()
        def greedy(obs):
            return torch.stack([a(torch.as_tensor(obs[:, i])).argmax(-1) for i, a in enumerate(actors)], 1).numpy()

        env = particle_envs.make("push_box", num_envs=WORLDS, task=1, box_rule=config["box_rule"],
                                 box_mass=config["box_mass"])
        moving, touching, _, distance = rollout(env, greedy)
        print(f"team A's greedy actors ({sys.argv[1]}): touching {np.round(100 * touching, 1)} % "
              f"of steps, box moving {100 * moving:.2f} %, final distance from the box {np.round(distance, 2)}")
