import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests time things; one pinned thread keeps them comparable (and restores the setting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
