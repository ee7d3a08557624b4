"""The DVM step's cost per number of agents n: value matching over all n! permutations (Eq. 6) against K sampled ones
(--vm-permutations K), against this machine's matmul peak. Beyond the paper, which stops at 4 agents.

    python benchmark/dvm_step_speed.py [--threads 1] [--seconds 3] [--max-exact 6] [--max-n 8]

For n = 2 to 8 agents at the paper's sizes (2 x 256 hidden units, spread observations of 4n + 2 numbers) and the
DVM step's batch (256 samples per source agent, every agent a source), it times one DVM iteration of maddpg_dvm.py
in mode dvm (distillation, Eq. 3, and value matching, Eq. 6, one Adam step per source each), counts its
floating-point work with torch's FlopCounterMode, and prints seconds per iteration, the share of the fp32 matmul
peak (torch.mm on 2048 x 2048, measured again before every n in the same run, so a busy machine shows as a low share
rather than a wrong one), and what the paper's 2048 iterations take. The exact sum is timed up to --max-exact agents;
beyond, its cost is the exact work counted on one source's batch at the share of peak of the exact sum at the largest
n timed (marked "est."): maddpg_dvm.py refuses the exact sum from 7 agents on.
"""
import argparse
import contextlib
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import maddpg_dvm  # noqa: E402
from update_speed import matmul_peak, measure  # noqa: E402  (the same peak and timing as the update benchmark)


def dvm_iteration(n, k):
    """One DVM iteration (mode dvm) of n source agents with K sampled permutations (0: all n!)."""
    obs_dim = 4 * n + 2
    args = maddpg_dvm.Args(n_agents=n, dvm_iterations=1, vm_permutations=k, buffer_size=4096)
    buffer = maddpg_dvm.ReplayBuffer(args.buffer_size, n, obs_dim, "cpu")
    buffer.add(torch.randn(4096, n, obs_dim), torch.randint(0, 5, (4096, n)), torch.randn(4096),
               torch.randn(4096, n, obs_dim))
    actors = [maddpg_dvm.Actor(obs_dim, 5, args.hidden_dim) for _ in range(n)]
    critics = [maddpg_dvm.Critic(n, obs_dim, 5, args.hidden_dim) for _ in range(n)]

    def iteration():
        with contextlib.redirect_stdout(None):  # match_values' progress line, printed at every one-iteration step
            maddpg_dvm.distill_actor([(a, buffer, i) for i, a in enumerate(actors)], args, obs_dim, 5, "cpu")
            maddpg_dvm.match_values([(c, buffer) for c in critics], args, obs_dim, 5, "cpu")

    return iteration


def exact_gflop(n):
    """The work of one exact DVM iteration, counted without running it: one source's value matching step over all n!
    permutations scales with the rows it sees, so count K = 1 and K = 8 and extrapolate linearly to n!."""
    counts = {}
    for k in (1, 8):
        obs_dim = 4 * n + 2
        student, source = maddpg_dvm.Critic(n, obs_dim, 5, 256), maddpg_dvm.Critic(n, obs_dim, 5, 256)
        obs, actions = torch.randn(256, n, obs_dim), F.one_hot(torch.randint(0, 5, (256, n)), 5).float()
        perms = torch.arange(n).repeat(k, 1)  # k permutations' worth of rows
        with FlopCounterMode(display=False) as counter:
            maddpg_dvm.value_matching_loss(student, obs, actions, source(obs, actions).detach(), perms, k).backward()
        counts[k] = counter.get_total_flops() / 1e9
    per_row = (counts[8] - counts[1]) / 7
    return n * (counts[1] + per_row * (math.factorial(n) - 1))  # n sources; distillation is negligible beside it


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-exact", type=int, default=6, help="time the exact sum up to this many agents")
    parser.add_argument("--max-n", type=int, default=8, help="the largest number of agents")
    cli = parser.parse_args()
    torch.set_num_threads(cli.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {cli.threads} thread(s); one DVM iteration (mode dvm, batch 256 per source, "
          "2 x 256 units), every agent a source")
    print(f"{'n':>2}{'n!':>7}{'K':>7}{'s/iter':>10}{'GFLOP/iter':>12}{'% of peak':>11}{'2048 iter':>14}{'vs exact':>10}")
    exact_share = None
    for n in range(2, cli.max_n + 1):
        peak = matmul_peak(cli.seconds)
        exact_seconds = None
        for k in [0, 1, 2, 4, 8]:
            if k > math.factorial(n) or (k == math.factorial(n) and k > 0):
                continue  # K = n! is the exact sum's work
            if k == 0 and n > cli.max_exact:
                gflop = exact_gflop(n)
                seconds, mark = gflop / (exact_share * peak), " est."
            else:
                rate, gflop = measure(dvm_iteration(n, k), cli.seconds)
                seconds, mark = 1 / rate, ""
            if k == 0:
                exact_seconds = seconds
                exact_share = gflop / seconds / peak if not mark else exact_share
            step = 2048 * seconds
            step_text = f"{step / 3600:.1f} h" if step >= 3600 else f"{step / 60:.1f} min" if step >= 60 else f"{step:.0f} s"
            print(f"{n:>2}{math.factorial(n):>7}{'all' if k == 0 else k:>7}{seconds:>10.3f}{gflop:>12.2f}"
                  f"{100 * gflop / seconds / peak:>10.0f}%{step_text + mark:>14}{exact_seconds / seconds:>9.1f}x",
                  flush=True)
        print(f"   (fp32 matmul peak {peak:.1f} GFLOP/s)")
