"""Run one paper figure: Phase I once per seed, then every variant from that Phase I checkpoint, here or on Slurm.

    python benchmark/run.py FIG SCRIPT [--variants none distill vm dvm] [--plot plot.py] [--phase1-from FIG0]
                            [--dvm-again] [--cluster local|slurm|debug] [Slurm options, see --help] -- [flags passed to SCRIPT]

The figure scripts (fig4a.sh, ...) call this. The first variant of each seed trains Phase I (and its own
Phase II); the others start from its `phase1.pt` with `--phase1-checkpoint`, so all variants of a seed share
one Phase I. With `--phase1-from FIG0`, every variant starts from FIG0's Phase I checkpoints instead (Fig. 7
branches from Fig. 6's Phase I), and takes FIG0's DVM step of its mode and seed where FIG0 has one (its `dvm.pt`,
`--dvm-checkpoint`), so that only Phase II runs: a figure that varies Phase II settings (`fig4c_lr1e-3.sh`) saves
the value matching, minutes per run with 4 agents, and its Phase II starts exactly as FIG0's. The scripts refuse a
`dvm.pt` made with other DVM settings; `--dvm-again` runs the DVM step again instead. Each run uses one torch thread.

Where the runs go (`--cluster` or `CLUSTER`):
- local (default): `JOBS` runs (default: the number of cores) side by side on this machine, seed by seed.
- slurm: one Slurm job per seed, submitted through submitit: the job trains the seed's Phase I, then runs its
  branches side by side on its CPUs (default: one per branch), so a figure takes the time of its slowest seed.
  One job per seed rather than per run keeps a seed's Phase I checkpoint and branches together without job
  dependencies, and costs one queue wait per seed. run.py waits for every job, then draws the figure.
- debug: submitit's in-process executor, the Slurm path without Slurm (the tests use it).

`SEEDS` sets the seeds: a count (`SEEDS=3`: seeds 1-3; default 10), or the seeds themselves (`SEEDS="8 9 10"`,
`SEEDS=8-10`; one seed: `SEEDS=8-8`), which is how a figure is finished in pieces: plot.py merges the new seeds'
curves with the ones committed in results/FIG.csv. Logs go to benchmark/runs/FIG/seedS/VARIANT/stdout.txt, then the
plot script (plot.py; fig8.py for Fig. 8) draws the figure. `BENCHMARK_OUT` moves runs/, images/ and results/.

An interrupted figure resumes, here or on a cluster: running the script again skips every run that finished (its
`phase2.pt` exists; a seed whose runs all finished is not even submitted), and starts over every run that was cut
off (the scripts write checkpoints atomically, so a run killed by a stop or a scheduler's time limit leaves none).
runs/FIG/wall_time.txt, kept up to date after every run, adds up the wall time of all invocations (of pieces run
at the same time, too). A failed run is reported with the path of its log and the others go on; the figure is drawn
from the seeds that finished, and run.py exits non-zero. Delete runs/FIG to start over.
"""
import argparse
import fcntl
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
    # the DVM-iterations ablation (dvm_iterations.sh): DVM with fewer iterations than the paper's 2048
    "dvm_it64": ["--dvm-mode", "dvm", "--dvm-iterations", "64"],
    "dvm_it256": ["--dvm-mode", "dvm", "--dvm-iterations", "256"],
    "dvm_it1024": ["--dvm-mode", "dvm", "--dvm-iterations", "1024"],
}


