"""archbench history: many runs of one suite in commit order, the steps found at the commit where they
began, damaged folders skipped with one line, and the page and JSON it writes."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from archbench.cli import cli

FIXTURE = Path(__file__).parent / "fixtures" / "results_v1"
SLOW = 1.6  # the transformer's latency from the third commit on


def make_history(root: Path, runs: int = 5, slow_from: int = 2) -> list[str]:
    """``runs`` copies of the fixture run as results/fixture/<stamp>, one commit each (dated an hour apart,
    the folders named in the reverse order), with 1 % noise on every latency and the transformer's
    latency SLOW times higher from run ``slow_from`` on; returns the commits in order."""
    commits = []
    for i in range(runs):
        folder = root / "fixture" / f"2026112{9 - i}-000000"
        shutil.copytree(FIXTURE, folder)
        meta = json.loads((folder / "meta.json").read_text())
        commit = f"{i + 1:x}" * 40
        meta["environment"]["git"] = {"commit": commit, "dirty": False, "date": f"2026-11-01T{10 + i:02d}:00:00+00:00"}
        (folder / "meta.json").write_text(json.dumps(meta))
        frame = pd.read_csv(folder / "results.csv")
        latency = frame.metric == "latency"
        wobble = 1 + 0.01 * (((pd.RangeIndex(len(frame)) + 3 * i) % 3) - 1)  # -1 %, 0, +1 % by row and run
        frame.loc[latency, "value"] *= wobble[latency.values]
        if i >= slow_from:
            frame.loc[latency & (frame.arch == "transformer"), "value"] *= SLOW
        frame.to_csv(folder / "results.csv", index=False)
        commits.append(commit)
    return commits


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    root = tmp_path_factory.mktemp("history") / "results"
    return root, make_history(root)


def test_the_steps_are_the_slowed_points_at_the_commit_where_they_began(history):
    root, commits = history
    result = CliRunner().invoke(cli, ["history", str(root), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [r["commit"] for r in doc["runs"]] == commits           # commit order, not the folders' names
    frame = pd.read_csv(FIXTURE / "results.csv")
    slowed = set(frame[(frame.metric == "latency") & (frame.arch == "transformer")].point_id)
    assert {s["point_id"] for s in doc["steps"]} == slowed and len(doc["steps"]) == len(slowed)
    for step in doc["steps"]:
        assert (step["metric"], step["kind"], step["run"], step["commit"]) == ("latency", "regression", 2, commits[2])
        assert step["ratio"] == pytest.approx(SLOW, rel=0.03)
    series = {(s["point_id"], s["metric"]): s["values"] for s in doc["series"]}
    assert all(len(v) == 5 for v in series.values()) and len(series) >= frame[frame.status == "ok"].shape[0] - 2


def test_the_page_lists_each_step_and_draws_every_metric(history, tmp_path):
    root, commits = history
    result = CliRunner().invoke(cli, ["history", *sorted(str(p) for p in (root / "fixture").iterdir()),
                                      "--out", str(tmp_path / "page")])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "page" / "history.md").read_text()
    steps = md[md.index("## Steps"): md.index("## Runs")]
    assert steps.count("| regression | latency | [transformer") == 3 and f"{commits[2][:7]} (run 3)" in steps
    assert "improvement" not in steps and "lstm" not in steps
    page = (tmp_path / "page" / "index.html").read_text()
    metrics = set(pd.read_csv(FIXTURE / "results.csv").query("status == 'ok'").metric)
    for metric in metrics:
        assert f'id="history_{metric}_' in page, metric
    assert page.count("<img") == len(list((tmp_path / "page").glob("*.png"))) and "**" not in page


def test_a_damaged_run_is_skipped_with_one_line_and_too_few_is_an_error(history, tmp_path):
    root, _ = history
    copy = tmp_path / "results"
    shutil.copytree(root, copy)
    runs = sorted((copy / "fixture").iterdir())
    (runs[0] / "meta.json").write_text("{not json")
    (runs[1] / "results.csv").write_bytes(b"\x00\x01garbage")
    meta = json.loads((runs[2] / "meta.json").read_text())
    meta["environment"]["git"]["date"] = "yesterday"
    (runs[2] / "meta.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(cli, ["history", str(copy), "--format", "json", "-o", str(tmp_path / "h.json")])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 3 and "not JSON" in warnings[0] and "NUL byte" in warnings[1] and "yesterday" in warnings[2]
    assert len(json.loads((tmp_path / "h.json").read_text())["runs"]) == 2
    (runs[3] / "meta.json").write_text("[]")
    result = CliRunner().invoke(cli, ["history", str(copy)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.splitlines()[-1].startswith("error: a history needs at least 2 readable runs; found 1")


def test_bad_input_is_one_line(history, tmp_path):
    root, _ = history
    other = tmp_path / "other" / "20260101-000000"
    shutil.copytree(FIXTURE, other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "suite": "quick"}))
    cases = [([str(root), str(other)], "a history is of one suite"), ([str(tmp_path / "nope")], "is not a folder"),
             ([str(root), "--penalty", "-1"], "--penalty -1.0"),
             ([str(root), "--format", "csv"], "'csv' is not one of")]
    (tmp_path / "empty").mkdir()
    cases.append(([str(tmp_path / "empty")], "holds no results folder"))
    for args, message in cases:
        result = CliRunner().invoke(cli, ["history", *args])
        assert result.exit_code == 2 and message in result.output and len(result.output.splitlines()) == 1, (args, result.output)
