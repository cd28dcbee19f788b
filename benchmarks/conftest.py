import gc

import pytest
import torch


@pytest.fixture(autouse=True)
def _pinned():
    """One torch thread and no garbage collector while benchmarking; both restored after."""
    threads, enabled = torch.get_num_threads(), gc.isenabled()
    torch.set_num_threads(1)
    gc.disable()
    yield
    torch.set_num_threads(threads)
    if enabled:
        gc.enable()
