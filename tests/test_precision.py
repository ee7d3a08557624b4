"""--precision bf16: the networks' forward and backward passes in bfloat16 autocast, in the updates and in the DVM step;
weights, Adam's states, targets and losses in fp32. (fp32, the default, is pinned by tests/fingerprints.json.)"""
import numpy as np
import pytest
import torch

import maddpg_dvm
import masac_dvm
from helpers import load, networks, run_script

SCRIPTS = {"maddpg_dvm.py": maddpg_dvm, "masac_dvm.py": masac_dvm}


def team_with_data(m, precision, n=3, obs_dim=6):
    torch.manual_seed(0)
    args = m.Args(n_agents=n, hidden_dim=16, batch_size=64, buffer_size=256, dvm_iterations=3, dvm_batch_size=16,
                  precision=precision)
    discrete = m is maddpg_dvm
    team = m.Team(args, obs_dim, 5 if discrete else 2, "cpu")
    actions = torch.randint(0, 5, (256, n)) if discrete else torch.rand(256, n, 2) * 2 - 1
    team.buffer.add(torch.randn(256, n, obs_dim), actions, torch.randn(256), torch.randn(256, n, obs_dim))
    return args, team


class LinearDtypes:
    """The dtypes every nn.Linear computes in while it is open (a global forward hook)."""

    def __enter__(self):
        self.seen = set()
        self.hook = torch.nn.modules.module.register_module_forward_hook(
            lambda module, inputs, output: self.seen.add(output.dtype) if isinstance(module, torch.nn.Linear) else None)
        return self

    def __exit__(self, *exc):
        self.hook.remove()


def fp32_state(*modules_and_optimizers):
    for thing in modules_and_optimizers:
        tensors = (list(thing.parameters()) if isinstance(thing, torch.nn.Module) else
                   [t for state in thing.state.values() for t in state.values() if torch.is_tensor(t) and t.dim() > 0])
        assert tensors and all(t.dtype == torch.float32 for t in tensors), thing


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("precision, computes", [("fp32", {torch.float32}), ("bf16", {torch.bfloat16})])
def test_an_update_computes_in_its_precision_and_keeps_weights_adam_and_losses_fp32(script, precision, computes):
    m = SCRIPTS[script]
    args, team = team_with_data(m, precision)
    with LinearDtypes() as linear:
        losses = m.maddpg_update(team, args, 5) if m is maddpg_dvm else m.masac_update(team, args)
    assert linear.seen == computes
    assert all(loss.dtype == torch.float32 and torch.isfinite(loss) for loss in losses)
    nets = [net for net in vars(team).values() if isinstance(net, torch.nn.Module)]
    fp32_state(*nets, team.actor_optimizer, team.q_optimizer)


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("precision, computes", [("fp32", {torch.float32}), ("bf16", {torch.bfloat16})])
def test_the_dvm_step_computes_in_its_precision_and_its_students_stay_fp32(script, precision, computes):
    m = SCRIPTS[script]
    args, team = team_with_data(m, precision)
    with LinearDtypes() as linear:
        students, losses = m.train_students([team], args, 6, 5 if m is maddpg_dvm else 2, "cpu")
    assert linear.seen == computes and set(students) >= {"pi0", "Q0"}
    fp32_state(*students.values())
    assert all(loss.dtype == torch.float32 and torch.isfinite(loss).all() for loss in losses.values())


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_run_at_bf16_goes_through_and_its_dvm_step_is_not_taken_for_an_fp32_one(script, spread_runs, tmp_path):
    run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", "--precision", "bf16", "--run-name", "bf16")
    checkpoint = load(tmp_path / "bf16" / "phase2.pt")
    assert checkpoint["config"]["precision"] == "bf16"
    team = networks(checkpoint)
    assert all(t.dtype in (torch.float32, torch.int64) for key, state in team.items() if key != "buffer"
               and "optimizer" not in key for t in state.values())
    # a DVM step made at bf16 is another configuration for an fp32 run from the same Phase I (the fixture's fp32 run)
    full = spread_runs(script) / "full"
    proc = run_script(script, tmp_path, "--n-agents", "3", "--seed", "3", "--phase1-checkpoint", str(full / "phase1.pt"),
                      "--precision", "bf16", "--dvm-checkpoint", str(full / "dvm.pt"), check=False)
    assert proc.returncode != 0 and "precision=fp32 (this run: bf16)" in proc.stderr, proc.stderr


CPUINFO = ("import builtins, io\nopen_ = builtins.open\nbuiltins.open = lambda f, *a, **k: io.StringIO('flags : fpu "
           "FLAGS') if f == '/proc/cpuinfo' else open_(f, *a, **k)")


@pytest.mark.parametrize("flags, told", [("sse avx2 avx512f", True), ("avx512f avx512_bf16", False), ("amx_bf16", False)])
def test_bf16_on_a_cpu_without_bf16_matrix_instructions_says_so(tmp_path, flags, told):
    proc = run_script("maddpg_dvm.py", tmp_path, "--precision", "bf16", "--phase1-steps", "128", "--phase2-steps", "0",
                      "--run-name", "cpu", prelude=CPUINFO.replace("FLAGS", flags))
    assert ("this CPU has no bf16 matrix instructions (amx_bf16, avx512_bf16)" in proc.stdout) == told
    assert np.isfinite(load(tmp_path / "cpu" / "phase2.pt")["eval_return"])
