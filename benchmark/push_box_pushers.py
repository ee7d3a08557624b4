"""Does cooperation pay in the push box? Returns of scripted pushers, by box mass and rule.

    python benchmark/push_box_pushers.py [--masses 2 3 5 8] [--worlds 3000]

For each box mass, the mean episode return (25 steps, reward -|target - box|^2 per step) on each Task III target
of zero, one and two scripted pushers, agents started as in training (random angles on the ring of radius 0.5).
A pusher circles the box to a contact point behind it (a pair 0.5 rad to either side of the box-target line, one
alone straight behind) and, once there, pushes through the box's centre; an idle agent (zero, one pusher) is
parked out of reach. The "heavy" rule (the default) is what the figures use; "both" is the paper's literal rule,
where one pusher never moves the box.

With MPE damping the terminal speed of a pushed box is proportional to the push over the total mass moved
(box plus pushers), so two pushers are about 2 (1 + m) / (2 + m) times as fast as one; the table shows what
that makes of the return. The figures' mass (particle_envs.BOX_MASS) was chosen from it (benchmark/README.md).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import particle_envs  # noqa: E402

SIDES = np.array([0.5, -0.5])  # agent k's contact point lies SIDES[k] rad off the line behind the box


def scripted_actions(env, pushers):
    """Continuous actions (N, 2, 2): each pusher circles the box to its contact point behind it, then pushes."""
    to_target = env.target - env.box_pos  # (N, 2)
    dist = np.linalg.norm(to_target, axis=1, keepdims=True)
    d = to_target / np.maximum(dist, 1e-9)
    reach = env.box_radius + env.agent_radius
    actions = np.zeros((env.num_envs, 2, 2))
    for k in pushers:
        side = SIDES[k] if len(pushers) == 2 else 0.0
        want = np.arctan2(-d[:, 1], -d[:, 0]) + side  # angle of the contact point, seen from the box
        rel = env.pos[:, k] - env.box_pos
        have = np.arctan2(rel[:, 1], rel[:, 0])
        error = (want - have + np.pi) % (2 * np.pi) - np.pi
        # off position: walk around the box on a circle clear of it, at most 0.8 rad at a time
        angle = have + np.clip(error, -0.8, 0.8)
        waypoint = env.box_pos + (reach + 0.15) * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        around = 3 * (waypoint - env.pos[:, k])
        # in position: hold the contact point (just inside contact) and push toward the target
        contact_point = env.box_pos + (reach - 0.02) * np.stack([np.cos(want), np.sin(want)], axis=1)
        to_centre = -rel / np.maximum(np.linalg.norm(rel, axis=1, keepdims=True), 1e-9)
        push = to_centre * np.minimum(1.0, 3 * dist) + 3 * (contact_point - env.pos[:, k])  # through the centre
        u = np.where(np.abs(error)[:, None] < 0.3, push, around)
        actions[:, k] = u / np.maximum(1.0, np.linalg.norm(u, axis=1, keepdims=True))
    return actions


def returns(box_mass, box_rule, pushers, worlds, seed=0):
    """Mean episode return per Task III target for the given pushers; idle agents are parked out of reach."""
    env = particle_envs.make("push_box", num_envs=worlds, task=3, continuous=True, box_rule=box_rule,
                             box_mass=box_mass)
    env.reset(seed=seed)
    idle = [k for k in range(2) if k not in pushers]
    total = np.zeros(worlds)
    for _ in range(env.horizon):
        env.pos[:, idle] = 3.0  # out of reach, every step
        total += env.step(scripted_actions(env, pushers))[1]
    return [total[env.target_index == t].mean() for t in range(3)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--masses", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0, 8.0])
    parser.add_argument("--worlds", type=int, default=3000)
    cli = parser.parse_args()
    print("mean episode return of scripted pushers (left / right / up target; mean)")
    print(f"{'rule':<6} {'mass':>5}  {'pushers':>7}  {'left':>7} {'right':>7} {'up':>7} {'mean':>7}  two/one speed-up 2(1+m)/(2+m)")
    for rule in ("heavy", "both"):
        for m in cli.masses:
            for pushers in ((), (0,), (0, 1)):
                r = returns(m, rule, pushers, cli.worlds)
                note = f"  {2 * (1 + m) / (2 + m):.2f}" if len(pushers) == 2 and rule == "heavy" else ""
                print(f"{rule:<6} {m:>5g}  {len(pushers):>7}  " + " ".join(f"{x:7.2f}" for x in r)
                      + f" {np.mean(r):7.2f}{note}", flush=True)