def add_wall_time(wall_file, seconds):
    """Adds seconds to the figure's wall_time.txt and returns the new total. The file is locked, read and written in
    one step, so that invocations running at the same time (pieces of one figure in two lanes) add up instead of
    overwriting each other's time."""
    with open(wall_file, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read().strip()
        total = (float(text) if text else 0.0) + seconds
        f.seek(0)
        f.truncate()
        f.write(f"{total:.1f}\n")
    return total


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


def job(script, out, seed, variant, flags, checkpoint=None, dvm_from=None):
    """One training run, benchmark/runs/FIG/seedS/VARIANT/; "skipped" if it finished before, else "done".

    dvm_from: the runs of another figure, whose DVM step of this seed and mode the run takes, where there is one.

    Raises RuntimeError naming the run's log if the script fails. A run cut off earlier (by a stop or a scheduler's
    time limit) has no phase2.pt, since the scripts write checkpoints atomically, and starts over.
    """
    run_name = f"seed{seed}/{variant}"
    if os.path.exists(os.path.join(out, run_name, "phase2.pt")):  # finished in an earlier invocation
        return "skipped"
    cmd = [sys.executable, os.path.join(ROOT, script), "--seed", str(seed), "--threads", "1", "--runs-dir", out,
           "--run-name", run_name, *VARIANTS[variant], *flags]
    if checkpoint:
        cmd += ["--phase1-checkpoint", checkpoint]
    mode = VARIANTS[variant][1]
    saved_dvm = os.path.join(dvm_from, f"seed{seed}", mode, "dvm.pt") if dvm_from else None
    if saved_dvm and mode != "none" and os.path.exists(saved_dvm):
        cmd += ["--dvm-checkpoint", saved_dvm]
    os.makedirs(os.path.join(out, run_name), exist_ok=True)
    for stale in glob.glob(os.path.join(out, run_name, "events.out.tfevents.*")):  # of a run cut off earlier:
        os.remove(stale)  # the plot would read its curve along with the new one
    log = os.path.join(out, run_name, "stdout.txt")
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if code != 0:
        raise RuntimeError(f"seed {seed} {variant} failed (exit {code}); see {log}")
    return "done"


def run_seed(script, out, seed, first, rest, flags, checkpoint, parallel=1, report=None, dvm_from=None):
    """Every run of one seed: its Phase I (inside the run of variant `first`; None when `checkpoint` comes from
    another figure), then the variants in `rest` from that checkpoint, `parallel` at a time. The unit of work of
    both the local runner and a Slurm job. Returns the failures; a failed run does not stop the others, but a failed
    Phase I leaves its seed's branches unrun. `report(seed, variant, status, seconds)` is called after each run;
    `dvm_from` goes to job().
    """
    failures = []

    def one(variant, checkpoint=None):
        start = time.time()
        try:
            status = job(script, out, seed, variant, flags, checkpoint, dvm_from)
        except Exception as e:  # noqa: BLE001 (a run that cannot even start is a failure like any other)
            failures.append(str(e))
            status = "failed"
        if report:
            report(seed, variant, status, time.time() - start)
        return status

    if first and one(first) == "failed":
        for variant in rest:  # counted as failed too, so that the progress lines add up
            if report:
                report(seed, variant, "failed")
        return failures + [f"seed {seed} {' '.join(rest)}: not run, their Phase I failed"]
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda v: one(v, checkpoint), rest))
    return failures


def slurm_parameters(cli, fig):
    """What each Slurm job asks for, in submitit.SlurmExecutor's terms (each an sbatch option of the same name)."""
    params = dict(job_name=f"dvm-{fig}", time=cli.time_min, cpus_per_task=cli.cpus_per_job, mem=f"{cli.mem_gb}G")
    if cli.partition:
        params["partition"] = cli.partition
    if cli.gpus_per_job:
        params["gpus_per_node"] = cli.gpus_per_job
    return params


