"""The device's measured matmul rate: its arithmetic on a fake timer, its rate against an independent timing.

The wall-clock comparison with torch's Timer, which needs an idle machine, is in
benchmarks/test_timer_accuracy.py.
"""
import time

import numpy as np
import pytest
import torch
import torch.utils.benchmark as tb
from torch.utils.flop_counter import FlopCounterMode

import archbench.instruments.peak as peak_mod
from archbench.instruments.peak import matmul_peak
from archbench.instruments.timing import Measurement, measure


@pytest.mark.parametrize("n, threads", [(64, 1), (96, 2)])
def test_the_peak_is_the_counted_work_of_the_timed_call_over_its_median(monkeypatch, n, threads):
    timed = []

    def fake_measure(fn, device, rule):
        with FlopCounterMode(display=False) as counter:  # an independent count of what is timed
            fn()
        timed.append((counter.get_total_flops(), torch.get_num_threads(), str(device)))
        return Measurement((2e-3, 1e-3, 3e-3, 1e-3, 5e-3))  # median 2 ms

    before = torch.get_num_threads()
    monkeypatch.setattr(peak_mod, "measure", fake_measure)
    peak = matmul_peak("cpu", torch.float64, threads=threads, n=n)
    [(work, threads_inside, device)] = timed
    assert work == 2 * n**3 and threads_inside == threads and device == "cpu"
    assert torch.get_num_threads() == before  # the pinning is undone
    assert peak["flops_per_s"] == pytest.approx(work / 2e-3, rel=1e-12) and peak["median_s"] == 2e-3
    assert peak["rel_ci"] == pytest.approx(1.5)  # the CI of 5 samples is their full range, 1 to 5 ms: (5 - 2) / 2
    assert (peak["n"], peak["dtype"], peak["device"], peak["threads"]) == (n, "float64", "cpu", threads)


def test_matmul_peak_matches_torch_timer_on_the_same_gemm_on_the_cpu_clock(monkeypatch):
    # The real timer, read on the thread's CPU clock on both sides: waiting for a core counts for
    # neither, so a busy machine moves both alike; rounds alternate so that drift does too.
    monkeypatch.setattr(peak_mod, "measure", lambda fn, device, rule: measure(fn, device, rule, clock="thread_cpu"))
    n = 256
    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    timer = tb.Timer("torch.mm(a, b, out=out)", globals={"a": a, "b": b, "out": out, "torch": torch},
                     num_threads=1, timer=time.thread_time)
    ratios = []
    for _ in range(5):
        peak = matmul_peak("cpu", torch.float32, threads=1, n=n)
        theirs = 2 * n**3 / timer.blocked_autorange(min_run_time=0.1).median
        ratios.append(peak["flops_per_s"] / theirs)
    assert np.median(ratios) == pytest.approx(1.0, abs=0.10)
