"""Incremental decoding (the contract, over every registered architecture), the generation metric,
Table 1, generation, and the suite settings that drive them."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import requires_cuda
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from archbench import registry, testing
from archbench.architectures.decoding import DecodeState, cuda_graph_step, greedy, greedy_step, state_bytes
from archbench.errors import BadInput
from archbench.execute.group import Settings, build, run_group
from archbench.results.table1_generation import crossover, format_table1_generation, table1_generation
from archbench.stop_rule import StopRule
from archbench.suite.load import parse_suite
from archbench.suite.plan import expand

KINDS = [k for k in registry.architectures.names() if not testing.is_encoder_decoder(k)]  # seq2seq: tests/test_seq2seq.py
BUILTINS = ["gru", "linear_attention", "local_attention", "lstm", "rnn", "ssm", "tcn", "transformer"]
SMALL = {"local_attention": {"window": 5}, "tcn": {"levels": 3}}  # a window and a field shorter than T
FAST = StopRule(min_samples=2, min_time=0.0, max_time=0.02, warmup=0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_decoding_contract(kind):
    # prefill + steps == the full causal forward (within decode_tolerance), re-stepping is exact,
    # decode_flops == FlopCounterMode; a non-causal model cannot generate
    assert testing.check_decoding(testing.build(kind, True, **SMALL.get(kind, {}))) in ("ok", "not provided")
    assert testing.check_decoding(testing.build(kind, False)) in ("not causal", "not provided")


@pytest.mark.parametrize("kind", BUILTINS)
def test_every_builtin_decodes_and_its_prefill_is_the_forward_bit_for_bit(kind):
    model = testing.build(kind, True, **SMALL.get(kind, {}))
    assert testing.check_decoding(model) == "ok"
    assert testing.decoding_difference(model) <= 1e-5
    x = testing.tokens(model, 3, 20)
    with torch.no_grad():  # the same length: the same arithmetic, so exactly the same logits
        logits, state = model.prefill(x, model.init_state(3, 20))
        assert torch.equal(logits, model(x))
    assert state.length == 20


def test_check_decoding_fails_a_step_that_is_not_the_forward(monkeypatch):
    model = testing.build("gru", True)
    real = type(model).step
    monkeypatch.setattr(type(model), "step", lambda self, t, s: (lambda out: (out[0] + 1e-3, out[1]))(real(self, t, s)))
    with pytest.raises(AssertionError, match="prefill then step gave logits"):
        testing.check_decoding(model)


def test_check_decoding_fails_a_step_that_changes_the_state_it_was_given(monkeypatch):
    model = testing.build("tcn", True, levels=2)
    real = type(model).step

    def mutating(self, token, state):
        logits, new = real(self, token, state)
        state.layers[0][0].add_(1.0)  # the old state no longer means what it did
        return logits, new

    monkeypatch.setattr(type(model), "step", mutating)
    with pytest.raises(AssertionError, match="stepping twice from one state"):
        testing.check_decoding(model)


def test_greedy_generation_matches_argmax_of_the_full_forward_token_by_token():
    model = testing.build("transformer", True, d_model=16, heads=2)
    prompt = testing.tokens(model, 2, 6)
    with torch.no_grad():
        out = greedy(model, prompt, 5)
        seq = prompt
        for _ in range(5):  # the reference: a full forward over everything so far, per token
            seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq[:, 6:])


@pytest.mark.parametrize("kind,context", [("transformer", 7), ("transformer", 19), ("local_attention", 3),
                                          ("local_attention", 19), ("linear_attention", 19), ("ssm", 19),
                                          ("gru", 19), ("tcn", 19)])
def test_decode_flops_equal_the_flop_counter_on_one_step(kind, context):
    model = testing.build(kind, True, **SMALL.get(kind, {}))
    x = testing.tokens(model, 2, context + 1)
    with torch.no_grad():
        _, state = model.prefill(x[:, :context], model.init_state(2, context + 1))
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model.step(x[:, context], state)
    assert counter.get_total_flops() == model.decode_flops(2, context) > 0


def analytic_state_bytes(kind, model, batch, context):
    """Bytes the state should hold, from the architecture's sizes (float32, complex64 for the SSM)."""
    d = model.d_model
    if kind in ("gru", "rnn"):
        return model.layers * batch * d * 4
    if kind == "lstm":
        return 2 * model.layers * batch * d * 4
    if kind == "tcn":
        return sum(2 * batch * d * (model.kernel_size - 1) * dil * 4 for dil in model.dilations())
    if kind == "transformer":
        return model.layers * 2 * batch * d * (context + 1) * 4  # capacity context + 1
    if kind == "local_attention":
        return model.layers * 2 * batch * d * model.window * 4
    if kind == "linear_attention":
        dh = d // model.heads
        return model.layers * (batch * model.heads * dh * dh + batch * d) * 4
    if kind == "ssm":
        return model.layers * batch * d * model.state * 8
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", BUILTINS)
def test_state_memory_is_the_analytic_byte_count_and_grows_only_for_the_kv_cache(kind):
    model = testing.build(kind, True, **SMALL.get(kind, {}))
    sizes = {}
    for context in (8, 40):
        x = testing.tokens(model, 2, context)
        with torch.no_grad():
            _, state = model.prefill(x, model.init_state(2, context + 1))
        sizes[context] = state_bytes(state)
        assert sizes[context] == analytic_state_bytes(kind, model, 2, context)
    assert (sizes[40] > sizes[8]) == (kind == "transformer")


