"""Positional encodings (archbench.architectures.positions) against independent formulas, and inside the
attention families."""
from __future__ import annotations

import math

import pytest
import torch

from archbench.architectures.base import build_architecture
from archbench.architectures.local_attention import LocalSelfAttention
from archbench.architectures.positions import alibi_bias, alibi_slopes, random_positions, relative, rope
from archbench.architectures.transformer import SelfAttention


def test_rope_is_a_complex_product():
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.arange(7, dtype=torch.float64) * 1.5
    theta = 10000.0 ** (-torch.arange(4, dtype=torch.float64) / 4)        # base^(-2i / Dh), i = 0 .. Dh/2 - 1
    z = torch.view_as_complex(x.reshape(2, 3, 7, 4, 2).contiguous())
    want = torch.view_as_real(z * torch.exp(1j * t[:, None] * theta[None, :])).reshape(2, 3, 7, 8)
    # rope's angles are float32 (the models' dtype): 1.5e-7 apart at most over 300 draws. An absolute
    # tolerance of 1e-12 had passed only through allclose's relative one, and failed on a draw near 0.
    assert torch.allclose(rope(x, t), want, rtol=0.0, atol=1e-6)


def test_rope_scores_depend_on_the_offset_only():
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    def score(i, j):
        return float(rope(q, torch.tensor([float(i)])) @ rope(k, torch.tensor([float(j)])).transpose(-1, -2))
    assert score(5, 2) == pytest.approx(score(43, 40), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-4)


@pytest.mark.parametrize("heads,want", [(4, [2**-2, 2**-4, 2**-6, 2**-8]), (8, [2**-(h + 1) for h in range(8)]),
                                        (6, [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3])])
def test_alibi_slopes_are_press_et_als(heads, want):
    assert alibi_slopes(heads).tolist() == pytest.approx(want)


def test_alibi_bias_closed_form():
    H, T = 4, 6
    m = [2 ** (-8 * (h + 1) / H) for h in range(H)]
    causal = alibi_bias(H, torch.arange(T), torch.arange(T), True)
    both = alibi_bias(H, torch.arange(T), torch.arange(T), False)
    for h in range(H):
        for i in range(T):
            for j in range(T):
                assert causal[h, i, j] == (-m[h] * (i - j) if j <= i else -math.inf)
                assert both[h, i, j] == pytest.approx(-m[h] * abs(i - j) + (0.5 * m[h] if j < i else 0.0))


@pytest.mark.parametrize("kind", ["rope", "alibi"])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_with_relative_positions_is_the_formula(kind, causal):
    torch.manual_seed(0)
    attn = SelfAttention(16, 2, causal).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    T = 9
    q, k, v = attn.qkv(x).view(2, T, 3, 2, 8).permute(2, 0, 3, 1, 4)
    t = torch.arange(T, dtype=torch.float64)
    scores = (rope(q, t) @ rope(k, t).transpose(-1, -2) if kind == "rope" else q @ k.transpose(-1, -2)) / math.sqrt(8)
    if kind == "alibi":
        m = alibi_slopes(2).double()[:, None, None]
        offset = t[:, None] - t[None, :]
        scores = scores - m * offset.abs() + (0 if causal else 0.5 * m * (offset > 0))
    if causal:
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -math.inf)
    want = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, T, 16))
    got = attn(x, where=relative(kind, T, x.device))
    assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("kind", ["rope", "alibi"])
@pytest.mark.parametrize("causal", [True, False])
def test_local_attention_over_the_whole_sequence_is_full_attention(kind, causal):
    torch.manual_seed(1)
    T = 7
    full = SelfAttention(16, 2, causal).double()
    local = LocalSelfAttention(16, 2, causal, window=2 * T + 1).double()  # every key within reach
    local.load_state_dict(full.state_dict())
    x = torch.randn(3, T, 16, dtype=torch.float64)
    where = relative(kind, T, x.device)
    assert torch.allclose(local(x, where=where), full(x, where=where), atol=1e-10)


def test_local_alibi_window_keeps_its_bias():
    """A narrow window: each query's weights are softmax over its window's keys of score + ALiBi bias."""
    torch.manual_seed(2)
    T, r = 10, 3
    local = LocalSelfAttention(8, 1, True, window=r).double()
    x = torch.randn(1, T, 8, dtype=torch.float64)
    q, k, v = local.qkv(x).view(1, T, 3, 1, 8).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(8) - alibi_slopes(1).item() * (torch.arange(T)[:, None] - torch.arange(T))
    inside = (torch.arange(T)[:, None] - torch.arange(T) >= 0) & (torch.arange(T)[:, None] - torch.arange(T) < r)
    want = local.proj((scores.masked_fill(~inside, -math.inf).softmax(-1) @ v).transpose(1, 2).reshape(1, T, 8))
    assert torch.allclose(local(x, where=relative("alibi", T, x.device)), want, atol=1e-10)


def test_linear_attention_rope_parallel_is_recurrent():
    torch.manual_seed(3)
    model = build_architecture("linear_attention", vocab_size=7, causal=True, d_model=16, heads=2, positional="rope")
    x = torch.randint(7, (2, 11))
    assert torch.allclose(model(x), model.recurrent(x), atol=1e-5)


def test_randomized_positions_are_a_sorted_subset():
    g = torch.Generator().manual_seed(0)
    t = random_positions(20, 100, g, torch.device("cpu"))
    assert t.shape == (20,) and (t[1:] > t[:-1]).all() and t.min() >= 0 and t.max() < 100
    assert not torch.equal(t, random_positions(20, 100, g, torch.device("cpu")))  # fresh at every draw
    with pytest.raises(ValueError, match="exceeds the range"):
        random_positions(101, 100, g, torch.device("cpu"))


def test_randomized_model_draws_from_its_own_generator():
    torch.manual_seed(4)
    a = build_architecture("transformer", vocab_size=5, d_model=16, positional="randomized", max_len=64)
    torch.manual_seed(4)
    b = build_architecture("transformer", vocab_size=5, d_model=16, positional="randomized", max_len=64)
    x = torch.randint(5, (2, 12))
    state = torch.random.get_rng_state()
    first = a(x)
    assert torch.equal(state, torch.random.get_rng_state())       # torch's own RNG untouched
    assert torch.equal(first, b(x)) and not torch.equal(first, a(x))  # same seed, same draws; a new draw each call


@pytest.mark.parametrize("arch", ["transformer", "local_attention", "linear_attention"])
@pytest.mark.parametrize("kind", ["none", "rope", "alibi", "randomized", "learned"])
def test_every_encoding_reads_longer_inputs(arch, kind):
    if arch == "linear_attention" and kind == "alibi":
        with pytest.raises(Exception, match="linear attention has none"):
            build_architecture(arch, vocab_size=5, positional=kind)
        return
    model = build_architecture(arch, vocab_size=5, d_model=16, heads=2, positional=kind, max_len=256)
    for T in (5, 40, 130):
        out = model(torch.randint(5, (2, T)))
        assert out.shape == (2, T, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["rope", "alibi"])
def test_transformer_decodes_with_relative_positions(kind):
    from archbench.testing import decoding_difference
    torch.manual_seed(5)
    model = build_architecture("transformer", vocab_size=9, d_model=16, heads=2, positional=kind)
    assert decoding_difference(model, batch=2, seq_len=12, prompt=5) < 1e-4