if __name__ == "__main__":
    parser = argparse.ArgumentParser(epilog="Cluster options also read environment variables: CLUSTER, SLURM_PARTITION, "
                                     "SLURM_TIME_MIN, SLURM_CPUS, SLURM_GPUS, SLURM_MEM_GB, SUBMITIT_FOLDER.")
    parser.add_argument("fig")
    parser.add_argument("script")
    parser.add_argument("--variants", nargs="+", default=["none", "distill", "vm", "dvm"], choices=list(VARIANTS))
    parser.add_argument("--plot", default="plot.py", help="script in benchmark/ that draws FIG afterwards")
    parser.add_argument("--phase1-from", help="a figure run before, whose Phase I checkpoints every variant starts from "
                        "(and whose DVM steps it takes, where there are)")
    parser.add_argument("--dvm-again", action="store_true",
                        help="with --phase1-from: run the DVM step again rather than take FIG0's (other DVM settings)")
    env = os.environ.get
    parser.add_argument("--cluster", choices=["local", "slurm", "debug"], default=env("CLUSTER", "local"),
                        help="local: JOBS runs side by side here; slurm: one Slurm job per seed (submitit); "
                             "debug: submitit's in-process executor (tests)")
    parser.add_argument("--partition", default=env("SLURM_PARTITION"), help="Slurm partition (default: the cluster's)")
    parser.add_argument("--time-min", type=int, default=int(env("SLURM_TIME_MIN", 240)),
                        help="time limit of one Slurm job (one seed), minutes")
    parser.add_argument("--cpus-per-job", type=int, default=int(env("SLURM_CPUS", 0)),
                        help="CPUs of one Slurm job; its branch runs go side by side (default: one per branch)")
    parser.add_argument("--gpus-per-job", type=int, default=int(env("SLURM_GPUS", 0)),
                        help="GPUs of one Slurm job; with any, the scripts run with --cuda")
    parser.add_argument("--mem-gb", type=int, default=int(env("SLURM_MEM_GB", 8)), help="memory of one Slurm job, GB")
    parser.add_argument("--log-folder", default=env("SUBMITIT_FOLDER"),
                        help="submitit's logs and pickles (default runs/FIG/submitit); on a shared filesystem")
    parser.add_argument("--dry-run", action="store_true",
                        help="write runs/FIG/sbatch.sh, the script a Slurm job would get, and submit nothing")
    # everything after "--" goes to SCRIPT untouched
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    cli, flags = parser.parse_args(argv[:split]), argv[split + 1:]
    seeds = parse_seeds(env("SEEDS", "10"))
    jobs = int(env("JOBS", os.cpu_count()))
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
    dvm_from = os.path.join(OUT, "runs", cli.phase1_from) if cli.phase1_from and not cli.dvm_again else None
    if cli.gpus_per_job and cli.cluster != "local":
        flags = [*flags, "--cuda"]

    wall_file, lock = os.path.join(out, "wall_time.txt"), threading.Lock()
    earlier = os.path.exists(wall_file)  # the figure was run before (or is running in another lane)
    start, saved = time.time(), [time.time()]  # saved[0]: when this invocation last added its time
    total, counts = len(seeds) * len(cli.variants), dict(done=0, skipped=0, failed=0)

    def save_wall_time():  # after every run, so that an interrupted figure keeps the time it took so far
        now = time.time()
        wall = add_wall_time(wall_file, now - saved[0])
        saved[0] = now
        return wall

    def report(seed, variant, status, seconds=None):
        """One line per finished run: what is done, skipped and left, and the time left at this invocation's pace."""
        with lock:
            counts[status] += 1
            left = total - sum(counts.values())
            pace = (time.time() - start) / max(counts["done"], 1)  # per finished run, with the runs side by side
            eta = f", about {pace * left / 60:.0f} min left" if counts["done"] and left else ""
            took = f" in {seconds:.0f} s" if seconds is not None and status != "skipped" else ""
            print(f"  seed {seed} {variant}: {status}{took}; {counts['done']} done, {counts['skipped']} skipped, "
                  f"{counts['failed']} failed, {left} left{eta}", flush=True)
            save_wall_time()

    failures = []
    if cli.cluster == "local":
        # seeds side by side; a seed's branches too when there are fewer seeds than JOBS
        print(f"{cli.fig}: {cli.script} {' '.join(flags)}; seeds {' '.join(map(str, seeds))}, {jobs} jobs at a time")
        parallel = max(1, jobs // len(seeds))
        with ThreadPoolExecutor(min(jobs, len(seeds))) as pool:
            for seed_failures in pool.map(lambda s: run_seed(cli.script, out, s, first, rest, flags, phase1[s],
                                                             parallel, report, dvm_from), seeds):
                failures += seed_failures
    else:
        import submitit  # only the cluster paths need it

        folder = cli.log_folder or os.path.join(out, "submitit")
        params = slurm_parameters(cli, cli.fig)
        params["cpus_per_task"] = params["cpus_per_task"] or max(1, len(rest))
        # the batch script each job gets, for a look before submitting (submitit writes the same one per job)
        from submitit.slurm.slurm import _make_sbatch_string

        with open(os.path.join(out, "sbatch.sh"), "w") as f:
            f.write(_make_sbatch_string(command=f"{sys.executable} -u -m submitit.core._submit {folder}",
                                        folder=folder, **params))
        if cli.dry_run:
            print(f"dry run: nothing submitted; the batch script of each seed's job is {os.path.join(out, 'sbatch.sh')}")
            sys.exit(0)
        todo = [s for s in seeds if not all(os.path.exists(os.path.join(out, f"seed{s}", v, "phase2.pt"))
                                            for v in cli.variants)]
        executor = submitit.DebugExecutor(folder) if cli.cluster == "debug" else submitit.SlurmExecutor(folder)
        if cli.cluster == "slurm":
            executor.update_parameters(**params)
        print(f"{cli.fig}: {cli.script} {' '.join(flags)}; {len(todo)} of {len(seeds)} seeds to run, one "
              f"{cli.cluster} job each ({params['cpus_per_task']} CPUs); logs in {folder}", flush=True)
        for s in sorted(set(seeds) - set(todo)):
            for v in cli.variants:
                report(s, v, "skipped")
        submitted = {s: executor.submit(run_seed, cli.script, out, s, first, rest, flags, phase1[s],
                                        params["cpus_per_task"], dvm_from=dvm_from) for s in todo}
        for s, handle in submitted.items():  # in submission order; each result waits for its job
            try:
                failures += handle.result()
            except Exception as e:  # noqa: BLE001 (the job itself died: time limit, node failure, ...)
                failures.append(f"seed {s}: job {handle.job_id} failed ({type(e).__name__}); see {handle.paths.stderr}")
            for v in cli.variants:
                status = "done" if os.path.exists(os.path.join(out, f"seed{s}", v, "phase2.pt")) else "failed"
                report(s, v, status)  # (its runs are timed in the job's own log)
    wall = save_wall_time()
    print(f"{cli.fig}: wall time {wall / 60:.1f} min" + (" (all invocations)" if earlier else ""))
    if counts["done"] + counts["skipped"]:
        subprocess.run([sys.executable, os.path.join(HERE, cli.plot), cli.fig], check=not failures)
    if failures:
        drawn = "the figure shows the seeds that finished" if counts["done"] + counts["skipped"] else "nothing to draw"
        sys.exit(f"{cli.fig}: {len(failures)} failure(s); {drawn}; run the script again to retry:\n  "
                 + "\n  ".join(failures))
