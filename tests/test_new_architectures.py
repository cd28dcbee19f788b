"""gru, rnn, local_attention, linear_attention and ssm: what the shared contract tests do not reach.

Recurrent forms equal to parallel ones, the local window's field and path length, FLOPs at shapes
other than the contract's.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import archbench
from archbench import registry, testing
from archbench.metrics.graph import trace_forward

VOCAB = testing.VOCAB


def build(kind, causal=True, **params):
    return testing.build(kind, causal, **params)


def tokens(batch, seq_len, seed=0):
    return torch.randint(VOCAB, (batch, seq_len), generator=torch.Generator().manual_seed(seed))


def test_lstm_gru_rnn_share_one_class_and_the_lstm_keeps_its_parameters():
    assert [p["name"] for p in registry.architectures.parameters("lstm")] == ["d_model", "layers"]
    for kind, cell, gates in (("lstm", torch.nn.LSTM, 4), ("gru", torch.nn.GRU, 3), ("rnn", torch.nn.RNN, 1)):
        model = build(kind, d_model=8, layers=1)
        assert isinstance(model.rnn, cell) and model.gates == gates
        # 2 FLOPs x gates x d x (d_in + d) per step, and the head
        assert model.flops(3, 5) == 3 * 5 * (2 * gates * 8 * 16) + 2 * 3 * 5 * 8 * VOCAB


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_gru_and_rnn_flops_match_the_flop_counter_at_other_shapes(kind, causal):
    # On the CPU nn.GRU and nn.RNN decompose into counted matrix products (nn.LSTM does not).
    model = build(kind, causal, d_model=12, layers=3)
    assert model.flops(3, 7) == testing.counted_flops(model, tokens(3, 7))


def dense_local_attention(attn, x):
    """The same attention with a full (T, T) banded mask: the O(n^2) reference."""
    B, T, D = x.shape
    q, k, v = attn.qkv(x).view(B, T, 3, attn.heads, D // attn.heads).permute(2, 0, 3, 1, 4)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None]
    band = (j >= i - attn.left) & (j <= i + attn.right)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=band)
    return attn.proj(y.transpose(1, 2).reshape(B, T, D))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [1, 2, 3, 8, 40])
@pytest.mark.parametrize("seq_len", [1, 7, 16, 29])
def test_blocked_local_attention_equals_the_dense_banded_mask(window, seq_len, causal):
    attn = build("local_attention", causal, window=window, d_model=16, heads=2, layers=1).blocks[0].attn
    x = torch.randn(2, seq_len, 16, generator=torch.Generator().manual_seed(window))
    with torch.no_grad():
        assert torch.allclose(attn(x), dense_local_attention(attn, x), atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window, layers, seq_len", [(1, 2, 9), (2, 3, 24), (3, 2, 24), (4, 3, 24), (5, 4, 12),
                                                     (8, 2, 40), (8, 5, 24)])
def test_local_attention_field_grows_by_window_minus_one_per_layer_cut_by_the_ends(window, layers, seq_len, causal):
    model = build("local_attention", causal, window=window, layers=layers, d_model=8, heads=2)
    assert testing.check_receptive_field(model, seq_len) == "ok"  # declared == gradient support
    left = (window - 1) if causal else (window - 1) // 2
    right = 0 if causal else window // 2
    t = model.probe_position(seq_len)
    assert model.receptive_field(seq_len) == min(t, layers * left) + 1 + min(seq_len - 1 - t, layers * right)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window, seq_len", [(1, 5), (3, 24), (8, 8), (8, 61), (16, 9)])
def test_local_attention_flops_match_the_flop_counter(window, seq_len, causal):
    model = build("local_attention", causal, window=window, d_model=16, heads=4, layers=2)
    assert model.flops(3, seq_len) == testing.counted_flops(model, tokens(3, seq_len))


def test_local_attention_work_is_linear_in_length_for_a_fixed_window():
    model = build("local_attention", window=16, d_model=32, heads=4, layers=1)
    dense = build("transformer", d_model=32, heads=4, layers=1)
    local = [model.flops(1, n) for n in (1024, 2048, 4096)]
    assert local[2] / local[1] == pytest.approx(2.0) and local[1] / local[0] == pytest.approx(2.0)
    assert dense.flops(1, 4096) > 10 * model.flops(1, 4096)


@pytest.mark.parametrize("kind", ["linear_attention", "ssm"])
@pytest.mark.parametrize("causal", [True, False])
def test_the_recurrent_form_equals_the_parallel_one(kind, causal):
    model = build(kind, causal, d_model=16, layers=2)
    x = tokens(2, 37)
    with torch.no_grad():
        parallel, recurrent = model(x), model.recurrent(x)
    assert torch.allclose(parallel, recurrent, atol=1e-5)
    assert model.blocks[0].attn.recurrent is False if kind == "linear_attention" else not model.blocks[0].recurrent


def test_linear_attention_is_attention_with_the_elu_kernel():
    # phi(q_i)^T sum_j phi(k_j) v_j^T / phi(q_i)^T sum_j phi(k_j): attention weights phi(q)phi(k)^T, normalised.
    attn = build("linear_attention", True, d_model=8, heads=1, layers=1).blocks[0].attn
    q, k, v = (torch.randn(1, 1, 6, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    q, k = F.elu(q) + 1, F.elu(k) + 1
    weights = (q @ k.transpose(-1, -2)).tril()
    expected = (weights / weights.sum(-1, keepdim=True)) @ v
    assert torch.allclose(attn.parallel(q, k, v), expected, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_ssm_fft_and_direct_convolutions_agree(causal):
    fft = build("ssm", causal, d_model=16, state=8)
    direct = build("ssm", causal, d_model=16, state=8, convolution="direct")
    x = tokens(2, 50)
    with torch.no_grad():
        assert torch.allclose(fft(x), direct(x), atol=1e-5)


def test_ssm_direct_convolution_is_causal_bit_for_bit_and_the_fft_within_its_tolerance():
    model = build("ssm", True, d_model=16, convolution="direct")
    model.causal_tolerance = 0.0  # this instance is held to torch.equal
    assert testing.check_causality(model, seq_len=40) == "ok"
    assert testing.check_causality(build("ssm", True, d_model=16), seq_len=40) == "ok"


def test_ssm_kernel_is_the_impulse_response_of_the_recurrence():
    layer = build("ssm", True, d_model=4, state=8, layers=1).blocks[0].ssm
    impulse = torch.zeros(1, 4, 20)
    impulse[..., 0] = 1.0
    with torch.no_grad():
        response = layer.steps(impulse) - layer.D[:, None] * impulse
        assert torch.allclose(response[0], layer.kernel(20)[0], atol=1e-6)
    A = torch.complex(-torch.exp(layer.log_neg_re_a), layer.im_a)
    assert torch.allclose(A[0], torch.complex(torch.full((8,), -0.5), math.pi * torch.arange(8.0)))  # S4D-Lin


@pytest.mark.parametrize("convolution", ["fft", "direct"])
@pytest.mark.parametrize("causal", [True, False])
def test_ssm_flops_match_the_flop_counter_but_for_the_ffts(causal, convolution):
    model = build("ssm", causal, d_model=8, state=4, layers=3, convolution=convolution)
    counted = testing.counted_flops(model, tokens(3, 33))
    assert counted == model.flops(3, 33) - model.uncounted_flops(3, 33)
    assert (model.uncounted_flops(3, 33) > 0) == (convolution == "fft")


class FFTCount(TorchDispatchMode):
    """FLOPs of the FFTs and of the products of spectra that a forward runs, counted from the aten calls.

    The convention the model states (ssm.fft_flops) and the usual one: a complex FFT of m points costs
    5 m log2 m, a real one (rfft, irfft) half of that, 2.5 m log2 m per transform of m points; a product
    of two complex numbers 6 (4 multiplications, 2 additions). What FlopCounterMode counts (the matrix
    products) is not seen here, and nothing here is read from the model's own count.
    """

    def __init__(self):
        super().__init__()
        self.fft = 0.0
        self.products = 0
        self.spectra = []  # outputs of rfft (kept alive, so that `is` below is sound)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten._fft_r2c.default:  # (input, dims, normalization, onesided)
            x, dims = args[0], args[1]
            m = math.prod(x.shape[d] for d in dims)
            self.fft += x.numel() // m * 2.5 * m * math.log2(m)
            self.spectra.append(out)
        elif func is torch.ops.aten._fft_c2r.default:  # (input, dims, normalization, last_dim_size)
            m = args[3]
            self.fft += out.numel() // m * 2.5 * m * math.log2(m)
        elif func is torch.ops.aten.mul.Tensor and all(any(a is s for s in self.spectra) for a in args[:2]):
            self.products += 6 * out.numel()
        return out


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("batch, seq_len", [(1, 1), (3, 7), (2, 33), (1, 64), (4, 100)])
def test_ssm_flops_are_the_counted_matmuls_plus_an_independent_count_of_the_ffts(causal, batch, seq_len):
    layers = 2
    model = build("ssm", causal, d_model=8, state=4, layers=layers)
    x = tokens(batch, seq_len)
    matmuls = testing.counted_flops(model, x)  # FlopCounterMode: the matrix products, not the FFTs
    with torch.no_grad(), FFTCount() as count:
        model(x)
    # what the forward does (zero-padded to 2n, rfft of the input and of the kernel, their product, irfft),
    # per layer and direction, as the aten calls showed it
    m, directions = 2 * seq_len, 1 if causal else 2
    transforms = layers * directions * (2 * batch * 8 + 8)  # rfft and irfft of each (batch, channel), rfft of K
    assert count.fft == pytest.approx(transforms * 2.5 * m * math.log2(m))
    assert count.products == layers * directions * 6 * batch * 8 * (seq_len + 1)  # n + 1 bins of a 2n rfft
    # the model rounds each convolution's estimate to an integer: at most 1/2 per layer and direction
    assert model.uncounted_flops(batch, seq_len) == pytest.approx(count.fft + count.products,
                                                                  abs=0.5 * layers * directions)
    assert model.flops(batch, seq_len) == pytest.approx(matmuls + count.fft + count.products,
                                                        abs=0.5 * layers * directions)


@pytest.mark.parametrize("kind, params, grows", [
    ("gru", {"layers": 1}, True), ("rnn", {"layers": 1}, True), ("ssm", {"layers": 1}, False),
    ("linear_attention", {"layers": 1, "heads": 2}, False), ("local_attention", {"layers": 1, "heads": 2, "window": 4}, False),
])
def test_graph_depth_grows_with_length_only_for_the_recurrences(kind, params, grows):
    model = archbench.build_architecture(kind, vocab_size=16, causal=True, d_model=8, **params)
    n = [8, 16, 32]
    depth = [trace_forward(model, torch.randint(16, (1, m))).depth for m in n]
    if grows:
        assert np.polyfit(np.log(n), np.log(depth), 1)[0] == pytest.approx(1.0, abs=0.1)
    else:
        assert len(set(depth)) == 1


def test_max_path_length_of_local_attention_is_n_over_r(tmp_path):
    from archbench.execute.group import Settings, _context
    from archbench.metrics.graph import PathLength
    from archbench.suite.plan import expand

    suite = tmp_path / "p.yaml"
    suite.write_text("name: p\ndevice: cpu\nexperiments:\n  - name: p\n    architectures: [{kind: local_attention,"
                     " window: 4, heads: 2}, {kind: ssm}, {kind: linear_attention, heads: 2}, gru]\n"
                     "    causal: [true, false]\n    metrics: [path_length]\n"
                     "    sweep: {seq_len: [16, 64], batch: 1, d_model: 8}\n")
    got = {(p.arch, p.causal, p.seq_len): PathLength().run(_context(p, Settings()))[0].value
           for p in expand(archbench.load_suite(suite), device="cpu")}
    for n in (16, 64):
        assert got["local_attention", True, n] == math.ceil((n - 1) / 3)        # r - 1 = 3 positions a layer
        assert got["local_attention", False, n] == n // 2                       # one position left a layer
        for causal in (True, False):
            assert got["ssm", causal, n] == got["linear_attention", causal, n] == 1
            assert got["gru", causal, n] == n - 1


@pytest.mark.parametrize("causal", [True, False])
def test_attention_entropy_of_the_local_and_linear_weights(causal):
    # A window of one is one-hot (entropy 0); windows of r keys and the linear kernel's weights lie
    # between 0 and ln(keys).
    x = tokens(2, 20)
    assert build("local_attention", causal, window=1, d_model=8, heads=2).attention_entropy(x) == pytest.approx(0, abs=1e-6)
    local = build("local_attention", causal, window=4, d_model=8, heads=2).attention_entropy(x)
    linear = build("linear_attention", causal, d_model=8, heads=2).attention_entropy(x)
    assert 0.1 < local <= math.log(4) + 1e-6 and 0.1 < linear <= math.log(20) + 1e-6


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window, seq_len", [(8, 9), (8, 1), (5, 23)])
def test_local_attention_masks_no_row_whole_and_trains_to_finite_gradients(window, seq_len, causal):
    # A padding query whose window lies past the sequence end would be an all-masked row: NaN in a fused kernel.
    model = build("local_attention", causal, window=window, d_model=8, heads=2).train()
    attn = model.blocks[0].attn
    assert attn.mask(seq_len, -(-seq_len // window), torch.device("cpu")).any(-1).all()
    model(tokens(2, seq_len)).sum().backward()  # the default (fused where available) kernel
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("kind", ["gru", "rnn", "local_attention", "linear_attention", "ssm"])
def test_bfloat16_runs_and_keeps_its_dtype(kind):
    # The SSM computes its complex kernel and FFT in float32 (complex half precision is barely supported).
    model = build(kind, False, d_model=16).to(torch.bfloat16)
    out = model(tokens(2, 40))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    reference = build(kind, False, d_model=16)(tokens(2, 40))
    assert (out.float() - reference).abs().max() <= 0.1 * reference.abs().max()  # bfloat16: 3 digits, rounded weights


def test_linear_attention_takes_the_transformer_parameters_but_refuses_a_softmax_scale():
    names = [p["name"] for p in registry.architectures.parameters("linear_attention")]
    assert names == [p["name"] for p in registry.architectures.parameters("transformer")]
    with pytest.raises(archbench.BadInput, match="attention_scale 'none' does not apply"):
        archbench.build_architecture("linear_attention", vocab_size=5, attention_scale="none")
    with pytest.raises(archbench.BadInput, match="divisible"):
        archbench.build_architecture("linear_attention", vocab_size=5, d_model=30, heads=4)
