"""What the tests of maddpg_dvm.py and masac_dvm.py share: tiny subprocess runs and checkpoint comparisons."""
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a whole Phase I -> DVM -> Phase II run in seconds
TINY = ["--phase1-steps", "256", "--phase2-steps", "128", "--num-envs", "8", "--learning-starts", "64",
        "--batch-size", "32", "--dvm-iterations", "5", "--dvm-batch-size", "16", "--hidden-dim", "16",
        "--eval-every", "64", "--eval-episodes", "4", "--buffer-size", "1000", "--threads", "1",
        "--log-every", "4"]


def run_script(script, tmp_path, *flags, check=True):
    """Run `script` with TINY step counts and `flags` (later flags win), logs under tmp_path."""
    cmd = [sys.executable, os.path.join(ROOT, script), "--runs-dir", str(tmp_path), *TINY, *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def networks(checkpoint, team=0):
    return checkpoint["teams"][team]


def all_equal(state_dicts):
    first = state_dicts[0]
    return all(all(torch.equal(first[k], sd[k]) for k in first) for sd in state_dicts[1:])


def per_agent(team_state, key, n):
    """Split a ModuleList state dict into one state dict per agent."""
    return [{k.split(".", 1)[1]: v for k, v in team_state[key].items() if k.startswith(f"{i}.")} for i in range(n)]
