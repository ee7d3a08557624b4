"""Pictures of the particle worlds for the README, drawn by particle_envs' own render().

    python benchmark/render_domains.py   # writes benchmark/images/domains.png
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import particle_envs  # noqa: E402

if __name__ == "__main__":
    panels = []
    for row, n in enumerate((2, 3, 4)):  # a row per team size: Phase I, Phase II, and a push box task
        panels += [(f"spread n={n}, Phase {'I' * p}", particle_envs.make("spread", n_agents=n, phase=p)) for p in (1, 2)]
        panels.append((f"push box, Task {('I', 'II', 'III')[row]}", particle_envs.make("push_box", task=row + 1)))
    fig, axes = plt.subplots(3, 3, figsize=(7, 7.4))
    for ax, (title, env) in zip(axes.flatten(), panels):
        env.reset(seed=3)
        if title.endswith("III"):
            env.target_index[:] = 2  # show the new target of Task III
            env.target = particle_envs.BOX_TARGETS[env.target_index]
        ax.imshow(env.render())
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out = os.path.join(HERE, "images", "domains.png")
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
