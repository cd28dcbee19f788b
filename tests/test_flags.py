"""Process-wide settings are pinned while measuring and put back after."""
import pytest
import torch

from archbench.instruments import flags


def test_pinned_sets_and_restores():
    torch.set_num_threads(2)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    try:
        with flags.pinned(threads=1):
            s = flags.snapshot()
            assert (s["threads"], s["tf32_matmul"], s["tf32_cudnn"], s["cudnn_benchmark"]) == (1, False, False, False)
        s = flags.snapshot()
        assert (s["threads"], s["tf32_matmul"], s["tf32_cudnn"], s["cudnn_benchmark"]) == (2, True, True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = False


def test_pinned_restores_after_an_exception():
    before = flags.snapshot()
    with pytest.raises(RuntimeError):
        with flags.pinned(threads=1, tf32=True, cudnn_benchmark=True):
            raise RuntimeError
    assert flags.snapshot() == before


def test_pinned_snapshot_reports_what_a_measurement_runs_under():
    snap = flags.pinned_snapshot(1, tf32=False)
    assert snap["threads"] == 1 and snap["tf32_matmul"] is False and snap["autocast"] is False
