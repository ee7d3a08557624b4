"""Behaviour pinned across refactors: tiny runs of both scripts on both domains give the committed eval/return
curves value for value, and --capture-video the committed GIFs byte for byte (tests/fingerprints.json).

Regenerate only for a change that is meant to change numbers: `python tests/test_fingerprint.py` writes the file.
"""
import dataclasses
import glob
import hashlib
import importlib
import json
import os
import sys

import pytest
import torch
import tyro
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import TINY, run_script  # noqa: E402

FINGERPRINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fingerprints.json")
RUNS = {f"{script} {domain}": (script, flags) for script in ("maddpg_dvm.py", "masac_dvm.py") for domain, flags in
        (("spread", ["--n-agents", "3", "--seed", "3"]), ("push_box", ["--domain", "push_box", "--seed", "2"]))}


def fingerprint(key, tmp_path):
    """The run's eval/return curve as [step, value] pairs, and the sha256 of each GIF by file name."""
    script, flags = RUNS[key]
    run_script(script, tmp_path, *flags, "--run-name", "run", "--capture-video")
    return fingerprint_of(tmp_path / "run")


def fingerprint_of(run_dir):
    events = EventAccumulator(str(run_dir)).Reload()
    curve = [[e.step, e.value] for e in events.Scalars("eval/return")]
    gifs = {os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in sorted(glob.glob(str(run_dir / "videos" / "*.gif")))}
    return dict(curve=curve, gifs=gifs)


@pytest.mark.parametrize("key", list(RUNS))
def test_tiny_runs_give_the_committed_curves_and_videos(key, tmp_path, spread_runs):
    expected = json.load(open(FINGERPRINTS))[key]
    script, flags = RUNS[key]
    if key.endswith(" spread"):
        # conftest.py's spread run is this very run (--dvm-mode dvm is the default, the run's name changes no number):
        # read it rather than train it a second time
        run_dir = spread_runs(script) / "full"
        config = torch.load(run_dir / "phase2.pt", weights_only=True)["config"]
        args = tyro.cli(importlib.import_module(script[:-3]).Args, args=[*TINY, *flags, "--capture-video"])
        assert {k: v for k, v in config.items() if k not in ("run_name", "runs_dir")} == \
            {k: v for k, v in dataclasses.asdict(args).items() if k not in ("run_name", "runs_dir")}
        got = fingerprint_of(run_dir)
    else:
        got = fingerprint(key, tmp_path)
    assert got["curve"] == expected["curve"]
    assert got["gifs"] == expected["gifs"]


if __name__ == "__main__":
    import pathlib
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        prints = {key: fingerprint(key, pathlib.Path(tmp) / key.replace(" ", "_")) for key in RUNS}
    with open(FINGERPRINTS, "w") as f:
        json.dump(prints, f, indent=1)
    print(f"wrote {FINGERPRINTS}")
