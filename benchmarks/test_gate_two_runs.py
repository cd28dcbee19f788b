"""Two runs of unchanged code, seconds apart on this machine, compare clean under the gate's rules.

    python -m pytest -n 0 benchmarks/test_gate_two_runs.py -s

A check of the machine as much as of archbench: two runs at different times differ by whatever
else the machine did meanwhile, and no gate can tell that from a slowdown. It holds on an idle
machine (a CI runner); on a shared one it can fail without any fault in archbench, and the load
printed with a failure says how busy the machine was. (benchmarks/calibrate_gate.py measures the
same over many runs.) tests/test_compare.py keeps the versions that hold on any machine: the same
model timed side by side in one run, and a second run whose samples come from the first's
distribution.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_compare import LOAD, RepeatTCN, _run

from archbench import registry
from archbench.gate.judge import compare
from archbench.gate.render import render


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    registry.architectures.add("repeat_tcn", RepeatTCN, source="benchmarks.test_gate_two_runs")
    root = tmp_path_factory.mktemp("gate")
    try:
        _run(root, "warmup", ("tcn", 1))  # in CI each run is a fresh process; here the first pays for all
        return _run(root, "a", ("tcn", 1)), _run(root, "b", ("tcn", 1))
    finally:
        registry.architectures.remove("repeat_tcn")


def test_two_runs_of_unchanged_code_compare_clean(two_runs):
    cmp = compare(*two_runs)
    load = {k: LOAD[k] for k in ("a", "b")}  # own: share of a core the run got; others: cores' worth of others
    print("load during the runs", load)
    called = [c.category for c in cmp.changes if c.category != "unchanged"]
    assert called == [], f"load during the runs {load}\n" + render(cmp, "table", True)
    assert {c.matched_by for c in cmp.changes} == {"id"}
