"""The ``instructions`` metric: Callgrind's count per call, its skips, its rule in the gate. Its real
counts under Valgrind are in tests/test_gate_threshold.py, where one Callgrind process counts them all
(importing torch under Valgrind was most of each count's cost)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import shutil
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from archbench import registry
from archbench.execute import callgrind as server
from archbench.execute.group import Settings, run_group
from archbench.gate.judge import judge
from archbench.gate.rules import DEFAULT_RULES, RuleBook, suite_rules
from archbench.instruments import callgrind
from archbench.metrics.instructions import Instructions
from archbench.suite.load import load_suite, parse_suite
from archbench.suite.plan import expand

ROOT = Path(__file__).resolve().parents[1]
# tests/plugins, for this process and the Callgrind process: named as `plugins.slowed`, from a folder on
# the path, not as `tests.plugins.slowed` from the current directory, which archbench refuses to import
# from unless PYTHONPATH names it (it passed only when another test had imported `tests` first)
sys.path.insert(0, str(Path(__file__).parent))

SUITE = """
name: t
device: cpu
threads: 1
plugins: [plugins.slowed]
experiments:
  - name: e
    architectures: [{kind: lstm, layers: 1}, {kind: slowed_lstm, layers: 1}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [instructions]
    passes: [forward]
    sweep: {seq_len: 16, batch: 2, d_model: 8}
"""


def _points(text: str = SUITE):
    return expand(parse_suite(text, "t.yaml", allow_plugins=True), source="t.yaml", device="cpu")


def test_totals_reads_a_callgrind_dump(tmp_path):
    dump = tmp_path / "callgrind.out.3"
    dump.write_text("# callgrind format\nversion: 1\ncmd: python\nevents: Ir\nsummary: 3694214\n"
                    "fn=(1) foo\n0 12\ntotals: 3694214\n")
    assert callgrind.totals(dump) == 3694214
    (tmp_path / "empty").write_text("events: Ir\n")
    with pytest.raises(ValueError, match="no 'totals:'"):
        callgrind.totals(tmp_path / "empty")


def test_counting_outside_callgrind_is_refused(monkeypatch):
    monkeypatch.delenv(callgrind.ENV, raising=False)
    assert not callgrind.inside()
    with pytest.raises(RuntimeError, match="not running under Callgrind"):
        callgrind.count(lambda: None)


def test_count_all_runs_each_phase_over_every_callable_and_tells_each_as_it_is_counted(monkeypatch, tmp_path):
    """The first calls of all, then the warm-ups of all, then the samples of each (told at once); a
    callable that raises has its exception and the others go on. Counted by a stand-in for Callgrind's
    dumps (no Valgrind): each call of ``fn`` costs its weight."""
    calls: list[str] = []
    monkeypatch.setenv(callgrind.ENV, str(tmp_path / "callgrind.out"))
    monkeypatch.setattr(callgrind._Dumps, "counted", lambda self, fn, n: sum(fn() or 0 for _ in range(n)) + 5)

    def fn(name: str, weight: int, fails_at: int | None = None):
        def call() -> int:
            calls.append(name)
            if calls.count(name) == fails_at:
                raise ValueError(f"{name} failed")
            return weight
        return call

    told = []
    out = callgrind.count_all([fn("a", 100), fn("b", 200, fails_at=2), fn("c", 300)], samples=3, warmup=2,
                              switch=False, counted=lambda i, m: told.append((i, m, list(calls))))
    assert calls == ["a", "b", "c", "a", "a", "b", "c", "c", "a", "a", "a", "c", "c", "c"]
    a, b, c = out
    assert (a.samples, a.cold, c.samples, c.cold) == ((100.0,) * 3, 100.0, (300.0,) * 3, 300.0)  # empty call's 5 off
    assert isinstance(b, ValueError) and "b failed" in str(b)
    assert [(i, m) for i, m, _ in told] == [(0, a), (1, b), (2, c)]
    assert told[0][2] == calls[:11]  # a's samples were told before c's were counted


def test_the_callgrind_process_counts_what_has_arrived_in_batches(tmp_path, monkeypatch):
    """Every request that has arrived is read at once; consecutive ones with the same rule and threads
    are counted together, up to BATCH points; a request's reply goes as soon as all its points are told."""
    from archbench.execute import callgrind_child as child
    from archbench.metrics.base import Row
    from archbench.stop_rule import StopRule

    r, w = os.pipe()
    arrived = child._arrived(r)
    os.write(w, b"request-1.pkl\nrequest-2.pkl\n")
    assert next(arrived) == ["request-1.pkl", "request-2.pkl"]
    os.write(w, b"request-3.pkl\nrequest-4.pkl\n")
    os.close(w)
    assert next(arrived) == ["request-3.pkl", "request-4.pkl"]
    assert next(arrived, None) is None

    points = _points()
    rules = [StopRule(), StopRule(), StopRule(), StopRule(min_samples=7)]
    for k, rule in enumerate(rules, 1):
        (tmp_path / f"request-{k}.pkl").write_bytes(pickle.dumps(server.Request(tuple(points), rule, ())))
    names = [f"request-{k}.pkl" for k in range(1, 5)]
    assert [[n for n, _ in b] for b in child._batches(tmp_path, names)] == [names[:3], names[3:]]
    monkeypatch.setattr(child, "BATCH", 4)
    assert [[n for n, _ in b] for b in child._batches(tmp_path, names)] == [names[:2], names[2:3], names[3:]]

    [batch, _] = list(child._batches(tmp_path, names))[:2]
    replies = child._Replies(tmp_path, batch)
    first = batch[0][1].points
    replies.tell(first[0], [Row("instructions", 5.0, "instructions", False)])
    assert not (tmp_path / "reply-1.pkl").exists()  # one of its two points told
    replies.tell(first[1], ValueError("boom"))
    [ok, failed] = pickle.loads((tmp_path / "reply-1.pkl").read_bytes())
    assert ok.rows[0].value == 5.0 and failed.rows[0].status == "error" and "boom" in failed.rows[0].error
    assert not (tmp_path / "reply-2.pkl").exists()


def test_without_valgrind_every_point_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    results = run_group(_points(), Settings())
    for res in results:
        [row] = res.rows
        assert (row.metric, row.unit, row.status, res.status) == ("instructions", "instructions", "skipped", "skipped")
        assert math.isnan(row.value) and "valgrind is not installed" in row.error


def test_cuda_points_are_skipped():
    out = Instructions().run_group([SimpleNamespace(device=torch.device("cuda", 0))])
    [[row]] = out
    assert row.status == "skipped" and "CPU only" in row.error and "cuda" in row.error


def test_the_gate_calls_one_percent_more_instructions_a_regression():
    rule = RuleBook().rule("instructions")
    assert rule == DEFAULT_RULES["instructions"] and rule.threshold == 0.01
    base = [3_694_214.0, 3_694_301.0, 3_694_190.0, 3_694_250.0, 3_694_222.0]
    for shift, expected in ((0.003, "unchanged"), (0.015, "regressed"), (-0.015, "improved")):
        cur = [v * (1 + shift) for v in base]
        category, p, _ = judge(base[0], cur[0], False, rule, base, cur, timed=True)
        assert category == expected, (shift, p)
    # tied counts (5 against 5, all equal within each run) still reach the rule's level
    category, p, _ = judge(1e6, 1.02e6, False, rule, [1e6] * 5, [1.02e6] * 5, timed=True)
    assert category == "regressed" and p < rule.alpha


def test_the_ci_suite_counts_and_gates_instructions():
    suite = load_suite(ROOT / "suites" / "ci.yaml")
    latency = next(e for e in suite.experiments if e.name == "latency")
    assert "instructions" in latency.metrics and "latency" in latency.metrics
    rules = suite_rules((ROOT / "suites" / "ci.yaml").read_text(), "ci.yaml")
    assert rules["instructions"]["threshold"] <= 0.02 < rules["latency"]["threshold"]


def test_the_slowed_architectures_do_the_extra_work(monkeypatch, tmp_path):
    from plugins.slowed import ENV, extra_positions

    monkeypatch.delenv(ENV, raising=False)
    assert extra_positions(256) == 0
    monkeypatch.setenv(ENV, "0.05")
    assert extra_positions(256) == 13 and extra_positions(10) == 1
    extra = tmp_path / "extra"  # @FILE: read at each call, so one process counts runs of different fractions
    extra.write_text("")
    monkeypatch.setenv(ENV, f"@{extra}")
    assert extra_positions(256) == 0
    extra.write_text("0.05\n")
    assert extra_positions(256) == 13


# ------------------------------------------------------------ the calibration script, on synthetic runs

def _run(folder: Path, counts: list[float], lat: list[float]) -> Path:
    """A results folder with one point's latency and instructions, their samples, and ci.yaml's rules."""
    folder.mkdir(parents=True)
    point = {"suite": "s", "experiment": "latency", "point_id": "aaaaaaaaaaaa", "arch": "lstm", "task": "uniform",
             "seq_len": 64, "batch": 4, "pass": "forward", "seed": 0, "device": "cpu", "dtype": "float32",
             "status": "ok", "error": None}
    rows = [{**point, "metric": "latency", "value": statistics.median(lat), "unit": "s", "higher_is_better": False,
             "n": len(lat)},
            {**point, "metric": "instructions", "value": statistics.median(counts), "unit": "instructions",
             "higher_is_better": False, "n": len(counts)}]
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    with open(folder / "samples.jsonl", "w") as f:
        for metric, vals in (("latency", lat), ("instructions", counts)):
            f.write(json.dumps({"point_id": "aaaaaaaaaaaa", "metric": metric, "calls": 1, "samples": vals}) + "\n")
    (folder / "suite.yaml").write_text("name: s\nexperiments: []\ncompare:\n  latency: {threshold: 0.2}\n")
    return folder


def test_calibration_reports_spread_false_alarms_and_real_slowdowns(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from calibrate_gate import main

    rng = np.random.default_rng(0)
    counts = [3.6e6 * (1 + 0.001 * k) for k in range(5)]  # unchanged code: runs 0.4 % apart at most

    def lat(scale: float) -> list[float]:
        return list(1e-3 * scale * rng.lognormal(0, 0.02, 20))

    runs = [str(_run(tmp_path / f"base-{k}", [c * (1 + 1e-5 * i) for i in range(5)], lat(1 + 0.05 * k)))
            for k, c in enumerate(counts[:3])]
    slowed = {f: str(_run(tmp_path / f"slow-{f}", [3.6e6 * (1 + f)] * 5, lat(1 + f))) for f in (0.005, 0.03, 0.5)}
    assert main([*runs, *(f"--slowed={f}={p}" for f, p in slowed.items())]) == 0
    out = capsys.readouterr().out
    assert "on instructions rows alone (instructions: threshold 1%): 0 of 6 pairs fail" in out
    assert "run-to-run spread over 3 runs" in out and "0.200%" in out  # (3.6072 - 3.6) / 3.6036
    assert "smallest slowdown of instructions caught in every pair: 2%" in out
    # real slowdowns: 0.5 % is inside the rule, 3 % is caught by the count, only 50 % by time (the base runs drift 10 %)
    line = out.split("smallest real slowdown caught in every pair, per point")[1].splitlines()[-1]
    assert line.split()[-2:] == ["3%", "50%"]


def test_a_callgrind_process_that_dies_is_an_error_naming_its_last_output(monkeypatch, tmp_path):
    """The child's failure is the group's exception (each point an ``error`` row), not a hang."""
    counter = server.Counter()
    fake = tmp_path / "valgrind"
    fake.write_text("#!/bin/sh\necho 'valgrind: no such tool' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    with pytest.raises(server.CallgrindError, match="exited with code 3 .*no such tool"):
        counter.count(_points()[:1], Settings().rule)
    assert counter.proc is None and counter.folder is None


def test_the_counts_are_asked_for_when_the_run_starts_and_picked_up_by_the_group(monkeypatch, tmp_path):
    """launch_for asks for every counted point at once (one request each), before any group runs; the
    group then waits for those replies instead of asking again, and a point not asked for is asked
    then. A stand-in ``valgrind`` runs the child without Valgrind: its counts fail (no dump file) but
    every point gets its own row back, from the request that asked for it."""
    for name, body in (("valgrind", f'env > {tmp_path}/env.txt\nwhile [ "${{1#--}}" != "$1" ]; do shift; done\nexec "$@"'),
                       ("callgrind_control", "echo OK")):
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    counter = server.Counter()
    monkeypatch.setattr(server, "_COUNTER", counter)
    beside = [dataclasses.replace(p, metrics=("flops", "instructions")) for p in _points()]  # the child's ids differ
    try:
        assert server.launch_for(_points()) and server.launch_for(beside)
        assert counter.requests == 4 and len(counter.asked) == 4
        results = run_group(_points(), Settings())
        assert counter.requests == 4 and len(counter.asked) == 2  # nothing asked twice
        counted = counter.count(beside, Settings().rule)
        assert counter.requests == 4 and counter.asked == {} and counter.done == {}
        [[again]] = counter.count([_points()[0]], Settings().rule)
        assert counter.requests == 5
    finally:
        counter.close()
    for res in results:
        [row] = [r for r in res.rows if r.metric == "instructions"]
        assert row.status == "error" and "callgrind.out" in row.error  # counted outside Valgrind: no dump
    assert again.status == "error" and all(row.status == "error" and "callgrind.out" in row.error for [row] in counted)
    env = (tmp_path / "env.txt").read_text().splitlines()
    assert all(f"{k}={v}" in env for k, v in server.PORTABLE_KERNELS.items())  # the kernels without FMA
    assert "PYTHONHASHSEED=0" in env  # one hash seed: the same counts run to run


def test_client_requests_are_no_ops_outside_valgrind(monkeypatch):
    """The x86-64 stub that switches Callgrind's instrumentation answers 0 (not under Valgrind) and
    changes nothing; ARCHBENCH_NO_VALGRIND skips the metric as if Valgrind were missing."""
    answer = callgrind.request(callgrind.RUNNING_ON_VALGRIND)
    assert answer in (0, None)  # None: a platform without the stub
    assert callgrind.switches_instrumentation() is False
    assert callgrind.request(callgrind.START_INSTRUMENTATION) in (0, None)
    monkeypatch.setenv(callgrind.OFF, "1")
    assert callgrind.OFF in (callgrind.unavailable() or "")
    [res] = run_group(_points()[:1], Settings())
    assert res.rows[0].status == "skipped" and callgrind.OFF in res.rows[0].error


def test_the_executor_routes_a_metric_that_runs_under_callgrind_by_its_flag(monkeypatch):
    """run_group sends a metric with ``under_callgrind`` to the Callgrind process (here a stand-in that
    answers for it), and runs one without the flag here; inside Callgrind the metric counts itself."""
    asked: list[tuple[list[str], str]] = []

    class Standin:
        def count(self, points, rule, metric):
            asked.append(([p.arch_kind for p in points], metric))
            return [[dataclasses.replace(Instructions()._skipped("counted elsewhere")[0], status="ok", value=7.0)]
                    for _ in points]

    monkeypatch.setattr(server, "counter", lambda: Standin())
    monkeypatch.setattr(server, "wanted", lambda device: device == "cpu")
    assert Instructions.under_callgrind and not registry.metrics.get("latency").under_callgrind
    results = run_group(_points(), Settings())
    assert asked == [(["lstm", "slowed_lstm"], "instructions")]
    assert [res.rows[0].value for res in results] == [7.0, 7.0]
    monkeypatch.setattr(Instructions, "under_callgrind", False)  # not declared: run here (and refused: not inside)
    [res] = run_group(_points()[:1], Settings())
    assert len(asked) == 1 and res.rows[0].status == "error" and "not running under Callgrind" in res.rows[0].error


def test_the_callgrind_process_is_launched_early_only_where_it_will_count(monkeypatch):
    monkeypatch.setattr(server, "_COUNTER", None)
    monkeypatch.setenv(callgrind.OFF, "1")
    assert server.launch_for(_points()) is False  # counting is off
    monkeypatch.delenv(callgrind.OFF)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(torch._C, "_valgrind_supported_platform", lambda: True)
    plain = [dataclasses.replace(p, metrics=("latency",)) for p in _points()]
    assert server.launch_for(plain) is False  # nothing to count
    assert server._COUNTER is None
