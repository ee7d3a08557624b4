"""benchmark/run.py: its checks of the input, resuming, two invocations of one run, signals, the Slurm path (submitit's
in-process executor, and a real single-node Slurm where one runs: benchmark/slurm/start.sh)."""
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import ROOT, RUN_TINY, file_size_limit, files

RUN_PY = [sys.executable, os.path.join(ROOT, "benchmark", "run.py")]


def run_py(tmp_path, *args, timeout=600, cwd=ROOT, preexec_fn=None, **env):
    """run.py with runs/, images/ and results/ under tmp_path; env: SEEDS, JOBS, CLUSTER, ..."""
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), **env)
    return subprocess.run([*RUN_PY, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
                          preexec_fn=preexec_fn)


def one_line(proc, *words):
    """A refusal: non-zero exit, one line on stderr holding every word, no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stdout + proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


class Started:
    """run.py started without waiting, its stdout read line by line as it comes."""

    def __init__(self, tmp_path, *args, **env):
        env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), **env)
        self.proc = subprocess.Popen([*RUN_PY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=ROOT, env=env)
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")))
        self.reader.start()

    def wait_for_line(self, pattern, timeout):
        """The first line of stdout that matches pattern; fails after timeout seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [line for line in list(self.lines) if re.search(pattern, line)]
            if found:
                return found[0]
            assert self.proc.poll() is None, f"run.py ended ({self.proc.returncode}): {''.join(self.lines)}" \
                                             f"{self.proc.stderr.read()}"
            time.sleep(0.2)
        raise AssertionError(f"no line {pattern!r} within {timeout} s: {''.join(self.lines)}")

    def finish(self, timeout=600):
        """(exit code, stdout, stderr) once it ended."""
        code = self.proc.wait(timeout=timeout)
        self.reader.join()
        return code, "".join(self.lines), self.proc.stderr.read()


def lock_held(run_dir):
    """Whether a run holds its folder's lock (run.py's mark of a run in progress)."""
    try:
        with open(os.path.join(run_dir, ".lock")) as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except FileNotFoundError:
        return False


def processes_mentioning(text):
    """PIDs of the processes whose command line holds text (the training runs of a test's folder)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/status") as f:
                zombie = "zombie" in f.read()
        except OSError:
            continue
        if text in cmdline and not zombie:
            pids.append(int(pid))
    return pids


def test_runner_plot_and_fig8_on_tiny_runs(tmp_path):
    env = dict(os.environ, BENCHMARK_OUT=str(tmp_path), SEEDS="2", JOBS="2")
    cmd = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "tiny", "maddpg_dvm.py",
           "--variants", "none", "dvm", "--", *RUN_TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for seed in (1, 2):  # the second variant branched from the first one's Phase I
        assert "loaded Phase I" in (tmp_path / "runs" / "tiny" / f"seed{seed}" / "dvm" / "stdout.txt").read_text()
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "| No DVM |" in table and "| DVM |" in table and "2 seeds" in table
    assert (tmp_path / "images" / "tiny.png").stat().st_size > 0
    wall = float((tmp_path / "runs" / "tiny" / "wall_time.txt").read_text())

    curves = (tmp_path / "results" / "tiny.csv").read_text()
    assert curves.startswith("# command: maddpg_dvm.py --phase1-steps 256")
    rows = [line for line in curves.splitlines() if not line.startswith("#")][1:]  # (comments, then the header)
    assert {line.split(",")[1] for line in rows} == {"phase1", "none", "dvm"}

    # run again after one run was cut off (no phase2.pt, an events file of its own): that run starts over alone and
    # its stale events go, every finished run is skipped, the wall time adds up; other flags are refused
    (tmp_path / "results" / "tiny.csv").unlink()  # (else the committed curves would stand in for the cut-off seed)
    cut = tmp_path / "runs" / "tiny" / "seed2" / "dvm"
    (cut / "phase2.pt").unlink()
    stale = next(cut.glob("events.out.tfevents.*"))
    stale.rename(cut / "events.out.tfevents.0.cut-off")
    # the plot of a figure with a run not finished draws the seeds that have finished, and says so
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "plot.py"), "tiny"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 of 2 seeds have finished" in proc.stdout
    assert "1 seed (of 2 started; the other had not finished)" in (tmp_path / "results" / "tiny.md").read_text()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": skipped;") == 3 and "(all invocations)" in proc.stdout
    assert "seed 2 dvm: done in" in proc.stdout and (cut / "phase2.pt").exists()
    assert "1 done, 3 skipped, 0 failed, 0 left" in proc.stdout
    events = list(cut.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].name != "events.out.tfevents.0.cut-off"
    assert float((tmp_path / "runs" / "tiny" / "wall_time.txt").read_text()) >= wall
    proc = subprocess.run([*cmd, "--horizon", "10"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode != 0 and "delete that folder to start over" in proc.stderr

    # a second figure that branches from the first one's Phase I (as Fig. 7 from Fig. 6)
    branch = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "branch", "maddpg_dvm.py",
              "--phase1-from", "tiny", "--variants", "dvm_no_learning", "--", *RUN_TINY]
    proc = subprocess.run(branch, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for seed in (1, 2):
        log = (tmp_path / "runs" / "branch" / f"seed{seed}" / "dvm_no_learning" / "stdout.txt").read_text()
        assert f"runs/tiny/seed{seed}/none/phase1.pt" in log.replace(os.sep, "/")
        # it takes tiny's DVM step (mode dvm) rather than running it again: the same return right after it
        assert f"DVM step (dvm): loaded from {tmp_path}/runs/tiny/seed{seed}/dvm/dvm.pt".replace(os.sep, "/") in \
            log.replace(os.sep, "/")
        source = (tmp_path / "runs" / "tiny" / f"seed{seed}" / "dvm" / "stdout.txt").read_text()
        after_dvm = [line for line in source.splitlines() if "right after DVM" in line]
        assert len(after_dvm) == 1 and after_dvm[0] in log
    assert "| DVM, no Phase II learning |" in (tmp_path / "results" / "branch.md").read_text()
    proc = subprocess.run(branch, capture_output=True, text=True, cwd=ROOT, env=dict(env, SEEDS="3-3"))
    assert proc.returncode != 0 and "no Phase I checkpoint of seed 3" in proc.stderr
    again = [sys.executable, os.path.join(ROOT, "benchmark", "run.py"), "again", "maddpg_dvm.py", "--phase1-from", "tiny",
             "--dvm-again", "--variants", "dvm_no_learning", "--", *RUN_TINY]  # the DVM step run anew
    proc = subprocess.run(again, capture_output=True, text=True, cwd=ROOT, env=dict(env, SEEDS="1-1"), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (tmp_path / "runs" / "again" / "seed1" / "dvm_no_learning" / "stdout.txt").read_text()
    assert "DVM step (dvm): 5 iterations done" in log and "loaded from" not in log

    (tmp_path / "images" / "tiny.png").unlink()  # fig8.py draws its own picture under the same name
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "fig8.py"), "tiny"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "images" / "tiny.png").stat().st_size > 0

    # without runs/, the committed curves alone redraw the figure with the same numbers
    plot = [sys.executable, os.path.join(ROOT, "benchmark", "plot.py"), "tiny"]
    subprocess.run([*plot, "--merge"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=True)
    from_runs = (tmp_path / "results" / "tiny.md").read_text()
    (tmp_path / "runs" / "tiny").rename(tmp_path / "mine")
    (tmp_path / "images" / "tiny.png").unlink()
    proc = subprocess.run(plot, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "results" / "tiny.md").read_text() == from_runs
    assert (tmp_path / "images" / "tiny.png").stat().st_size > 0

    # a figure finished in pieces: seed 3 elsewhere is merged (MERGE=1) with the committed seeds 1 and 2; a piece run
    # with other flags is refused before it trains
    proc = subprocess.run([*cmd, "--horizon", "10"], capture_output=True, text=True, cwd=ROOT, env=dict(env, SEEDS="3-3"))
    assert proc.returncode != 0 and "cannot be merged" in proc.stderr
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(env, SEEDS="3-3", MERGE="1"),
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seed 1" not in proc.stdout and "seed 3 dvm: done" in proc.stdout
    table = (tmp_path / "results" / "tiny.md").read_text()
    assert "3 seeds" in table and "in 2 pieces" in table
    assert (tmp_path / "results" / "tiny.csv").read_text().count("# piece: ") == 2

    # your own runs drawn over ours (over the merged figure: beside runs/tiny, the figure is a quick look otherwise)
    proc = subprocess.run([*plot, "--merge", "--extra", f"{tmp_path / 'mine' / 'seed1'}:my runs"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| my runs (--extra, 2 runs) |" in (tmp_path / "results" / "tiny.md").read_text()


def test_seeds_are_a_count_a_list_or_a_range():
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import run

    assert run.parse_seeds("3") == [1, 2, 3]
    assert run.parse_seeds("8 9 10") == [8, 9, 10] and run.parse_seeds("8-10") == [8, 9, 10]
    for bad in ("", "0", "a b", "3-x"):
        with pytest.raises(SystemExit, match="SEEDS"):
            run.parse_seeds(bad)


def test_wall_time_of_pieces_run_at_once_adds_up(tmp_path):
    # two lanes running pieces of one figure add their time to the same wall_time.txt at the same moments; each
    # addition must count (a lane that read the file once and wrote its own total over it lost the other's time)
    wall_file = tmp_path / "wall_time.txt"
    wall_file.write_text("100\n")  # an earlier invocation
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from run import add_wall_time\n"
            "while time.time() < float(sys.argv[3]): pass\n"  # both lanes start adding at the same moment
            "for _ in range(3000): add_wall_time(sys.argv[2], 0.5)")
    go = f"{time.time() + 3:.3f}"
    lanes = [subprocess.Popen([sys.executable, "-c", code, os.path.join(ROOT, "benchmark"), str(wall_file), go])
             for _ in range(2)]
    assert [lane.wait(timeout=120) for lane in lanes] == [0, 0]
    assert float(wall_file.read_text()) == 100 + 2 * 3000 * 0.5


@pytest.mark.parametrize("variants, flag", [
    (["none", "dvm"], ["--seed", "5"]),
    (["none", "dvm"], ["--seed=5"]),
    (["none", "dvm"], ["--run-name", "mine"]),
    (["none", "dvm"], ["--runs_dir", "elsewhere"]),
    (["none", "dvm"], ["--threads", "4"]),
    (["none", "dvm"], ["--phase1-checkpoint", "x/phase1.pt"]),
    (["none", "dvm"], ["--dvm-checkpoint=x/dvm.pt"]),
    (["none", "dvm"], ["--dvm-mode", "dvm"]),
    (["none", "dvm"], ["--dvm_mode=none"]),
    (["dvm_no_learning"], ["--no-phase2-learning"]),
    (["dvm_no_learning"], ["--phase2_learning"]),
    (["dvm", "dvm_it64"], ["--dvm-iterations", "4"]),
])
def test_flags_that_run_py_sets_per_run_are_refused_before_anything_is_written(tmp_path, variants, flag):
    # after --, a per-run flag would win over run.py's: every "seed" seed 5, a "No DVM" row a DVM run
    proc = run_py(tmp_path, "fig", "maddpg_dvm.py", "--variants", *variants, "--", *RUN_TINY, *flag, SEEDS="2")
    name = flag[0].split("=")[0]
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and name in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_flags_that_no_variant_sets_pass(tmp_path):
    # --dvm-iterations is the figure's own choice unless a dvm_it* variant sets it (a dry run trains nothing)
    proc = run_py(tmp_path, "fig", "maddpg_dvm.py", "--variants", "none", "dvm", "--cluster", "slurm", "--dry-run",
                  "--partition", "gpu", "--", *RUN_TINY, "--dvm-iterations", "4", "--domain", "spread", SEEDS="2")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("jobs", ["0", "x", "-2", ""])
def test_jobs_is_checked_before_anything_is_written(tmp_path, jobs):
    proc = run_py(tmp_path, "fig", "maddpg_dvm.py", "--", *RUN_TINY, SEEDS="1", JOBS=jobs)
    assert proc.returncode != 0 and "JOBS" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_cluster_options_are_one_line(tmp_path):
    for args, env in ((["--time-min", "1"], {}), ([], {"SLURM_CPUS": "x"})):
        proc = run_py(tmp_path, "fig", "maddpg_dvm.py", "--cluster", "slurm", "--dry-run", *args, "--", *RUN_TINY,
                      SEEDS="1", **env)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_cut_off_run_starts_over_in_a_cleared_folder_and_keeps_its_duration(tmp_path):
    # what a run killed mid-way leaves: its events file, checkpoints, a checkpoint's temporary file, videos
    cut = tmp_path / "runs" / "cut" / "seed1" / "none"
    (cut / "videos").mkdir(parents=True)
    (cut / "videos" / "phase1.gif").write_bytes(b"GIF")
    for name in ("events.out.tfevents.1.cut-off", "phase1.pt", "dvm.pt", "phase1.pt.tmp12345", "seconds.txt"):
        (cut / name).write_text("of the cut-off run")
    proc = run_py(tmp_path, "cut", "maddpg_dvm.py", "--variants", "none", "--", *RUN_TINY, SEEDS="1", JOBS="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seed 1 none: done" in proc.stdout
    names = sorted(p.name for p in cut.iterdir())
    events = [n for n in names if n.startswith("events.out.tfevents.")]
    assert len(events) == 1 and events[0] != "events.out.tfevents.1.cut-off"
    assert "videos" not in names and not [n for n in names if ".tmp" in n], names
    for name in ("phase1.pt", "phase2.pt"):  # the new run's
        assert (cut / name).read_bytes() != b"of the cut-off run"
    assert not (cut / "dvm.pt").exists() or (cut / "dvm.pt").read_bytes() != b"of the cut-off run"
    # the run's own duration, a float of seconds
    assert 0 < float((cut / "seconds.txt").read_text()) < 600


def test_the_merge_holds_the_figures_lock(tmp_path):
    # two lanes of one figure ending together merge into one results/FIG.csv: each merge holds runs/FIG/.lock, so that
    # neither reads the file while the other rewrites it (a lost seed). The plot script here fails if it could take it.
    plot = tmp_path / "plot_checks_lock.py"
    plot.write_text("import fcntl, os, sys\n"
                    "lock = open(os.path.join(os.environ['BENCHMARK_OUT'], 'runs', sys.argv[1], '.lock'), 'a')\n"
                    "try:\n    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                    "except BlockingIOError:\n    sys.exit(0)\n"
                    "sys.exit('the figure lock was free during the merge')\n")
    proc = run_py(tmp_path, "locked", "maddpg_dvm.py", "--variants", "none", "--plot", str(plot), "--", *RUN_TINY,
                  SEEDS="1", JOBS="1", MERGE="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_two_invocations_of_one_run_never_run_it_side_by_side(tmp_path):
    # a piece started twice: the second waits for the first's run rather than start it again beside it
    # (a Phase II long enough that the first is still running while the second checks its sweep: imports and worlds)
    args = ("two", "maddpg_dvm.py", "--variants", "none", "--", *RUN_TINY, "--phase2-steps", "16384")
    first = Started(tmp_path, *args, SEEDS="1", JOBS="1")
    run_dir = tmp_path / "runs" / "two" / "seed1" / "none"
    deadline = time.time() + 60
    while not lock_held(run_dir):
        assert time.time() < deadline and first.proc.poll() is None, "the first run never started"
        time.sleep(0.05)
    second = run_py(tmp_path, *args, SEEDS="1", JOBS="1")
    code, stdout, stderr = first.finish()
    assert code == 0, stdout + stderr
    assert "seed 1 none: done" in stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.search(r"seed 1 none: running in another invocation \(pid \d+ on .*\); waiting for it", second.stdout)
    assert "seed 1 none: skipped" in second.stdout
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1 and (run_dir / "phase2.pt").exists()


def test_bad_input_is_one_line_before_anything_is_written(tmp_path):
    tiny = ("--", *RUN_TINY)  # (were one not refused, it would train tiny runs, not the paper's)
    cases = [(("x",), dict(SEEDS="99999999999999999999"), "SEEDS='99999999999999999999': give a count"),
             (("x",), dict(SEEDS="1 -3"), "SEEDS='1 -3': give a count"),  # (was seeds 1 2 3)
             (("x",), dict(JOBS="²"), "JOBS='²': give the number of runs"),
             (("x",), dict(CLUSTER="bogus"), "CLUSTER='bogus'"),  # (went the Slurm way)
             (("x",), dict(MERGE="yes"), "MERGE='yes'"),
             (("x", "maddpg_dvm.py", *tiny, "--help"), {}, "--help after --: the script would print its help"),
             (("x", "maddpg_dvm.py", *tiny, "--phase2-steps=0"), {}, "--phase2-steps 0 after --"),
             (("a/b",), {}, "'a/b': a figure's name is one folder's name"),
             (("x", "maddpg_dvm.py", "--phase1-from", ".."), {}, "'..': a figure's name")]
    for args, env, words in cases:
        if len(args) == 1:
            args = (*args, "maddpg_dvm.py", *tiny)
        one_line(run_py(tmp_path, *args, timeout=120, **env), words)
        assert not any(tmp_path.iterdir()), args
    # a runs folder that run.py cannot trust or write: a garbage wall time, a full disk, a file in the way (a read-only
    # BENCHMARK_OUT alike, below)
    out = tmp_path / "runs" / "x"
    out.mkdir(parents=True)
    (out / "command.txt").write_text(" ".join(["maddpg_dvm.py", *RUN_TINY]) + "\n")
    (out / "wall_time.txt").write_text("12 minutes\n")
    before = files(tmp_path)
    one_line(run_py(tmp_path, "x", "maddpg_dvm.py", *tiny), f"{out / 'wall_time.txt'}: not a duration in seconds")
    assert files(tmp_path) == before
    shutil.rmtree(tmp_path / "runs")
    one_line(run_py(tmp_path, "x", "maddpg_dvm.py", *tiny, preexec_fn=file_size_limit(0)),
             f"x: cannot write {out / 'command.txt'} (File too large); nothing written")
    assert not any(tmp_path.iterdir())
    (tmp_path / "runs").write_text("in the way")
    one_line(run_py(tmp_path, "x", "maddpg_dvm.py", *tiny), f"x: cannot write in {out} (Not a directory)")
    assert files(tmp_path) == {tmp_path / "runs": b"in the way"}


def test_a_read_only_benchmark_out_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder (the same refusal, a folder run.py cannot make, is tested "
                    "with a file in its way)")
    tmp_path.chmod(0o555)
    try:
        one_line(run_py(tmp_path, "x", "maddpg_dvm.py", "--", *RUN_TINY), "x: cannot write in", "Permission denied")
    finally:
        tmp_path.chmod(0o755)
    assert not any(tmp_path.iterdir())


def test_a_second_invocation_from_another_phase1_is_refused_before_anything_runs(tmp_path):
    # runs/br branched from figure a's Phase I (command.txt and phase1_from.txt, as run.py leaves them)
    out = tmp_path / "runs" / "br"
    (out / "seed1").mkdir(parents=True)
    (out / "command.txt").write_text(" ".join(["maddpg_dvm.py", *RUN_TINY]) + "\n")
    (out / "phase1_from.txt").write_text("a\n")
    before = files(tmp_path)
    for source in (["--phase1-from", "b"], []):  # another figure's Phase I, or its own
        proc = run_py(tmp_path, "br", "maddpg_dvm.py", *source, "--", *RUN_TINY, SEEDS="2")
        one_line(proc, f"{out} holds runs of another command or Phase I", "Phase I from a); delete that folder",
                 f"Phase I from {source[1] if source else 'its own runs'}")
        assert files(tmp_path) == before
    # its committed curves name their Phase I: after runs/br is deleted, a piece from another one is refused as well
    shutil.rmtree(out)
    results = tmp_path / "results"
    results.mkdir()
    (results / "br.csv").write_text(f"# command: {' '.join(['maddpg_dvm.py', *RUN_TINY])}\n# phase1 from: a\nseed\n")
    before = files(tmp_path)
    proc = run_py(tmp_path, "br", "maddpg_dvm.py", "--phase1-from", "b", "--", *RUN_TINY, SEEDS="2")
    one_line(proc, f"{results / 'br.csv'} holds curves of another command or Phase I", "cannot be merged")
    assert files(tmp_path) == before


def test_a_relative_benchmark_out_from_outside_the_root_then_a_quick_look_then_a_merge(tmp_path):
    # run.py started elsewhere than the repository's root, BENCHMARK_OUT relative to where it was started: one folder
    # for the runs, their logs and the figure (the training scripts run in the root)
    args = ("rel", "maddpg_dvm.py", "--variants", "none", "--", *RUN_TINY)
    proc = run_py("out", *args, cwd=tmp_path, SEEDS="1", JOBS="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "out"
    assert (out / "runs" / "rel" / "seed1" / "none" / "phase2.pt").exists() and not os.path.exists(
        os.path.join(ROOT, "out"))
    assert "1 seed, " in (out / "results" / "rel.md").read_text()  # the first piece: into results/
    committed = files(out / "results") | files(out / "images")
    # another seed: a quick look of its own, results/ and images/ left alone
    proc = run_py(str(out), *args, SEEDS="2-2", JOBS="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert files(out / "results") | files(out / "images") == committed
    quick = out / "runs" / "rel" / "quick_look"
    assert f"rel: a quick look at seeds 1 2, in {quick}" in proc.stdout
    assert "2 seeds (1 2; a quick look, not in `results/`)" in (quick / "rel.md").read_text()
    # merged on request, nothing trained again: seed 1, run once, is its committed self
    proc = run_py(str(out), *args, SEEDS="1-2", JOBS="1", MERGE="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 done, 2 skipped" in proc.stdout and "differ" not in proc.stdout
    assert "2 seeds, " in (out / "results" / "rel.md").read_text()


def test_a_run_waited_for_that_ends_unfinished_is_a_failure(tmp_path):
    # the other invocation (here the test, holding the run's lock) ends without a phase2.pt: this one does not take
    # over a folder whose state it cannot know; it reports the run failed, and the next invocation starts it over
    run_dir = tmp_path / "runs" / "other" / "seed1" / "none"
    run_dir.mkdir(parents=True)
    args = ("other", "maddpg_dvm.py", "--variants", "none", "--", *RUN_TINY)
    with open(run_dir / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("the test\n")
        lock.flush()
        started = Started(tmp_path, *args, SEEDS="1", JOBS="1")
        started.wait_for_line(r"seed 1 none: running in another invocation \(the test\); waiting for it", 60)
        time.sleep(2)
        assert started.proc.poll() is None and not (run_dir / "stdout.txt").exists()
    code, stdout, stderr = started.finish(timeout=60)
    assert code != 0 and "seed 1 none: its run in another invocation ended unfinished" in stderr, stdout + stderr
    proc = run_py(tmp_path, *args, SEEDS="1", JOBS="1")
    assert proc.returncode == 0 and "seed 1 none: done" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_runs_and_a_rerun_starts_them_over(tmp_path, signum):
    args = ("sig", "maddpg_dvm.py", "--variants", "none", "--", *RUN_TINY, "--phase2-steps", "16384")
    started = Started(tmp_path, *args, SEEDS="2", JOBS="2")
    runs = [tmp_path / "runs" / "sig" / f"seed{s}" / "none" for s in (1, 2)]
    deadline = time.time() + 60  # both runs training (their first progress line is out)
    while not all(lock_held(r) and (r / "stdout.txt").exists() and "phase 1" in (r / "stdout.txt").read_text()
                  for r in runs):
        assert time.time() < deadline and started.proc.poll() is None, "the runs never started"
        time.sleep(0.1)
    assert len(processes_mentioning(str(tmp_path / "runs"))) == 2
    started.proc.send_signal(signum)
    code, stdout, stderr = started.finish(timeout=60)
    assert code == 128 + signum and "Traceback" not in stderr, stderr
    assert stderr.strip().count("\n") == 0 and signal.Signals(signum).name in stderr
    assert processes_mentioning(str(tmp_path / "runs")) == []  # no run goes on as an orphan
    assert not any((r / "phase2.pt").exists() for r in runs)
    proc = run_py(tmp_path, *args, SEEDS="2", JOBS="2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 done, 0 skipped" in proc.stdout
    for r in runs:
        assert len(list(r.glob("events.out.tfevents.*"))) == 1 and (r / "phase2.pt").exists()


def test_a_figure_with_no_seed_finished_says_that_nothing_is_drawn(tmp_path):
    # seed 1's No DVM run finishes, its DVM run cannot start (a file where its folder goes): no seed has all its runs
    (tmp_path / "runs" / "half" / "seed1").mkdir(parents=True)
    (tmp_path / "runs" / "half" / "seed1" / "dvm").write_text("in the way")
    proc = run_py(tmp_path, "half", "maddpg_dvm.py", "--variants", "none", "dvm", "--", *RUN_TINY, SEEDS="1", JOBS="2")
    assert proc.returncode != 0
    assert "1 done, 0 skipped, 1 failed" in proc.stdout
    assert "no seed finished all its runs: nothing drawn" in proc.stderr and "figure shows" not in proc.stderr
    assert not (tmp_path / "images" / "half.png").exists()


def test_cluster_path_runs_resumes_and_reports_a_failed_job(tmp_path):
    # submitit's in-process executor stands in for Slurm: the same jobs, pickled and run by submitit
    cmd = ("dbg", "maddpg_dvm.py", "--variants", "none", "dvm", "--", *RUN_TINY)
    proc = run_py(tmp_path, *cmd, SEEDS="2", CLUSTER="debug")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 seeds to run, one debug job each" in proc.stdout
    assert "2 seeds" in (tmp_path / "results" / "dbg.md").read_text()
    for seed in (1, 2):
        assert "loaded Phase I" in (tmp_path / "runs" / "dbg" / f"seed{seed}" / "dvm" / "stdout.txt").read_text()
    assert list((tmp_path / "runs" / "dbg" / "submitit").iterdir())  # submitit's pickles and logs
    # resumed: every run finished, nothing is submitted
    proc = run_py(tmp_path, *cmd, SEEDS="2", CLUSTER="debug")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 of 2 seeds to run" in proc.stdout and "0 done, 4 skipped" in proc.stdout
    # resumed after seed 1's DVM run was cut off: its job runs that one run; the job's own statuses are counted
    (tmp_path / "runs" / "dbg" / "seed1" / "dvm" / "phase2.pt").unlink()
    proc = run_py(tmp_path, *cmd, SEEDS="2", CLUSTER="debug")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 of 2 seeds to run" in proc.stdout and "1 done, 3 skipped, 0 failed, 0 left" in proc.stdout

    # a job whose run fails (here its Phase I checkpoint is corrupt) is reported with its log; the other completes
    for seed in (1, 2):
        shutil.copytree(tmp_path / "runs" / "dbg" / f"seed{seed}" / "none", tmp_path / "runs" / "src" / f"seed{seed}" / "none")
    (tmp_path / "runs" / "src" / "seed2" / "none" / "phase1.pt").write_bytes(b"not a checkpoint")
    proc = run_py(tmp_path, "brk", "maddpg_dvm.py", "--phase1-from", "src", "--variants", "dvm", "--", *RUN_TINY,
                  SEEDS="2", CLUSTER="debug")
    log = tmp_path / "runs" / "brk" / "seed2" / "dvm" / "stdout.txt"
    assert proc.returncode != 0 and f"seed 2 dvm failed (exit 1); see {log}" in proc.stderr
    assert (tmp_path / "runs" / "brk" / "seed1" / "dvm" / "phase2.pt").exists()
    assert "1 seed (of 2 started" in (tmp_path / "results" / "brk.md").read_text()


def test_slurm_parameters_of_a_dry_run(tmp_path):
    # (a partition no cluster here has: the default CPUs, one per branch, are not fitted to a node)
    proc = run_py(tmp_path, "fig", "maddpg_dvm.py", "--cluster", "slurm", "--dry-run", "--time-min", "90",
                  "--gpus-per-job", "1", "--log-folder", str(tmp_path / "shared"), "--", *RUN_TINY, SEEDS="3",
                  SLURM_PARTITION="gpu", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sbatch = (tmp_path / "runs" / "fig" / "sbatch.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --cpus-per-task=3", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --mem=8G", "#SBATCH --job-name=dvm-fig", f"#SBATCH --output={tmp_path / 'shared'}"):
        assert line in sbatch, line
    assert not list((tmp_path / "runs" / "fig").glob("seed*"))  # nothing ran


# ---- a real Slurm cluster (benchmark/slurm/start.sh starts one; .ci/run does)


def slurm_cpus():
    """The CPUs of the cluster's node, or None where no Slurm with accounting answers."""
    try:
        sinfo = subprocess.run(["sinfo", "-h", "-o", "%c %t"], capture_output=True, text=True, timeout=30)
        sacct = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    nodes = [line.split() for line in sinfo.stdout.splitlines()]
    up = [int(cpus.rstrip("+")) for cpus, state in nodes if state.rstrip("*") in ("idle", "mix", "alloc")]
    return max(up) if sinfo.returncode == 0 and sacct.returncode == 0 and up else None


def slurm_jobs(name):
    """The ids of the Slurm jobs of that name, as accounting knows them."""
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", "now-1hour", "--name", name, "-o", "JobID"],
                         capture_output=True, text=True, timeout=30).stdout
    return out.split()


