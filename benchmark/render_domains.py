"""Pictures of the particle worlds for the README, drawn by particle_envs' own render().

    python benchmark/render_domains.py   # writes benchmark/images/domains.png
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import particle_envs  # noqa: E402

if __name__ == "__main__":
    fig = plt.figure(figsize=(7.4, 12))
    grid = fig.add_gridspec(5, 6, height_ratios=[1, 1, 1, 1.1, 0.9])
    panels = []  # (grid cell, title, world)
    for row, n in enumerate((2, 3, 4)):  # a row per team size: Phase I, Phase II, and a push box task
        panels += [(grid[row, 2 * p - 2 : 2 * p], f"spread n={n}, Phase {'I' * p}",
                    particle_envs.make("spread", n_agents=n, phase=p)) for p in (1, 2)]
        panels.append((grid[row, 4:], f"push box, Task {('I', 'II', 'III')[row]}",
                       particle_envs.make("push_box", task=row + 1)))
    for row, n in ((3, 6), (4, 8)):  # beyond the paper: two rows of unit cells, a wider picture
        panels += [(grid[row, 3 * p - 3 : 3 * p], f"spread n={n} (beyond the paper), Phase {'I' * p}",
                    particle_envs.make("spread", n_agents=n, phase=p)) for p in (1, 2)]
    for where, title, env in panels:
        ax = fig.add_subplot(where)
        env.reset(seed=3)
        if title.endswith("III"):
            env.target_index[:] = 2  # show the new target of Task III
            env.target = particle_envs.BOX_TARGETS[env.target_index]
        extent = getattr(env, "extent", 1.25)
        ax.imshow(env.render(), extent=(-extent, extent, -extent, extent))
        if isinstance(env, particle_envs.Spread):  # the start cells (quadrants up to 4 agents), dotted
            for x, y in env.centres:
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, ls=":", lw=0.8, ec=(0.6, 0.6, 0.6)))
            if extent > 1.25:
                ax.set_ylim(-1.35, 1.35)  # the two rows of cells, not the white above and below
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out = os.path.join(HERE, "images", "domains.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
