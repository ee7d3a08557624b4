"""What the tests of maddpg_dvm.py and masac_dvm.py share: tiny subprocess runs and checkpoint comparisons."""
import json
import os
import re
import resource
import signal
import subprocess
import sys

import numpy as np
import torch
from PIL import Image, ImageSequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a whole Phase I -> DVM -> Phase II run in seconds
TINY = ["--phase1-steps", "256", "--phase2-steps", "128", "--num-envs", "8", "--learning-starts", "64",
        "--batch-size", "32", "--dvm-iterations", "5", "--dvm-batch-size", "16", "--hidden-dim", "16",
        "--eval-every", "64", "--eval-episodes", "4", "--buffer-size", "1000", "--threads", "1",
        "--log-every", "4"]
# TINY as benchmark/run.py passes it on: without --threads, which run.py sets per run itself (and refuses after --)
RUN_TINY = [flag for i, flag in enumerate(TINY) if flag != "--threads" and TINY[i - 1] != "--threads"]


def tiny_args(script, tmp_path, *flags):
    """The path of `script` and its arguments for a tiny run: TINY, then `flags` (later flags win), logs under tmp_path."""
    return [os.path.join(ROOT, script), "--runs-dir", str(tmp_path), *TINY, *flags]


def run_script(script, tmp_path, *flags, check=True, prelude=None):
    """Run `script` with TINY step counts and `flags` (later flags win), logs under tmp_path.

    prelude: Python code run in the script's process before the script (to break something on purpose).
    """
    if prelude is None:
        cmd = [sys.executable, *tiny_args(script, tmp_path, *flags)]
    else:
        runner = f"{prelude}\nimport runpy, sys\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')"
        cmd = [sys.executable, "-c", runner, *tiny_args(script, tmp_path, *flags)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def start_script(script, tmp_path, *flags):
    """Start `script` like run_script, without waiting: read its progress from stdout, then kill it. Its stderr goes to
    tmp_path/stderr.txt, for the message of a failed assertion (a file, not a pipe that could fill and stall it)."""
    cmd = [sys.executable, *tiny_args(script, tmp_path, *flags)]
    with open(os.path.join(tmp_path, "stderr.txt"), "w") as stderr:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)


# a line of progress: phase 1  global_step 64  SPS 1778  eval/return -35.97
PROGRESS = re.compile(r"phase ([12])  global_step (\d+)  SPS (\d+)  eval/return (-?\d+\.\d\d)")


def progress_lines(stdout):
    """Every progress line of a run's stdout as a re.Match of PROGRESS, checking that each matches whole."""
    lines = [line for line in stdout.splitlines() if line.startswith("phase ")]
    matches = [PROGRESS.fullmatch(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches) if not m]
    return matches


def gif_frames(path):
    """The frames of a GIF as RGB arrays."""
    with Image.open(path) as gif:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def networks(checkpoint, team=0):
    return checkpoint["teams"][team]


def all_equal(state_dicts):
    first = state_dicts[0]
    return all(all(torch.equal(first[k], sd[k]) for k in first) for sd in state_dicts[1:])


def per_agent(team_state, key, n):
    """Split a ModuleList state dict into one state dict per agent."""
    return [{k.split(".", 1)[1]: v for k, v in team_state[key].items() if k.startswith(f"{i}.")} for i in range(n)]


def file_size_limit(nbytes):
    """A preexec_fn: no file of the process may grow beyond nbytes (RLIMIT_FSIZE), as on a full disk; a write past it
    fails with EFBIG (File too large), SIGXFSZ being ignored."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


def files(folder):
    """{path: bytes} of every file under folder (its whole state)."""
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def script(name, out, *args, limit=None):
    """Run benchmark/NAME with runs/, images/ and results/ under out; limit: the file-size limit of the process."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", name), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, BENCHMARK_OUT=str(out)), timeout=300,
                          preexec_fn=None if limit is None else file_size_limit(limit))


def refused(proc, *words):
    """A refusal of the benchmark's scripts: non-zero exit, one line `error: ...` holding every word, no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), proc.stdout + proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


# A refusal exits before any training, yet a fresh interpreter spends 2.5 to 4.5 s importing torch, tyro, matplotlib,
# TensorBoard (and torch._dynamo, which torch imports at the first optimizer) before the script gets to refuse. The
# forker imports them once and forks a child per refusal, which runs the script whole as `python SCRIPT ARGS` would
# (runpy as __main__, its folder first on sys.path, its own cwd, environment, stdout and stderr, a SystemExit's message
# on stderr and exit code 1, an uncaught exception's traceback): the script's own imports still run in the child, only
# the packages are loaded already.
FORKER = r"""
import atexit, json, os, runpy, signal, sys, traceback
import matplotlib, matplotlib.pyplot, numpy, torch, torch.utils.tensorboard, tyro  # noqa: F401
import tensorboard.backend.event_processing.event_accumulator  # noqa: F401
import torch._dynamo  # noqa: F401  (torch imports it at the first optimizer a script makes, 2 s more)
print("ready", flush=True)
for line in sys.stdin:
    argv, cwd, env, out, err, timeout = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            f = os.open(path, flags, 0o644)
            os.dup2(f, fd)
            os.close(f)
        signal.alarm(timeout)
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        try:
            runpy.run_path(argv[0], run_name="__main__")
            code = 0
        except SystemExit as e:
            code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
            if not isinstance(e.code, int) and e.code is not None:
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code & 0xFF)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class Forker:
    """Runs a script to its refusal in a child forked from one interpreter that has the packages loaded (FORKER): the
    refusal tests' invocations, at a tenth of a fresh interpreter's cost. For refusals only: a run that trains, draws
    or is signalled goes through subprocess, as the user starts it."""

    def __init__(self, folder):
        self.folder, self.proc, self.count = folder, None, 0

    def run(self, args, cwd=ROOT, env=None, timeout=300):
        """subprocess.run([sys.executable, *args], capture_output=True, text=True, ...) by a forked child."""
        if self.proc is None:
            self.proc = subprocess.Popen([sys.executable, "-c", FORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, cwd=ROOT)
            assert self.proc.stdout.readline() == "ready\n", "the forker did not start"
        self.count += 1
        out, err = (os.path.join(self.folder, f"{self.count}.{name}") for name in ("stdout", "stderr"))
        args = [str(a) for a in args]
        self.proc.stdin.write(json.dumps([args, str(cwd), dict(os.environ if env is None else env), out, err,
                                          timeout]) + "\n")
        self.proc.stdin.flush()
        code = self.proc.stdout.readline()
        assert code, "the forker ended"
        with open(out) as o, open(err) as e:
            return subprocess.CompletedProcess(args, int(code), o.read(), e.read())

    def run_script(self, script, tmp_path, *flags):
        """run_script(script, tmp_path, *flags, check=False), forked."""
        return self.run(tiny_args(script, tmp_path, *flags))

    def script(self, name, out, *args):
        """script(name, out, *args), forked (no file-size limit: the child's stdout and stderr are files, which it would
        cut, where a subprocess's are pipes)."""
        return self.run([os.path.join(ROOT, "benchmark", name), *args], env=dict(os.environ, BENCHMARK_OUT=str(out)))

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
