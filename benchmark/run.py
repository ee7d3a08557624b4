"""Run one paper figure: Phase I once per seed, then every variant from that Phase I checkpoint, on all cores.

    python benchmark/run.py FIG SCRIPT [--variants none distill vm dvm] [--plot plot.py] [--phase1-from FIG0]
                            -- [flags passed to SCRIPT]

The figure scripts (fig4a.sh, ...) call this. The first variant of each seed trains Phase I (and its own
Phase II); the others start from its `phase1.pt` with `--phase1-checkpoint`, so all variants of a seed share
one Phase I. With `--phase1-from FIG0`, every variant starts from FIG0's Phase I checkpoints instead (Fig. 7
branches from Fig. 6's Phase I). Each job runs with one torch thread; `JOBS` (default: the number of cores) run
side by side.
`SEEDS` sets the seeds: a count (`SEEDS=3`: seeds 1-3; default 10), or the seeds themselves (`SEEDS="8 9 10"`,
`SEEDS=8-10`; one seed: `SEEDS=8-8`), which is how a figure is finished in pieces: plot.py merges the new seeds'
curves with the ones committed in results/FIG.csv. Logs go to benchmark/runs/FIG/seedS/VARIANT/, then the plot script (plot.py; fig8.py
for Fig. 8) draws the figure. `BENCHMARK_OUT` moves runs/, images/ and results/ elsewhere.

An interrupted figure resumes: running the script again skips every run that finished (its `phase2.pt` exists),
and runs/FIG/wall_time.txt, kept up to date after every job, adds up the wall time of all invocations. Delete
runs/FIG to start over.
"""
import argparse
import glob
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.environ.get("BENCHMARK_OUT", HERE)  # runs/, images/ and results/ go here (tests point it elsewhere)
# variant name -> flags
VARIANTS = {
    "none": ["--dvm-mode", "none"],
    "distill": ["--dvm-mode", "distill"],
    "vm": ["--dvm-mode", "vm"],
    "dvm": ["--dvm-mode", "dvm"],
    "dvm_no_learning": ["--dvm-mode", "dvm", "--no-phase2-learning"],
}


def parse_seeds(text):
    """SEEDS: "10" -> seeds 1..10; "8 9 10" or "8-10" -> those seeds."""
    try:
        if "-" in text:
            first, last = map(int, text.split("-"))
            seeds = list(range(first, last + 1))
        elif len(text.split()) == 1:
            seeds = list(range(1, int(text) + 1))
        else:
            seeds = sorted({int(s) for s in text.split()})
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 1:
        sys.exit(f"SEEDS={text!r}: give a count (10), a list (\"8 9 10\") or a range (8-10) of seeds >= 1")
    return seeds


