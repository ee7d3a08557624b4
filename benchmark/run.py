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
run.py sets each run's --seed, --run-name, --runs-dir, --threads, checkpoints and its variant's flags itself, and
refuses them among the flags after `--`.

Where the runs go (`--cluster` or `CLUSTER`):
- local (default): `JOBS` runs (default: the number of cores) side by side on this machine, seed by seed.
- slurm: one Slurm job per seed, submitted through submitit: the job trains the seed's Phase I, then runs its
  branches side by side on its CPUs (default: one per branch, at most a node's), so a figure takes the time of its
  slowest seed. One job per seed rather than per run keeps a seed's Phase I checkpoint and branches together without
  job dependencies, and costs one queue wait per seed. run.py waits for every job, then draws the figure.
- debug: submitit's in-process executor, the Slurm path without Slurm (the tests use it).

`SEEDS` sets the seeds: a count (`SEEDS=3`: seeds 1-3; default 10), or the seeds themselves (`SEEDS="8 9 10"`,
`SEEDS=8-10`; one seed: `SEEDS=8-8`). Logs go to benchmark/runs/FIG/seedS/VARIANT/stdout.txt, the run's own duration
to seconds.txt beside it, then the plot script (plot.py; fig8.py for Fig. 8) draws the figure: into results/ and
images/ where the figure has no committed results/FIG.csv yet, else as a quick look into runs/FIG/quick_look/, the
committed files left alone. `--merge` (`MERGE=1`) merges the new seeds' curves into results/FIG.csv instead, which is
how a figure is finished in pieces. A figure is one command (script and flags) and one Phase I (its own or
--phase1-from's): a piece of another is refused before anything runs. `BENCHMARK_OUT` moves runs/, images/ and
results/ (resolved to an absolute path first).

An interrupted figure resumes, here or on a cluster: running the script again skips every run that finished (its
`phase2.pt` exists; a seed whose runs all finished is not even submitted), and starts over every run that was cut
off (the scripts write checkpoints atomically, so a run killed by a stop or a scheduler's time limit leaves none; its
folder is cleared first). A run in progress holds a lock on its folder (RUN/.lock), so a second invocation of the
same figure (a piece started twice, two terminals) waits for it instead of starting it beside it. Ctrl-C or SIGTERM
stops this invocation's runs. On a cluster the jobs outlive run.py: each seed's job id is kept in
runs/FIG/seedS/slurm_job.txt, and a seed whose job is still pending or running is waited for, not submitted again.
runs/FIG/wall_time.txt, kept up to date after every run, adds up the wall time of all invocations (of pieces run
at the same time, too), and two pieces ending together merge in turn (each holds the figure's lock, runs/FIG/.lock).
A failed run is reported with the path of its log and the others go on; the figure is drawn from the seeds that
finished, and run.py exits non-zero. Delete runs/FIG to start over.
"""
import argparse
import contextlib
import fcntl
import glob
import importlib.util
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# runs/, images/ and results/ go here (tests point it elsewhere); absolute, so that run.py, the training scripts
# (started in the repository's root) and the plot script see one folder wherever run.py was started
OUT = os.path.abspath(os.environ.get("BENCHMARK_OUT", HERE))
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
    # sampled permutations (vm_permutations.sh): value matching under K permutations per sample instead of all n!
    "dvm_k1": ["--dvm-mode", "dvm", "--vm-permutations", "1"],
    "dvm_k2": ["--dvm-mode", "dvm", "--vm-permutations", "2"],
    "dvm_k4": ["--dvm-mode", "dvm", "--vm-permutations", "4"],
    "dvm_k8": ["--dvm-mode", "dvm", "--vm-permutations", "8"],
    "dvm_k4_it8192": ["--dvm-mode", "dvm", "--vm-permutations", "4", "--dvm-iterations", "8192"],
}
# the flags job() gives every run itself: given after `--` as well, the script would take the later one, and every
# "seed" would be one seed, a "No DVM" row a DVM run, or two runs one folder
PER_RUN_FLAGS = ("--seed", "--run-name", "--runs-dir", "--phase1-checkpoint", "--dvm-checkpoint", "--threads")
# Slurm states of a job that has not ended (its processes may still run and write into its runs' folders)
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
          "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
POLL = 5  # seconds between two looks at the Slurm jobs
# where a figure's Phase I comes from when it trains its own (not --phase1-from), as its CSV's `# phase1 from:` says
OWN_PHASE1 = "its own runs"

# SIGINT/SIGTERM: STOPPED gets the signal's number, and every training process in RUNNING is terminated; no run starts
# after it. (Plain list and set rather than threading objects: submitit pickles job() and its globals for a Slurm job.)
STOPPED, RUNNING = [], set()


class Interrupted(BaseException):
    """Raised once SIGINT/SIGTERM came; a BaseException so that no `except Exception` counts it as a failed run."""


def stop_runs(signum, frame):
    """The handler of SIGINT and SIGTERM: pass the signal on to the training processes, then stop. job() waits for
    each of them (no orphan keeps writing into a folder that a re-run clears); a second signal is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    STOPPED.append(signum)
    for proc in list(RUNNING):
        proc.terminate()
    raise Interrupted


def flag_name(token):
    """"--dvm_mode=x" -> "dvm-mode"; "--no-phase2-learning" -> "phase2-learning" (tyro's spellings of one flag)."""
    name = token[2:].split("=", 1)[0].replace("_", "-")
    return name[3:] if name.startswith("no-") else name


def refuse_flags(flags, variants):
    """Exits naming the first flag after `--` that run.py sets per run (itself, or through a variant), a --help (the
    script would print it and exit 0 without a run), or a Phase II of no steps (a figure compares Phase II curves)."""
    owners = {flag_name(f): "run.py sets it for every run" for f in PER_RUN_FLAGS}
    for variant in variants:
        owners.update({flag_name(f): f"the variant {variant} sets it" for f in VARIANTS[variant] if f.startswith("--")})
    for i, token in enumerate(flags):
        if token in ("-h", "--help"):
            sys.exit(f"{token} after --: the script would print its help instead of running; ask it directly: "
                     "python SCRIPT --help")
        if token.startswith("--") and flag_name(token) in owners:
            sys.exit(f"{token.split('=')[0]} after --: {owners[flag_name(token)]}; leave it out of the flags after --")
        if token.startswith("--") and flag_name(token) == "phase2-steps":
            value = token.partition("=")[2] or (flags[i + 1] if i + 1 < len(flags) else "")
            with contextlib.suppress(ValueError):  # (any other bad value is the script's to refuse)
                if int(value) == 0:
                    sys.exit("--phase2-steps 0 after --: a figure compares Phase II curves; give Phase II steps")


def refuse_another_figure(out, csv_file, command, source):
    """Exits if runs/FIG or results/FIG.csv hold curves of another figure than this invocation's: another command (the
    script and its flags) or another Phase I (source: the --phase1-from figure, or OWN_PHASE1). Pieces of one figure
    must share both, or its table would average seeds of two configurations. (A CSV from before plot.py wrote its
    `# phase1 from:` line is checked for its command only.)"""
    def read(path):
        return open(path, errors="replace").read().strip() if os.path.exists(path) else None

    ran, ran_from = read(os.path.join(out, "command.txt")), read(os.path.join(out, "phase1_from.txt")) or OWN_PHASE1
    if ran is not None and (ran, ran_from) != (command, source):
        sys.exit(f"{out} holds runs of another command or Phase I ({ran}; Phase I from {ran_from}); delete that folder "
                 f"to start over with: {command}; Phase I from {source}")
    if os.path.exists(csv_file):
        head = {}
        with open(csv_file, errors="replace") as f:
            for line in f:  # the '# key: value' lines at its top
                if not line.startswith("# "):
                    break
                key, _, value = line[2:].rstrip("\n").partition(": ")
                head.setdefault(key, value)
        if (head.get("command"), head.get("phase1 from", source)) != (command, source):
            sys.exit(f"{csv_file} holds curves of another command or Phase I ({head.get('command')}; Phase I from "
                     f"{head.get('phase1 from', '?')}); its seeds cannot be merged with runs of: {command}; Phase I "
                     f"from {source}")


def write_atomically(path, data):
    """Writes data (text or bytes) to path through a temporary file beside it, renamed over path once whole: a write
    that fails (a full disk, a file-size limit, a read-only folder) leaves the file that was there as it was, and
    raises OSError with one line that says so. Every file of results run.py and the plot scripts write goes through
    this."""
    tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        kept = "the file there before is left as it was" if os.path.exists(path) else "nothing written"
        raise OSError(f"cannot write {path} ({e.strerror or e}); {kept}") from None


def read_seconds(path):
    """The seconds in a wall_time.txt or seconds.txt; None if there is no such file. One that holds no duration (empty,
    garbage) ends the program in one line."""
    if not os.path.exists(path):
        return None
    try:
        seconds = float(open(path, "rb").read())
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        sys.exit(f"error: {path}: not a duration in seconds; correct it, or delete it (its time is then not counted)")
    return seconds


@contextlib.contextmanager
def figure_lock(fig_dir):
    """The figure's lock (runs/FIG/.lock), held while a file that invocations of one figure share is read and
    rewritten (wall_time.txt, the merge into results/FIG.csv): pieces in two lanes take turns instead of each writing
    over the other's."""
    with open(os.path.join(fig_dir, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def add_wall_time(wall_file, seconds):
    """Adds seconds to the figure's wall_time.txt and returns the new total, under the figure's lock."""
    with figure_lock(os.path.dirname(wall_file)):
        total = (read_seconds(wall_file) or 0.0) + seconds
        write_atomically(wall_file, f"{total:.1f}\n")
    return total


def parse_seeds(text):
    """SEEDS: "10" -> seeds 1..10; "8 9 10" or "8-10" -> those seeds; at most 1000 seeds, each from 1 to 2**32 - 1."""
    seeds = []
    if re.fullmatch(r"\s*[0-9]+(-[0-9]+)?\s*", text):  # a count or a range
        first, _, last = text.strip().rpartition("-")
        first, last = int(first or 1), int(last)
        seeds = list(range(first, last + 1)) if last - first < 1000 else []
    elif re.fullmatch(r"[0-9\s]+", text):  # a list
        seeds = sorted({int(s) for s in text.split()})
    if not 0 < len(seeds) <= 1000 or seeds[0] < 1 or seeds[-1] >= 2**32:
        sys.exit(f"SEEDS={text!r}: give a count (10), a list (\"8 9 10\") or a range (8-10) of at most 1000 seeds, "
                 f"each from 1 to {2**32 - 1}")
    return seeds


def parse_jobs(text):
    """JOBS: how many runs go side by side here, a positive integer."""
    if not re.fullmatch(r"\s*[0-9]+\s*", text) or int(text) < 1:
        sys.exit(f"JOBS={text!r}: give the number of runs to run side by side, a positive integer")
    return int(text)


def load_script(script):
    """The training script (maddpg_dvm.py, masac_dvm.py) as a module, its main not run: its Args, check_args, make_env
    and Team. Registered in sys.modules before it runs, where its dataclass and tyro's docstrings look it up."""
    name = os.path.basename(script).removesuffix(".py")
    if name not in sys.modules:
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)  # (its make_env imports particle_envs from the repository's root)
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, script))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def check_memory(module, args, has):
    """Exits in one line if a run of these sizes needs more than `has` bytes (else a MemoryError, or the kernel's OOM
    killer, hours into a sweep). An estimate: a team's networks and replay buffer built on torch's meta device (shapes,
    no memory), each weight 4 times (with its gradient and Adam's two moments); a batch through the widest layer; the
    worlds."""
    import torch

    env = module.make_env(args, 1, phase=1, task=1)
    space = env.single_action_space
    obs_dim, act_dim = env.single_observation_space.shape[0], space.n if hasattr(space, "n") else space.shape[0]
    with torch.device("meta"):
        team = module.Team(args, obs_dim, act_dim, "meta")
    weights = sum(p.numel() for net in vars(team).values() if isinstance(net, torch.nn.Module) for p in net.parameters())
    buffer = sum(t.nbytes for t in vars(team.buffer).values() if torch.is_tensor(t))
    # value matching sends each DVM sample through the critic once per permutation (all n!, or K sampled)
    perms = (args.vm_permutations or math.factorial(args.n_agents)) if args.dvm_mode in ("vm", "dvm") else 1
    rows = max(args.batch_size * args.n_agents, args.dvm_batch_size * perms, args.num_envs, args.eval_episodes)
    width = max(args.hidden_dim, args.n_agents * (obs_dim + act_dim))
    worlds = 40 * (args.num_envs + args.eval_episodes) * args.n_agents * obs_dim  # numpy state and temporaries
    needed = (2 if args.domain == "push_box" else 1) * (buffer + 16 * weights) + 16 * rows * width + worlds
    if needed > has:
        sys.exit(f"error: these sizes need about {needed / 2**30:.3g} GiB of memory per run, more than the "
                 f"{has / 2**30:.3g} GiB a run has (--buffer-size, --hidden-dim, --num-envs, --eval-episodes, "
                 "--batch-size, --dvm-batch-size, --vm-permutations)")


def check_sweep(cli, flags, seeds):
    """Every run of the sweep parsed and checked as its script will (tyro, then the script's check_args and check_env),
    and its sizes against the memory a run has (this machine's; on Slurm, --mem-gb), before the first run starts: a
    sweep with a bad flag or sizes that cannot fit is refused in one line, not failed run by run or hours in."""
    import tyro

    module = load_script(cli.script)
    has = (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if cli.cluster != "slurm" else cli.mem_gb * 2**30)
    for k, variant in enumerate(cli.variants):
        # run.py's own flags, as job() gives them: a branch (any variant after the first, or all with --phase1-from)
        # loads a Phase I checkpoint, which check_args then does not ask to make an update
        branch = ["--phase1-checkpoint", "phase1.pt"] if cli.phase1_from or k > 0 else []
        args = tyro.cli(module.Args, args=[*flags, *VARIANTS[variant], "--seed", str(seeds[-1]), *branch],
                        prog=cli.script)
        module.check_args(args)
        check_memory(module, args, has)
    module.check_env(args)  # (make_env's contract: every variant of a sweep makes the same worlds)


def finished(run_dir):
    return os.path.exists(os.path.join(run_dir, "phase2.pt"))


def clear_cut_off(run_dir):
    """Removes what a cut-off run left (events file, checkpoints, a checkpoint's temporary file, videos, duration): the
    plot would read its curve along with the new one, and the scripts refuse a folder that holds another run's files.
    stdout.txt is written over."""
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        if name == "videos" and os.path.isdir(path):
            shutil.rmtree(path)
        elif name.startswith("events.out.tfevents.") or ".pt" in name or name == "seconds.txt":
            os.remove(path)


def lock_run(lock, seed, variant):
    """Takes the run's lock; "waited" if another invocation held it (its run then ended), after a line saying so.
    Polled rather than blocking, so that a signal stops the wait."""
    said = False
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return "waited" if said else "locked"
        except BlockingIOError:
            if STOPPED:
                raise Interrupted from None
            if not said:
                lock.seek(0)
                holder = lock.read().strip() or "another invocation"
                print(f"  seed {seed} {variant}: running in another invocation ({holder}); waiting for it", flush=True)
                said = True
            time.sleep(1)


def train(cmd, log, lock):
    """Runs one training process, its output in log; returns its exit code. It inherits the run's lock, so the run stays
    marked as in progress as long as the process lives, even if run.py itself was killed."""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, pass_fds=(lock.fileno(),))
    RUNNING.add(proc)
    try:
        if STOPPED:  # the signal came while it started
            proc.terminate()
        return proc.wait()
    finally:
        if proc.returncode is None:  # the signal interrupted this very wait (the handler ran in this thread)
            proc.terminate()
            proc.wait()
        RUNNING.discard(proc)


def job(script, out, seed, variant, flags, checkpoint=None, dvm_from=None):
    """One training run, benchmark/runs/FIG/seedS/VARIANT/: "done", or "skipped" if it finished before (here or in
    another invocation that this one waited for).

    dvm_from: the runs of another figure, whose DVM step of this seed and mode the run takes, where there is one.

    Raises RuntimeError naming the run's log if the script fails. A run cut off earlier (by a stop or a scheduler's
    time limit) has no phase2.pt, since the scripts write checkpoints atomically: its folder is cleared and it starts
    over. Raises Interrupted after SIGINT/SIGTERM.
    """
    if STOPPED:
        raise Interrupted
    run_name = f"seed{seed}/{variant}"
    run_dir = os.path.join(out, run_name)
    if finished(run_dir):  # finished in an earlier invocation
        return "skipped"
    cmd = [sys.executable, os.path.join(ROOT, script), "--seed", str(seed), "--threads", "1", "--runs-dir", out,
           "--run-name", run_name, *VARIANTS[variant], *flags]
    if checkpoint:
        cmd += ["--phase1-checkpoint", checkpoint]
    mode = VARIANTS[variant][1]
    saved_dvm = os.path.join(dvm_from, f"seed{seed}", mode, "dvm.pt") if dvm_from else None
    if saved_dvm and mode != "none" and os.path.exists(saved_dvm):
        cmd += ["--dvm-checkpoint", saved_dvm]
    os.makedirs(run_dir, exist_ok=True)
    log = os.path.join(run_dir, "stdout.txt")
    with open(os.path.join(run_dir, ".lock"), "a+") as lock:
        waited = lock_run(lock, seed, variant) == "waited"
        if finished(run_dir):  # by the invocation waited for, or one that finished right before this one looked
            return "skipped"
        if waited:
            raise RuntimeError(f"seed {seed} {variant}: its run in another invocation ended unfinished; see {log}")
        clear_cut_off(run_dir)
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")  # for the line of an invocation that waits
        lock.flush()
        start = time.time()
        code = train(cmd, log, lock)
        if STOPPED:
            raise Interrupted
        if code != 0:
            raise RuntimeError(f"seed {seed} {variant} failed (exit {code}); see {log}")
        if not finished(run_dir):
            raise RuntimeError(f"seed {seed} {variant} ended (exit 0) without its phase2.pt; see {log}")
        # its own duration: a figure's cost adds these up
        write_atomically(os.path.join(run_dir, "seconds.txt"), f"{time.time() - start:.1f}\n")
    return "done"


def run_seed(script, out, seed, first, rest, flags, checkpoint, parallel=1, report=None, dvm_from=None):
    """Every run of one seed: its Phase I (inside the run of variant `first`; None when `checkpoint` comes from
    another figure), then the variants in `rest` from that checkpoint, `parallel` at a time. The unit of work of
    both the local runner and a Slurm job. Returns ({variant: (status, seconds; None if not run)}, failures); a failed
    run does not stop the others, but a failed Phase I leaves its seed's branches unrun. `report(seed, variant, status,
    seconds)` is called after each run; `dvm_from` goes to job().
    """
    if threading.current_thread() is threading.main_thread():  # a Slurm job: scancel stops its runs
        signal.signal(signal.SIGTERM, stop_runs)
        signal.signal(signal.SIGINT, stop_runs)
    statuses, failures = {}, []

    def record(variant, status, seconds=None):
        statuses[variant] = (status, seconds)
        if report:
            report(seed, variant, status, seconds)

    def one(variant, checkpoint=None):
        start = time.time()
        try:
            status = job(script, out, seed, variant, flags, checkpoint, dvm_from)
        except Exception as e:  # noqa: BLE001 (a run that cannot even start is a failure like any other)
            failures.append(str(e))
            status = "failed"
        record(variant, status, time.time() - start)
        return status

    if first and one(first) == "failed":
        for variant in rest:  # counted as failed too, so that the progress lines add up
            record(variant, "failed")
        return statuses, failures + [f"seed {seed} {' '.join(rest)}: not run, their Phase I failed"]
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda v: one(v, checkpoint), rest))
    return statuses, failures


