"""The length-generalisation protocol (archbench.tasks.lengths, archbench.instruments.lengths): training lengths
drawn per batch, held-out sets per test length on their own seeds, the rows the accuracy metric adds."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from archbench.errors import BadInput
from archbench.execute.group import Settings, run_point
from archbench.instruments.lengths import TEST_SEED_OFFSET, length_set
from archbench.instruments.training import EVAL_SEED_OFFSET, held_out_set
from archbench.results.load import records_to_frame
from archbench.suite.load import parse_suite
from archbench.suite.plan import expand
from archbench.suite.point import Point
from archbench.tasks import build_task
from archbench.tasks.lengths import LengthVaried, split_lengths


def varied(kind="parity_check", lo=2, hi=6, test=(9, 12), **params):
    task = build_task(kind, hi, True, train_lengths=[lo, hi], test_lengths=list(test), **params)
    assert isinstance(task, LengthVaried)
    return task


def test_each_training_batch_draws_one_length_uniformly():
    task = varied()
    g = torch.Generator().manual_seed(0)
    widths = [task.sample(4, g).inputs.shape[1] for _ in range(500)]
    counts = torch.bincount(torch.tensor(widths), minlength=7)[2:]
    assert set(widths) == {2, 3, 4, 5, 6} and counts.min() > 70  # 100 expected each


def test_the_held_out_set_covers_every_training_length_and_the_baseline_averages_them():
    task = varied("even_pairs", lo=1, hi=4)
    held = held_out_set(task, 40, 64, seed=0, device=torch.device("cpu"))
    assert [b.inputs.shape for b in held] == [(10, n) for n in (1, 2, 3, 4)]
    assert task.baseline().accuracy == pytest.approx((1.0 + 0.5 * 3) / 4)  # a one-token string is always even


def test_test_sets_have_their_own_seeds():
    task = varied()
    a = length_set(task, 9, 16, 16, seed=0, device="cpu")[0]
    again = length_set(task, 9, 16, 16, seed=0, device="cpu")[0]
    other = length_set(task, 9, 16, 16, seed=1, device="cpu")[0]
    assert torch.equal(a.inputs, again.inputs) and not torch.equal(a.inputs, other.inputs)
    assert TEST_SEED_OFFSET * 9 not in (0, EVAL_SEED_OFFSET)


@pytest.mark.parametrize("params, message", [
    ({"test_lengths": [9]}, "test_lengths needs train_lengths"),
    ({"train_lengths": [5, 2]}, "is not [lo, hi] with 1 <= lo <= hi"),
    ({"train_lengths": [0, 2]}, "is not [lo, hi]"),
    ({"train_lengths": [1, 2, 3]}, "is not [lo, hi]"),
    ({"train_lengths": [1, 2], "test_lengths": [4, 4]}, "is not a list of distinct lengths"),
    ({"train_lengths": [1, 2], "test_lengths": []}, "is not a list of distinct lengths"),
])
def test_bad_lengths(params, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        split_lengths(params)


def suite_text(task="{kind: parity_check, train_lengths: [1, 6], test_lengths: [6, 12, 18]}", seq_len=6,
               archs="[lstm]", steps=40):
    return f"""
name: lengths
experiments:
  - name: gen
    architectures: {archs}
    task: {task}
    metrics: [accuracy]
    training: {{steps: {steps}, lr: 1e-2, eval_every: 20, eval_size: 64}}
    sweep: {{seq_len: {seq_len}, batch: 16, d_model: 16}}
