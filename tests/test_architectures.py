"""The architecture contract, run over every registered architecture (plugins included).

The shared checks live in archbench.testing, where plugin authors use them too.
"""
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import archbench
from archbench import registry, testing

VOCAB, B, T = testing.VOCAB, testing.BATCH, testing.SEQ_LEN
KINDS = [k for k in registry.architectures.names() if not testing.is_encoder_decoder(k)]  # seq2seq: tests/test_seq2seq.py


def build(kind, causal, **params):
    return testing.build(kind, causal, **params)


def tokens(seed=0):
    return torch.randint(VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("check", sorted(testing.CHECKS))
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_contract(kind, causal, check):
    # shape, causality (bit for bit), receptive field == gradient support, flops == FlopCounterMode
    assert testing.CHECKS[check](build(kind, causal)) in ("ok", "not countable")


@pytest.mark.parametrize("kind", KINDS)
def test_receptive_field_and_flops_are_positive_and_bounded(kind):
    model = build(kind, causal=True)
    assert 1 <= model.receptive_field(T) <= T
    assert model.flops(B, T) > 0


def closed_form_parameters(kind, V, d, depth, k=3):
    """Parameters counted from the layer shapes on paper: embedding V d, head d V + V, and per layer/level."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}
    if kind in gates:  # W_ih, W_hh (g d x d each) and two biases (g d each)
        per = 2 * gates[kind] * d * d + 2 * gates[kind] * d
    elif kind == "tcn":  # two convolutions of k taps d -> d, with biases
        per = 2 * (k * d * d + d)
    else:  # transformer: two LayerNorms, qkv (3 d x d), proj, MLP d -> 4d -> d, all with biases
        per = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    final_norm = 2 * d if kind == "transformer" else 0
    return V * d + depth * per + final_norm + d * V + V


@pytest.mark.parametrize("d, depth", [(8, 1), (16, 3)])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn", "tcn", "transformer"])
def test_num_parameters_match_the_closed_form(kind, d, depth):
    key = {"tcn": "levels"}.get(kind, "layers")
    extra = {"heads": 2} if kind == "transformer" else {}
    model = build(kind, True, d_model=d, **{key: depth}, **extra)
    assert model.num_parameters() == closed_form_parameters(kind, VOCAB, d, depth)


def counted(model, x):
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dilation_base", [1, 2])
def test_tcn_flops_match_the_flop_counter(causal, dilation_base):
    model = build("tcn", causal, kernel_size=3, levels=3, dilation_base=dilation_base, d_model=16)
    assert model.flops(B, T) == counted(model, tokens())


@pytest.mark.parametrize("causal", [True, False])
def test_transformer_flops_match_the_flop_counter_on_unfused_attention(causal):
    # The fused CPU kernel counts 0 in FlopCounterMode; the math kernel is counted matmul by matmul.
    model = build("transformer", causal, d_model=32, heads=4, layers=2)
    with sdpa_kernel(SDPBackend.MATH):
        assert model.flops(B, T) == counted(model, tokens())


def lstm_by_cells(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The same LSTM, unrolled step by step with LSTMCell (which FlopCounterMode does count)."""
    rnn, h = model.rnn, model.embed(x)
    for layer in range(rnn.num_layers):
        outs = []
        for direction in range(model.directions):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            cell = torch.nn.LSTMCell(rnn.input_size if layer == 0 else rnn.hidden_size * model.directions, rnn.hidden_size)
            cell.weight_ih.data, cell.weight_hh.data = getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)
            cell.bias_ih.data, cell.bias_hh.data = getattr(rnn, "bias_ih" + sfx), getattr(rnn, "bias_hh" + sfx)
            state, steps = None, range(h.shape[1])
            seq = [None] * h.shape[1]
            for t in (reversed(steps) if direction else steps):
                state = cell(h[:, t], state)
                seq[t] = state[0]
            outs.append(torch.stack(seq, dim=1))
        h = torch.cat(outs, dim=-1)
    return model.head(h)


@pytest.mark.parametrize("causal", [True, False])
def test_lstm_flops_match_an_unrolled_cell_loop(causal):
    # nn.LSTM counts 0 in FlopCounterMode (one fused kernel); the cell loop is the independent count.
    model = build("lstm", causal, d_model=16, layers=2)
    x = tokens()
    with torch.no_grad():
        assert torch.allclose(lstm_by_cells(model, x), model(x), atol=1e-5)  # it is the same network
        assert model.flops(B, T) == counted(lambda_module(lstm_by_cells, model), x)


def lambda_module(fn, model):
    class Wrapped(torch.nn.Module):
        def forward(self, x):
            return fn(model, x)

    return Wrapped()


def test_build_architecture_refuses_bad_parameters():
    with pytest.raises(archbench.BadInput, match="kernel_size"):
        archbench.build_architecture("tcn", vocab_size=5, kernel_size=1)
    with pytest.raises(archbench.BadInput, match="divisible"):
        archbench.build_architecture("transformer", vocab_size=5, d_model=30, heads=4)
    with pytest.raises(archbench.BadInput, match="did you mean 'lstm'"):
        archbench.build_architecture("lstn", vocab_size=5)


def test_learned_positions_refuse_a_sequence_longer_than_the_table():
    model = build("transformer", True, positional="learned", max_len=T - 1)
    with pytest.raises(ValueError, match="max_len"):
        model(tokens())


def test_without_positions_attention_cannot_tell_order():
    # Non-causal attention with no positional encoding is permutation-equivariant.
    model = build("transformer", causal=False, positional="none")
    x = tokens()
    perm = torch.randperm(T, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model(x)[:, perm], model(x[:, perm]), atol=1e-5)


@pytest.mark.parametrize("kind, params", [("tcn", {"levels": 2, "d_model": 16}), ("transformer", {"d_model": 32})])
def test_a_training_step_is_three_forwards(kind, params):
    # FLOP_FACTOR["train_step"] = 3: forward + backward counted by FlopCounterMode.
    from archbench.instruments.passes import FLOP_FACTOR

    model = build(kind, True, **params).train()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(tokens()).sum().backward()
    assert counter.get_total_flops() == pytest.approx(FLOP_FACTOR["train_step"] * model.flops(B, T), rel=0.01)
