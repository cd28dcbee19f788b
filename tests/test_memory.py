"""peak_memory on CPU, checked against allocations of known size."""
import pytest
import torch

import archbench
from archbench.instruments.passes import PASSES
from archbench.metrics.memory import peak_bytes
from archbench.tasks.uniform import Uniform

MB = 2**20


def test_peak_of_known_allocations():
    held = torch.ones(4 * MB, dtype=torch.uint8)  # resident before: not counted

    def fn():
        a = torch.ones(16 * MB, dtype=torch.uint8)
        b = torch.ones(8 * MB, dtype=torch.uint8)  # peak: a + b = 24 MB
        del a
        c = torch.ones(4 * MB, dtype=torch.uint8)
        return b[0] + c[0] + held[0]  # (summing a uint8 tensor would copy it to int64: 8x bigger)

    assert peak_bytes(fn) == pytest.approx(24 * MB, rel=0.10)


def test_frees_of_blocks_from_the_previous_call_are_counted():
    state = {"grad": torch.ones(8 * MB, dtype=torch.uint8)}

    def step():  # like a training step: drop the old gradient, make a new one
        state["grad"] = None
        state["grad"] = torch.ones(8 * MB, dtype=torch.uint8)

    assert peak_bytes(step) == pytest.approx(0, abs=0.1 * MB)  # swapped in place, never 16 MB


@pytest.mark.parametrize("pass_", [p for p in PASSES if p not in ("encode", "decode")])  # one sequence
def test_pass_memory_grows_with_sequence_length(pass_):
    model = archbench.build_architecture("tcn", vocab_size=16, d_model=32, levels=2)
    peaks = []
    for n in (64, 256):
        batch = Uniform(seq_len=n, vocab_size=16).sample(4, torch.Generator().manual_seed(0))
        fn = PASSES[pass_](model, batch)
        fn()
        peaks.append(peak_bytes(fn))
    assert peaks[0] > 0
    assert 3.0 < peaks[1] / peaks[0] < 5.0  # activations are linear in n for a TCN


@pytest.mark.parametrize("pass_", ["encode", "decode"])
def test_encoder_and_decoder_pass_memory_grows_with_sequence_length(pass_):
    from archbench.tasks import build_task

    model = archbench.build_architecture("tcn_attention_seq2seq", vocab_size=16, d_model=32, levels=2)
    peaks = []
    for n in (64, 256):
        batch = build_task("reverse", n, framing="encoder_decoder").sample(4, torch.Generator().manual_seed(0))
        fn = PASSES[pass_](model, batch)
        fn()
        peaks.append(peak_bytes(fn))
    assert peaks[0] > 0 and peaks[1] / peaks[0] > 3.0  # the TCN's activations linear in n, attention at least


def _operators_recorded() -> bool:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        torch.ones(3) + 1
    return any(e.name() == "aten::add" for e in prof.profiler.kineto_results.events())


def test_the_profiler_records_operators_again_afterwards_even_after_a_failure():
    # peak_bytes turns the operators' events off while it profiles (only the allocations are read)
    assert peak_bytes(lambda: torch.ones(MB, dtype=torch.uint8)) == pytest.approx(MB, rel=0.01)
    assert _operators_recorded()

    def fails():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        peak_bytes(fails)
    assert _operators_recorded()
