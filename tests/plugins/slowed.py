"""Test-only architectures that do a known share more work, for ``benchmarks/calibrate_gate.py``:
the gate's smallest *real* slowdown caught, not a simulated one.

    ARCHBENCH_EXTRA_WORK=0.05 archbench run benchmarks/calibrate_gate.yaml     # each call ~5 % more work

``slowed_lstm``, ``slowed_tcn`` and ``slowed_transformer`` are the built-ins with one change: when
``ARCHBENCH_EXTRA_WORK`` is f > 0, ``forward`` also runs the model on the first ``round(f * T)``
positions and adds 0 times the result, so the same kernels do about f more work in the forward and
(through the zero) in the backward. It is read from the environment, like a change of the code,
so that the points keep their ids and ``archbench compare`` matches them with an unchanged run.
The real extra work is measured, not assumed: the instruction counts give it per point. It is
more than f, often much more: the second call has the fixed costs of a whole forward (and backward),
which at the CI suite's small sizes (d_model 32, batch 4) are most of a call. At f = 0.02 the counts
rose 4.7 % (transformer, n=256, train_step) to 67 % (tcn, n=64, forward); see docs/instructions.md.

``ARCHBENCH_EXTRA_WORK=@PATH`` reads f from the file PATH at each forward (empty: 0), so that one
process (a Callgrind process that took a minute to import torch) counts runs of different f, the file
rewritten between them (tests/test_gate_threshold.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from archbench.architectures.lstm import LSTM
from archbench.architectures.tcn import TCN
from archbench.architectures.transformer import Transformer
from archbench.registry import register_architecture

ENV = "ARCHBENCH_EXTRA_WORK"


def extra_positions(seq_len: int) -> int:
    """How many leading positions run a second time: round(f x seq_len), f from ARCHBENCH_EXTRA_WORK
    (or from the file it names after an @)."""
    text = os.environ.get(ENV, "")
    f = float((Path(text[1:]).read_text() if text.startswith("@") else text).strip() or 0)
    return max(1, round(f * seq_len)) if f > 0 else 0


def _slowed(base: type) -> type:
    class Slowed(base):  # type: ignore[valid-type, misc]
        __doc__ = f"{base.__name__} doing round(f x T) positions again (f = ${ENV})."

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
            out = super().forward(x)
            m = extra_positions(x.shape[1])
            if m:
                out = out + 0.0 * super().forward(x[:, :m]).sum()  # the prefix's work, in the graph
            return out

    Slowed.__name__ = Slowed.__qualname__ = f"Slowed{base.__name__}"
    return Slowed


SlowedLSTM = register_architecture("slowed_lstm")(_slowed(LSTM))
SlowedTCN = register_architecture("slowed_tcn")(_slowed(TCN))
SlowedTransformer = register_architecture("slowed_transformer")(_slowed(Transformer))
