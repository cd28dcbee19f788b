"""The report of trained points: converged flags in the summary and tables, accuracy against compute."""
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from archbench.cli import cli

# tcn with one level cannot see copy_memory's delay: it plateaus at the guess (converged); the
# transformer is cut at 20 steps while still learning to reverse (not converged)
SUITE = """
name: acc
threads: 1
experiments:
  - name: copy
    architectures: [{kind: tcn, levels: 1}]
    task: {kind: copy_memory, symbols: 4}
    metrics: [accuracy]
    training: {steps: 20, lr: 1e-2, eval_every: 5, eval_size: 32, until: converged, max_steps: 400}
    sweep: {seq_len: 12, batch: 8, d_model: 16}
  - name: rev
    architectures: [{kind: transformer, heads: 2}]
    task: {kind: reverse, vocab_size: 4}
    metrics: [accuracy]
    training: {steps: 20, lr: 1e-2, eval_every: 5, eval_size: 32}
    sweep: {seq_len: 8, batch: 8, d_model: 16}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("acc")
    (root / "s.yaml").write_text(SUITE)
    result = CliRunner().invoke(cli, ["run", str(root / "s.yaml"), "--out", str(root / "results"), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = Path(next(x for x in result.output.splitlines() if x.startswith("results: ")).removeprefix("results: "))
    report = Path(next(x for x in result.output.splitlines() if x.startswith("report: ")).removeprefix("report: "))
    return folder, report.parent


def test_accuracy_csv_has_the_converged_column(run):
    folder, _ = run
    table = pd.read_csv(folder / "accuracy.csv").set_index("arch")
    assert table.loc["tcn", "converged"] == True and table.loc["transformer", "converged"] == False  # noqa: E712
    assert {"converged_seeds", "train_steps", "train_flops", "time_to_threshold", "flops_to_threshold"} <= set(table)
    results = pd.read_csv(folder / "results.csv")
    assert results[results.metric == "converged"].groupby("arch").value.first().to_dict() == {"tcn": 1.0,
                                                                                               "transformer": 0.0}


def test_the_summary_and_the_table_say_which_number_the_budget_decided(run):
    _, report = run
    md = (report / "report.md").read_text()
    summary = md[md.index("## Summary"): md.index("## Accuracy")]
    line = "transformer was still improving at step 20: the budget decides this number"
    assert "1 trained point of 2 did not converge (still improving when max_steps ran out" in summary
    assert summary.rstrip().endswith("rev/transformer 1.")
    assert f"({line.removeprefix('transformer ')})" in summary
    tables = md[md.index("## Accuracy"):]
    assert "| reached threshold | converged | steps | steps to threshold | s to threshold |" in tables
    assert f"- {line}." in tables
    assert "tcn was still improving" not in md
    # reached, converged, steps: the tcn stopped at its validation loss's plateau (step 50; the test loss's was at 40)
    assert "| 0/1 | 1/1 | 50 |" in tables and "| 0/1 | 0/1 | 20 |" in tables


def test_accuracy_against_training_flops_and_seconds_is_drawn(run):
    _, report = run
    stems = {p.stem for p in report.glob("*.png")}
    assert {"compute_copy", "compute_rev", "curves_copy", "accuracy_copy"} <= stems
    assert "![compute_rev](compute_rev.png)" in (report / "report.md").read_text()
