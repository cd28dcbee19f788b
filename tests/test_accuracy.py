"""Training and the accuracy metric: what each architecture can learn, deterministically."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from archbench import build_architecture, registry
from archbench.architectures.transformer import attention_weights
from archbench.errors import BadInput
from archbench.execute.group import Settings, run_point
from archbench.instruments.training import TrainingSettings, train
from archbench.results.accuracy import accuracy_table, mean_interval
from archbench.results.load import records_to_frame
from archbench.suite.load import parse_suite
from archbench.suite.plan import expand
from archbench.tasks import build_task

FAST = TrainingSettings(steps=300, lr=1e-2, eval_every=25, eval_size=256)


def trained(kind, task, seed=0, settings=FAST, batch=32, **params):
    torch.manual_seed(seed)
    model = build_architecture(kind, vocab_size=task.vocab_size, causal=task.causal, **params)
    return train(model, task, settings, seed=seed, batch=batch)


# ------------------------------------------------------------------------------ the acceptance pair


def test_a_tcn_learns_copy_memory_only_when_its_field_covers_the_delay():
    task = build_task("copy_memory", 24, True, symbols=4)  # an answer sits 20 positions after its symbol
    wide = dict(d_model=32, kernel_size=3, levels=4)        # field 61
    short = dict(d_model=32, kernel_size=3, levels=2)       # field 13
    assert build_architecture("tcn", vocab_size=10, **wide).receptive_field(24) == 24 > 20
    assert build_architecture("tcn", vocab_size=10, **short).receptive_field(24) == 13 < 20
    covered, uncovered = trained("tcn", task, **wide), trained("tcn", task, **short)
    assert covered.accuracy >= 0.99 and covered.steps_to_threshold is not None
    assert uncovered.accuracy <= task.baseline().accuracy + 0.05 and uncovered.steps_to_threshold is None


def order_blind_bound(task, rows: int = 256) -> float:
    """Best accuracy without order: the same guess at every answer position, the question's most
    frequent token (all a permutation-equivariant model can give identical placeholder inputs)."""
    b = task.sample(rows, torch.Generator().manual_seed(0))
    q = b.inputs[:, : task.seq_len // 2]
    best = torch.stack([torch.bincount(r, minlength=task.vocab_size).max() for r in q]).float()
    return float((best / q.shape[1]).mean())


def test_attention_without_positions_cannot_reverse_and_with_them_can():
    task = build_task("reverse", 16, False, vocab_size=8)  # labelling: placeholders at the answer
    none = trained("transformer", task, d_model=32, positional="none")
    sinusoidal = trained("transformer", task, d_model=32, positional="sinusoidal")
    assert sinusoidal.accuracy >= 0.99
    # without positions it guesses the same token everywhere: the order-blind bound, far from learnt
    assert none.accuracy <= order_blind_bound(task) + 0.05
    assert none.accuracy < 0.5


# ------------------------------------------------------------------------------------- training


def test_same_seed_same_numbers_and_another_seed_other_numbers():
    task = build_task("selective_copy", 12, True, vocab_size=8, tokens=3)
    s = TrainingSettings(steps=30, lr=3e-3, eval_every=10, eval_size=64)
    a, b, c = (trained("lstm", task, seed=k, settings=s, d_model=16) for k in (0, 0, 1))
    assert (a.accuracy, a.loss, a.curve["train_loss"]) == (b.accuracy, b.loss, b.curve["train_loss"])
    assert a.curve["train_loss"] != c.curve["train_loss"]


def test_training_leaves_the_global_rng_alone():
    task = build_task("adding", 10, True)
    model = build_architecture("tcn", vocab_size=2, d_model=8, levels=2, dropout=0.1)
    state = torch.random.get_rng_state()
    train(model, task, TrainingSettings(steps=3, eval_every=3, eval_size=8), seed=0, batch=4)
    assert torch.equal(state, torch.random.get_rng_state())


def test_the_learning_rate_schedule_warms_up_then_decays():
    s = TrainingSettings(steps=100, lr=1.0, warmup=0.1)
    lrs = [s.lr_at(k) for k in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[9:], lrs[10:])) and lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_gradients_are_clipped_after_backward(monkeypatch):
    norms = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **k):
        params = list(params)
        assert all(p.grad is not None for p in params)  # called after backward()
        norms.append(max_norm)
        return real(params, max_norm, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    task = build_task("reverse", 8, True)
    trained("lstm", task, settings=TrainingSettings(steps=4, eval_every=4, eval_size=8, clip=0.5), d_model=8)
    assert norms == [0.5] * 4


def test_early_stop_at_the_threshold():
    task = build_task("reverse", 8, False, vocab_size=4)
    early = trained("transformer", task, settings=TrainingSettings(steps=2000, lr=1e-2, eval_every=10, eval_size=64,
                                                                   threshold=0.5), d_model=16)
    assert early.steps == early.steps_to_threshold < 2000 and early.accuracy >= 0.5


def test_the_time_budget_stops_training_at_the_first_step_that_spends_it(monkeypatch):
    # a fake clock that moves 0.1 s with each training forward (evaluation is free): the budget of 0.3 s
    # is spent by step 3, whatever the machine's load
    import archbench.instruments.training as training

    clock = {"forwards": 0}
    fake_time = type("FakeTime", (), {"perf_counter": staticmethod(lambda: clock["forwards"] / 10)})
    monkeypatch.setattr(training, "time", fake_time)
    task = build_task("reverse", 8, False, vocab_size=4)
    torch.manual_seed(0)
    model = build_architecture("lstm", vocab_size=task.vocab_size, causal=task.causal, d_model=8)

    def tick(module, args):
        clock["forwards"] += module.training

    model.register_forward_pre_hook(tick)
    timed = train(model, task, TrainingSettings(steps=10**6, time_budget=0.3, eval_every=10**6, eval_size=8), seed=0,
                  batch=32)
    assert timed.steps == 3 and timed.train_time == 0.3
    assert timed.curve["step"] == [3] and timed.curve["time"] == [0.3]  # one evaluation, at the stop


def test_adding_trains_a_regression_head_on_the_same_backbone():
    task = build_task("adding", 12, True)
    model = build_architecture("transformer", vocab_size=2, d_model=32)
    result = train(model, task, TrainingSettings(steps=100, lr=1e-2, eval_every=50, eval_size=256), seed=0, batch=32)
    assert isinstance(model.embed, nn.Linear) and model.embed.in_features == 2 and model.head.out_features == 1
    assert result.loss < 0.1 * task.baseline().loss  # far better than guessing 1 (MSE 1/6)


class Silent(nn.Module):
    """Reads token ids but has no ``embed``/``head`` to swap: cannot take the adding problem."""

    def __init__(self, vocab_size: int, causal: bool = True):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, x):
        return self.w.expand(*x.shape, -1)


def test_an_architecture_without_embed_and_head_cannot_take_features():
    with pytest.raises(ValueError, match="no `embed`"):
        train(Silent(2), build_task("adding", 8, True), TrainingSettings(steps=1), seed=0, batch=2)


class Exploding(nn.Module):
    def __init__(self, vocab_size: int, causal: bool = True):
        super().__init__()
        self.vocab_size, self.causal = vocab_size, causal
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return (self.w * float("nan")).expand(*x.shape, self.vocab_size)


@pytest.fixture
def exploding():
    registry.architectures.add("test_exploding", Exploding)
    yield
    registry.architectures.remove("test_exploding")


def test_a_nan_loss_ends_the_point_as_diverged(exploding):
    suite = parse_suite("""
