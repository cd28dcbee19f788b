"""The device's measured matmul rate, checked against an independent timing of the same GEMM."""
import pytest
import torch
import torch.utils.benchmark as tb

from archbench.peak import matmul_peak


def test_matmul_peak_matches_torch_timer_on_the_same_gemm():
    n = 512
    peak = matmul_peak("cpu", torch.float32, threads=1, n=n)
    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    g = {"a": a, "b": b, "out": out, "torch": torch}
    t = tb.Timer("torch.mm(a, b, out=out)", globals=g, num_threads=1).blocked_autorange(min_run_time=0.3)
    assert peak["flops_per_s"] == pytest.approx(2 * n**3 / t.median, rel=0.10)
    assert peak["n"] == n and peak["dtype"] == "float32" and peak["threads"] == 1
