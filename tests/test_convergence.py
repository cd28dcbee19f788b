"""The convergence rule (archbench.results.convergence) on synthetic curves, and the budgets that use it."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from archbench import build_architecture
from archbench.errors import BadInput
from archbench.execute.group import Settings, run_point
from archbench.instruments.training import BACKWARD_FACTOR, TrainingSettings, train
from archbench.results.accuracy import accuracy_table, unconverged_lines
from archbench.results.convergence import MIN_EVALUATIONS, TOLERANCE, converged, plateaued, tail_length
from archbench.results.load import records_to_frame
from archbench.suite.load import parse_suite
from archbench.suite.plan import expand
from archbench.tasks import build_task

# ------------------------------------------------------------------------- the rule, on curves

RISING = [2.0 * 0.9 ** k for k in range(20)]             # the loss still falling 10 % an evaluation
PLATEAU = [2.0 * 0.7 ** k for k in range(8)] + [2.0 * 0.7 ** 8] * 12  # fell, then flat for 12 of 20
# flat at the guess with noise well inside the tolerance, the best value early on
NOISY = [2.08 + 0.004 * math.sin(3.7 * k) for k in range(20)]


def test_the_tail_is_the_last_quarter_at_least_two():
    assert [tail_length(n) for n in (4, 8, 9, 20, 100)] == [2, 2, 3, 5, 25]


def test_a_falling_loss_is_still_improving():
    assert not plateaued(RISING) and not converged(RISING, reached_threshold=False)


def test_a_flat_tail_is_a_plateau():
    assert plateaued(PLATEAU) and converged(PLATEAU, reached_threshold=False)


def test_noise_around_a_plateau_is_a_plateau():
    assert plateaued(NOISY)


def test_a_late_drop_after_a_long_plateau_is_improving():
    # the grokking shape of associative recall: flat at the guess, then the loss falls at the end
    curve = [2.08] * 15 + [2.0, 1.6, 1.1, 0.6, 0.2]
    assert not plateaued(curve)


def test_the_tolerance_is_relative_to_the_best_loss_before_the_tail():
    before = [1.0] * 12
    just_inside = before + [1.0 - 0.9 * TOLERANCE] * 4   # improved by less than the tolerance
    just_outside = before + [1.0 - 1.1 * TOLERANCE] * 4  # by more
    assert plateaued(just_inside) and not plateaued(just_outside)
    assert plateaued([10 * v for v in just_inside]) and not plateaued([10 * v for v in just_outside])


def test_an_early_stop_at_the_threshold_is_converged_however_the_curve_looks():
    short = [2.0, 1.0]  # stopped after two evaluations: reached the threshold
    assert not plateaued(short) and converged(short, reached_threshold=True)
    assert converged(RISING, reached_threshold=True)


def test_too_short_a_curve_is_not_a_plateau():
    assert not plateaued([1.0] * (MIN_EVALUATIONS - 1))
    assert plateaued([1.0] * MIN_EVALUATIONS)


def test_a_non_finite_loss_is_not_a_plateau():
    assert not plateaued([1.0, 1.0, float("nan"), 1.0, 1.0, 1.0])


# ---------------------------------------------------------------------------- budgets in train()


def _model(kind="tcn", vocab=10, **params):
    torch.manual_seed(0)
    return build_architecture(kind, vocab_size=vocab, **{"d_model": 16, **params})


def test_the_flops_budget_is_three_forwards_a_step():
    task = build_task("copy_memory", 12, True, symbols=4)
    model = _model(levels=2)
    per_step = 3 * model.flops(8, 12)  # the analytic count, independent of archbench.instruments.training
    budget = 7.5 * per_step
    result = train(model, task, TrainingSettings(steps=1000, flops_budget=budget, eval_every=2, eval_size=16,
                                                 threshold=1.0), seed=0, batch=8)
    assert BACKWARD_FACTOR == 3
    assert result.steps == 7 and result.flops_per_step == per_step and result.train_flops == 7 * per_step
    assert result.curve["flops"] == [2 * per_step, 4 * per_step, 6 * per_step, 7 * per_step]
    assert result.curve["step"] == [2, 4, 6, 7] and len(result.curve["time"]) == 4


class Plain(torch.nn.Module):
    """Follows the tensor contract but declares no analytic FLOP count."""

    def __init__(self, vocab_size: int, causal: bool = True):
        super().__init__()
        self.embed, self.head = torch.nn.Embedding(vocab_size, 8), torch.nn.Linear(8, vocab_size)

    def forward(self, x):
        return self.head(self.embed(x))


def test_a_flops_budget_needs_a_flop_count_and_without_one_the_curve_has_no_flops():
    task = build_task("copy_memory", 12, True, symbols=4)
    with pytest.raises(ValueError, match="flops_budget needs an analytic FLOP count"):
        train(Plain(task.vocab_size), task, TrainingSettings(steps=5, flops_budget=1e9), seed=0, batch=4)
    result = train(Plain(task.vocab_size), task, TrainingSettings(steps=4, eval_every=2, eval_size=8), seed=0, batch=4)
    assert "flops" not in result.curve and result.train_flops is None and result.flops_to_threshold is None


def test_until_converged_stops_at_a_plateau():
    # a TCN whose field (5) falls short of the delay cannot learn copy_memory: its loss settles at the guess
    task = build_task("copy_memory", 24, True, symbols=4)
    settings = TrainingSettings(steps=40, lr=1e-2, eval_every=10, eval_size=64, until="converged", max_steps=2000)
    result = train(_model(levels=1, kernel_size=3), task, settings, seed=0, batch=16)
    assert result.converged and result.steps_to_threshold is None
    assert 40 <= result.steps < 2000  # at least `steps`, stopped well before the ceiling
    assert plateaued(result.curve["val_loss"]) and result.steps == result.curve["step"][-1]
    assert not plateaued(result.curve["val_loss"][:-1]) or result.steps == 40  # it stopped at the first plateau


def test_until_converged_goes_past_steps_to_the_threshold():
    task = build_task("reverse", 8, False, vocab_size=4)
    budget = TrainingSettings(steps=20, lr=1e-2, eval_every=10, eval_size=64, threshold=0.9)
    until = TrainingSettings(steps=20, lr=1e-2, eval_every=10, eval_size=64, threshold=0.9, until="converged",
                             max_steps=3000)
    short = train(_model("transformer", vocab=task.vocab_size), task, budget, seed=0, batch=32)
    long = train(_model("transformer", vocab=task.vocab_size), task, until, seed=0, batch=32)
    assert short.steps == 20 and short.steps_to_threshold is None and not short.converged
    assert long.steps_to_threshold == long.steps > 20 and long.converged and long.val_accuracy >= 0.9
    assert long.accuracy == long.curve["eval_accuracy"][-1]  # reported on test (0.895 here): the stop read validation
    # the *_to_threshold values are read off the curve at the step that reached it
    assert long.time_to_threshold == long.curve["time"][-1] > 0
    assert long.flops_to_threshold == long.steps * long.flops_per_step == long.curve["flops"][-1]


def test_the_schedule_of_until_converged_decays_over_max_steps():
    s = TrainingSettings(steps=100, lr=1.0, warmup=0.1, until="converged", max_steps=1000)
    budget = TrainingSettings(steps=1000, lr=1.0, warmup=0.1)
    assert s.step_limit == 1000 and [s.lr_at(k) for k in range(1000)] == [budget.lr_at(k) for k in range(1000)]
    assert s.lr_at(99) == pytest.approx(1.0) and s.lr_at(999) == pytest.approx(0.1, abs=0.01)
    assert TrainingSettings(steps=100, max_steps=1000).step_limit == 100  # until budget: steps is the budget


# ---------------------------------------------------------------------- the suite, the rows, the table


def suite(training: str, archs: str = "[{kind: tcn, levels: 1}]", task: str = "{kind: copy_memory, symbols: 4}"):
    return parse_suite(f"""