def test_state_bytes_counts_a_shared_storage_once():
    buf = torch.zeros(4, 8)
    assert state_bytes(DecodeState((buf, buf[1:], (buf[:2],)), 3)) == 4 * 8 * 4


def points(text, device="cpu"):
    return expand(parse_suite(text), device=device)


SUITE = """
name: g
device: cpu
experiments:
  - name: gen
    architectures: [lstm, {kind: transformer, heads: 2}, {kind: tcn, levels: 2}]
    metrics: [generation]
    generation: {prompt: 5, tokens: 3%s}
    sweep: {seq_len: 12, batch: 2, d_model: 8}
"""


def test_the_metric_gives_every_row_with_the_state_memory_of_the_context():
    results = run_group(points(SUITE % ""), Settings(rule=FAST))
    for r in results:
        rows = {row.metric: row for row in r.rows}
        assert set(rows) == {"prefill_latency", "decode_latency", "generate_throughput", "state_memory",
                             "state_allocated", "decode_flops", "num_parameters", "state_size"}, r.point.arch
        assert all(row.status == "ok" for row in rows.values()), [row.error for row in rows.values()]
        assert rows["decode_latency"].value > 0 and rows["prefill_latency"].value > 0
        assert rows["decode_latency"].samples and rows["decode_latency"].stats["context"] == 12
        _, model = build(r.point, torch.device("cpu"))  # the point's own model
        assert rows["state_memory"].value == analytic_state_bytes(r.point.arch_kind, model, 2, 12)
        assert rows["num_parameters"].value == model.num_parameters()
        assert rows["state_size"].value == model.state_size(12)
        # the allocation measured while the state was built holds at least the state's tensors
        assert rows["state_allocated"].value >= rows["state_memory"].value
        assert rows["decode_flops"].value == model.decode_flops(2, 12)
        # tokens/s of batch x G tokens over the time of prompt + G greedy tokens
        g = rows["generate_throughput"]
        assert g.value == pytest.approx(2 * 3 / g.stats["generate_latency"])


def test_cuda_graphs_on_a_cpu_point_is_skipped_with_the_reason_and_the_eager_figure_stays():
    rows = {row.metric: row for row in run_group(points(SUITE % ", cuda_graphs: true")[:1], Settings(rule=FAST))[0].rows}
    assert rows["decode_latency"].status == "ok"
    assert rows["decode_latency_cuda_graph"].status == "skipped"
    assert "needs a CUDA device" in rows["decode_latency_cuda_graph"].error


def test_non_causal_and_plugins_without_decoding_are_skipped_with_the_reason(monkeypatch):
    class Bare(torch.nn.Module):  # the tensor contract only
        def __init__(self, vocab_size, causal=True, d_model: int = 8):
            super().__init__()
            self.vocab_size, self.causal = vocab_size, causal
            self.embed, self.head = torch.nn.Embedding(vocab_size, d_model), torch.nn.Linear(d_model, vocab_size)

        def forward(self, x):
            return self.head(self.embed(x))

    monkeypatch.setattr(registry.architectures, "_entries", dict(registry.architectures._entries))
    registry.architectures.add("bare_gen", Bare)
    text = SUITE.replace("[lstm, {kind: transformer, heads: 2}, {kind: tcn, levels: 2}]", "[bare_gen]") % ""
    bare = run_group(points(text), Settings(rule=FAST))[0]
    assert {r.status for r in bare.rows} == {"skipped"}
    assert all(r.error.startswith("not provided: bare_gen defines no init_state()") for r in bare.rows)
    text = (SUITE % "").replace("metrics: [generation]", "metrics: [generation]\n    causal: false")
    lstm = run_group(points(text)[:1], Settings(rule=FAST))[0]
    assert {r.status for r in lstm.rows} == {"skipped"} and "causal=False" in lstm.rows[0].error


