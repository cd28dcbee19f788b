"""Encoder-decoders: the contract over every registered one and a mix of families, the encoder_decoder
framing of the tasks, greedy decoding against the full forward, and the metrics on such a model."""
import dataclasses
import math
from itertools import product
from pathlib import Path

import pytest
import torch
from torch import nn

from archbench import registry, testing
from archbench.architectures import Architecture
from archbench.architectures.base import head_flops
from archbench.architectures.decoding import DecodeState
from archbench.architectures.encoder_decoder import greedy_translate
from archbench.errors import BadInput
from archbench.execute.group import Settings, build, run_group
from archbench.instruments.training import TrainingSettings, train
from archbench.parameters import PositiveInt
from archbench.stop_rule import StopRule
from archbench.suite.load import parse_suite
from archbench.suite.plan import expand
from archbench.tasks import build_task

SEQ2SEQ = [k for k in registry.architectures.names() if testing.is_encoder_decoder(k)]
FAST = StopRule(min_samples=2, min_time=0.0, max_time=0.02, warmup=0.0)


def test_the_presets_are_registered():
    assert {"transformer_seq2seq", "lstm_seq2seq", "lstm_attention_seq2seq", "tcn_attention_seq2seq",
            "encoder_decoder"} <= set(SEQ2SEQ)


@pytest.mark.parametrize("kind", SEQ2SEQ)
def test_contract_of_every_registered_encoder_decoder(kind):
    # causal in the target, sees the whole source, stepped logits == teacher-forced forward, flops counted
    assert testing.check_encoder_decoder(testing.build(kind, True, d_model=16)) == "ok"


@pytest.mark.parametrize("encoder, decoder, bridge", [
    ("lstm", "transformer", "cross_attention"), ("transformer", "lstm", "cross_attention"),
    ("tcn", "transformer", "cross_attention"), ("gru", "gru", "final_state"), ("rnn", "lstm", "final_state"),
    ("local_attention", "ssm", "cross_attention"), ("transformer", "linear_attention", "cross_attention"),
    ("lstm", "tcn", "cross_attention"),
])
def test_any_two_families_compose(encoder, decoder, bridge):
    model = testing.build("encoder_decoder", True, encoder=encoder, decoder=decoder, bridge=bridge, d_model=16, heads=2)
    assert testing.check_encoder_decoder(model, source_len=7, target_len=10) == "ok"


@pytest.mark.parametrize("decoder, placement, expected", [
    ("transformer", "auto", "per_layer"), ("tcn", "auto", "per_layer"), ("lstm", "auto", "on_top"),
    ("ssm", "auto", "on_top"), ("transformer", "on_top", "on_top"),
])
def test_cross_attention_goes_inside_the_decoders_layers_where_it_can(decoder, placement, expected):
    model = testing.build("encoder_decoder", True, decoder=decoder, cross_placement=placement, d_model=16, heads=2,
                          decoder_layers=3)
    assert model.bridge.placement == expected
    assert len(model.bridge.blocks) == (3 if expected == "per_layer" else 1)  # one per layer, or cross_layers
    assert testing.check_encoder_decoder(model) == "ok"


def test_transformer_seq2seq_decoder_layer_is_vaswanis_self_then_cross_attention_then_feed_forward():
    model = testing.build("transformer_seq2seq", True, d_model=16, heads=2, layers=2).eval()
    g = torch.Generator().manual_seed(3)
    src, tgt = torch.randint(model.vocab_size, (2, 7), generator=g), torch.randint(model.vocab_size, (2, 5), generator=g)
    dec, cross = model.decoder, model.bridge.blocks
    with torch.no_grad():  # written out by hand from the modules' weights, without the hook
        memory = model.bridge.memory(model.encoder(src))
        h = dec.embed(tgt) + dec.pos(tgt)
        for block, c in zip(dec.blocks, cross):
            h = h + block.attn(block.norm1(h))                     # masked self-attention
            k, v = c.keys_values(memory)
            q = c.q(c.norm(h)).view(2, 5, 2, 8).transpose(1, 2)
            y = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), -1) @ v
            h = h + c.proj(y.transpose(1, 2).reshape(2, 5, 16))    # attention to the encoder
            h = h + block.mlp(block.norm2(h))                      # feed-forward
        expected = model.head(dec.norm(h))
        assert torch.allclose(model(src, tgt), expected, atol=1e-5)


