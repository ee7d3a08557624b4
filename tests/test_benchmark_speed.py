"""benchmark/dvm_step_speed.py runs and reports what it says: every n and K, the exact sum timed or estimated."""
import subprocess
import sys

from helpers import ROOT


def test_dvm_step_speed_times_exact_and_sampled_steps_and_estimates_the_exact_beyond_max_exact():
    proc = subprocess.run([sys.executable, "benchmark/dvm_step_speed.py", "--seconds", "0.01", "--max-exact", "2",
                           "--max-n", "3"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line[:2].strip().isdigit()]
    assert [(r[0], r[1], r[2]) for r in rows] == [("2", "2", "all"), ("2", "2", "1"), ("3", "6", "all"),
                                                   ("3", "6", "1"), ("3", "6", "2"), ("3", "6", "4")]
    assert rows[0][-2] != "est." and rows[2][-2] == "est."  # timed up to --max-exact, estimated beyond
    assert all(r[-1] == "1.0x" for r in rows if r[2] == "all")
    assert "DVM step:" not in proc.stdout  # the table alone, not a progress line per timed iteration


def test_precision_times_both_precisions_of_each_script_in_one_run():
    proc = subprocess.run([sys.executable, "benchmark/precision.py", "--seconds", "0.01"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(("maddpg_dvm", "masac_dvm"))]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (s, n, k, what) for n, k in (("2", "all"), ("4", "all"), ("6", "1")) for s in ("maddpg_dvm", "masac_dvm")
        for what in ("update", "DVM")]
    for r in rows:  # fp32 ms, bf16 ms, their ratio, each precision's share of its own peak
        fp32, bf16, ratio = float(r[-5]), float(r[-4]), float(r[-3].rstrip("x"))
        assert abs(fp32 / bf16 - ratio) < 0.01 * ratio + 0.01 and r[-2].endswith("%") and r[-1].endswith("%")
    assert proc.stdout.count("matmul peak fp32") == 3 and "DVM step:" not in proc.stdout
