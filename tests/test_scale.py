"""Sweeps that scale: resident workers (reused, replaced after a crash and after RECYCLE groups),
groups only where points are measured together, longest trained points first, --shard I/N, and
archbench merge (a 2-shard run merged equals the unsharded run; damaged or mismatched input is one
line, exit 2).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from archbench import registry
from archbench.cli import cli
from archbench.execute.executors.pool import WorkerPool
from archbench.execute.executors.process import jobs_of, results_of
from archbench.execute.executors.worker import plugins_of
from archbench.execute.group import Settings
from archbench.execute.schedule import estimate, groups
from archbench.execute.shard import parse_shard, shard_points
from archbench.suite.load import parse_suite
from archbench.suite.plan import expand

sys.path.insert(0, str(Path(__file__).parent))  # tests/plugins, for this process and its workers
from plugins import faulty

MIXED = """
name: mixed
device: cpu
experiments:
  - name: timed
    architectures: [lstm, {kind: tcn, levels: 2}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [latency]
    sweep: {seq_len: [8, 16], batch: 1, d_model: 8}
  - name: analytic
    architectures: [lstm, {kind: tcn, levels: 2}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [flops]
    sweep: {seq_len: [8, 16], batch: 1, d_model: 8}
  - name: trained
    architectures: [{kind: lstm, layers: 1}, {kind: tcn, levels: 2}]
    task: {kind: reverse, vocab_size: 8}
    metrics: [accuracy]
    training: {steps: 20}
    sweep: {seq_len: [8, 32], batch: 8, d_model: 8}
"""

DET = """
name: det
device: cpu
experiments:
  - name: det
    architectures: [lstm, {kind: tcn, levels: 2}, {kind: transformer, heads: 2, layers: 1}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [flops, graph, receptive_field]
    sweep: {seq_len: [8, 16], batch: 1, d_model: 8}
  - name: timed
    architectures: [lstm, {kind: tcn, levels: 2}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [flops, peak_memory]
    sweep: {seq_len: [8, 16], batch: 1, d_model: 8}
"""


def points_of(text: str):
    return expand(parse_suite(text, "suite.yaml"))


# ------------------------------------------------------------------------------- grouping


def test_only_points_measured_together_are_grouped_and_trained_points_go_longest_first():
    points = points_of(MIXED)
    units = groups(points)
    by_experiment = {}
    for unit in units:
        by_experiment.setdefault(unit[0].experiment, []).append(len(unit))
    assert by_experiment == {"timed": [2, 2], "analytic": [1] * 4, "trained": [1] * 4}
    ordered = groups(points, longest_first=True)
    assert [u[0].experiment for u in ordered[:4]] == ["trained"] * 4
    costs = [estimate(u[0]) for u in ordered[:4]]
    assert costs == sorted(costs, reverse=True) and costs[0] == 20 * 8 * 32 * 8**2  # steps x batch x n x d^2
    assert [u for u in ordered[4:]] == [u for u in units if u[0].experiment != "trained"]  # the rest in plan order
    assert groups(points, interleave=False) == [[p] for p in points]


# --------------------------------------------------------------------------------- shards


def test_shards_are_deterministic_disjoint_complete_and_keep_timed_groups_whole():
    points = points_of(MIXED)
    for count in (1, 2, 3, 5):
        shards = [shard_points(points, True, i, count) for i in range(1, count + 1)]
        ids = [p.id for s in shards for p in s]
        assert sorted(ids) == sorted(p.id for p in points) and len(set(ids)) == len(ids)
        assert shards == [shard_points(points_of(MIXED), True, i, count) for i in range(1, count + 1)]
        for unit in groups(points):
            assert sum(all(p in s for p in unit) for s in shards) == 1  # each group whole, in one shard
    first, second = (shard_points(points, True, i, 2) for i in (1, 2))
    assert abs(len(first) - len(second)) <= 2
    trained = [sum(estimate(p) or 0 for p in s) for s in (first, second)]
    assert min(trained) > 0  # the trained points are dealt out, not all to one shard


@pytest.mark.parametrize("value, message", [
    ("3/2", "--shard '3/2': 3 is not a shard of 2; give I/N with whole numbers 1 <= I <= N"),
    ("0/2", "--shard '0/2': 0 is not a shard of 2"),
    ("1-2", "--shard '1-2': give I/N with whole numbers 1 <= I <= N, such as 1/4"),
    ("a/b", "--shard 'a/b': give I/N"),
])
def test_a_bad_shard_is_one_line_and_writes_nothing(value, message, tmp_path):
    with pytest.raises(Exception, match="^" + message.replace("(", r"\(")):
        parse_shard(value)
    path = tmp_path / "s.yaml"
    path.write_text(DET)
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "out"), "--shard", value])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    [line] = result.stderr.splitlines()
    assert line.startswith("error: " + message)


# ------------------------------------------------------------------------ resident workers


def test_a_resident_worker_is_reused_replaced_after_a_crash_and_recycled(tmp_path):
    registry.architectures.add("tiny", faulty.Tiny)
    registry.architectures.add("exits", faulty.Exits)
    try:
        suite = DET.split("  - name: timed")[0].replace("[lstm, {kind: tcn, levels: 2}, {kind: transformer, heads: 2, "
                                                        "layers: 1}]", "[tiny, exits]")
        tiny, exits = [p for p in points_of(suite) if p.seq_len == 8]
        pool = WorkerPool(1, recycle=2)
        try:
            def run(point):
                whole, _ = jobs_of([point], Settings(), plugins_of([point]))
                return results_of([point], [pool.run(whole, None, 1)])[0]

            assert [run(tiny).status for _ in range(2)] == ["ok"] * 2
            assert pool.started == 1 and len(pool.startups) == 1  # two groups, torch imported once
            assert run(tiny).status == "ok" and pool.started == 2  # recycled after 2 groups
            crashed = run(exits)  # on the same (second) worker, which it ends
            assert crashed.status == "error" and "exited with code 3" in crashed.rows[0].error
            assert pool.started == 2 and not pool._idle  # the dead worker is not handed out again
        finally:
            pool.close()
    finally:
        registry.architectures.remove("tiny")
        registry.architectures.remove("exits")


# ---------------------------------------------------------------------------------- merge


def cli_run(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def folder_of(result) -> Path:
    return Path(next(line for line in result.stdout.splitlines() if line.startswith("results: "))[9:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The DET suite run whole and in two shards, and the shards merged."""
    tmp = tmp_path_factory.mktemp("shards")
    path = tmp / "det.yaml"
    path.write_text(DET)
    folders = {}
    for name, extra in (("whole", []), ("s1", ["--shard", "1/2"]), ("s2", ["--shard", "2/2"])):
        result = cli_run("run", path, "--out", tmp / name, "--no-progress", "--no-report", *extra)
        assert result.exit_code == 0, result.output
        folders[name] = folder_of(result)
    merged = cli_run("merge", folders["s1"], folders["s2"], "--out", tmp / "merged")
    assert merged.exit_code == 0, merged.output
    folders["merged"] = folder_of(merged)
    return tmp, folders


DETERMINISTIC = ("flops", "graph_work", "graph_depth", "rf_theoretical", "rf_empirical")


def test_two_shards_merged_equal_the_whole_run_and_compare_as_one(runs):
    tmp, f = runs
    s1, s2 = (json.loads((f[s] / "meta.json").read_text()) for s in ("s1", "s2"))
    assert s1["shard"] == {"index": 1, "count": 2, "suite_points": 10} and len(s1["point_ids"]) + len(s2["point_ids"]) == 10
    whole, merged = (pd.read_csv(f[s] / "results.csv") for s in ("whole", "merged"))
    assert sorted(merged.point_id.unique()) == sorted(whole.point_id.unique())
    assert not merged.duplicated(["point_id", "metric"]).any() and (merged.status == "ok").all()
    det = lambda df: df[df.metric.isin(DETERMINISTIC)].set_index(["point_id", "metric"]).value.sort_index()  # noqa: E731
    assert len(det(whole)) > 0
    pd.testing.assert_series_equal(det(merged), det(whole))
    meta = json.loads((f["merged"] / "meta.json").read_text())
    assert sorted(meta["point_ids"]) == sorted(json.loads((f["whole"] / "meta.json").read_text())["point_ids"])
    assert [s["shard"]["index"] for s in meta["merged"]["shards"]] == [1, 2] and "shard" not in meta
    assert meta["merged"]["shards"][0]["folder"] == str(f["s1"].resolve()) and meta["statuses"] == {"ok": 10}
    lines = {s: (f[s] / "artifacts.jsonl").read_text().splitlines() if (f[s] / "artifacts.jsonl").exists() else []
             for s in ("s1", "s2", "merged")}
    assert sorted(lines["merged"]) == sorted(lines["s1"] + lines["s2"]) and lines["merged"]  # each shard's arrays, once
    compared = cli_run("compare", f["whole"], f["merged"], "--format", "json")
    assert compared.exit_code == 0, compared.output


def damaged(tmp: Path, folder: Path, name: str, change) -> Path:
    copy = tmp / "damaged" / name
    shutil.copytree(folder, copy)
    change(copy)
    return copy


def test_bad_merge_input_is_one_line_exit_2_and_writes_nothing(runs):
    tmp, f = runs

    def line(path: Path, text: str) -> None:
        with open(path / "records.jsonl", "a") as out:
            out.write(text + "\n")

    def meta_edit(**changes):
        def change(path: Path) -> None:
            meta = json.loads((path / "meta.json").read_text())
            meta.update(changes)
            (path / "meta.json").write_text(json.dumps(meta))
        return change

    first = json.loads((f["s1"] / "records.jsonl").read_text().splitlines()[0])
    stranger = {**first, "point": {**first["point"], "id": "0123456789ab"}}
    cases = [
        ([f["s1"]], "shard 2/2 is missing: give the folders of all 2 shards"),
        ([f["s1"], f["s1"]], "given twice"),
        ([f["s1"], f["whole"]], "not a shard (run without --shard), merged with shards"),
        ([f["s1"], tmp / "nowhere"], "not a results folder"),
        ([f["s1"], damaged(tmp, f["s2"], "json", lambda p: line(p, "[1, 2]"))], "records.jsonl': line"),
        ([f["s1"], damaged(tmp, f["s2"], "nul", lambda p: line(p, "\0"))], "binary data"),
        ([f["s1"], damaged(tmp, f["s2"], "stranger", lambda p: line(p, json.dumps(stranger)))],
         "point 0123456789ab is not one of its run's points"),
        ([f["s1"], damaged(tmp, f["s2"], "sha", meta_edit(suite_sha256="0" * 64))], "run from another suite file"),
        ([f["s1"], damaged(tmp, f["s2"], "index", meta_edit(shard={"index": 1, "count": 2, "suite_points": 10}))],
         "are the same shard"),
        ([f["s1"], damaged(tmp, f["s2"], "bad", meta_edit(shard={"index": 3, "count": 2, "suite_points": 10}))],
         "'shard' is not {index, count, suite_points}"),
        ([f["s1"], damaged(tmp, f["s2"], "ids", meta_edit(point_ids=json.loads((f["s2"] / "meta.json").read_text())
                                                          ["point_ids"] + [first["point"]["id"]]))], "is in both"),
    ]
    for folders, message in cases:
        result = cli_run("merge", *folders, "--out", tmp / "refused")
        assert result.exit_code == 2, (message, result.output)
        [err] = result.stderr.splitlines()
        assert err.startswith("error: ") and message in err, (message, err)
        assert not (tmp / "refused").exists()


def test_a_shard_resumes_as_itself_and_another_shard_is_refused(runs):
    tmp, f = runs
    again = cli_run("run", tmp / "det.yaml", "--resume", f["s1"], "--no-progress", "--no-report")
    assert again.exit_code == 0 and "0 points, 0 rows" in again.stdout, again.output
    other = cli_run("run", tmp / "det.yaml", "--resume", f["s1"], "--shard", "2/2")
    assert other.exit_code == 2
    [line] = other.stderr.splitlines()
    assert line == f"error: --shard 2/2: {f['s1']} was shard 1/2; resume it without --shard"
