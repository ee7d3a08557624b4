"""Fig. 8: Agent 1's policy and action-value before and after DVM, 2-agent spread, from saved checkpoints.

    python benchmark/fig8.py [FIG] [--merge]   # reads benchmark/runs/FIG (default fig8) -> images/FIG.png

Where images/FIG.png exists already (committed), the picture goes to runs/FIG/quick_look/FIG.png instead, unless
--merge (MERGE=1 for fig8.sh) asks to replace it.

Rows: the networks at the end of Phase I (what No DVM takes into Phase II), right after the DVM step, and at
the end of Phase II for No DVM and for DVM. Columns: Phase I configuration (Agent 2 at its Phase I start, the
upper right target) and Phase II configuration (Agent 2 at the lower left target), each as
  - policy: arrows of Agent 1's expected unit force under softmax(logits / temperature), over a grid of its
    positions (velocity zero);
  - action-value: max over Agent 1's actions of its critic Q^1(o, a), Agent 2 taking its greedy action.
Seed 1 of the run folder: none/phase1.pt, dvm/dvm.pt, none/phase2.pt and dvm/phase2.pt of maddpg_dvm.py, read with
weights_only=True; a file that is missing, damaged, of another script or kind, or not loadable that way (its loading
could run code) is refused in one line before anything is drawn.
"""
import argparse
import io
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import maddpg_dvm  # noqa: E402
import particle_envs  # noqa: E402
from plot import OUT, fail, read_checkpoint, write_atomically  # noqa: E402  (the benchmark's one checkpoint reader,
# refusal and file writer)

GRID = 21  # Agent 1 positions per axis for the heat map; every second one gets an arrow


def load_team(path, kind):
    """Agent 1's actor and critic and Agent 2's actor from a maddpg_dvm.py checkpoint of `kind` of a 2-agent spread
    run; anything else is one line of error (read_checkpoint: weights_only, so that no file can run code here)."""
    checkpoint = read_checkpoint(path, ("maddpg_dvm",), (kind,), "Fig. 8")
    config, team = checkpoint["config"], checkpoint["teams"][0]
    if not {"domain", "n_agents", "hidden_dim", "temperature"} <= config.keys():
        fail(f"Fig. 8: {path!r} is an incomplete checkpoint (its config lacks settings)")
    if config["domain"] != "spread" or config["n_agents"] != 2:
        fail(f"Fig. 8 needs a 2-agent spread run, {path!r} is {config['domain']} with {config['n_agents']} agents")
    obs_dim, hidden = particle_envs.make("spread", n_agents=2).single_observation_space.shape[0], config["hidden_dim"]
    # the checkpoint holds the script's nn.ModuleLists, one entry per agent
    actors = torch.nn.ModuleList([maddpg_dvm.Actor(obs_dim, 5, hidden) for _ in range(2)])
    critics = torch.nn.ModuleList([maddpg_dvm.Critic(2, obs_dim, 5, hidden) for _ in range(2)])
    try:
        actors.load_state_dict(team["actors"])
        critics.load_state_dict(team["critics"])
    except (KeyError, RuntimeError, TypeError) as e:  # networks of another shape, or none: a damaged checkpoint
        fail(f"Fig. 8: {path!r} does not hold the networks its config describes ({type(e).__name__})")
    return actors, critics[0], config["temperature"]


def grid_observations(other_pos):
    """Observations of both agents with Agent 1 on the grid, Agent 2 at other_pos, all at rest."""
    env = particle_envs.make("spread", num_envs=GRID * GRID, n_agents=2)
    env.reset(seed=0)
    xs = np.linspace(-1.0, 1.0, GRID)
    gx, gy = np.meshgrid(xs, xs)
    env.pos[:, 0] = np.stack([gx.ravel(), gy.ravel()], 1)
    env.pos[:, 1] = other_pos
    return torch.as_tensor(env.observe()), gx, gy


