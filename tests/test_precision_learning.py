"""benchmark/precision_learning.py: each bf16 figure beside its fp32 one with the figures' own numbers, a curves file of
the other precision refused, and the DVM steps' held-out losses read from the committed tables."""
import os
import subprocess
import sys

from helpers import ROOT


def write_curves(path, script, precision, level, seeds=(1, 2)):
    """A curves file of the seeds, every curve flat at level[variant] + seed / 10."""
    lines = [f"# command: {script} --domain spread --n-agents 2 --precision {precision}",
             f"# piece: seeds {' '.join(map(str, seeds))}, wall time 600 s"]
    lines += [f"# run: seed {s}, variant {v}, 60.0 s" for s in seeds for v in ("none", "distill", "vm", "dvm")]
    lines.append("seed,variant,step,phase,return")
    for s in seeds:
        lines += [f"{s},phase1,{step},1,{-20 + s / 10}" for step in (0, 1000)]
        for v in ("none", "distill", "vm", "dvm"):
            lines += [f"{s},{v},{step},2,{level[v] + s / 10}" for step in (1000, 2000, 3000)]
    path.write_text("\n".join(lines) + "\n")


def run(out):
    env = dict(os.environ, BENCHMARK_OUT=str(out))
    return subprocess.run([sys.executable, "benchmark/precision_learning.py"], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=120)


def rows_of(text):
    return [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| ")]


def test_each_bf16_figure_stands_beside_its_fp32_one_with_dvm_minus_its_best_other_method(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    write_curves(results / "fig5a.csv", "masac_dvm.py", "fp32", dict(none=-9, distill=-8, vm=-5, dvm=-3))
    # at bf16 Distillation is the best other method: the pick follows the curves, not the fp32 figure
    write_curves(results / "fig5a_bf16.csv", "masac_dvm.py", "bf16", dict(none=-9, distill=-4, vm=-6, dvm=-3.5))
    (results / "vm_permutations_steps.csv").write_text(
        "part,seed,variant,permutations,iterations,seconds,kl_loss,vm_loss,vm_loss_exact\n"
        "fig4c_lr1e-3,1,dvm,0,2048,500.0,0.04,5.0,6.0\nfig4c_lr1e-3,2,dvm,0,2048,520.0,0.04,5.5,4.0\n"
        "fig4c_lr1e-3,1,dvm_k4,4,2048,100.0,0.04,5.0,7.0\n")
    (results / "precision_steps.csv").write_text(
        "figure,seed,seconds,vm_loss,vm_loss_exact\nfig4c_lr1e-3_bf16,1,200.0,5.2,5.5\n")
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (results / "precision_learning.md").read_text() == proc.stdout
    rows = rows_of(proc.stdout)
    assert rows[1][1:] == ["`fig4c_lr1e-3`: not run yet", "fp32", *[""] * 7]
    assert rows[3][1:9] == ["`fig5a`", "fp32", "2", "-19.85 ± 0.05", "-2.85 ± 0.05", "Value Matching",
                            "+2.00 [+2.00, +2.00]", "+2.00 [+2.00, +2.00]"]
    assert rows[4][1:9] == ["`fig5a_bf16`", "bf16", "2", "-19.85 ± 0.05", "-3.35 ± 0.05", "Distillation",
                            "+0.50 [+0.50, +0.50]", "+0.50 [+0.50, +0.50]"]
    assert rows[4][9] == "8 core-minutes"
    # the exact steps only (not K = 4), then the bf16 rows
    assert rows[-2] == ["fp32 (`vm_permutations_fig4c_lr1e-3`, exact)", "2", "510 ± 10", "5.25 ± 0.25",
                        "5 ± 1 (median 5)"]
    assert rows[-1] == ["bf16 (`fig4c_lr1e-3_bf16`)", "1", "200 ± 0", "5.2 ± 0", "5.5 ± 0 (median 5.5)"]


def test_a_curves_file_of_the_other_precision_is_refused_in_one_line(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    write_curves(results / "fig5a_bf16.csv", "masac_dvm.py", "fp32", dict(none=-9, distill=-4, vm=-6, dvm=-3.5))
    proc = run(tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["error: results/fig5a_bf16.csv holds runs at --precision fp32, not bf16"]
    assert not (results / "precision_learning.md").exists()