class PrefixMean(Architecture):
    """A plugin's architecture: each layer adds tanh(W mean(h so far)) (causal) or of all of h, and
    exposes its layers (``layer_hook``); incremental decoding keeps each layer's running sum."""

    depth_parameter, layer_hook = "layers", True

    def __init__(self, vocab_size: int, causal: bool = True, d_model: PositiveInt = 16, layers: PositiveInt = 2):
        super().__init__()
        self.vocab_size, self.causal, self.d = vocab_size, causal, d_model
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(layers))
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, x, between=None):
        if not self.causal:
            h = self.embed(x)
            for block in self.blocks:
                h = h + torch.tanh(block(h.mean(1, keepdim=True))).expand_as(h)
            return self.head(h)
        return self.prefill(x, self.init_state(x.shape[0], x.shape[1]), between)[0]

    def init_state(self, batch, capacity):
        return DecodeState(tuple(self.embed.weight.new_zeros(batch, 1, self.d) for _ in self.blocks))

    def prefill(self, x, state, between=None):
        h, sums = self.embed(x), []
        seen = torch.arange(state.length + 1, state.length + x.shape[1] + 1)[:, None]   # (T, 1)
        for i, (block, total) in enumerate(zip(self.blocks, state.layers)):
            running = total + h.cumsum(1)                                                 # (B, T, D)
            h = h + torch.tanh(block(running / seen))
            h = h if between is None else between(i, h)
            sums.append(running[:, -1:])
        return self.head(h), state.advanced(tuple(sums), x.shape[1])

    def step(self, token, state, between=None):
        logits, state = self.prefill(token[:, None], state, between)
        return logits[:, 0], state

    def flops(self, batch, seq_len):
        return len(self.blocks) * 2 * batch * (seq_len if self.causal else 1) * self.d ** 2 + head_flops(
            batch, seq_len, self.d, self.vocab_size)

    def decode_flops(self, batch, context):
        return self.flops(batch, 1)


@pytest.fixture
def plugin():
    registry.architectures.add("test_prefix_mean", PrefixMean)
    yield "test_prefix_mean"
    registry.architectures.remove("test_prefix_mean")


@pytest.mark.parametrize("encoder, decoder, placement", [
    ("test_prefix_mean", "lstm", "on_top"), ("transformer", "test_prefix_mean", "per_layer"),
    ("test_prefix_mean", "test_prefix_mean", "per_layer"),
])
def test_a_plugin_is_an_encoder_or_a_decoder_and_gets_cross_attention_in_its_layers(plugin, encoder, decoder,
                                                                                    placement):
    model = testing.build("encoder_decoder", True, encoder=encoder, decoder=decoder, d_model=16, heads=2,
                          decoder_layers=3)
    assert model.bridge.placement == placement
    assert testing.check_encoder_decoder(model) == "ok"


class Unhooked(PrefixMean):
    """Inherits ``layer_hook`` but overrides ``forward`` without ``between``: it does not expose its layers."""

    def forward(self, x):
        return super().forward(x)


def test_a_decoder_that_inherits_layer_hook_without_between_gets_cross_attention_on_top(plugin):
    registry.architectures.add("test_unhooked", Unhooked)
    try:
        model = testing.build("encoder_decoder", True, decoder="test_unhooked", d_model=16, heads=2)
        assert model.bridge.placement == "on_top" and testing.check_encoder_decoder(model) == "ok"
        with pytest.raises(BadInput, match="'test_unhooked' does not \\(it declares layer_hook but its forward "
                                           "takes no `between`\\); those that do: .*test_prefix_mean.*transformer"):
            testing.build("encoder_decoder", True, decoder="test_unhooked", cross_placement="per_layer")
    finally:
        registry.architectures.remove("test_unhooked")