def slurm_state(job_id):
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True,
                         timeout=30).stdout
    return out.split()[0] if out.split() else None


def hard_kill(job_id):
    """SIGKILL to every process of a job (as the out-of-memory killer would), slurmstepd aside."""
    killed = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if f"SLURM_JOB_ID={job_id}".encode() in environ and comm != "slurmstepd":
            os.kill(int(pid), signal.SIGKILL)
            killed += 1
    return killed


def test_a_figure_on_a_real_slurm_cluster(tmp_path):
    cpus = slurm_cpus()
    if cpus is None:
        reason = "no Slurm cluster with accounting here (start one as root: bash benchmark/slurm/start.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI must run this test (.ci/run starts the cluster)")
        pytest.skip(reason)
    tag = f"t{os.getpid()}"  # job names of this test only: sacct keeps earlier tests' jobs
    fig, cut = f"{tag}a", f"{tag}b"
    cmd = ("--variants", "none", "dvm", "--", *RUN_TINY)

    # the jobs run, one per seed, and the figure is drawn; a re-run submits nothing
    proc = run_py(tmp_path, fig, "maddpg_dvm.py", "--cluster", "slurm", *cmd, SEEDS="2", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 seeds to run, one slurm job each (1 CPU)" in proc.stdout and "4 done, 0 skipped" in proc.stdout
    assert (tmp_path / "images" / f"{fig}.png").stat().st_size > 0
    jobs = slurm_jobs(f"dvm-{fig}")
    assert len(jobs) == 2 and {slurm_state(j) for j in jobs} == {"COMPLETED"}
    for seed in (1, 2):
        assert (tmp_path / "runs" / fig / f"seed{seed}" / "slurm_job.txt").read_text().split()[0] in jobs
    proc = run_py(tmp_path, fig, "maddpg_dvm.py", "--cluster", "slurm", *cmd, SEEDS="2", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 of 2 seeds to run" in proc.stdout and "0 done, 4 skipped" in proc.stdout
    assert len(slurm_jobs(f"dvm-{fig}")) == 2

    # sbatch refuses: one line, no traceback
    proc = run_py(tmp_path, f"{tag}p", "maddpg_dvm.py", "--cluster", "slurm", "--partition", "nosuch", *cmd,
                  SEEDS="2", timeout=120)
    assert proc.returncode != 0 and "invalid partition" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    # one CPU per branch, but no more than the node has
    proc = run_py(tmp_path, f"{tag}f", "maddpg_dvm.py", "--cluster", "slurm", "--dry-run", "--variants", "none",
                  "distill", "vm", "dvm", "--", *RUN_TINY, SEEDS="1", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"#SBATCH --cpus-per-task={min(3, cpus)}\n" in (tmp_path / "runs" / f"{tag}f" / "sbatch.sh").read_text()

    # a job that asks for more than the node has waits for ever: run.py says why within a minute; stopped, it leaves
    # the job pending, and the next invocation waits for that job rather than submit the seed again
    started = Started(tmp_path, cut, "maddpg_dvm.py", "--cluster", "slurm", "--cpus-per-job", str(cpus + 1), *cmd,
                      SEEDS="1")
    t0 = time.time()
    started.wait_for_line(r"seed 1: Slurm job \d+ is pending \(PartitionConfig\): it asks for", timeout=60)
    assert time.time() - t0 < 60
    started.proc.send_signal(signal.SIGTERM)
    code, stdout, stderr = started.finish(timeout=60)
    [pending] = slurm_jobs(f"dvm-{cut}")
    assert code != 0 and f"Slurm jobs {pending} go on" in stderr and stderr.strip().count("\n") == 0, stderr
    assert slurm_state(pending) == "PENDING"
    started = Started(tmp_path, cut, "maddpg_dvm.py", "--cluster", "slurm", *cmd, SEEDS="1")
    started.wait_for_line(f"seed 1: Slurm job {pending} of an earlier invocation has not ended; waiting for it", 60)
    assert slurm_jobs(f"dvm-{cut}") == [pending]
    # scancel'ed: reported with its state
    subprocess.run(["scancel", pending], check=True, timeout=30)
    code, stdout, stderr = started.finish(timeout=60)
    assert code != 0 and f"seed 1: Slurm job {pending} ended CANCELLED" in stderr, stdout + stderr
    assert "0 done, 0 skipped, 2 failed" in stdout

    # a running job: the test holds seed 1's first run (its lock), so the job waits inside for as long as needed
    run_dir = tmp_path / "runs" / cut / "seed1" / "none"
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("the test\n")
        lock.flush()
        started = Started(tmp_path, cut, "maddpg_dvm.py", "--cluster", "slurm", *cmd, SEEDS="1")
        started.wait_for_line("1 of 1 seeds to run", 60)
        deadline = time.time() + 60
        while len(running := [j for j in slurm_jobs(f"dvm-{cut}") if j != pending]) != 1 or \
                slurm_state(running[0]) != "RUNNING":
            assert time.time() < deadline, "the job did not start"
            time.sleep(1)
        started.proc.send_signal(signal.SIGTERM)
        code, stdout, stderr = started.finish(timeout=60)
        assert code != 0 and f"Slurm jobs {running[0]} go on" in stderr, stderr
        started = Started(tmp_path, cut, "maddpg_dvm.py", "--cluster", "slurm", *cmd, SEEDS="1")
        started.wait_for_line(f"Slurm job {running[0]} of an earlier invocation has not ended; waiting for it", 60)
        assert sorted(slurm_jobs(f"dvm-{cut}")) == sorted([pending, *running])  # not submitted again
        # killed hard (SIGKILL, as by the out-of-memory killer): reported within a minute, with Slurm's state
        assert hard_kill(running[0]) > 0
        t0 = time.time()
        code, stdout, stderr = started.finish(timeout=90)
        assert time.time() - t0 < 60
        assert code != 0 and re.search(f"seed 1: Slurm job {running[0]} ended [A-Z_]+ before its runs finished", stderr), \
            stdout + stderr

    # and the seed resumes
    proc = run_py(tmp_path, cut, "maddpg_dvm.py", "--cluster", "slurm", *cmd, SEEDS="1", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 done, 0 skipped, 0 failed" in proc.stdout and (tmp_path / "images" / f"{cut}.png").exists()
    assert len(slurm_jobs(f"dvm-{cut}")) == 3


@pytest.mark.parametrize("script", ["maddpg_dvm.py", "masac_dvm.py"])
@pytest.mark.parametrize("flags, message", [
    # sizes no machine holds: the whole sweep is refused before its first Phase I (check_memory)
    (["--buffer-size", "1000000000000"], "GiB of memory per run, more than the"),
    (["--hidden-dim", "100000000"], "GiB of memory per run"),
    (["--num-envs", "1000000000000", "--phase1-steps", "10000000000000"], "GiB of memory per run"),
    (["--eval-episodes", "1000000000000"], "GiB of memory per run"),
    (["--batch-size", "1000000000000"], "GiB of memory per run"),
    # a flag out of range, as the script itself refuses it (check_args), for every run of the sweep at once
    (["--gamma", "2"], "error: --gamma must be in (0, 1], got 2.0"),
    (["--n-agents", "7"], "permutations of 7 agents cannot finish in reasonable time"),
])
def test_a_sweep_with_a_run_that_cannot_work_is_refused_before_its_first_run(script, tmp_path, flags, message):
    proc = run_py(tmp_path, "mem", script, "--", *RUN_TINY, *flags, SEEDS="1-2")
    one_line(proc, message)
    assert not list(tmp_path.iterdir())  # nothing written, no run started


def test_the_memory_check_counts_the_sampled_permutations_not_all_of_them():
    # on a machine of 4 GiB, at the default sizes: K sampled permutations per DVM sample, and none without value
    # matching, not the 8! = 40320 (about 48 GiB)
    sys.path.insert(0, os.path.join(ROOT, "benchmark"))
    import run
    import tyro

    for name in ("maddpg_dvm.py", "masac_dvm.py"):
        module = run.load_script(name)
        for flags in (["--vm-permutations", "8"], ["--dvm-mode", "vm", "--vm-permutations", "8"],
                      ["--dvm-mode", "none"], ["--dvm-mode", "distill"]):
            run.check_memory(module, tyro.cli(module.Args, args=["--n-agents", "8", *flags]), 4 * 2**30)
        with pytest.raises(SystemExit, match="GiB of memory per run, more than the 4 GiB a run has"):
            run.check_memory(module, tyro.cli(module.Args, args=["--n-agents", "8", "--vm-permutations", "40320"]),
                             4 * 2**30)