"""


def test_a_length_range_is_one_value_and_a_list_of_ranges_is_swept():
    points = expand(parse_suite(suite_text()), device="cpu")
    assert len(points) == 1 and dict(points[0].task_params)["train_lengths"] == (1, 6)
    assert Point.from_dict(points[0].to_dict()) == points[0] and hash(points[0])  # as a results folder holds it
    two = expand(parse_suite(suite_text(task="{kind: parity_check, train_lengths: [[1, 6], [2, 6]]}")), device="cpu")
    assert [dict(p.task_params)["train_lengths"] for p in two] == [(1, 6), (2, 6)]


def test_seq_len_outside_the_training_range_is_refused():
    with pytest.raises(BadInput, match=r"train_lengths: \[1, 6\] does not hold the sweep's seq_len 8"):
        parse_suite(suite_text(seq_len=8))
    with pytest.raises(BadInput, match="test_lengths needs train_lengths"):
        parse_suite(suite_text(task="{kind: parity_check, test_lengths: [8]}"))


def test_the_metric_writes_a_row_per_test_length_and_the_mean_beyond_the_training_range():
    point = expand(parse_suite(suite_text()), device="cpu")[0]
    result = run_point(point, Settings())
    assert result.status == "ok"
    by_length = {r.stats["test_length"]: r.value for r in result.rows if r.metric == "length_accuracy"}
    ood = [r.value for r in result.rows if r.metric == "ood_accuracy"]
    assert sorted(by_length) == [6, 12, 18]
    assert ood == [pytest.approx((by_length[12] + by_length[18]) / 2)]  # 6 is a training length
    assert [r.value for r in result.rows if r.metric == "baseline_ood_accuracy"] == [0.5]
    frame = records_to_frame([result.to_record("t")])
    rows = frame[frame.metric == "length_accuracy"].sort_values("test_length")
    assert rows.test_length.tolist() == [6, 12, 18] and frame["param.train_lengths"].iloc[0] == "[1, 6]"


def test_a_learned_table_too_short_for_the_test_lengths_is_skipped():
    archs = ("[{kind: transformer, label: short, positional: learned, max_len: 10},"
             " {kind: transformer, label: long, positional: learned}]")
    points = expand(parse_suite(suite_text(archs=archs, steps=20)), device="cpu")
    short, long = (run_point(p, Settings()) for p in points)
    assert short.status == "skipped" and "cannot read the test length 18" in short.rows[0].error
    assert long.status == "ok" and any(r.metric == "ood_accuracy" for r in long.rows)


def test_the_report_section_tables_the_runs_and_draws_accuracy_against_length(tmp_path):
    from archbench.report import generalization
    from archbench.report.section import ReportData

    archs = "[lstm, {kind: transformer, label: nope, positional: none}]"
    points = expand(parse_suite(suite_text(archs=archs, steps=40)), device="cpu")
    frame = records_to_frame([run_point(p, Settings()).to_record("t") for p in points])
    data = ReportData(frame, {}, [], None, tmp_path, tmp_path, {"lstm": "#1f77b4", "nope": "#d62728"})
    section = generalization.section(data)
    assert section is not None and section.figures == ["lengths"] and (tmp_path / "lengths.png").exists()
    text = "\n".join(section.lines)
    ood = {r.arch: r.value for r in frame[frame.metric == "ood_accuracy"].itertuples()}
    table = generalization.delétang_table(generalization.scores(frame))
    assert list(table.columns) == ["task", "lstm", "nope", "guess (in / beyond)"]
    assert table.task.tolist() == ["parity_check"] and table.iloc[0, -1] == "0.500 / 0.500"
    assert table.lstm.iloc[0].rstrip("*") == f"{ood['lstm']:.3f}" and "**Verdict.**" in text
    assert data.findings and data.findings[0][1] == "lengths"


def test_fewest_layers_and_the_verdict_read_the_numbers():
    from archbench.report import generalization

    s = pd.DataFrame({"experiment": "w", "task": "word_problem (A5)", "arch": "lstm", "point_id": ["a", "b"],
                      "depth": [1, 2], "status": "ok", "ood_accuracy": [0.95, 0.2], "converged": 1.0,
                      "baseline_accuracy": 1 / 60})
    df = pd.DataFrame({"metric": "length_accuracy", "status": "ok", "point_id": ["a", "a", "b", "b"],
                       "test_length": [5, 20, 5, 20], "value": [0.95, 0.5, 0.99, 0.93], "task": "word_problem"})
    layers = generalization.fewest_layers(df, s)
    assert layers.to_dict("records") == [{"task": "word_problem (A5)", "arch": "lstm", "n=5": "1", "n=20": "2"}]
    assert generalization.verdict(s) == "Beyond the training length (ood_accuracy >= 0.9): lstm on word_problem (A5)."


def test_until_steps_trains_past_the_threshold_and_records_where_it_was_reached():
    from archbench.architectures.base import build_architecture
    from archbench.instruments.training import TrainingSettings, train

    task = build_task("parity_check", 4, True)
    def run(until):
        torch.manual_seed(0)
        model = build_architecture("lstm", vocab_size=2, d_model=16, layers=1)
        return train(model, task, TrainingSettings(steps=200, lr=1e-2, eval_every=20, eval_size=64, threshold=0.9,
                                                   until=until), seed=0, batch=16)
    stopped, fixed = run("budget"), run("steps")
    assert stopped.steps_to_threshold is not None and stopped.steps == stopped.steps_to_threshold < 200
    assert fixed.steps == 200 and fixed.steps_to_threshold == stopped.steps_to_threshold and fixed.converged


def test_the_shipped_suite_keeps_every_family_and_every_encoding_where_the_docs_say():
    """suites/generalization.yaml, cut to its budget (docs/generalization.md), still measures: every family; the
    LSTM, the RNN and the Transformer under each positional encoding on Delétang's three regular rows, trained
    on 1-20 and scored at 2-4x; the word problem of Z5, S3 and A5 over more than one depth."""
    from pathlib import Path
    from typing import get_args, get_type_hints

    from archbench import registry
    from archbench.architectures.transformer import Transformer

    encodings_allowed = set(get_args(get_type_hints(Transformer.__init__)["positional"]))
    from archbench.suite.load import load_suite

    points = expand(load_suite(Path(__file__).parents[1] / "suites" / "generalization.yaml"), device="cpu")
    assert {p.arch_kind for p in points} == {"lstm", "rnn", "tcn", "ssm", "transformer", "local_attention",
                                            "linear_attention"} <= set(registry.architectures.names())
    for task in ("parity_check", "cycle_navigation", "modular_arithmetic"):
        here = [p for p in points if p.task == task]
        assert {dict(p.task_params)["train_lengths"] for p in here} == {(1, 20)}
        assert {dict(p.task_params)["test_lengths"] for p in here} == {(10, 20, 40, 60, 80)}
        encodings = {dict(p.arch_params)["positional"] for p in here if p.arch_kind == "transformer"}
        assert encodings == encodings_allowed and len(encodings) == 6, task
        assert {"lstm", "rnn"} <= {p.arch_kind for p in here}, task
    words = [p for p in points if p.task == "word_problem"]
    assert {dict(p.task_params)["group"] for p in words} == {"cyclic", "S3", "A5"}
    for kind in ("transformer", "ssm"):
        assert {dict(p.arch_params)["layers"] for p in words if p.arch_kind == kind} == {1, 2}