# ---- Slurm: what a job asks for, its state, and the job of each seed


def slurm_parameters(cli, fig):
    """What each Slurm job asks for, in submitit.SlurmExecutor's terms (each an sbatch option of the same name)."""
    params = dict(job_name=f"dvm-{fig}", time=cli.time_min, cpus_per_task=cli.cpus_per_job, mem=f"{cli.mem_gb}G")
    if cli.partition:
        params["partition"] = cli.partition
    if cli.gpus_per_job:
        params["gpus_per_node"] = cli.gpus_per_job
    return params


def ask(cmd):
    """A Slurm command's output; None if it failed (no Slurm here, the controller unreachable, a job it forgot)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def largest_node(partition):
    """The CPUs of the largest node of the partition (every partition if None), or None where sinfo cannot tell."""
    sinfo = ask(["sinfo", "-h", "-o", "%c", *(["-p", partition] if partition else [])]) or ""
    counts = sinfo.replace("+", "").split()  # ("4+": nodes of 4 CPUs and more)
    return max(int(c) for c in counts) if counts and all(c.isdigit() for c in counts) else None


def slurm_state(job_id):
    """(state, reason) of a Slurm job: squeue's while the job has not ended (reason: why a pending one waits), then
    sacct's (COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, ...; sacct needs Slurm's accounting,
    slurmdbd); ("ENDED", None) for a job that left the queue where sacct cannot tell how; (None, None) when Slurm
    does not answer."""
    queue = ask(["squeue", "-h", "-j", str(job_id), "-o", "%T|%r"])
    if queue:
        state, reason = queue.splitlines()[0].split("|", 1)
        return state, reason
    record = ask(["sacct", "-X", "-n", "-P", "-j", str(job_id), "-o", "State"])
    if record:
        return record.split()[0], None  # ("CANCELLED by 0" -> CANCELLED)
    return ("ENDED", None) if queue == "" else (None, None)


def earlier_job(out, seed):
    """The Slurm job an earlier invocation submitted for this seed, if it has not ended: (job id, submitit folder)."""
    try:
        with open(os.path.join(out, f"seed{seed}", "slurm_job.txt")) as f:
            job_id, folder = f.read().splitlines()[:2]
    except (OSError, ValueError):
        return None
    return (job_id, folder) if slurm_state(job_id)[0] in ACTIVE else None


def submit(executor, cli, out, seed, folder, args):
    """Submits one seed's job and keeps its id in runs/FIG/seedS/slurm_job.txt (a later invocation checks it)."""
    handle = executor.submit(run_seed, *args)
    if cli.cluster == "slurm":
        os.makedirs(os.path.join(out, f"seed{seed}"), exist_ok=True)
        with open(os.path.join(out, f"seed{seed}", "slurm_job.txt"), "w") as f:
            f.write(f"{handle.job_id}\n{folder}\n")
    return handle


