"""Fair comparisons: matched parameters, state sizes, selection on validation, scores, rankings, flags."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch
from torch import nn

from archbench import build_architecture
from archbench.architectures.linear_attention import LinearAttention
from archbench.architectures.local_attention import LocalAttention
from archbench.architectures.transformer import Transformer
from archbench.errors import BadInput
from archbench.execute.group import Settings, run_point
from archbench.instruments import training
from archbench.instruments.training import EVAL_SEED_OFFSET, TrainingSettings, held_out_set, train
from archbench.instruments.validation import VALIDATION_SEED_OFFSET, validation_set
from archbench.report.fairness import flag_lines, parameter_flag, tuning_flag
from archbench.results.accuracy import accuracy_table
from archbench.results.convergence import plateaued
from archbench.results.load import records_to_frame
from archbench.results.ranking import kendall_tau, seed_agreement, task_scores
from archbench.results.selection import mark
from archbench.suite.load import parse_suite
from archbench.suite.plan import count_points, expand
from archbench.tasks import build_task

MATCHED = """
name: t
experiments:
  - name: e
    architectures: [{kind: transformer, heads: 4, d_model: 64}, lstm, gru, rnn, {kind: tcn, levels: 4},
                    {kind: local_attention, window: 8}, linear_attention, ssm]
    task: {kind: mqar, vocab_size: 32, pairs: [4, 8]}
    metrics: [accuracy]
    match_params: %s
    sweep: {seq_len: 32, batch: 8}
"""


def built(p):
    return build_architecture(p.arch_kind, vocab_size=32, causal=p.causal, **p.params)


# ------------------------------------------------------------------------------- match_params


def test_match_params_by_label_brings_every_family_within_5_percent_of_the_reference():
    points = expand(parse_suite(MATCHED % "transformer"), device="cpu")
    target = build_architecture("transformer", vocab_size=32, heads=4, d_model=64).num_parameters()
    assert {p.arch for p in points} == {"transformer", "lstm", "gru", "rnn", "tcn", "local_attention",
                                        "linear_attention", "ssm"}
    for p in points:
        assert abs(built(p).num_parameters() - target) <= 0.05 * target, (p.arch, built(p).num_parameters())
    assert all(p.params["d_model"] == 64 for p in points if p.arch == "transformer")  # the reference stands


def test_match_params_by_number_within_5_percent():
    for p in expand(parse_suite(MATCHED.replace(", d_model: 64", "") % "60000"), device="cpu"):
        assert built(p).num_parameters() == pytest.approx(60000, rel=0.05), p.arch


def test_a_count_no_width_reaches_is_refused_naming_the_nearest_counts():
    # a Transformer with 4 heads moves in steps of 4 in d_model: 91,952 (60) and 104,224 (64), both > 5 % from 98,000
    text = MATCHED.replace("[{kind: transformer, heads: 4, d_model: 64}, lstm, gru, rnn, {kind: tcn, levels: 4},\n"
                           "                    {kind: local_attention, window: 8}, linear_attention, ssm]",
                           "[lstm, {kind: transformer, heads: 4}]")
    with pytest.raises(BadInput, match=r"experiments\[0\]\.architectures\[1\]: match_params 98,000 is out of reach "
                                       r"within ±5% for transformer \(transformer\); the nearest counts: "
                                       r"91,952 \(d_model 60\), 104,224 \(d_model 64\)"):
        parse_suite(text % "98000")


def test_a_second_width_closes_the_gap_d_model_leaves():
    # S4D with vocab 8: d_model 3 has 464 parameters and 4 has 620, both > 5 % from 540; the modes
    # per channel (SSM.fine_width = "state") close it
    suite = parse_suite("""
name: t
experiments:
  - name: e
    architectures: [{kind: ssm, layers: 1}]
    task: {kind: reverse, vocab_size: 6}
    metrics: [accuracy]
    match_params: 540
    sweep: {seq_len: 8, batch: 8}
