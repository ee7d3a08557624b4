"""Animated GIFs of a saved policy: the videos of --capture-video, drawn afterwards from a checkpoint.

    python benchmark/render_policy.py RUN_DIR/phase2.pt [--out DIR] [--seed N]

Takes a phase1.pt, dvm.pt or phase2.pt of maddpg_dvm.py or masac_dvm.py (the script, the checkpoint's kind and the
run's configuration are read from the checkpoint, with weights_only=True, so that no code in it runs) and draws one
greedy (MADDPG) or mean-action (MA-SAC) episode per configuration with that script's own capture_videos, which
particle_envs.record_moment records: phase1.pt gives phase1_end__*.gif, dvm.pt after_dvm__*.gif and phase2.pt
phase2_end__*.gif (spread: Phase I and Phase II start quadrants; push box: team A on Task I and team B on Task II
from phase1.pt, Task III with each of its targets from the others). The GIFs go into DIR, by default the folder
rendered_seedN/ beside the checkpoint (not the run's videos/, whose GIFs --capture-video made); with the run's seed
(the default) they show the episodes --capture-video showed, byte for byte. It writes over no file: where DIR holds
a GIF of the same name, it refuses, and writes none.
"""
import argparse
import dataclasses
import importlib
import os
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPTS = ("maddpg_dvm", "masac_dvm")  # checkpoint["algorithm"]
MOMENTS = {"phase1": "phase1_end", "dvm": "after_dvm", "phase2": "phase2_end"}  # checkpoint["kind"]


def load_actor_teams(module, checkpoint, args):
    """The actors of every team in the checkpoint (push box phase1.pt: teams A and B), one ModuleList per team."""
    env = module.make_env(args, 1, phase=1, task=1)
    obs_dim, space = env.single_observation_space.shape[0], env.single_action_space
    action_size = space.n if hasattr(space, "n") else space.shape[0]  # discrete logits or a continuous force
    teams = []
    for state in checkpoint["teams"]:
        actors = torch.nn.ModuleList([module.Actor(obs_dim, action_size, args.hidden_dim) for _ in range(args.n_agents)])
        actors.load_state_dict(state["actors"])
        teams.append(actors.eval())
    return teams


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="phase1.pt, dvm.pt or phase2.pt of a maddpg_dvm.py or masac_dvm.py run")
    parser.add_argument("--out", help="folder of the GIFs (default: rendered_seedN/ beside the checkpoint)")
    parser.add_argument("--seed", type=int, help="seed of the episodes' start states (default: the run's seed)")
    cli = parser.parse_args(argv)
    if not os.path.isfile(cli.checkpoint):
        sys.exit(f"error: checkpoint {cli.checkpoint!r} does not exist")
    if cli.seed is not None and not 0 <= cli.seed < 2**32:
        sys.exit(f"error: --seed {cli.seed}: a seed is from 0 to {2**32 - 1}")
    if cli.out and os.path.exists(cli.out) and not os.path.isdir(cli.out):
        sys.exit(f"error: --out {cli.out!r} is a file; give a folder for the GIFs")
    try:
        checkpoint = torch.load(cli.checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (truncated, not a checkpoint, or objects whose unpickling could run code)
        sys.exit(f"error: cannot read {cli.checkpoint!r} as a checkpoint ({type(e).__name__}): only what the scripts "
                 "save is read, never objects whose unpickling could run code")
    found = (checkpoint.get("algorithm"), checkpoint.get("kind")) if isinstance(checkpoint, dict) else (None, None)
    if found[0] not in SCRIPTS or found[1] not in MOMENTS:
        sys.exit(f"error: {cli.checkpoint!r} is not a phase1.pt, dvm.pt or phase2.pt of "
                 f"{' or '.join(s + '.py' for s in SCRIPTS)}")
    module = importlib.import_module(found[0])
    # the run's configuration; fields this version of the script no longer has are left out
    fields = {f.name for f in dataclasses.fields(module.Args)}
    args = module.Args(**{k: v for k, v in checkpoint["config"].items() if k in fields})
    torch.set_num_threads(1)  # a single episode of small networks
    seed = args.seed if cli.seed is None else cli.seed
    out = cli.out or os.path.join(os.path.dirname(os.path.abspath(cli.checkpoint)), f"rendered_seed{seed}")
    try:  # drawn into a folder of its own first, then moved beside any GIFs there, none of which it writes over
        os.makedirs(out, exist_ok=True)
        drawn = tempfile.mkdtemp(prefix=".drawing", dir=out)
    except OSError as e:
        sys.exit(f"error: cannot write in {out} ({e.strerror})")
    try:
        paths = module.capture_videos(load_actor_teams(module, checkpoint, args), args, "cpu", MOMENTS[found[1]],
                                      drawn, seed)
        there = [os.path.basename(p) for p in paths if os.path.exists(os.path.join(out, os.path.basename(p)))]
        if there:
            sys.exit(f"error: {out} holds {there[0]} already, which render_policy.py does not write over; give "
                     "another --out, or delete it")
        for path in paths:
            os.replace(path, os.path.join(out, os.path.basename(path)))
            print(f"wrote {os.path.join(out, os.path.basename(path))}")
    finally:
        shutil.rmtree(drawn, ignore_errors=True)


if __name__ == "__main__":
    main()