@pytest.mark.parametrize("params, match", [
    ({"decoder": "lstm", "cross_placement": "per_layer"}, "per_layer needs a decoder that exposes its layers.*'lstm'"),
    ({"decoder": "transformer", "cross_layers": 2}, "cross_placement auto puts one inside each layer of decoder "
     "'transformer'; leave cross_layers unset or use cross_placement: on_top"),
    ({"cross_placement": "inside"}, "cross_placement"),
    ({"encoder": "lstm", "decoder": "lstm", "bridge": "final_state", "cross_layers": 2},
     "final_state has no cross-attention: cross_layers applies to bridge cross_attention only"),
    ({"encoder": "lstm", "decoder": "lstm", "bridge": "final_state", "cross_placement": "on_top"},
     "got cross_placement='on_top'"),
])
def test_bad_placements_are_one_line_errors(params, match):
    with pytest.raises(BadInput, match=match) as err:
        testing.build("encoder_decoder", True, **params)
    assert "\n" not in str(err.value)


def test_check_fails_a_decoder_that_sees_the_future(monkeypatch):
    model = testing.build("lstm_attention_seq2seq", True, d_model=16)
    monkeypatch.setattr(type(model), "decode", lambda self, m, t: self.head(self.bridge.after(
        self.decoder(t.flip(1)), self.bridge.read(m), 0)))
    with pytest.raises(AssertionError, match="changed"):
        testing.check_encoder_decoder(model)


@pytest.mark.parametrize("params, match", [
    ({"encoder": "tcn", "decoder": "lstm", "bridge": "final_state"}, "final_state needs a recurrent encoder"),
    ({"encoder": "lstm", "decoder": "transformer", "bridge": "final_state"}, "recurrent decoder"),
    ({"encoder": "lstm_seq2seq"}, "is itself an encoder-decoder"),
    ({"encoder": "lstn"}, "did you mean 'lstm'"),
    ({"bridge": "glue"}, "bridge"),
])
def test_bad_compositions_are_one_line_errors(params, match):
    with pytest.raises(BadInput, match=match) as err:
        testing.build("encoder_decoder", True, **params)
    assert "\n" not in str(err.value)


def test_causal_false_is_refused():
    with pytest.raises(BadInput, match="causal must be true"):
        testing.build("transformer_seq2seq", False)


def test_encoder_decoder_framing_of_each_task():
    for kind, params in (("reverse", {}), ("sort", {}), ("copy_memory", {"symbols": 3})):
        b = build_task(kind, 12, framing="encoder_decoder", **params).sample(4, torch.Generator().manual_seed(0))
        decoder = build_task(kind, 12, True, **params).sample(4, torch.Generator().manual_seed(0))
        m_a = int(decoder.mask[0].sum())  # the same answer as the decoder framing's, scored whole
        assert torch.equal(b.targets, decoder.targets[:, -m_a:]) and b.mask.all()
        assert torch.equal(b.source, decoder.inputs[:, : 12 - m_a])
        assert torch.equal(b.inputs[:, 1:], b.targets[:, :-1])  # teacher forcing: shifted right


def test_addition_is_the_sum_and_shorter_than_its_source():
    b = build_task("addition", 11, framing="encoder_decoder").sample(64, torch.Generator().manual_seed(1))
    assert b.source.shape == (64, 7) and b.targets.shape == (64, 4)  # k = 3: 2k + 1 in, k + 1 out
    digits = lambda row: int("".join(str(int(t) - 1) for t in row))  # noqa: E731
    for src, tgt in zip(b.source, b.targets):
        assert src[3] == 11
        assert digits(src[:3]) + digits(src[4:]) == digits(tgt.flip(0))  # the answer least significant first