""")
    (p,) = expand(suite, device="cpu")
    vocab = build_task("reverse", 8, True, vocab_size=6).vocab_size
    counts = [build_architecture("ssm", vocab_size=vocab, layers=1, d_model=d).num_parameters() for d in (3, 4)]
    assert all(abs(n - 540) > 27 for n in counts), counts
    n = build_architecture("ssm", vocab_size=vocab, **p.params).num_parameters()
    assert abs(n - 540) <= 27 and p.params["state"] != 32


def test_a_label_that_is_not_an_architecture_is_refused():
    with pytest.raises(BadInput, match=r"match_params: 'mamba' is not an architecture of this experiment; its "
                                       "architectures: transformer, lstm"):
        parse_suite(MATCHED.replace("lstm, gru, rnn, {kind: tcn, levels: 4},\n                    "
                                    "{kind: local_attention, window: 8}, linear_attention, ssm", "lstm") % "mamba")


# --------------------------------------------------------------------------------- state size


def decoder_state(model, seq_len):
    """The numbers the incremental decoder holds after a prompt of ``seq_len`` tokens, batch 1 (complex: one)."""
    state = model.init_state(1, seq_len)
    _, state = model.prefill(torch.zeros(1, seq_len, dtype=torch.long), state)
    return sum(t.numel() for layer in state.layers for t in (layer if isinstance(layer, tuple) else (layer,)))


@pytest.mark.parametrize("kind, params, formula", [
    ("lstm", dict(d_model=12, layers=3), 2 * 3 * 12),
    ("gru", dict(d_model=12, layers=3), 3 * 12),
    ("rnn", dict(d_model=12, layers=3), 3 * 12),
    ("ssm", dict(d_model=12, layers=2, state=5), 2 * 12 * 5),
    ("tcn", dict(d_model=12, levels=3, kernel_size=3), 2 * 12 * 2 * (1 + 2 + 4)),
    ("transformer", dict(d_model=12, heads=3, layers=2), 2 * 2 * 20 * 12),
    ("local_attention", dict(d_model=12, heads=3, layers=2, window=6), 2 * 2 * 6 * 12),
    ("linear_attention", dict(d_model=12, heads=3, layers=2), 2 * 3 * (4 * 4 + 4)),
])
def test_state_size_is_what_the_decoder_keeps(kind, params, formula):
    model = build_architecture(kind, vocab_size=7, **params)
    assert model.state_size(20) == formula == decoder_state(model, 20)


@pytest.mark.parametrize("cell, kind, per_layer", [(nn.LSTM, "lstm", 2), (nn.GRU, "gru", 1), (nn.RNN, "rnn", 1)])
@pytest.mark.parametrize("causal", [True, False])
def test_a_recurrence_keeps_the_hidden_tensors_torch_returns(cell, kind, per_layer, causal):
    model = build_architecture(kind, vocab_size=7, causal=causal, d_model=6, layers=2)
    _, hidden = cell(6, 6, 2, batch_first=True, bidirectional=not causal)(torch.zeros(1, 9, 6))
    held = sum(h.numel() for h in (hidden if isinstance(hidden, tuple) else (hidden,)))
    assert model.state_size(9) == held == per_layer * 2 * 6 * (1 if causal else 2)


def test_attention_state_grows_with_the_length_and_the_bounded_ones_do_not():
    assert Transformer(7, d_model=8, heads=2, layers=3).state_size(100) == 2 * 3 * 100 * 8
    assert LocalAttention(7, d_model=8, heads=2, layers=3, window=4).state_size(100) == 2 * 3 * 4 * 8
    assert LocalAttention(7, d_model=8, heads=2, layers=3, window=4).state_size(2) == 2 * 3 * 2 * 8
    assert LinearAttention(7, d_model=8, heads=2, layers=3).state_size(100) == 3 * 2 * (16 + 4)


# ------------------------------------------------------------------------- the validation split


def test_the_validation_split_is_drawn_apart_from_training_and_test():
    task = build_task("mqar", 16, True, vocab_size=16, pairs=3)
    val = validation_set(task, 32, 32, 0, "cpu")[0].inputs
    test = held_out_set(task, 32, 32, 0, torch.device("cpu"))[0].inputs
    train = task.sample(32, torch.Generator().manual_seed(0)).inputs
    assert not torch.equal(val, test) and not torch.equal(val, train)
    assert VALIDATION_SEED_OFFSET not in (0, EVAL_SEED_OFFSET) and VALIDATION_SEED_OFFSET > 2 * 10**5


def _unlearnable(sets):
    """The same sequences with every answer moved to the next token: what a model learns is wrong on them."""
    def draw(task, size, chunk, seed, device):
        return [dataclasses.replace(b, targets=(b.targets + 1) % task.vocab_size) for b in sets(task, size, chunk,
                                                                                                 seed, device)]
    return draw


STOPPING = TrainingSettings(steps=120, lr=1e-2, eval_every=10, eval_size=64, threshold=0.6)


def _reverse(settings=STOPPING):
    task = build_task("reverse", 8, False, vocab_size=4)
    torch.manual_seed(0)
    return train(build_architecture("transformer", vocab_size=task.vocab_size, causal=False, d_model=16), task,
                 settings, seed=0, batch=32)


def test_training_stops_where_the_validation_set_says_and_the_test_set_only_scores(monkeypatch):
    plain = _reverse()
    assert plain.steps_to_threshold == plain.steps < STOPPING.steps  # it learns: both sets pass the threshold
    assert plain.curve["val_accuracy"][-1] >= 0.6 and plain.val_accuracy == plain.curve["val_accuracy"][-1]
    assert plain.accuracy == plain.curve["eval_accuracy"][-1] and plain.loss == plain.curve["eval_loss"][-1]
    # the validation set never passes the threshold: no stop, though the test set passes it on the way
    monkeypatch.setattr(training, "validation_set", _unlearnable(validation_set))
    on = _reverse()
    assert on.steps == STOPPING.steps and on.steps_to_threshold is None
    # converged: by the validation loss's plateau (it rises as the answers it holds are unlearned), not the test's
    assert on.converged and plateaued(on.curve["val_loss"]) and not plateaued(on.curve["eval_loss"])
    assert max(on.curve["eval_accuracy"]) >= 0.6 > max(on.curve["val_accuracy"])
    assert on.curve["eval_accuracy"][:len(plain.curve["step"])] == plain.curve["eval_accuracy"]  # the same run
    # the test set never passes it: the stop comes when the validation set does, as without the change
    monkeypatch.setattr(training, "validation_set", validation_set)
    monkeypatch.setattr(training, "held_out_set", _unlearnable(held_out_set))
    off = _reverse()
    assert off.steps_to_threshold == off.steps == plain.steps and off.converged
    assert off.accuracy < 0.6 and off.val_accuracy == plain.val_accuracy


def test_until_converged_plateaus_on_the_validation_loss(monkeypatch):
    # the validation loss rises as the model learns (its answers are moved): a plateau at the first chance,
    # while the test loss keeps falling
    monkeypatch.setattr(training, "validation_set", _unlearnable(validation_set))
    settings = dataclasses.replace(STOPPING, steps=40, until="converged", max_steps=2000, threshold=1.0)
    result = _reverse(settings)
    assert result.converged and result.steps == 40 and result.steps_to_threshold is None
    assert result.curve["eval_loss"][-1] < min(result.curve["eval_loss"][:-1])  # the test loss still falling


def test_weight_decay_is_a_grid_like_lr():
    suite = parse_suite(MATCHED.replace("match_params: %s\n", "training: {steps: 5, lr: [1e-3, 3e-3], "
                                        "weight_decay: [0, 0.1]}\n"))
    points = expand(suite, device="cpu")
    assert len(points) == count_points(suite) == 8 * 2 * 4
    assert {(dict(p.training)["lr"], dict(p.training)["weight_decay"]) for p in points} == {
        (1e-3, 0), (3e-3, 0), (1e-3, 0.1), (3e-3, 0.1)}
    # a single weight decay stays a number in the point (so the ids of earlier points stand)
    (one,) = expand(parse_suite(MATCHED.replace("    match_params: %s\n", "").replace(
        "[{kind: transformer, heads: 4, d_model: 64}, lstm, gru, rnn, {kind: tcn, levels: 4},\n"
        "                    {kind: local_attention, window: 8}, linear_attention, ssm]", "[lstm]")
        .replace("pairs: [4, 8]", "pairs: 4")), device="cpu")
    assert dict(one.training)["weight_decay"] == 0.01


# -------------------------------------------------------------------------------- selection


def test_selection_follows_validation_not_test():
    table = pd.DataFrame({"experiment": "e", "arch": ["a"] * 4 + ["b"] * 2, "train.lr": [1e-3, 3e-3] * 3,
                          "train.weight_decay": [0, 0, 0.1, 0.1, 0, 0],
                          "accuracy": [0.9, 0.5, 0.4, 0.3, 0.2, 0.8], "val_accuracy": [0.1, 0.7, 0.6, 0.2, 0.5, 0.4]})
    out = mark(table, ["experiment", "arch", "train.lr", "train.weight_decay"])
    assert out.selected.tolist() == [False, True, False, False, True, False]
    assert out.best_lr.tolist() == [False, True, True, False, True, False]  # per weight decay
    assert (out.selected_on == "val_accuracy").all()
    # a folder from before the validation split chooses on accuracy, and says so
    old = mark(table.drop(columns="val_accuracy"), ["experiment", "arch", "train.lr", "train.weight_decay"])
    assert old.selected.tolist() == [True, False, False, False, False, True] and (old.selected_on == "accuracy").all()


@pytest.mark.parametrize("x, y", [
    ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]), ([1, 2, 3, 4], [1, 3, 2, 4]), ([0.5, 0.5, 0.2, 0.9], [0.1, 0.3, 0.3, 0.8]),
    ([3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8])])
def test_kendall_tau_is_scipys_tau_b(x, y):
    from scipy.stats import kendalltau  # here, not at the top: scipy.stats costs each test worker 1.4 s to collect

    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)
    assert math.isnan(kendall_tau([1, 1], [1, 2]))


# ---------------------------------------------------------------- a small run, end to end

RUN = """
name: t
seeds: [0, 1]
experiments:
  - name: e
    architectures: [{kind: transformer, heads: 2, layers: 1, d_model: 8}, {kind: lstm, layers: 1}]
    task: {kind: mqar, vocab_size: 8, pairs: [1, 2]}
    metrics: [accuracy]
    match_params: transformer
    training: {steps: 4, lr: [1e-3, 1e-2], eval_every: 2, eval_size: 16}
    sweep: {seq_len: 8, batch: 4}