def job(script, out, seed, variant, flags, checkpoint=None):
    run_name = f"seed{seed}/{variant}"
    if os.path.exists(os.path.join(out, run_name, "phase2.pt")):  # finished in an earlier invocation
        print(f"  seed {seed} {variant}: done already, skipped", flush=True)
        return
    cmd = [sys.executable, os.path.join(ROOT, script), "--seed", str(seed), "--threads", "1", "--runs-dir", out,
           "--run-name", run_name, *VARIANTS[variant], *flags]
    if checkpoint:
        cmd += ["--phase1-checkpoint", checkpoint]
    os.makedirs(os.path.join(out, run_name), exist_ok=True)
    for stale in glob.glob(os.path.join(out, run_name, "events.out.tfevents.*")):  # of a run cut off earlier:
        os.remove(stale)  # the plot would read its curve along with the new one
    start = time.time()
    with open(os.path.join(out, run_name, "stdout.txt"), "w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    print(f"  seed {seed} {variant}: exit {code}, {time.time() - start:.0f} s", flush=True)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed; see {os.path.join(out, run_name, 'stdout.txt')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("fig")
    parser.add_argument("script")
    parser.add_argument("--variants", nargs="+", default=["none", "distill", "vm", "dvm"], choices=list(VARIANTS))
    parser.add_argument("--plot", default="plot.py", help="script in benchmark/ that draws FIG afterwards")
    parser.add_argument("--phase1-from", help="a figure run before, whose Phase I checkpoints every variant starts from")
    # everything after "--" goes to SCRIPT untouched
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    cli, flags = parser.parse_args(argv[:split]), argv[split + 1:]
    seeds = parse_seeds(os.environ.get("SEEDS", "10"))
    jobs = int(os.environ.get("JOBS", os.cpu_count()))
    out = os.path.join(OUT, "runs", cli.fig)
    os.makedirs(out, exist_ok=True)
    # runs of one figure must share their flags, or a resumed figure would mix two configurations
    command, command_file = " ".join([cli.script, *flags]), os.path.join(out, "command.txt")
    if os.path.exists(command_file) and open(command_file).read().strip() != command:
        sys.exit(f"{out} holds runs of another command ({open(command_file).read().strip()}); "
                 f"delete that folder to start over with: {command}")
    csv_file = os.path.join(OUT, "results", f"{cli.fig}.csv")  # curves committed earlier: pieces must match them
    if os.path.exists(csv_file) and open(csv_file).readline().strip() != f"# command: {command}":
        sys.exit(f"{csv_file} holds curves of another command ({open(csv_file).readline().strip()}); "
                 f"its seeds cannot be merged with runs of: {command}")
    with open(command_file, "w") as f:
        f.write(command + "\n")
    wall_file, lock = os.path.join(out, "wall_time.txt"), threading.Lock()
    earlier = float(open(wall_file).read()) if os.path.exists(wall_file) else 0.0  # earlier invocations
    start = time.time()

    def run_job(*a, **kw):
        job(*a, **kw)
        with lock:  # so that an interrupted figure keeps the time it took so far
            with open(wall_file, "w") as f:
                f.write(f"{earlier + time.time() - start:.0f}\n")

    print(f"{cli.fig}: {cli.script} {' '.join(flags)}; seeds {' '.join(map(str, seeds))}, {jobs} jobs at a time")
    if cli.phase1_from:  # every variant branches from another figure's Phase I (only its trainer has a phase1.pt)
        first, rest = None, cli.variants
        phase1 = {s: glob.glob(os.path.join(OUT, "runs", cli.phase1_from, f"seed{s}", "*", "phase1.pt")) for s in seeds}
        missing = [s for s in seeds if len(phase1[s]) != 1]
        if missing:
            sys.exit(f"no Phase I checkpoint of seed {missing[0]} in {os.path.join(OUT, 'runs', cli.phase1_from)}: "
                     f"run {cli.phase1_from} first, with at least as many SEEDS")
        phase1 = {s: paths[0] for s, paths in phase1.items()}
        with open(os.path.join(out, "phase1_from.txt"), "w") as f:  # plot.py draws Phase I from there
            f.write(cli.phase1_from + "\n")
    else:  # the first variant trains Phase I, the others branch from it
        first, rest = cli.variants[0], cli.variants[1:]
        phase1 = {s: os.path.join(out, f"seed{s}", first, "phase1.pt") for s in seeds}
    with ThreadPoolExecutor(jobs) as pool:
        # every seed's Phase I (inside its first variant) before the variants that branch from it
        if first:
            list(pool.map(lambda s: run_job(cli.script, out, s, first, flags), seeds))
        tasks = [(s, v) for s in seeds for v in rest]
        list(pool.map(lambda t: run_job(cli.script, out, t[0], t[1], flags, phase1[t[0]]), tasks))
    wall = earlier + time.time() - start
    with open(wall_file, "w") as f:
        f.write(f"{wall:.0f}\n")
    print(f"{cli.fig}: wall time {wall / 60:.1f} min" + (" (all invocations)" if earlier else ""))
    subprocess.run([sys.executable, os.path.join(HERE, cli.plot), cli.fig], check=True)
