"""Environment speed: env-steps per second (worlds x steps) of particle_envs at 1, 64 and 1024 worlds: spread with 3
agents (the paper's Fig. 4b) and 8 (beyond the paper), push box.

    python benchmark/env_speed.py
    CLOCK=cpu OPENBLAS_NUM_THREADS=1 python benchmark/env_speed.py   # on a machine busy with other jobs

References are measured in the same run when installed (`pip install vmas mpe2`, not in requirements.txt):
VMAS's simple_spread on the CPU at the same batch sizes and team sizes, and PettingZoo/MPE2's simple_spread_v3 (one
world). Ratios are printed against them, so the comparison does not depend on how fast this machine is today.
CLOCK=cpu counts the CPU seconds of this process instead of wall seconds, so that other jobs do not count (with
one thread for every library, as here, the two agree on an idle machine).
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import particle_envs  # noqa: E402

clock = time.process_time if os.environ.get("CLOCK") == "cpu" else time.perf_counter


def ours(domain, n_agents, num_envs, seconds):
    env = particle_envs.make(domain, num_envs=num_envs, n_agents=n_agents)
    actions = np.random.default_rng(0).integers(0, 5, (64, num_envs, env.n_agents))
    env.reset(seed=0)
    steps, start = 0, clock()
    while clock() - start < seconds:
        for k in range(env.horizon):  # an episode, then reset: resets are part of the cost
            env.step(actions[k % 64])
        env.reset()
        steps += env.horizon
    return steps * num_envs / (clock() - start)


def vmas_spread(n_agents, num_envs, seconds):
    import torch
    import vmas

    torch.set_num_threads(1)
    env = vmas.make_env("simple_spread", num_envs=num_envs, device="cpu", continuous_actions=False, n_agents=n_agents,
                        max_steps=None, seed=0)
    env.reset()
    actions = [torch.randint(0, 5, (num_envs,)) for _ in range(n_agents)]
    steps, start = 0, clock()
    while clock() - start < seconds:
        for _ in range(25):
            env.step(actions)
        env.reset()
        steps += 25
    return steps * num_envs / (clock() - start)


def mpe2_spread(n_agents, seconds):
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(N=n_agents, max_cycles=25)
    env.reset(seed=0)
    steps, start = 0, clock()
    while clock() - start < seconds:
        for _ in range(25):
            env.step({agent: 1 for agent in env.agents})
        env.reset()
        steps += 25
    return steps / (clock() - start)


if __name__ == "__main__":
    seconds = float(os.environ.get("SECONDS_PER_CASE", 3))
    print(f"{'case':<22}{'ours':>14}{'reference':>14}{'ratio':>10}")
    for domain, n_agents in (("spread", 3), ("spread", 8), ("push_box", 2)):
        for num_envs in (1, 64, 1024):
            sps = ours(domain, n_agents, num_envs, seconds)
            ref_name, ref = "", None
            try:  # the reference the issue names: MPE2 for one world, VMAS for batches
                if domain == "spread":
                    ref_name = "mpe2" if num_envs == 1 else "vmas"
                    ref = (mpe2_spread(n_agents, seconds) if num_envs == 1
                           else vmas_spread(n_agents, num_envs, seconds))
            except ImportError:
                pass
            name = f"{domain}{f'(n={n_agents})' if domain == 'spread' else ''} x{num_envs}"
            if ref is None:
                print(f"{name:<22}{sps:>14,.0f}{'-':>14}{'-':>10}")
            else:
                print(f"{name:<22}{sps:>14,.0f}{ref:>11,.0f} {ref_name:<4}{sps / ref:>7.1f}x")