"""


@pytest.fixture(scope="module")
def small_run():
    points = expand(parse_suite(RUN), device="cpu")
    frame = records_to_frame([run_point(p, Settings()).to_record("t") for p in points])
    return points, frame, accuracy_table(frame)


def test_every_trained_point_has_val_accuracy_parameters_and_state(small_run):
    points, frame, _ = small_run
    for p in points:
        rows = frame[frame.point_id == p.id].set_index("metric").value
        model = build_architecture(p.arch_kind, vocab_size=build_task("mqar", 8, True, vocab_size=8, pairs=1).vocab_size,
                                   **p.params)
        assert rows["num_parameters"] == model.num_parameters()
        assert rows["state_size"] == model.state_size(8)
        assert 0 <= rows["val_accuracy"] <= 1


def test_scores_rank_and_seed_agreement(small_run):
    from scipy.stats import kendalltau

    _, frame, table = small_run
    assert table.groupby(["arch", "param.pairs"]).selected.sum().eq(1).all()
    scores = task_scores(table).set_index("arch")
    picked = table[table.selected]
    for arch, r in scores.iterrows():  # MAD's score: the mean over the pair counts of the selected accuracy
        assert r.score == pytest.approx(picked[picked.arch == arch].accuracy.mean()) and r.settings == 2
    assert scores["rank"].min() == 1 and scores.over.iloc[0] == "pairs"
    agreement = seed_agreement(frame, table)
    assert agreement[["seed_a", "seed_b", "n"]].values.tolist() == [[0, 1, 2]]
    ok = frame[(frame.metric == "accuracy") & frame.point_id.isin(
        frame.loc[frame.metric == "accuracy"].merge(picked[["arch", "param.pairs", "train.lr"]]).point_id)]
    per_seed = ok.groupby(["seed", "arch"]).value.mean().unstack()
    expected = kendalltau(per_seed.loc[0], per_seed.loc[1]).statistic
    assert agreement.tau.iloc[0] == pytest.approx(expected, nan_ok=True)


# ---------------------------------------------------------------------------------- the flags


def test_the_report_flags_unequal_budgets_and_unequal_tuning():
    table = pd.DataFrame({"experiment": "e", "arch": ["a", "a", "b"], "train.lr": [1e-3, 3e-3, 1e-3],
                          "num_parameters": [100_000, 100_000, 112_000]})
    assert parameter_flag(table).startswith("- **Unequal budgets**: the parameter counts differ by 12% (b 112,000, a")
    assert "LRA's rule" in parameter_flag(table)
    assert tuning_flag(table).startswith("- **Unequal tuning**: b trained at one fixed setting while a (2) chose")
    fair = pd.DataFrame({"experiment": "e", "arch": ["a", "a", "b", "b"], "train.lr": [1e-3, 3e-3] * 2,
                         "num_parameters": [100_000, 100_000, 104_000, 104_000]})
    assert parameter_flag(fair) == "- Parameters within 4.0% of one another (LRA's rule: at most 10%)."
    assert tuning_flag(fair) == "- Every architecture tuned over the same 2 settings, chosen on validation."
    assert flag_lines(table.drop(columns=["num_parameters", "train.lr"])) == []


def test_the_default_state_size_counts_the_init_state_tensors():
    from archbench.architectures.base import Architecture
    from archbench.architectures.decoding import DecodeState

    class Plain(Architecture):
        def init_state(self, batch, capacity):
            return DecodeState((torch.zeros(batch, 3, capacity), {"s": (torch.zeros(batch, 5),)}))

    assert Plain().state_size(4) == 3 * 4 + 5
    with pytest.raises(NotImplementedError, match="declares no state_size and no init_state"):
        Architecture().state_size(4)


def test_the_fairness_section_shows_budgets_choices_scores_and_tau(small_run, tmp_path):
    from archbench.report import fairness
    from archbench.report.section import ReportData

    _, frame, table = small_run
    section = fairness.section(ReportData(frame, {}, [], None, tmp_path, tmp_path, {}))
    text = "\n".join(section.lines)
    n = int(table[table.arch == "lstm"].num_parameters.iloc[0])
    assert f"| {n:,} |" in text and "test accuracy, median [min, max]" in text and "| arch | pairs | lr |" in text
    assert "Parameters within" in text and "Every architecture tuned over the same 2 settings" in text
    assert "MAD's per-task score" in text and "Kendall's τ between the rankings of seed 0 and seed 1" in text
    assert section.figures == ["fairness_accuracy_parameters", "fairness_accuracy_state_size"]
    assert (tmp_path / "fairness_accuracy_state_size.png").exists()


def test_a_choice_at_the_edge_of_the_grid_is_flagged():
    from archbench.report.fairness import edge_flag

    table = pd.DataFrame({"experiment": "e", "arch": ["a"] * 3 + ["b"] * 3, "train.lr": [1e-3, 3e-3, 1e-2] * 2,
                          "selected": [False, False, True, False, True, False]})
    assert edge_flag(table) == ("- **At the grid's edge**: selected lr 0.01 (the largest tried) for a: the best "
                                "value may lie beyond the grid, so widen it before reading a gap as the "
                                "architecture's.")
    assert edge_flag(table.assign(selected=[False, True, False] * 2)) == ""
    assert edge_flag(table[table["train.lr"] < 1e-2]) == ""  # two values: every choice is an edge, no flag
    # an edge choice that reached the threshold on every seed is named apart, not as a grid to widen
    done = table.assign(n_seeds=2, reached_threshold=[0, 0, 2, 0, 0, 0])
    assert edge_flag(done) == ("- At the grid's edge but at the threshold on every seed: a (lr 0.01); no value "
                               "beyond it can score higher.")
    assert edge_flag(done.assign(reached_threshold=[0, 0, 1, 0, 0, 0])) == edge_flag(table)  # one seed of two: flagged


def test_a_configuration_with_and_without_validation_is_chosen_on_test_alone():
    # a folder joined from older runs (no val_accuracy) and newer ones: within one configuration the
    # grid is compared on one set, the test set, where a row lacks validation; elsewhere on validation
    import pandas as pd

    from archbench.results.selection import mark

    table = pd.DataFrame({
        "arch": ["a", "a", "b", "b"], "train.lr": [1e-3, 1e-2, 1e-3, 1e-2],
        "accuracy": [0.9, 0.5, 0.4, 0.8], "val_accuracy": [None, 0.95, 0.7, 0.6],
    })
    marked = mark(table, ["arch", "train.lr"])
    assert list(marked.selected_on) == ["accuracy", "accuracy", "val_accuracy", "val_accuracy"]
    assert list(marked.selected) == [True, False, True, False]
