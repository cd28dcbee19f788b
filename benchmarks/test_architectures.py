"""Each architecture's forward pass and training step at two lengths, through the harness's own passes.

    python -m pytest benchmarks -n 0 --benchmark-only --benchmark-autosave          # save a baseline
    python -m pytest benchmarks -n 0 --benchmark-only --benchmark-compare --benchmark-compare-fail=median:25%

Warm-up on (pytest-benchmark's own, before the rounds count), the garbage collector off and one torch
thread (benchmarks/conftest.py), so the numbers are comparable with a run of suites/quick.yaml.
"""
import pytest
import torch

import archbench
from archbench.instruments.passes import PASSES
from archbench.tasks.base import Batch

ARCHITECTURES = {
    "lstm": {"layers": 2},
    "tcn": {"kernel_size": 3, "levels": 4, "dilation_base": 2},
    "transformer": {"heads": 4, "layers": 2},
}
LENGTHS = (64, 256)
BATCH, D_MODEL, VOCAB = 4, 32, 32


def _batch(seq_len: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(VOCAB, (BATCH, seq_len), generator=g)
    targets = torch.randint(VOCAB, (BATCH, seq_len), generator=g)
    return Batch(tokens, targets, torch.ones(BATCH, seq_len, dtype=torch.bool))


@pytest.mark.parametrize("seq_len", LENGTHS)
@pytest.mark.parametrize("kind", sorted(ARCHITECTURES))
@pytest.mark.parametrize("pass_", ["forward", "train_step"])
def test_pass(benchmark, kind, seq_len, pass_):
    torch.manual_seed(0)  # the weights; a benchmark is its own process-wide scope here
    model = archbench.build_architecture(kind, vocab_size=VOCAB, causal=True, d_model=D_MODEL, **ARCHITECTURES[kind])
    batch = _batch(seq_len)
    run = PASSES[pass_](model, batch)
    benchmark.group = f"{pass_} n={seq_len}"
    benchmark.extra_info.update(kind=kind, seq_len=seq_len, batch=BATCH, d_model=D_MODEL, **ARCHITECTURES[kind])
    benchmark.pedantic(run, rounds=20, iterations=1, warmup_rounds=3)
    if pass_ == "forward":
        out = model.eval()(batch.inputs)
        assert out.shape == (BATCH, seq_len, VOCAB)