name: t
seeds: [0, 1]
experiments:
  - name: e
    architectures: {archs}
    task: {task}
    metrics: [accuracy]
    training: {training}
    sweep: {{seq_len: 12, batch: 8, d_model: 16}}
""")


@pytest.mark.parametrize("training, message", [
    ("{until: converged}", "experiments[0].training: until: converged needs max_steps"),
    ("{max_steps: 500}", "experiments[0].training: max_steps is the ceiling of until: converged"),
    ("{until: converged, steps: 100, max_steps: 50}", "max_steps 50 is below steps 100"),
    ("{until: forever}", "experiments[0].training.until: Input should be 'budget', 'converged' or 'steps', got 'forever'"),
    ("{flops_budget: 0}", "experiments[0].training.flops_budget: Input should be greater than 0"),
])
def test_bad_budgets(training, message):
    with pytest.raises(BadInput) as exc:
        suite(training)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_new_budget_settings_change_no_id_of_a_point_that_does_not_set_them():
    plain = expand(suite("{steps: 20}"), device="cpu")
    assert all(set(dict(p.training)) == {"steps", "lr", "warmup", "weight_decay", "clip", "time_budget",
                                         "eval_every", "eval_size", "threshold"} for p in plain)
    until = expand(suite("{steps: 20, until: converged, max_steps: 40}"), device="cpu")
    flops = expand(suite("{steps: 20, flops_budget: 1e9}"), device="cpu")
    assert dict(until[0].training)["until"] == "converged" and dict(flops[0].training)["flops_budget"] == 1e9
    assert len({p.id for p in plain + until + flops}) == 6


def test_every_trained_point_has_a_converged_row_and_the_table_a_converged_column():
    # tcn with one level cannot see the delay: it settles at the guess and stops on the plateau;
    # the transformer is cut at 20 steps while still learning
    s = suite("{steps: 20, lr: 1e-2, eval_every: 5, eval_size: 32, until: converged, max_steps: 400}",
              archs="[{kind: tcn, levels: 1}]")
    budget = suite("{steps: 20, lr: 1e-2, eval_every: 5, eval_size: 32}", archs="[{kind: transformer, heads: 2}]",
                   task="{kind: reverse, vocab_size: 4}")
    points = expand(s, device="cpu") + expand(budget, device="cpu")
    records = [run_point(p, Settings()).to_record("t") for p in points]
    frame = records_to_frame(records)
    flags = frame[frame.metric == "converged"].set_index("arch").value
    assert len(flags) == 4 and flags["tcn"].eq(1.0).all() and flags["transformer"].eq(0.0).all()
    acc = frame[frame.metric == "accuracy"].set_index("arch").converged
    assert acc["tcn"].eq(True).all() and acc["transformer"].eq(False).all()
    table = accuracy_table(frame).set_index("arch")
    assert table.loc["tcn", "converged"] == True and table.loc["tcn", "converged_seeds"] == 2  # noqa: E712
    assert table.loc["transformer", "converged"] == False  # noqa: E712
    assert not (frame.metric.isin(["steps_to_threshold", "time_to_threshold", "flops_to_threshold"])).any()
    lines = unconverged_lines(frame)
    assert lines == [f"e/transformer (seed {k}) was still improving at step 20: the budget decides this number"
                     for k in (0, 1)]


def test_threshold_rows_only_when_reached():
    s = suite("{steps: 300, lr: 1e-2, eval_every: 10, eval_size: 64, threshold: 0.9}",
              archs="[{kind: transformer, heads: 2}]", task="{kind: reverse, vocab_size: 4}")
    [first, _] = expand(s, device="cpu")
    rows = {r.metric: r.value for r in run_point(first, Settings()).rows}
    assert rows["converged"] == 1.0 and rows["steps_to_threshold"] == rows["train_steps"] < 300
    assert rows["flops_to_threshold"] == rows["train_flops"] > 0 and 0 < rows["time_to_threshold"] <= rows["train_time"]


def test_unconverged_lines_name_the_setting_that_varies():
    rows = []
    for pid, lr, flag in (("a", 0.001, 0.0), ("b", 0.01, 1.0)):
        for metric, value in (("converged", flag), ("train_steps", 600.0), ("accuracy", 0.5)):
            rows.append(dict(point_id=pid, metric=metric, value=value, status="ok", seed=0, experiment="mqar",
                             arch="lstm", task="mqar", causal=True, seq_len=64, batch=32, d_model=64,
                             **{"train.lr": lr}))
    frame = pd.DataFrame(rows)
    assert unconverged_lines(frame) == [
        "mqar/lstm (lr=0.001, seed 0) was still improving at step 600: the budget decides this number"]
    assert unconverged_lines(frame[frame.point_id == "b"]) == []


@pytest.mark.parametrize("name", ["accuracy", "accuracy_architectures", "quick"])
def test_the_shipped_suites_train_until_converged(name):
    # every number they print is converged, or flagged as the budget's: no fixed-budget verdicts
    from pathlib import Path

    from archbench.suite.load import load_suite

    points = expand(load_suite(Path(__file__).parents[1] / "suites" / f"{name}.yaml"), device="cpu")
    trained = [dict(p.training) for p in points if p.training]
    assert trained and all(t["until"] == "converged" and t["max_steps"] >= t["steps"] for t in trained)


def test_compare_says_when_a_trained_point_did_not_converge(tmp_path):
    """The gate names an unconverged point's accuracy as the budget's verdict, in the row and a warning."""
    from archbench.gate.judge import compare

    suite = parse_suite("""
name: conv
threads: 1
experiments:
  - name: e
    architectures: [{kind: transformer, heads: 2}]
    task: {kind: copy_memory}
    metrics: [accuracy]
    training: {steps: 20, eval_every: 10, eval_size: 64}
    sweep: {seq_len: 24, batch: 8, d_model: 16}
""", "conv.yaml")
    [point] = expand(suite, device="cpu")
    record = run_point(point, Settings()).to_record("conv")
    flags = {r["metric"]: r["value"] for r in record["rows"]}
    assert flags["converged"] == 0.0  # 20 steps of copy memory: still learning
    for name in ("base", "head"):
        folder = tmp_path / name
        folder.mkdir()
        records_to_frame([record]).to_csv(folder / "results.csv", index=False)
    cmp = compare(tmp_path / "base", tmp_path / "head")
    [acc] = [c for c in cmp.changes if c.metric == "accuracy"]
    assert "the budget decides this number" in acc.detail
    assert sum("did not converge" in w for w in cmp.warnings) == 2 and not cmp.failed
