"""The gate near its thresholds, on real slowdowns (tests/plugins/slowed.py: the model runs its forward
again on the first round(f x T) positions when ARCHBENCH_EXTRA_WORK is f, so the point keeps its id
and ``archbench compare`` matches it with the unchanged run).

- about 1.3 times the work is caught on latency (the default rule: 10 %, alpha 0.01);
- about 3 % more work is caught on the ``instructions`` count (its rule: 1 %), far below what the clock's
  rule in ci.yaml (20 %) can see; this one needs Valgrind and skips without it.

One point each (a TCN forward; a transformer's training step); each run is a real ``archbench.run``
(serial executor).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import needs_valgrind

import archbench
from archbench.cli import cli
from archbench.execute import callgrind as server
from archbench.results.load import load_results

pytestmark = pytest.mark.heavy(95)  # s of the run on one core: started first (conftest.py)

# tests/plugins on the path as `plugins.slowed` (as test_instructions and test_executors import it)
sys.path.insert(0, str(Path(__file__).parent))
ENV = "ARCHBENCH_EXTRA_WORK"

SUITE = """
name: threshold
device: cpu
threads: 1
plugins: [plugins.slowed]
timing: {{min_samples: 20, min_time: 0.4, max_time: 1.5, target: 0.01, warmup: 0.05, clock: thread_cpu}}
{compare}
experiments:
  - name: e
    architectures: [{arch}]
    task: {{kind: uniform, vocab_size: 8}}
    metrics: [{metrics}]
    passes: [{pass_}]
    sweep: {sweep}
"""
TCN = dict(arch="{kind: slowed_tcn, kernel_size: 3, levels: 4, dilation_base: 2}", pass_="forward",
           sweep="{seq_len: 512, batch: 1, d_model: 32}")
# benchmarks/calibrate_gate.yaml's transformer point where ARCHBENCH_EXTRA_WORK=0.02 counted 4.7 % more
# (docs/instructions.md): a smaller point's extra call costs more than its share in fixed costs alone
# (a TCN forward of 512 positions, 20 of them again: 27 % more)
TRANSFORMER = dict(arch="{kind: slowed_transformer, heads: 4, layers: 2}", pass_="train_step",
                   sweep="{seq_len: 256, batch: 4, d_model: 32}")


def _run(tmp_path: Path, name: str, point: dict[str, str], metrics: str, compare: str = "") -> Path:
    suite = tmp_path / f"{name}.yaml"
    suite.write_text(SUITE.format(metrics=metrics, compare=compare, **point))
    out = archbench.run(suite, out=tmp_path / name, allow_plugins=True, progress=False, say=lambda line: None)
    return out.folder


def _value(folder: Path, metric: str) -> float:
    frame = load_results(folder)
    [value] = frame.loc[frame.metric == metric, "value"]
    return float(value)


def _compare(base: Path, current: Path) -> tuple[int, str]:
    done = CliRunner().invoke(cli, ["compare", str(base), str(current), "--show-unchanged"])
    return done.exit_code, done.output


def _verdict(output: str, metric: str) -> str:
    """The category `archbench compare` gave the one row of ``metric``."""
    rows = [line for line in output.splitlines() if f" {metric} " in f" {line} " and "e/slowed_" in line]
    assert len(rows) == 1, output
    return rows[0].split()[0]


@pytest.mark.alone  # two wall times taken one after the other: a neighbour's load would move one of them
def test_thirty_percent_more_work_fails_the_gate_on_latency(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    base = _run(tmp_path, "base", TCN, "latency")
    monkeypatch.setenv(ENV, "0.3")  # the first 154 of 512 positions again: ~1.3 x the convolutions
    slow = _run(tmp_path, "slow", TCN, "latency")
    ratio = _value(slow, "latency") / _value(base, "latency")
    code, output = _compare(base, slow)
    assert code == 1 and "FAIL" in output, (ratio, output)
    assert _verdict(output, "latency") == "regressed", (ratio, output)


@needs_valgrind
@pytest.mark.timeout(900)  # two Callgrind processes import torch (about a minute each, side by side)
def test_three_percent_more_work_is_caught_by_the_count(tmp_path, monkeypatch):
    """Two Callgrind processes start at once, one per run, each with its run's ARCHBENCH_EXTRA_WORK (the
    child reads it at each forward); they import torch side by side."""
    counters = []
    try:
        for f in ("", "0.06"):  # the first 15 of 256 positions again, and one more call's fixed costs
            monkeypatch.setenv(ENV, f)
            counters.append(server.Counter())
            counters[-1].launch()
        runs = []
        for f, counter in zip(("", "0.06"), counters):
            monkeypatch.setenv(ENV, f)
            monkeypatch.setattr(server, "_COUNTER", counter)
            runs.append(_run(tmp_path, f"run{len(runs)}", TRANSFORMER, "latency, instructions",
                             "compare: {latency: {threshold: 0.20, alpha: 0.01}}"))  # ci.yaml's rules
    finally:
        for counter in counters:
            counter.close()
    base, slow = runs
    more = _value(slow, "instructions") / _value(base, "instructions") - 1
    assert 0.02 < more < 0.08, more  # about 3 % more work (1.03x), counted by the portable kernels' count
    code, output = _compare(base, slow)
    assert code == 1, output
    assert _verdict(output, "instructions") == "regressed", (more, output)
    # Not asserted: the clock's verdict. At a few per cent it is the machine's to give: here the two
    # Callgrind processes count on both cores while the points are timed, and a run of this test (of two)
    # saw the latency "regressed" at +3 % of work; the count's verdict does not move with them.