def sbatch_error(e):
    """The line of sbatch's complaint in submitit's error."""
    lines = [line.strip() for line in str(e).splitlines() if "error" in line.lower()]
    return lines[-1] if lines else f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def job_outcome(seed, handle, state):
    """What an ended job of one seed returns: ({variant: (status, seconds)}, failures). A job that died (killed, time
    limit, out of memory, cancelled) returns nothing: its failure names Slurm's state and the job's log. state None:
    a debug job, run by handle.result() itself."""
    if state in ("COMPLETED", None) or os.path.exists(handle.paths.result_pickle):
        try:
            return handle.result()
        except Exception as e:  # noqa: BLE001 (the job's own error, or no result at all)
            ended = f"ended {state} " if state else ""
            return {}, [f"seed {seed}: job {handle.job_id} {ended}without its result ({type(e).__name__}); see "
                        f"{handle.paths.stderr}"]
    if state == "ENDED":
        return {}, [f"seed {seed}: Slurm job {handle.job_id} left the queue before its runs finished (sacct, Slurm's "
                    f"accounting, cannot tell how); see {handle.paths.stderr}"]
    return {}, [f"seed {seed}: Slurm job {handle.job_id} ended {state} before its runs finished; see "
                f"{handle.paths.stderr}"]


def waiting_hint(reason, params):
    """Why a pending job may never start, for the reasons that depend on what it asks for."""
    if any(word in reason for word in ("Config", "Limit", "ReqNodeNotAvail", "BadConstraints")):
        return (f": it asks for {params['cpus_per_task']} CPUs and {params['mem']} of memory, more than a node of the "
                "partition offers? (--cpus-per-job, --mem-gb)")
    return ""


