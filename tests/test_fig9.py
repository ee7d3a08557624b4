"""benchmark/fig9.sh end to end on tiny runs (beyond the paper: MADDPG on spread with 6 agents): one Phase I per seed,
then the four methods from it at lr 1e-3 with value matching on sampled permutations, drawn like every figure;
benchmark/fig10.sh, MA-SAC's four methods with 6 and 8 agents at Fig. 5's settings; and
benchmark/spread_baselines.py, the returns their Phase I is measured against."""
import csv
import glob
import os
import subprocess
import sys

import torch

from helpers import ROOT, RUN_TINY


def run_figure(script, fig_name, env):
    """benchmark/SCRIPT on tiny runs, seed 1 (env: BENCHMARK_OUT and the script's own settings); the header lines of
    its results/FIG_NAME.csv and the variants it has curves of."""
    env = dict(env, JOBS="2", SEEDS="1")
    env.pop("MERGE", None)
    proc = subprocess.run(["bash", f"benchmark/{script}", *RUN_TINY], cwd=ROOT, capture_output=True, env=env, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return figure_curves(env["BENCHMARK_OUT"], fig_name)


def figure_curves(out, fig_name):
    """The header lines of OUT/results/FIG_NAME.csv and the variants it has curves of."""
    with open(os.path.join(out, "results", f"{fig_name}.csv")) as f:
        lines = list(f)
    variants = {r["variant"] for r in csv.DictReader(line for line in lines if not line.startswith("#"))}
    return [line for line in lines if line.startswith("#")], variants


def test_fig9_runs_four_methods_from_one_phase1_with_sampled_permutations(tmp_path):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), PARTS="spread6")
    header, variants = run_figure("fig9.sh", "fig9_spread6", env)
    assert header[0].startswith("# command: maddpg_dvm.py --domain spread --n-agents 6 --phase1-steps 60000 "
                                "--phase2-steps 30000 --learning-rate 0.001 --vm-permutations 1 ")
    assert header[1] == "# phase1 from: fig9_spread6_phase1\n"
    assert variants == {"phase1", "none", "distill", "vm", "dvm"}
    table = (tmp_path / "results" / "fig9_spread6.md").read_text()
    assert table.startswith("### Fig. 9 (beyond the paper): MADDPG, spread, 6 agents, Phase II at lr 1e-3")
    # every method branched from the Phase I part's checkpoint, at lr 1e-3; value matching on one sampled permutation
    phase1 = torch.load(glob.glob(str(tmp_path / "runs" / "fig9_spread6_phase1" / "seed1" / "*" / "phase1.pt"))[0],
                        weights_only=True)
    for variant in ("none", "distill", "vm", "dvm"):
        run = tmp_path / "runs" / "fig9_spread6" / "seed1" / variant
        config = torch.load(run / "phase2.pt", weights_only=True)["config"]
        assert (config["n_agents"], config["learning_rate"], config["vm_permutations"]) == (6, 0.001, 1)
        assert config["phase1_steps"] == phase1["config"]["phase1_steps"] == 256  # the tiny flags win
        assert not (run / "phase1.pt").exists()  # not trained again
    assert phase1["config"]["learning_rate"] == 0.01  # the paper's rate in Phase I

    proc = subprocess.run(["bash", "benchmark/fig9.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(env, PARTS="spread6 spread7"))
    assert proc.returncode == 2 and proc.stderr.strip() == "unknown part spread7 (spread6, spread8 or spread8_long)"


def test_fig10_runs_masac_with_six_and_eight_agents_at_fig5s_settings_with_sampled_permutations(tmp_path):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path))
    run_figure("fig10.sh", "fig10", env)  # both parts, 6 agents (figure fig10) then 8 (fig10_spread8)
    for fig, n, steps in (("fig10", 6, 60000), ("fig10_spread8", 8, 80000)):
        header, variants = figure_curves(tmp_path, fig)
        assert header[0].startswith(f"# command: masac_dvm.py --domain spread --n-agents {n} --phase1-steps {steps} "
                                    "--phase2-steps 30000 --vm-permutations 1 ")
        assert variants == {"phase1", "none", "distill", "vm", "dvm"}
        assert (tmp_path / "results" / f"{fig}.md").read_text().startswith(
            f"### Fig. 10 (beyond the paper): MA-SAC, spread, {n} agents")
        # one Phase I, trained by the first method, at Fig. 5's (the paper's) rate in both phases
        runs = tmp_path / "runs" / fig / "seed1"
        assert [v for v in ("none", "distill", "vm", "dvm") if (runs / v / "phase1.pt").exists()] == ["none"]
        for variant in ("none", "distill", "vm", "dvm"):
            checkpoint = torch.load(runs / variant / "phase2.pt", weights_only=True)
            config = checkpoint["config"]
            assert checkpoint["algorithm"] == "masac_dvm"
            assert (config["n_agents"], config["learning_rate"], config["vm_permutations"]) == (n, 3e-4, 1)
    proc = subprocess.run(["bash", "benchmark/fig10.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(env, PARTS="spread8 spread10"))
    assert proc.returncode == 2 and proc.stderr.strip() == "unknown part spread10 (spread6 or spread8)"


def test_spread_baselines_prints_random_and_noop_returns_and_refuses_a_team_spread_lacks():
    """benchmark/spread_baselines.py, what Fig. 9's Phase I is measured against: standing still beats random actions,
    both get worse with more agents, and a team size spread does not have is refused in one line."""
    proc = subprocess.run([sys.executable, "benchmark/spread_baselines.py", "--episodes", "200", "--n-agents", "2", "8"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| 2 ") or
            line.startswith("| 8 ")]
    means = {int(r[0]): [float(cell.split("±")[0]) for cell in r[1:]] for r in rows}
    assert sorted(means) == [2, 8]
    for n, (random1, random2, noop1, noop2) in means.items():
        assert noop1 > random1 and noop2 > random2, n
    assert all(a < b for a, b in zip(means[8], means[2]))
    proc = subprocess.run([sys.executable, "benchmark/spread_baselines.py", "--n-agents", "9"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "2..8" in proc.stderr
