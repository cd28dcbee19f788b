"""The device's measured matmul rate, checked against an independent timing of the same GEMM."""
import numpy as np
import pytest
import torch
import torch.utils.benchmark as tb

from archbench.instruments.peak import matmul_peak


def test_matmul_peak_matches_torch_timer_on_the_same_gemm():
    n = 512
    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    timer = tb.Timer("torch.mm(a, b, out=out)", globals={"a": a, "b": b, "out": out, "torch": torch}, num_threads=1)
    ours, theirs = [], []
    for _ in range(5):  # alternating rounds: drift of a shared machine falls on both alike
        peak = matmul_peak("cpu", torch.float32, threads=1, n=n)
        ours.append(peak["flops_per_s"])
        theirs.append(2 * n**3 / timer.blocked_autorange(min_run_time=0.2).median)
    assert np.median(ours) == pytest.approx(np.median(theirs), rel=0.10)
    assert peak["n"] == n and peak["dtype"] == "float32" and peak["threads"] == 1