class Progress:
    """The counts of done, skipped and failed runs, one line after each run, and the figure's wall time."""

    def __init__(self, seeds, variants, wall_file):
        self.total, self.counts = len(seeds) * len(variants), dict(done=0, skipped=0, failed=0)
        self.wall_file, self.lock = wall_file, threading.Lock()
        self.start = self.saved = time.time()  # saved: when this invocation last added its time
        self.failure = None  # why wall_time.txt could not be written (a full disk), reported at the end

    def save_wall_time(self):
        """After every run, so that an interrupted figure keeps the time it took so far. A write that fails leaves the
        file as it was; the runs go on, and the failure is reported with theirs."""
        now = time.time()
        try:
            wall = add_wall_time(self.wall_file, now - self.saved)
        except OSError as e:
            self.failure = str(e)
            return math.nan
        self.saved = now
        return wall

    def report(self, seed, variant, status, seconds=None):
        """One line per finished run: what is done, skipped and left, and the time left at this invocation's pace."""
        with self.lock:
            counts = self.counts
            counts[status] += 1
            left = self.total - sum(counts.values())
            pace = (time.time() - self.start) / max(counts["done"], 1)  # per finished run, the runs side by side
            eta = f", about {pace * left / 60:.0f} min left" if counts["done"] and left else ""
            took = f" in {seconds:.0f} s" if seconds is not None and status != "skipped" else ""
            print(f"  seed {seed} {variant}: {status}{took}; {counts['done']} done, {counts['skipped']} skipped, "
                  f"{counts['failed']} failed, {left} left{eta}", flush=True)
            self.save_wall_time()


