"""The returns a learned spread policy is measured against: uniformly random actions and standing still (no-op), per
team size and phase, over many episodes (the figures' evaluation episodes are 25 steps, MPE's horizon).

    python benchmark/spread_baselines.py [--episodes 4000] [--n-agents 2 3 4 6 8]

Prints a Markdown table (mean ± standard error of the episode return); benchmark/README.md quotes it beside the end
of Phase I of the figures with 6 and 8 agents (fig9.sh), to say whether Phase I learned at all.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import particle_envs  # noqa: E402


def episode_returns(n_agents, phase, policy, episodes, seed):
    """Episode returns of `policy` ("random" or "noop") in `episodes` worlds of spread, stepped as one batch."""
    env = particle_envs.make("spread", num_envs=episodes, n_agents=n_agents, phase=phase)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed + 1)
    total = np.zeros(episodes)
    for _ in range(env.horizon):
        actions = (rng.integers(0, 5, (episodes, n_agents)) if policy == "random"
                   else np.zeros((episodes, n_agents), dtype=np.int64))
        total += env.step(actions)[1]
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=4000)
    parser.add_argument("--n-agents", type=int, nargs="+", default=[2, 3, 4, 6, 8])
    cli = parser.parse_args()
    if cli.episodes < 2 or any(n not in particle_envs.SPREAD_N_AGENTS for n in cli.n_agents):
        sys.exit(f"--episodes must be at least 2 and --n-agents in 2..8, got {cli.episodes} and {cli.n_agents}")
    print(f"spread, {cli.episodes} episodes of 25 steps per cell: mean episode return ± standard error\n")
    print("| agents | random, Phase I starts | random, Phase II starts | no-op, Phase I starts "
          "| no-op, Phase II starts |")
    print("|---|---|---|---|---|")
    for n in cli.n_agents:
        cells = []
        for policy in ("random", "noop"):
            for phase in (1, 2):
                r = episode_returns(n, phase, policy, cli.episodes, seed=phase)
                cells.append(f"{r.mean():.2f} ± {r.std(ddof=1) / np.sqrt(len(r)):.2f}")
        print(f"| {n} | " + " | ".join(cells) + " |")
