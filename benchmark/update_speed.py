"""Gradient-update speed of maddpg_dvm.py and masac_dvm.py against this machine's matmul peak.

    python benchmark/update_speed.py [--threads 1] [--seconds 5]

For n = 2, 3, 4 agents at the paper's sizes (batch 1024, 2 x 256 hidden units) it times one full update of
every agent (critics, actors, targets) of each script, counts its floating-point work with torch's
FlopCounterMode, and prints updates/s and the share of the fp32 matmul peak (torch.mm on 2048 x 2048),
measured in the same run. Next to it, a plain reference, a per-agent loop of nn.Sequential networks with
one Adam per network doing the same MADDPG update, measured the same way.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import maddpg_dvm  # noqa: E402
import masac_dvm  # noqa: E402

OBS_DIM = {2: 10, 3: 14, 4: 18}  # spread observations


def matmul_peak(seconds, dtype=torch.float32):
    """GFLOP/s of torch.mm on 2048 x 2048 matrices of this dtype."""
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    torch.mm(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * 2048**3 * count / (time.perf_counter() - start) / 1e9


def measure(update, seconds):
    """(updates per second, GFLOP per update)"""
    update()
    with FlopCounterMode(display=False) as counter:
        update()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        update()
        count += 1
    return count / (time.perf_counter() - start), counter.get_total_flops() / 1e9


def fill(buffer, n, obs_dim, continuous):
    size = buffer.size
    actions = torch.rand(size, n, 2) * 2 - 1 if continuous else torch.randint(0, 5, (size, n))
    buffer.add(torch.randn(size, n, obs_dim), actions, torch.randn(size), torch.randn(size, n, obs_dim))


def ours_maddpg(n):
    args = maddpg_dvm.Args(n_agents=n, buffer_size=8192)
    team = maddpg_dvm.Team(args, OBS_DIM[n], 5, "cpu")
    fill(team.buffer, n, OBS_DIM[n], False)
    return lambda: maddpg_dvm.maddpg_update(team, args, 5)


def ours_masac(n):
    args = masac_dvm.Args(n_agents=n, buffer_size=8192)
    team = masac_dvm.Team(args, OBS_DIM[n], 2, "cpu")
    fill(team.buffer, n, OBS_DIM[n], True)
    return lambda: masac_dvm.masac_update(team, args)


def reference_maddpg(n, hidden=256, batch=1024, gamma=0.95, tau=0.01):
    """The plain way: per agent nn.Sequential actor and critic, their targets, one Adam per network."""
    obs_dim, k = OBS_DIM[n], 5

    def mlp(i, o):
        return nn.Sequential(nn.Linear(i, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, o))

    actors = [mlp(obs_dim, k) for _ in range(n)]
    critics = [mlp(n * (obs_dim + k), 1) for _ in range(n)]
    target_actors = [mlp(obs_dim, k) for _ in range(n)]
    target_critics = [mlp(n * (obs_dim + k), 1) for _ in range(n)]
    actor_opts = [torch.optim.Adam(a.parameters(), lr=0.01) for a in actors]
    critic_opts = [torch.optim.Adam(c.parameters(), lr=0.01) for c in critics]
    size = 8192
    data_obs, data_next = torch.randn(size, n, obs_dim), torch.randn(size, n, obs_dim)
    data_act, data_rew = torch.randint(0, 5, (size, n)), torch.randn(size)

    def update():
        idx = torch.randint(0, size, (batch,))
        obs, next_obs, act, rew = data_obs[idx], data_next[idx], F.one_hot(data_act[idx], k).float(), data_rew[idx]
        for i in range(n):
            with torch.no_grad():
                next_act = torch.stack([F.gumbel_softmax(target_actors[j](next_obs[:, j]), hard=True)
                                        for j in range(n)], 1)
                y = rew + gamma * target_critics[i](torch.cat([next_obs.flatten(1), next_act.flatten(1)], 1)).squeeze(-1)
            q = critics[i](torch.cat([obs.flatten(1), act.flatten(1)], 1)).squeeze(-1)
            loss = F.mse_loss(q, y)
            critic_opts[i].zero_grad()
            loss.backward()
            critic_opts[i].step()
            logits = actors[i](obs[:, i])
            a = act.clone()
            a[:, i] = F.gumbel_softmax(logits, hard=True)
            actor_loss = -critics[i](torch.cat([obs.flatten(1), a.flatten(1)], 1)).mean()
            actor_opts[i].zero_grad()
            actor_loss.backward()
            actor_opts[i].step()
            with torch.no_grad():
                for net, target in ((actors[i], target_actors[i]), (critics[i], target_critics[i])):
                    for p, tp in zip(net.parameters(), target.parameters()):
                        tp.lerp_(p, tau)

    return update


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    cli = parser.parse_args()
    torch.set_num_threads(cli.threads)
    torch.manual_seed(0)
    peak = matmul_peak(cli.seconds)
    print(f"torch {torch.__version__}, {cli.threads} thread(s): fp32 matmul peak {peak:.1f} GFLOP/s (torch.mm 2048x2048)")
    print(f"{'script':<12}{'n':>3}{'updates/s':>11}{'GFLOP/upd':>11}{'% of peak':>11}"
          f"{'ref upd/s':>11}{'ref % peak':>11}{'ours/ref':>10}")
    for n in (2, 3, 4):
        ups, gflop = measure(ours_maddpg(n), cli.seconds)
        ref_ups, ref_gflop = measure(reference_maddpg(n), cli.seconds)
        print(f"{'maddpg_dvm':<12}{n:>3}{ups:>11.1f}{gflop:>11.2f}{100 * ups * gflop / peak:>10.0f}%"
              f"{ref_ups:>11.1f}{100 * ref_ups * ref_gflop / peak:>10.0f}%{ups / ref_ups:>9.2f}x")
    for n in (2, 3, 4):
        ups, gflop = measure(ours_masac(n), cli.seconds)
        print(f"{'masac_dvm':<12}{n:>3}{ups:>11.1f}{gflop:>11.2f}{100 * ups * gflop / peak:>10.0f}%")