def test_generation_settings_are_checked_and_kept_in_the_point():
    assert dict(points(SUITE % "")[0].generation) == {"prompt": 5, "tokens": 3, "cuda_graphs": False}
    with pytest.raises(BadInput, match=r"experiments\[0\]\.generation\.tokns: unknown key; allowed: prompt, tokens"):
        parse_suite(SUITE % ", tokns: 3")
    with pytest.raises(BadInput, match=r"experiments\[0\]\.generation: no metric of this experiment generates"):
        parse_suite((SUITE % "").replace("metrics: [generation]", "metrics: [latency]"))
    latency = points((SUITE % "").replace("metrics: [generation]", "metrics: [latency]").replace(
        "    generation: {prompt: 5, tokens: 3}\n", ""))[0]
    assert "generation" not in latency.key()  # ids of the other metrics' points are unchanged


def frame(rows):
    return pd.DataFrame([{"status": "ok", "d_model": 64, "batch": 8, "arch": a, "arch_kind": a, "metric": m,
                          "seq_len": c, "value": v} for a, m, c, v in rows])


THEORY = {"transformer": {"decode_work_exponent": 1.0, "state_exponent": 1.0},
          "lstm": {"decode_work_exponent": 0.0, "state_exponent": 0.0}}


def test_table1_generation_fits_known_exponents_and_finds_the_crossover():
    cs = [25, 50, 200, 400, 1600]
    rows = []
    for c in cs:  # transformer 1e-6 c s per token, the LSTM 1e-4 s: equal at c = 100
        rows += [("transformer", "decode_latency", c, 1e-6 * c), ("lstm", "decode_latency", c, 1e-4),
                 ("transformer", "state_memory", c, 4096.0 * c), ("lstm", "state_memory", c, 1024.0),
                 ("transformer", "decode_flops", c, 1000.0 + 0 * c + 256.0 * c), ("lstm", "decode_flops", c, 5e4)]
    table = table1_generation(frame(rows), THEORY).set_index("arch")
    assert table.latency_exponent["transformer"] == pytest.approx(1.0)
    assert table.state_exponent["transformer"] == pytest.approx(1.0)
    assert table.state_exponent["lstm"] == pytest.approx(0.0, abs=1e-12) and table.state_agrees["lstm"]
    assert table.work_agrees["transformer"] and table.latency_agrees["lstm"]
    assert table.crossover["lstm"] == pytest.approx(100.0)
    assert "about 100 tokens" in format_table1_generation(table.reset_index())


def test_crossover_says_when_there_is_none_or_it_is_below_the_contexts():
    slow = frame([("transformer", "decode_latency", c, 1.0) for c in (1, 2, 4)] +
                 [("lstm", "decode_latency", c, 0.5) for c in (1, 2, 4)])
    assert crossover(slow) == 0.0
    fast = frame([("transformer", "decode_latency", c, 0.1) for c in (1, 2, 4)] +
                 [("lstm", "decode_latency", c, 0.5) for c in (1, 2, 4)])
    assert math.isnan(crossover(fast))
    assert crossover(fast[fast.arch == "lstm"]) is None


@requires_cuda
@pytest.mark.parametrize("kind", BUILTINS)
def test_a_decode_step_captured_in_a_cuda_graph_gives_the_eager_tokens(kind):
    model = testing.build(kind, True, **SMALL.get(kind, {})).cuda()
    x = testing.tokens(model, 2, 16).cuda()
    with torch.no_grad():
        logits, state = model.prefill(x, model.init_state(2, 17))
        token = logits[:, -1].argmax(-1)
        eager, graphed = token.clone(), token.clone()
        step = greedy_step(model, eager, state)
        replay = cuda_graph_step(model, graphed, state)
        for _ in range(4):
            step()
            replay()
            assert torch.equal(eager, graphed)


def test_cuda_graph_step_refuses_a_cpu_model():
    model = testing.build("gru", True)
    with pytest.raises(ValueError, match="cuda_graphs needs a CUDA device"):
        cuda_graph_step(model, torch.zeros(2, dtype=torch.long), model.init_state(2, 1))


def test_the_fitted_exponent_is_independent_of_units():
    # decode latency in seconds or in milliseconds: the same exponent (a power law's slope)
    rows = [("transformer", "decode_latency", c, 2e-6 * c ** 0.8) for c in (64, 256, 1024, 4096)]
    a = table1_generation(frame(rows), THEORY).latency_exponent.iloc[0]
    b = table1_generation(frame([(x, y, c, v * 1e3) for x, y, c, v in rows]), THEORY).latency_exponent.iloc[0]
    assert a == pytest.approx(b) == pytest.approx(0.8)
    assert np.isfinite(a)