def test_addition_baseline_is_the_best_blind_guess_by_enumeration():
    task = build_task("addition", 5, framing="encoder_decoder")  # k = 1: every pair of digits
    sums = [a + b for a in range(10) for b in range(10)]
    answers = [(s % 10, s // 10) for s in sums]
    per_position = [max(sum(ans[i] == v for ans in answers) for v in range(10)) / 100 for i in range(2)]
    exact = max(answers.count(a) for a in set(answers)) / 100
    base = task.baseline()
    assert base.accuracy == pytest.approx(sum(per_position) / 2) and base.exact == pytest.approx(exact)


def test_sort_exact_baseline_is_the_likeliest_sorted_answer_by_enumeration():
    task = build_task("sort", 6, framing="encoder_decoder", vocab_size=5)  # m = 3 draws from 4 symbols
    counts: dict = {}
    for q in product(range(4), repeat=3):
        counts[tuple(sorted(q))] = counts.get(tuple(sorted(q)), 0) + 1
    assert task.baseline().exact == pytest.approx(max(counts.values()) / 4**3)


def test_a_task_without_the_framing_is_a_one_line_error():
    with pytest.raises(BadInput, match="task 'mqar' has no encoder_decoder framing.*tasks that have it: addition"):
        build_task("mqar", 32, framing="encoder_decoder")


@pytest.mark.parametrize("kind", ["transformer_seq2seq", "lstm_seq2seq", "tcn_attention_seq2seq"])
def test_greedy_translation_is_the_argmax_of_the_full_forward_token_by_token(kind):
    model = testing.build(kind, True, d_model=16)
    src = torch.randint(model.vocab_size, (3, 8), generator=torch.Generator().manual_seed(5))
    start = torch.zeros(3, dtype=torch.long)
    with torch.no_grad():
        fast = greedy_translate(model, src, start, 6)
        slow = start[:, None]
        for _ in range(6):  # no state: the whole teacher-forced forward on what was decoded so far
            slow = torch.cat([slow, model(src, slow)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(fast, slow[:, 1:])


def test_training_scores_greedy_decoding_exact_and_token_accuracy():
    task = build_task("reverse", 8, framing="encoder_decoder", vocab_size=6)
    model = testing.build("transformer_seq2seq", True, vocab_size=6, d_model=32, layers=1)
    result = train(model, task, TrainingSettings(steps=150, lr=3e-3, eval_every=50, eval_size=128), seed=0, batch=32)
    assert result.exact_accuracy is not None and result.exact_accuracy >= 0.9  # reverse of 4 tokens, learnt
    assert result.accuracy >= result.exact_accuracy
    assert "eval_exact_accuracy" in result.curve


SUITE = """
name: s2s
device: cpu
experiments:
  - name: halves
    architectures: [{kind: transformer_seq2seq, layers: 1}, {kind: lstm_seq2seq}, {kind: tcn, levels: 2}]
    task: {kind: addition}
    metrics: [latency, peak_memory, flops, generation, receptive_field, graph]
    passes: [encode, decode, train_step]
    generation: {prompt: 3, tokens: 2}
    sweep: {seq_len: 11, batch: 2, d_model: 16}
"""


def test_every_metric_runs_or_is_skipped_with_a_reason_on_encoder_decoders():
    points = expand(parse_suite(SUITE), device="cpu")
    results = [r for i in range(0, len(points), 3) for r in run_group(points[i:i + 3], Settings(rule=FAST))]
    for r in results:
        rows = {row.metric: row for row in r.rows}
        assert all(row.status in ("ok", "skipped") for row in r.rows), [(row.metric, row.error) for row in r.rows]
        if r.point.arch_kind == "tcn":  # one sequence: its encode and decode passes do not apply
            assert (rows["latency"].status == "skipped") == (r.point.pass_ != "train_step")
            continue
        assert rows["latency"].status == "ok" and rows["peak_memory"].status == "ok"
        assert rows["decode_latency"].status == "ok" and rows["state_memory"].value > 0
        assert rows["rf_empirical"].status == "skipped" and "encoder-decoder" in rows["rf_empirical"].error
        task, model = build(r.point, torch.device("cpu"))
        source, target = 7, 4  # addition at seq_len 11: a source of 7 tokens, an answer of 4
        assert rows["flops"].value == model.flops(2, source, target)
        expected = {"encode": model.encoder_flops(2, source), "decode": model.decoder_flops(2, target, source),
                    "train_step": 3 * model.flops(2, source, target)}[r.point.pass_]
        assert rows["achieved_flops"].value == pytest.approx(expected / rows["latency"].value)
        assert rows["decode_flops"].value == model.decode_flops(2, 11, source_len=source)
        assert not math.isnan(rows["generate_throughput"].value)


REPORTED = """
name: s2s_report
threads: 1
timing: {min_samples: 2, min_time: 0.0, max_time: 0.02, warmup: 0.0}
experiments:
  - name: rev
    architectures: [{kind: lstm_attention_seq2seq, d_model: 16}]
    task: {kind: reverse, vocab_size: 5}
    metrics: [accuracy]
    training: {steps: 10, lr: 1e-2, eval_every: 5, eval_size: 16, until: converged, max_steps: 20}
    sweep: {seq_len: [4, 8], batch: 8}
  - name: halves
    architectures: [{kind: lstm_attention_seq2seq, d_model: 16}]
    task: {kind: reverse}
    metrics: [latency]
    passes: [encode, decode]
    sweep: {seq_len: [8, 16], batch: 2}
"""


def test_accuracy_csv_and_the_report_carry_exact_and_token_accuracy(tmp_path):
    import pandas as pd
    from click.testing import CliRunner

    from archbench.cli import cli

    (tmp_path / "s.yaml").write_text(REPORTED)
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "r"), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    folder = next(x for x in lines if x.startswith("results: ")).removeprefix("results: ")
    report = next(x for x in lines if x.startswith("report: ")).removeprefix("report: ")
    table = pd.read_csv(f"{folder}/accuracy.csv")
    assert {"exact_accuracy", "baseline_exact_accuracy", "accuracy", "converged"} <= set(table)
    assert (table.exact_accuracy <= table.accuracy).all()
    assert table.baseline_exact_accuracy.tolist() == pytest.approx([0.25**2, 0.25**4])
    md = (Path(report).parent / "report.md").read_text()
    assert "## Sequence to sequence" in md and "| task | arch | seq_len | exact | tokens |" in md
    assert "Median latency of the encoder pass" in md and "seq2seq_exact_accuracy.png" in md


@pytest.mark.parametrize("pass_", ["forward", "train_step"])
def test_the_memory_estimate_traces_an_encoder_decoder_with_its_source(pass_):
    from archbench.execute import footprint
    from archbench.suite.point import Point

    params = registry.architectures.validate("transformer_seq2seq", {"d_model": 16})
    point = Point(experiment="e", arch="t", arch_kind="transformer_seq2seq", arch_params=tuple(sorted(params.items())),
                  task="reverse", task_params=(), metrics=("peak_memory",), seq_len=32, batch=4, pass_=pass_, seed=0,
                  causal=True, device="cpu", dtype="float32", threads=1)
    fp = footprint.estimate(point)
    assert fp.activations is not None and fp.activations > 0, fp.why_not
    longer = footprint.estimate(dataclasses.replace(point, seq_len=128))
    assert longer.activations is not None and longer.activations > fp.activations


def test_an_implementation_of_an_encoder_decoder_is_skipped_with_the_reason():
    suite = parse_suite("""
name: s
experiments:
  - name: e
    architectures: [{kind: transformer_seq2seq, d_model: 16}]
    task: reverse
    metrics: [latency]
    implementation: {attention_backend: math}
    sweep: {seq_len: 16, batch: 2}
""")
    result = run_group(expand(suite, device="cpu"), Settings(rule=FAST))[0]
    assert result.status == "skipped" and "encoder-decoder" in result.rows[0].error