name: t
experiments:
  - name: e
    architectures: [test_exploding]
    task: {kind: reverse, vocab_size: 4}
    metrics: [accuracy]
    training: {steps: 5, eval_every: 5, eval_size: 8}
    sweep: {seq_len: 8, batch: 4}
""")
    [point] = expand(suite, device="cpu")
    result = run_point(point, Settings())
    assert result.status == "diverged"
    assert "loss is nan" in result.rows[0].error


# ------------------------------------------------------------------------- the metric, the plan


def suite_text(extra: str = "", training: str = "{steps: 20, eval_every: 10, eval_size: 32}", metrics="[accuracy]"):
    return f"""
name: t
seeds: [0, 1]
experiments:
  - name: e
    architectures: [lstm, {{kind: transformer, heads: 2}}]
    task: {{kind: reverse, vocab_size: 6}}
    metrics: {metrics}
    training: {training}
    sweep: {{seq_len: 8, batch: 8, d_model: 16}}
{extra}"""


def test_the_metric_records_scores_beside_the_baseline_and_the_curve():
    points = expand(parse_suite(suite_text()), device="cpu")
    assert len(points) == 4 and dict(points[0].training)["steps"] == 20
    result = run_point(points[1], Settings())  # the transformer, seed 0
    rows = {r.metric: r for r in result.rows}
    assert result.status == "ok"
    assert {"accuracy", "loss", "baseline_accuracy", "baseline_loss", "train_time", "attention_entropy"} <= set(rows)
    assert rows["baseline_accuracy"].value == pytest.approx(1 / 5)
    assert rows["accuracy"].artifacts["curve"]["step"] == [10, 20]
    assert 0 < rows["attention_entropy"].value <= math.log(8) + 1e-6


def test_a_learning_rate_grid_is_points_and_the_table_marks_the_best():
    suite = parse_suite(suite_text(training="{steps: 20, lr: [1e-3, 1e-2], eval_every: 10, eval_size: 32}"))
    points = expand(suite, device="cpu")
    assert len(points) == 8 and sorted({dict(p.training)["lr"] for p in points}) == [1e-3, 1e-2]
    frame = records_to_frame([run_point(p, Settings()).to_record("t") for p in points])
    table = accuracy_table(frame)
    assert len(table) == 4 and set(table["n_seeds"]) == {2}
    assert table.groupby("arch").best_lr.sum().tolist() == [1, 1]
    assert table.groupby("arch").selected.sum().tolist() == [1, 1]
    for _, t in table.groupby("arch"):  # chosen on the validation split, not on the reported test accuracy
        assert t.loc[t.selected, "val_accuracy"].iloc[0] == t.val_accuracy.max()
        assert (t.selected_on == "val_accuracy").all()


def test_training_without_a_training_metric_is_refused():
    with pytest.raises(BadInput, match=r"experiments\[0\].training: no metric of this experiment trains"):
        parse_suite(suite_text(metrics="[flops]"))


@pytest.mark.parametrize("training, message", [
    ("{lr: 0}", "experiments[0].training.lr[0]: Input should be greater than 0"),
    ("{steps: 0}", "experiments[0].training.steps: Input should be greater than 0"),
    ("{step: 3}", "experiments[0].training.step: unknown key; allowed: steps, lr"),
    ("{threshold: 1.5}", "experiments[0].training.threshold: Input should be less than or equal to 1"),
])
def test_bad_training_settings(training, message):
    with pytest.raises(BadInput) as exc:
        parse_suite(suite_text(training=training))
    assert message in str(exc.value)


def test_exponent_notation_is_a_number():
    points = expand(parse_suite(suite_text(training="{lr: 3e-3}")), device="cpu")
    assert dict(points[0].training)["lr"] == 0.003


def test_other_points_keep_their_ids():
    # training settings enter the id only of the points that train
    suite = parse_suite(suite_text(metrics="[flops]").replace("    training: {steps: 20, eval_every: 10, eval_size: 32}\n", ""))
    assert all("training" not in p.key() for p in expand(suite, device="cpu"))


# ------------------------------------------------------------------------------- match_params


def test_match_params_sizes_each_architecture_to_the_budget():
    suite = parse_suite("""
