import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The in-process tests train tiny networks: one thread is fastest, and cannot stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