@torch.no_grad()
def policy_and_value(actors, critic, temperature, obs):
    probs = torch.softmax(actors[0](obs[:, 0]) / temperature, -1).numpy()
    force = probs @ particle_envs.DISCRETE_FORCES  # expected unit force of Agent 1
    other = torch.nn.functional.one_hot(actors[1](obs[:, 1]).argmax(-1), 5).float()
    q = torch.stack([critic(obs, torch.stack([torch.nn.functional.one_hot(torch.full((len(obs),), a), 5).float(),
                                              other], 1)) for a in range(5)], 1)
    return force, q.max(1).values.numpy()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fig", nargs="?", default="fig8", help="the run.py figure to draw (default fig8)")
    parser.add_argument("--merge", action="store_true", help="replace images/FIG.png where it exists")
    cli = parser.parse_args()
    fig_name = cli.fig
    seed_dir = os.path.join(OUT, "runs", fig_name, "seed1")
    rows = [("End of Phase I\n(No DVM enters Phase II)", os.path.join(seed_dir, "none", "phase1.pt"), "phase1"),
            ("Right after DVM", os.path.join(seed_dir, "dvm", "dvm.pt"), "dvm"),
            ("End of Phase II,\nNo DVM", os.path.join(seed_dir, "none", "phase2.pt"), "phase2"),
            ("End of Phase II,\nDVM", os.path.join(seed_dir, "dvm", "phase2.pt"), "phase2")]
    networks = [load_team(path, kind) for _, path, kind in rows]  # all refusals before any drawing
    targets = particle_envs.QUADRANT_CENTRES[:2]
    # Agent 2 sits on the target of its start quadrant: UR in Phase I, LL in Phase II
    configs = [("Phase I config", targets[1]), ("Phase II config", targets[0])]
    grids = [grid_observations(other_pos) for _, other_pos in configs]  # the same for every row
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 12))
    for r, ((label, _, _), (actors, critic, temperature)) in enumerate(zip(rows, networks)):
        for c, ((config_name, other_pos), (obs, gx, gy)) in enumerate(zip(configs, grids)):
            force, value = policy_and_value(actors, critic, temperature, obs)
            ax_pi, ax_q = axes[r, 2 * c], axes[r, 2 * c + 1]
            step = slice(None, None, 2)
            u, v = force[:, 0].reshape(GRID, GRID), force[:, 1].reshape(GRID, GRID)
            ax_pi.quiver(gx[step, step], gy[step, step], u[step, step], v[step, step], color="tab:red",
                         angles="xy", scale_units="xy", scale=8)
            image = ax_q.imshow(value.reshape(GRID, GRID), origin="lower", extent=(-1.05, 1.05, -1.05, 1.05),
                                cmap="viridis")
            fig.colorbar(image, ax=ax_q, fraction=0.046)
            for ax in (ax_pi, ax_q):
                ax.scatter(*targets.T, marker="x", color="black", s=60, zorder=3)
                ax.scatter(*other_pos, s=250, facecolors="none", edgecolors="tab:blue", lw=2, zorder=3)
                ax.set_xlim(-1.1, 1.1)
                ax.set_ylim(-1.1, 1.1)
                ax.set_aspect("equal")
                ax.set_xticks([])
                ax.set_yticks([])
            if r == 0:
                ax_pi.set_title(f"{config_name}: policy", fontsize=10)
                ax_q.set_title(f"{config_name}: action-value", fontsize=10)
            if c == 0:
                ax_pi.set_ylabel(label, fontsize=10)
    fig.suptitle("Fig. 8: Agent 1 (red arrows: expected force) with Agent 2 (blue circle) held on a target; "
                 "x: targets", fontsize=11)
    fig.tight_layout()
    out = os.path.join(OUT, "images", f"{fig_name}.png")
    quick = os.path.exists(out) and not cli.merge  # a quick look leaves the committed picture alone
    if quick:
        out = os.path.join(OUT, "runs", fig_name, "quick_look", f"{fig_name}.png")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        write_atomically(out, png.getvalue())
    except OSError as e:
        fail(str(e) if e.strerror is None else f"cannot write in {os.path.dirname(out)} ({e.strerror})")
    print(f"wrote {out}" + ("; images/ is left as it was: run again with MERGE=1 (fig8.py --merge) to replace it"
                            if quick else ""))