name: t
experiments:
  - name: e
    architectures: [lstm, tcn, {kind: transformer, heads: 4}]
    task: {kind: mqar, vocab_size: 32, pairs: 4}
    metrics: [accuracy]
    match_params: 50000
    sweep: {seq_len: 32, batch: 8}
""")
    for p in expand(suite, device="cpu"):
        model = build_architecture(p.arch_kind, vocab_size=32, causal=p.causal, **p.params)
        assert model.num_parameters() == pytest.approx(50000, rel=0.1), p.arch
        assert p.params["d_model"] % (4 if p.arch_kind == "transformer" else 1) == 0


@pytest.mark.parametrize("arch, sweep, message", [
    ("lstm", "d_model: 16", r"experiments\[0\].architectures\[0\].d_model: also sized by match_params 5000"),
    ("{kind: lstm, d_model: 16}", "", r"experiments\[0\].architectures\[0\].d_model: also sized by match_params"),
])
def test_match_params_and_d_model_conflict(arch, sweep, message):
    text = f"""
name: t
experiments:
  - name: e
    architectures: [{arch}]
    task: {{kind: reverse}}
    metrics: [accuracy]
    match_params: 5000
    sweep: {{seq_len: 8, batch: 8, {sweep}}}
"""
    with pytest.raises(BadInput, match=message):
        parse_suite(text)


def test_match_params_out_of_reach():
    with pytest.raises(BadInput, match="out of reach"):
        parse_suite(suite_text(extra="").replace("    sweep: {seq_len: 8, batch: 8, d_model: 16}",
                                                 "    match_params: 10\n    sweep: {seq_len: 8, batch: 8}"))


# -------------------------------------------------------------------- the table, the 1/sqrt(d)


def test_mean_interval_is_students_t():
    m, lo, hi = mean_interval(pd.Series([0.5, 0.6, 0.7]))
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t_{0.975, 2} s / sqrt(n)
    assert (m, lo, hi) == pytest.approx((0.6, 0.6 - half, 0.6 + half), abs=1e-3)
    assert mean_interval(pd.Series([0.4])) == (0.4, 0.4, 0.4)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("scaled", [True, False])
def test_explicit_attention_weights_match_the_fused_kernel(causal, scaled):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8, generator=g) for _ in range(3))
    scale = 1 / math.sqrt(8) if scaled else 1.0
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    assert torch.allclose(attention_weights(q, k, scale, causal) @ v, fused, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_uniform_attention_has_entropy_ln_t(causal):
    model = build_architecture("transformer", vocab_size=8, causal=causal, d_model=16, heads=2, layers=2)
    for block in model.blocks:
        nn.init.zeros_(block.attn.qkv.weight)
        nn.init.zeros_(block.attn.qkv.bias)  # every score 0: uniform weights
    T = 12
    expected = sum(math.log(t + 1) for t in range(T)) / T if causal else math.log(T)
    assert model.attention_entropy(torch.randint(8, (3, T))) == pytest.approx(expected, rel=1e-5)


def test_without_the_scale_a_wide_model_starts_saturated():
    x = torch.randint(16, (4, 64), generator=torch.Generator().manual_seed(0))
    entropy = {}
    for scale in ("sqrt_d", "none"):
        torch.manual_seed(0)
        model = build_architecture("transformer", vocab_size=16, d_model=256, heads=1, layers=1, attention_scale=scale)
        entropy[scale] = model.attention_entropy(x)
    assert entropy["none"] < 0.5 * entropy["sqrt_d"]


def test_the_table_clips_the_interval_to_what_an_accuracy_can_be():
    rows = []
    for seed, acc in enumerate([0.1, 1.0, 0.1]):  # one seed of three learnt: a wide t-interval
        for metric, value in (("accuracy", acc), ("baseline_accuracy", 0.1)):
            rows.append(dict(point_id=f"p{seed}", metric=metric, value=value, status="ok", seed=seed, experiment="e",
                             arch="a", task="t", causal=True, seq_len=8, batch=4, d_model=8))
    [row] = accuracy_table(pd.DataFrame(rows)).to_dict("records")
    m, lo, hi = mean_interval(pd.Series([0.1, 1.0, 0.1]))
    assert lo < 0 and hi > 1  # the t-interval itself
    assert (row["accuracy"], row["accuracy_ci_low"], row["accuracy_ci_high"]) == (pytest.approx(m), 0.0, 1.0)
    assert row["n_seeds"] == 3 and row["reached_threshold"] == 0