def run_local(cli, out, seeds, first, rest, flags, phase1, dvm_from, progress, jobs):
    """Seeds side by side, `jobs` runs at a time; a seed's branches too when there are fewer seeds than jobs."""
    print(f"{cli.fig}: {cli.script} {' '.join(flags)}; seeds {' '.join(map(str, seeds))}, {jobs} jobs at a time")
    parallel, failures = max(1, jobs // len(seeds)), []
    with ThreadPoolExecutor(min(jobs, len(seeds))) as pool:
        for _, seed_failures in pool.map(lambda s: run_seed(cli.script, out, s, first, rest, flags, phase1[s], parallel,
                                                            progress.report, dvm_from), seeds):
            failures += seed_failures
    return failures


def job_request(cli, branches):
    """What each job asks for (submitit's parameters), and a note when its CPUs were fitted to the largest node."""
    params = slurm_parameters(cli, cli.fig)
    if params["cpus_per_task"]:
        return params, ""
    params["cpus_per_task"] = max(1, branches)  # one CPU per branch, but no more than a node has: else it never starts
    node = largest_node(cli.partition) if cli.cluster == "slurm" else None
    if node and node < params["cpus_per_task"]:
        params["cpus_per_task"] = node
        return params, f", fitted to the largest node; {branches} branches"
    return params, ""


def start_jobs(submitit, executor, cli, out, todo, folder, job_args, jobs_left):
    """A job for each seed in todo, or the job of an earlier invocation that has not ended (jobs outlive run.py: never
    a second job for the same runs). Returns ({seed: job}, failures); a refused submission stops the submitting.
    Each job goes into jobs_left as soon as it is known, so that a signal during the submitting names it."""
    handles = {}
    for s in todo:
        earlier = earlier_job(out, s) if cli.cluster == "slurm" else None
        if earlier:
            print(f"  seed {s}: Slurm job {earlier[0]} of an earlier invocation has not ended; waiting for it",
                  flush=True)
            handles[s] = submitit.SlurmJob(folder=earlier[1], job_id=earlier[0])
        else:
            try:
                handles[s] = submit(executor, cli, out, s, folder, job_args(s))
            except Exception as e:  # noqa: BLE001 (sbatch refused: a bad partition, a limit on jobs, ...)
                return handles, [f"seeds {' '.join(str(x) for x in todo if x >= s)}: not submitted ({sbatch_error(e)})"]
        jobs_left.add(handles[s].job_id)
    return handles, []


def watch_jobs(handles, jobs_left, params, collect):
    """Looks at the Slurm jobs every POLL seconds until all have ended, calling collect(seed, outcome) for each as it
    ends; a job pending for 20 s is reported with Slurm's reason (and again when the reason changes)."""
    said, pending_since = {}, {}
    while jobs_left:
        for s, handle in handles.items():
            if handle.job_id not in jobs_left:
                continue
            state, reason = slurm_state(handle.job_id)
            if state is None:  # Slurm does not answer (a controller restarting): ask again at the next look
                continue
            if state not in ACTIVE:
                collect(s, job_outcome(s, handle, state))
            elif state == "PENDING" and time.time() - pending_since.setdefault(s, time.time()) > 20 \
                    and said.get(s) != reason:
                print(f"  seed {s}: Slurm job {handle.job_id} is pending ({reason}){waiting_hint(reason, params)}",
                      flush=True)
                said[s] = reason
        if jobs_left:
            time.sleep(POLL)


def run_on_cluster(cli, out, seeds, first, rest, flags, phase1, dvm_from, progress, jobs_left):
    """One Slurm (or debug) job per seed that has runs left; a seed whose job from an earlier invocation has not ended
    is waited for instead. Returns the failures. jobs_left: the ids of the jobs not ended yet, kept up to date."""
    import submitit  # only the cluster paths need it
    from submitit.slurm.slurm import _make_sbatch_string

    folder = os.path.abspath(cli.log_folder) if cli.log_folder else os.path.join(out, "submitit")
    params, fitted = job_request(cli, len(rest))
    with open(os.path.join(out, "sbatch.sh"), "w") as f:  # the batch script of each job, for a look before submitting
        f.write(_make_sbatch_string(command=f"{sys.executable} -u -m submitit.core._submit {folder}", folder=folder,
                                    **params))
    if cli.dry_run:
        print(f"dry run: nothing submitted; the batch script of each seed's job is {os.path.join(out, 'sbatch.sh')}")
        sys.exit(0)
    executor = submitit.DebugExecutor(folder) if cli.cluster == "debug" else submitit.SlurmExecutor(folder)
    if cli.cluster == "slurm":
        executor.update_parameters(**params)

    todo = {s: [v for v in cli.variants if not finished(os.path.join(out, f"seed{s}", v))] for s in seeds}
    todo = {s: variants for s, variants in todo.items() if variants}
    cpus = f"{params['cpus_per_task']} CPU" + ("s" if params["cpus_per_task"] > 1 else "")
    print(f"{cli.fig}: {cli.script} {' '.join(flags)}; {len(todo)} of {len(seeds)} seeds to run, one {cli.cluster} "
          f"job each ({cpus}{fitted}); logs in {folder}", flush=True)
    for s in seeds:  # the runs that had finished before this invocation
        for v in cli.variants:
            if v not in todo.get(s, []):
                progress.report(s, v, "skipped")
    handles, failures = start_jobs(submitit, executor, cli, out, todo, folder, lambda s: (
        cli.script, out, s, first, rest, flags, phase1[s], params["cpus_per_task"], None, dvm_from), jobs_left)

    def collect(s, outcome):
        """The job's own statuses of its runs (a job that died: done where it wrote phase2.pt), and its failures."""
        statuses, job_failures = outcome
        for v in todo[s]:
            status, seconds = statuses.get(v, ("done" if finished(os.path.join(out, f"seed{s}", v)) else "failed",
                                               None))
            progress.report(s, v, status, seconds)
        failures.extend(job_failures)
        jobs_left.discard(handles[s].job_id)

    if cli.cluster == "debug":  # in-process: each job runs when its result is asked for
        for s, handle in handles.items():
            collect(s, job_outcome(s, handle, None))
    else:
        watch_jobs(handles, jobs_left, params, collect)
    return failures


def main():
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
    # (string defaults go through `type` too: a bad environment variable is refused like a bad flag)
    parser.add_argument("--time-min", type=int, default=env("SLURM_TIME_MIN", "240"),
                        help="time limit of one Slurm job (one seed), minutes; at least 2 (submitit signals a job 90 s "
                             "before its limit)")
    parser.add_argument("--cpus-per-job", type=int, default=env("SLURM_CPUS", "0"),
                        help="CPUs of one Slurm job; its branch runs go side by side (default: one per branch, at most "
                             "the largest node's)")
    parser.add_argument("--gpus-per-job", type=int, default=env("SLURM_GPUS", "0"),
                        help="GPUs of one Slurm job; with any, the scripts run with --cuda")
    parser.add_argument("--mem-gb", type=int, default=env("SLURM_MEM_GB", "8"), help="memory of one Slurm job, GB")
    parser.add_argument("--log-folder", default=env("SUBMITIT_FOLDER"),
                        help="submitit's logs and pickles (default runs/FIG/submitit); on a shared filesystem")
    parser.add_argument("--dry-run", action="store_true",
                        help="write runs/FIG/sbatch.sh, the script a Slurm job would get, and submit nothing")
    parser.add_argument("--merge", action="store_true", default=env("MERGE") == "1",
                        help="merge the seeds run into the committed results/FIG.csv (env MERGE=1); without it, a "
                             "figure that has one gets a quick look of its own in runs/FIG/quick_look/")
    # everything after "--" goes to SCRIPT untouched
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    cli, flags = parser.parse_args(argv[:split]), argv[split + 1:]
    # every check before anything is written
    for name in filter(None, (cli.fig, cli.phase1_from)):
        if not re.fullmatch(r"[\w.+-]+", name, re.ASCII) or name in (".", ".."):
            sys.exit(f"{name!r}: a figure's name is one folder's name, of letters, digits and _ . + -")
    if cli.cluster not in ("local", "slurm", "debug") or env("MERGE", "") not in ("", "0", "1"):  # (env defaults)
        sys.exit(f"CLUSTER={cli.cluster!r}, MERGE={env('MERGE', '')!r}: CLUSTER is local, slurm or debug, MERGE 1 or 0")
    if cli.time_min < 2 or cli.cpus_per_job < 0 or cli.gpus_per_job < 0 or cli.mem_gb < 1:
        parser.error("--time-min must be at least 2 (minutes), --mem-gb at least 1, --cpus-per-job and "
                     "--gpus-per-job at least 0")
    refuse_flags(flags, cli.variants)
    seeds = parse_seeds(env("SEEDS", "10"))
    jobs = parse_jobs(env("JOBS", str(os.cpu_count()))) if cli.cluster == "local" else None
    out = os.path.join(OUT, "runs", cli.fig)
    command, command_file = " ".join([cli.script, *flags]), os.path.join(out, "command.txt")
    csv_file = os.path.join(OUT, "results", f"{cli.fig}.csv")  # curves committed earlier: pieces must match them
    refuse_another_figure(out, csv_file, command, cli.phase1_from or OWN_PHASE1)
    wall_file = os.path.join(out, "wall_time.txt")
    read_seconds(wall_file)  # (a garbage one is refused now, not after the runs)
    if cli.phase1_from:  # every variant branches from another figure's Phase I (only its trainer has a phase1.pt)
        first, rest = None, cli.variants
        phase1 = {s: glob.glob(os.path.join(OUT, "runs", cli.phase1_from, f"seed{s}", "*", "phase1.pt")) for s in seeds}
        missing = [s for s in seeds if len(phase1[s]) != 1]
        if missing:
            sys.exit(f"no Phase I checkpoint of seed {missing[0]} in {os.path.join(OUT, 'runs', cli.phase1_from)}: "
                     f"run {cli.phase1_from} first, with at least as many SEEDS")
        phase1 = {s: paths[0] for s, paths in phase1.items()}
    else:  # the first variant trains Phase I, the others branch from it
        first, rest = cli.variants[0], cli.variants[1:]
        phase1 = {s: os.path.join(out, f"seed{s}", first, "phase1.pt") for s in seeds}
    made, parent = None, out  # made: the first folder of out's path that this invocation makes
    while not os.path.exists(parent):
        made, parent = parent, os.path.dirname(parent)
    try:  # the figure's identity, written once (plot.py draws Phase I from phase1_from.txt's figure)
        os.makedirs(out, exist_ok=True)
        for path, text in ((command_file, command), (os.path.join(out, "phase1_from.txt"), cli.phase1_from)):
            if text and not os.path.exists(path):
                write_atomically(path, text + "\n")
    except OSError as e:  # a read-only or full disk: one line, and no folder left behind
        if made:
            shutil.rmtree(made, ignore_errors=True)
        sys.exit(f"{cli.fig}: {e if e.strerror is None else f'cannot write in {out} ({e.strerror})'}")
    try:  # (after the writes above: a disk that cannot be written is named as such, not as a failed check)
        check_sweep(cli, flags, seeds)
    except SystemExit:
        if made:
            shutil.rmtree(made, ignore_errors=True)
        raise
    dvm_from = os.path.join(OUT, "runs", cli.phase1_from) if cli.phase1_from and not cli.dvm_again else None
    if cli.gpus_per_job and cli.cluster != "local":
        flags = [*flags, "--cuda"]

    earlier = os.path.exists(wall_file)  # the figure was run before (or is running in another lane)
    progress, jobs_left = Progress(seeds, cli.variants, wall_file), set()
    signal.signal(signal.SIGINT, stop_runs)
    signal.signal(signal.SIGTERM, stop_runs)
    try:
        if cli.cluster == "local":
            failures = run_local(cli, out, seeds, first, rest, flags, phase1, dvm_from, progress, jobs)
        else:
            failures = run_on_cluster(cli, out, seeds, first, rest, flags, phase1, dvm_from, progress, jobs_left)
    except Interrupted:
        progress.save_wall_time()
        name = signal.Signals(STOPPED[0]).name
        if jobs_left and cli.cluster == "slurm":
            ids = " ".join(sorted(jobs_left))
            print(f"{cli.fig}: {name}: stopped waiting; Slurm jobs {ids} go on (scancel {ids} stops them); run the "
                  "script again to wait for them", file=sys.stderr)
        else:
            print(f"{cli.fig}: {name}: its runs in progress were stopped; run the script again to start them over",
                  file=sys.stderr)
        sys.exit(128 + STOPPED[0])  # the shell's code of a process ended by that signal
    wall = progress.save_wall_time()
    if progress.failure:
        failures.append(progress.failure)
    else:
        print(f"{cli.fig}: wall time {wall / 60:.1f} min" + (" (all invocations)" if earlier else ""))
    complete = [s for s in seeds if all(finished(os.path.join(out, f"seed{s}", v)) for v in cli.variants)]
    drawn = "no seed finished all its runs: nothing drawn"
    if complete:
        with figure_lock(out):  # two lanes merging into one results/FIG.csv take turns
            plot = subprocess.run([sys.executable, os.path.join(HERE, cli.plot), cli.fig, *["--merge"] * cli.merge])
        drawn = (f"the figure shows the {len(complete)} seed(s) whose runs all finished" if plot.returncode == 0 else
                 f"{cli.plot} drew nothing (exit {plot.returncode}); see its error above")  # (its one line)
        if plot.returncode != 0 and not failures:
            sys.exit(f"{cli.fig}: {drawn}")
    if failures:
        sys.exit(f"{cli.fig}: {len(failures)} failure(s); {drawn}; run the script again to retry:\n  "
                 + "\n  ".join(failures))


if __name__ == "__main__":
    main()
