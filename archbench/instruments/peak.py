"""The device's own limit: the dense matmul rate it reaches in the run's dtype, measured.

    peak = matmul_peak("cpu", torch.float32, threads=1)   # {"flops_per_s": 9.1e10, "n": 1024, ...}

MFU (model FLOPs utilisation) of a point is its achieved FLOP/s over this measured peak, not
over a datasheet number: it tells how close an architecture runs to what this machine can do.
"""
from __future__ import annotations

from typing import Any

import torch

from archbench.instruments import flags
from archbench.instruments.timing import measure
from archbench.stop_rule import StopRule

SIZES = {"cpu": 1024, "cuda": 8192}  # large enough to be compute-bound, small enough to be quick


def matmul_peak(device: str | torch.device, dtype: torch.dtype, threads: int, n: int | None = None) -> dict[str, Any]:
    """Measured FLOP/s of an n x n x n GEMM (2 n^3 FLOPs) on ``device`` in ``dtype``."""
    device = torch.device(device)
    n = n or SIZES.get(device.type, 1024)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    with flags.pinned(threads):
        m = measure(lambda: torch.mm(a, b, out=out), device,
                    StopRule(min_samples=5, min_time=0.1, max_time=1.0, target=0.02, warmup=0.05))
    return {"flops_per_s": 2 * n**3 / m.median, "n": n, "dtype": str(dtype).removeprefix("torch."),
            "device": str(device), "threads": threads, "median_s": m.median, "rel_ci": m.rel_ci}
