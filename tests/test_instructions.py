"""The ``instructions`` metric: Callgrind's count per call, its skips, its rule in the gate, and one
real count under Valgrind (skipped without it; about a minute, most of it importing torch under Valgrind)."""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from archbench.execute import callgrind as server
from archbench.execute.group import Settings, run_group
from archbench.gate.judge import judge
from archbench.gate.rules import DEFAULT_RULES, RuleBook, suite_rules
from archbench.instruments import callgrind
from archbench.metrics.instructions import Instructions
from archbench.suite.load import load_suite, parse_suite
from archbench.suite.plan import expand

ROOT = Path(__file__).resolve().parents[1]
needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None or not torch._C._valgrind_supported_platform(),
                                    reason="needs valgrind (Debian: apt-get install valgrind)")

SUITE = """
name: t
device: cpu
threads: 1
plugins: [tests.plugins.slowed]
experiments:
  - name: e
    architectures: [{kind: lstm, layers: 1}, {kind: slowed_lstm, layers: 1}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [instructions]
    passes: [forward]
    sweep: {seq_len: 16, batch: 2, d_model: 8}
"""


def _points(text: str = SUITE):
    return expand(parse_suite(text, "t.yaml"), source="t.yaml", device="cpu")


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
        category, p, _ = judge("instructions", base[0], cur[0], False, rule, base, cur, timed=True)
        assert category == expected, (shift, p)
    # tied counts (5 against 5, all equal within each run) still reach the rule's level
    category, p, _ = judge("instructions", 1e6, 1.02e6, False, rule, [1e6] * 5, [1.02e6] * 5, timed=True)
    assert category == "regressed" and p < rule.alpha


def test_the_ci_suite_counts_and_gates_instructions():
    suite = load_suite(ROOT / "suites" / "ci.yaml")
    latency = next(e for e in suite.experiments if e.name == "latency")
    assert "instructions" in latency.metrics and "latency" in latency.metrics
    rules = suite_rules((ROOT / "suites" / "ci.yaml").read_text(), "ci.yaml")
    assert rules["instructions"]["threshold"] <= 0.02 < rules["latency"]["threshold"]


def test_the_slowed_architectures_do_the_extra_work(monkeypatch):
    from tests.plugins.slowed import ENV, extra_positions

    monkeypatch.delenv(ENV, raising=False)
    assert extra_positions(256) == 0
    monkeypatch.setenv(ENV, "0.05")
    assert extra_positions(256) == 13 and extra_positions(10) == 1


@needs_valgrind
def test_counts_under_callgrind_are_steady_and_scale_with_the_work(monkeypatch):
    """One Callgrind process counts both points of the group; the slowed LSTM runs its forward twice
    (ARCHBENCH_EXTRA_WORK=1: the whole sequence again), so its count is about twice the LSTM's."""
    monkeypatch.setenv("ARCHBENCH_EXTRA_WORK", "1.0")  # the Callgrind child inherits it when it starts
    counter = server.Counter()
    monkeypatch.setattr(server, "_COUNTER", counter)
    try:
        results = run_group(_points(), Settings())
        again = counter.count([_points()[0]], Settings().rule)  # a second group: the same process
        assert counter.requests == 2
    finally:
        counter.close()
    plain, slowed = ([r for r in res.rows if r.metric == "instructions"][0] for res in results)
    for row in (plain, slowed):
        assert row.status == "ok", row.error
        assert row.unit == "instructions" and len(row.samples) == callgrind.SAMPLES
        assert (max(row.samples) - min(row.samples)) / row.value < 0.03  # steady within a run (malloc varies)
        assert row.stats["cold"] > row.value  # the first call does more (allocations, first dispatch)
    assert 1.9 < slowed.value / plain.value < 2.3
    [[row]] = again
    assert row.status == "ok" and abs(row.value / plain.value - 1) < 0.01  # the same count, asked again
