"""Receptive field: closed form == exact gradient support, for every TCN as built; the ERF of Luo et al."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import archbench
from archbench.instruments.timing import StopRule
from archbench.metrics.base import Context
from archbench.metrics.receptive_field import (
    LayersToCover,
    ReceptiveField,
    depends,
    erf_width,
    gradient_mass,
    layers_needed,
    support_span,
)
from archbench.suite.point import Point

VOCAB = 8


def model(kind, causal=True, **params):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return archbench.build_architecture(kind, vocab_size=VOCAB, causal=causal, **params)


def empirical(m, seq_len, probes=4):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(VOCAB, (probes, seq_len), generator=g)
    return support_span(gradient_mass(m, tokens, m.probe_position(seq_len), g))


@settings(max_examples=150, deadline=None)
@given(
    k=st.integers(2, 7), levels=st.integers(1, 8), base=st.integers(1, 3), causal=st.booleans(),
    clip=st.sampled_from([None, 0.5]),
)
def test_tcn_gradient_support_equals_the_closed_form(k, levels, base, causal, clip):
    m = model("tcn", causal, kernel_size=k, levels=levels, dilation_base=base, d_model=16)
    left, right = m.reach()
    span = left + right + 1
    # room for the whole field around the probed output, or (clip) a sequence that cuts it
    seq_len = 2 * span + 2 if clip is None else max(2, int(span * clip))
    assert empirical(m, seq_len) == m.receptive_field(seq_len)
    if clip is None:
        assert m.receptive_field(seq_len) == (1 + 2 * (k - 1) * (levels if base == 1 else (base**levels - 1) // (base - 1)))


def test_a_field_cut_by_the_sequence_end_follows_the_taps():
    # k=2 centred taps are lopsided: output 1 of 3 cannot reach input 0 (the path would leave the
    # sequence), though 0 lies within the unclipped field's reach. Theory and measurement agree.
    m = model("tcn", False, kernel_size=2, levels=2, dilation_base=2, d_model=16)
    assert m.reach() == (2, 4)
    assert m.receptive_field(3) == empirical(m, 3) == 2


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
@pytest.mark.parametrize("causal", [True, False])
def test_recurrence_and_attention_see_the_whole_prefix_or_sequence(kind, causal):
    seq_len = 200  # the LSTM's gradient at lag 199 is ~1e-60: float64 keeps it, float32 would not
    m = model(kind, causal, d_model=16)
    g = torch.Generator().manual_seed(0)
    t = m.probe_position(seq_len)
    mass = gradient_mass(m, torch.randint(VOCAB, (2, seq_len), generator=g), t, g)
    seen = (mass > 0).any(0)
    if causal:
        assert seen[: t + 1].all() and not seen[t + 1:].any()
        assert support_span(mass) == t + 1 == m.receptive_field(seq_len)
    else:
        assert seen.all() and support_span(mass) == seq_len == m.receptive_field(seq_len)


def test_erf_width_on_a_known_profile():
    p = torch.tensor([0.0, 1, 5, 1, 0, 0, 3])  # total 10, probed at t = 2
    assert erf_width(p, 2, 0.5) == 1   # [2]
    assert erf_width(p, 2, 0.6) == 2   # [1, 2] or [2, 3]
    assert erf_width(p, 2, 0.7) == 3   # [1, 3]
    assert erf_width(p, 2, 0.99) == 6  # must reach the 3 at position 6: [1, 6]
    causal = torch.tensor([1.0, 1, 1, 7])
    assert erf_width(causal, 3, 0.7) == 1 and erf_width(causal, 3, 0.9) == 3


def point(kind, seq_len, metrics, causal=True, **params):
    full = archbench.registry.architectures.validate(kind, params)
    return Point("e", kind, kind, tuple(sorted(full.items())), "uniform", (("vocab_size", VOCAB),),
                 tuple(metrics), seq_len, 1, "forward", 0, causal, "cpu", "float32", 1)


def run(metric, p):
    m = model(p.arch_kind, p.causal, **p.params)
    return {r.metric: r for r in metric.run(Context(p, m, None, None, torch.device("cpu"), StopRule()))}


def test_the_tcn_effective_field_is_smaller_than_its_theoretical_field():
    # Luo et al. (2016): at initialisation the gradient mass concentrates near the centre.
    rows = run(ReceptiveField(), point("tcn", 256, ["receptive_field"], levels=5, kernel_size=3, d_model=32))
    assert rows["rf_empirical"].value == rows["rf_theoretical"].value == 1 + 2 * 2 * 31
    assert rows["erf_50"].value <= rows["erf_90"].value <= rows["erf_99"].value <= rows["rf_empirical"].value
    assert rows["erf_90"].value < rows["rf_theoretical"].value
    art = rows["rf_empirical"].artifacts
    assert len(art["gradient_profile"]) == 256 and art["probe_position"] == 255
    assert art["gradient_profile"][0] > 0 and art["gradient_profile"][125] == 0  # lag 125 is beyond the field
    heat = torch.tensor(art["heatmap"])
    assert heat.shape == (32, 32) and (heat.triu(1) == 0).all()  # causal: nothing above the diagonal


def test_layers_needed_search():
    assert layers_needed(lambda L: L >= 1) == 1
    assert layers_needed(lambda L: L >= 37) == 37
    assert layers_needed(lambda L: L >= 1024) == 1024
    assert layers_needed(lambda L: False, limit=64) is None


@pytest.mark.parametrize("answer", [1, 2, 37, 64, 200])
@pytest.mark.parametrize("hint", [None, 1, 36, 37, 38, 64, 300])
def test_layers_needed_with_a_hint_finds_what_the_search_finds(answer, hint):
    asked: list[int] = []

    def covers(L):
        asked.append(L)
        return L >= answer

    found = layers_needed(covers, limit=256, hint=hint)
    assert found == layers_needed(lambda L: L >= answer, limit=256) == answer
    if hint == answer:  # a right hint: itself and the one below it, nothing else
        assert asked == ([1] if answer == 1 else [answer, answer - 1])


def test_forward_mode_dependence_sees_what_rounding_would_hide():
    m = model("lstm", d_model=16)
    tokens = torch.randint(VOCAB, (2, 300), generator=torch.Generator().manual_seed(0))
    assert depends(m, tokens, 0, 299) and not depends(m, tokens, 299, 298)


@pytest.mark.parametrize("n", [16, 64, 200])
def test_layers_to_cover_plain_grows_linearly_dilated_logarithmically(n):
    k = 3
    plain = run(LayersToCover(), point("tcn", n, ["layers_to_cover"], kernel_size=k, dilation_base=1, d_model=16))
    dilated = run(LayersToCover(), point("tcn", n, ["layers_to_cover"], kernel_size=k, dilation_base=2, d_model=16))
    assert plain["layers_to_cover"].value == plain["layers_to_cover_theory"].value == math.ceil((n - 1) / (2 * (k - 1)))
    # 1 + 2 (k-1)(2^L - 1) >= n  <=>  L >= log2((n - 1) / (2 (k-1)) + 1)
    assert dilated["layers_to_cover"].value == dilated["layers_to_cover_theory"].value == math.ceil(math.log2((n - 1) / 4 + 1))
    attention = run(LayersToCover(), point("transformer", n, ["layers_to_cover"], d_model=16))
    assert attention["layers_to_cover"].value == 1
