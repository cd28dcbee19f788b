"""Process-wide settings that change a timing, pinned for a measurement and restored after it.

    with pinned(threads=1):          # TF32 off, cudnn.benchmark off unless asked
        measure(...)

``snapshot()`` records the current values for meta.json and for each row.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def snapshot() -> dict[str, object]:
    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


@contextlib.contextmanager
def pinned(threads: int, tf32: bool = False, cudnn_benchmark: bool = False) -> Iterator[None]:
    """Set torch's CPU threads, TF32 and cudnn.benchmark; put back whatever was there before."""
    before = (
        torch.get_num_threads(),
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.backends.cuda.matmul.allow_tf32 = before[1]
        torch.backends.cudnn.allow_tf32 = before[2]
        torch.backends.cudnn.benchmark = before[3]


def pinned_snapshot(threads: int, tf32: bool = False, cudnn_benchmark: bool = False) -> dict[str, object]:
    """The settings a measurement runs under (what ``pinned`` sets, read back)."""
    with pinned(threads, tf32, cudnn_benchmark):
        return {**snapshot(), "autocast": False}
