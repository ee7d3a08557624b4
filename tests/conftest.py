import pytest
import torch

from helpers import Forker, run_script


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The in-process tests train tiny networks: one thread is fastest, and cannot stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def spread_runs(tmp_path_factory):
    """spread_runs(script): one tiny Phase I -> DVM -> Phase II run of the script (spread, 3 agents, dvm, videos, its
    stdout in stdout.txt), made on first use and shared by test_both_scripts.py and the script's own tests."""
    made = {}

    def get(script):
        if script not in made:
            tmp = tmp_path_factory.mktemp(script.split("_")[0] + "_spread")
            proc = run_script(script, tmp, "--n-agents", "3", "--dvm-mode", "dvm", "--seed", "3", "--run-name", "full",
                              "--capture-video")
            (tmp / "stdout.txt").write_text(proc.stdout)
            made[script] = tmp
        return made[script]
    return get


@pytest.fixture(scope="session")
def forked(tmp_path_factory):
    """A Forker (helpers.py): the refusal tests' invocations of the scripts, each a child forked from one interpreter
    with the packages loaded (started on first use, once per xdist worker)."""
    forker = Forker(tmp_path_factory.mktemp("forked"))
    yield forker
    forker.close()
