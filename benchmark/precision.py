"""--precision fp32 against bf16: one gradient update and one DVM iteration of each script, timed in both precisions
in the same run, each against its own precision's matmul peak measured in the same run.

    python benchmark/precision.py [--threads 1] [--seconds 3]

For n = 2 and 4 agents (and 6 with K = 1 sampled permutation, the exact sum being hours there) at the paper's sizes
(batch 1024, 2 x 256 hidden units; the DVM step's 256 samples per source, every agent a source, mode dvm), it prints
the milliseconds of one update and of one DVM iteration at fp32 and at bf16 (torch.autocast), their ratio, and each
one's share of its precision's peak (torch.mm on 2048 x 2048 in fp32 and in bf16, measured again before every n, so
a busy machine shows as a low share rather than a wrong one). The floating-point work is counted once, at fp32, with
torch's FlopCounterMode (autocast changes the dtype of the products, not their number). Whether the CPU has bf16
matrix instructions (amx_bf16, avx512_bf16 in /proc/cpuinfo) is printed first: without them bf16 is slower.
"""
import argparse
import contextlib
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import maddpg_dvm  # noqa: E402
import masac_dvm  # noqa: E402
from update_speed import matmul_peak, measure  # noqa: E402  (the same peak and timing as the update benchmark)

SCRIPTS = {"maddpg_dvm": maddpg_dvm, "masac_dvm": masac_dvm}


def works(name, n, k, precision):
    """(one update, one DVM iteration) of script `name` at n agents, K sampled permutations and this precision."""
    m, obs_dim = SCRIPTS[name], 4 * n + 2
    discrete = m is maddpg_dvm
    act = 5 if discrete else 2
    args = m.Args(n_agents=n, buffer_size=8192, dvm_iterations=1, vm_permutations=k, precision=precision)
    team = m.Team(args, obs_dim, act, "cpu")
    actions = torch.randint(0, act, (8192, n)) if discrete else torch.rand(8192, n, act) * 2 - 1
    team.buffer.add(torch.randn(8192, n, obs_dim), actions, torch.randn(8192), torch.randn(8192, n, obs_dim))

    def update():
        return m.maddpg_update(team, args, act) if discrete else m.masac_update(team, args)

    def dvm_iteration():
        with contextlib.redirect_stdout(None):  # match_values' progress line, printed at every one-iteration step
            m.train_students([team], dataclasses.replace(args, dvm_mode="dvm"), obs_dim, act, "cpu")

    return update, dvm_iteration


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    cli = parser.parse_args()
    torch.set_num_threads(cli.threads)
    torch.manual_seed(0)
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    print(f"torch {torch.__version__}, {cli.threads} thread(s); bf16 matrix instructions: "
          f"{', '.join(sorted(flags & {'amx_bf16', 'avx512_bf16'})) or 'none (bf16 is emulated, slower)'}")
    print(f"{'script':<11}{'n':>3}{'K':>5}  {'what':<14}{'fp32 ms':>9}{'bf16 ms':>9}{'fp32/bf16':>11}"
          f"{'fp32 % peak':>13}{'bf16 % peak':>13}")
    for n, k in ((2, 0), (4, 0), (6, 1)):
        peak = {p: matmul_peak(cli.seconds, dtype) for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
        for name in SCRIPTS:
            fp32, bf16 = works(name, n, k, "fp32"), works(name, n, k, "bf16")
            for what, i in (("update", 0), ("DVM iteration", 1)):
                (rate, work), (rate_bf16, _) = measure(fp32[i], cli.seconds), measure(bf16[i], cli.seconds)
                t = {"fp32": 1 / rate, "bf16": 1 / rate_bf16}
                share = {p: 100 * work / t[p] / peak[p] for p in t}
                print(f"{name:<11}{n:>3}{'all' if k == 0 else k:>5}  {what:<14}{1000 * t['fp32']:>9.2f}"
                      f"{1000 * t['bf16']:>9.2f}{t['fp32'] / t['bf16']:>10.2f}x{share['fp32']:>12.0f}%"
                      f"{share['bf16']:>12.0f}%", flush=True)
        print(f"   (n = {n}: matmul peak fp32 {peak['fp32']:.0f}, bf16 {peak['bf16']:.0f} GFLOP/s)")
