"""Table 1, measured: exponents of work and depth in n against the laws the architectures declare."""
from __future__ import annotations

import json

import pandas as pd
import pytest

import archbench
from archbench.results.table1 import TABLE1_COLUMNS, format_table1, table1


def _theory() -> dict:
    return {kind: archbench.registry.architectures.get(kind).laws() for kind in ("lstm", "tcn", "transformer")}


def test_the_laws_come_from_the_architecture_classes():
    laws = _theory()
    assert (laws["transformer"]["work_exponent"], laws["transformer"]["depth_exponent"]) == (2.0, 0.0)
    assert (laws["lstm"]["work_exponent"], laws["lstm"]["depth_exponent"]) == (1.0, 1.0)
    assert (laws["tcn"]["work_exponent"], laws["tcn"]["depth_exponent"]) == (1.0, 0.0)
    assert laws["transformer"]["work_exponent_from"] == 8.0


def _frame(work: dict, depth: dict, d: int = 4) -> pd.DataFrame:
    rows = []
    for kind in work:
        for n in (8, 16, 32, 64, 128, 256, 512):
            for metric, law in (("graph_work", work[kind]), ("graph_depth", depth[kind])):
                rows.append({"arch": kind, "arch_kind": kind, "metric": metric, "status": "ok", "value": law(n),
                             "seq_len": n, "d_model": d, "batch": 1})
    return pd.DataFrame(rows)


def test_table1_agrees_with_exact_laws_and_flags_a_wrong_one():
    frame = _frame(
        work={"lstm": lambda n: 10.0 * n, "tcn": lambda n: 3.0 * n, "transformer": lambda n: 5.0 * n * n},
        depth={"lstm": lambda n: 20.0 * n + 4, "tcn": lambda n: 34.0, "transformer": lambda n: n ** 0.5},
    )
    table = table1(frame, _theory()).set_index("arch")
    assert list(table.reset_index().columns) == TABLE1_COLUMNS
    assert table.work_exponent.to_dict() == pytest.approx({"lstm": 1.0, "tcn": 1.0, "transformer": 2.0})
    assert table.depth_exponent["lstm"] == pytest.approx(1.0, abs=0.02)
    assert table.work_agrees.all() and table.depth_agrees["lstm"] and table.depth_agrees["tcn"]
    assert not table.depth_agrees["transformer"]  # n^0.5 is not constant
    assert table.work_n_min["transformer"] >= 8 * 4  # attention's law only from n >= 8 d
    text = format_table1(table.reset_index())
    assert text.startswith("Table 1, measured") and "NO" in text and "attention" in text


def test_no_graph_rows_no_table():
    frame = pd.DataFrame([{"arch": "tcn", "arch_kind": "tcn", "metric": "latency", "status": "ok", "value": 1.0,
                           "seq_len": 8, "d_model": 4, "batch": 1}])
    assert table1(frame, _theory()).empty


def test_run_prints_table1_and_writes_it(tmp_path):
    from click.testing import CliRunner

    from archbench.cli import cli

    suite = tmp_path / "g.yaml"
    suite.write_text("name: g\ndevice: cpu\nexperiments:\n  - name: graph\n"
                     "    architectures: [{kind: lstm, layers: 1}, {kind: tcn, levels: 2}]\n"
                     "    metrics: [graph]\n    sweep: {seq_len: [8, 16, 32], batch: 1, d_model: 4}\n")
    result = CliRunner().invoke(cli, ["run", str(suite), "--out", str(tmp_path / "out"), "--no-progress",
                                      "--no-report"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Table 1, measured" in result.output and "recurrence" in result.output
    folder = next((tmp_path / "out" / "g").iterdir())
    table = pd.read_csv(folder / "table1.csv").set_index("arch")
    assert table.depth_agrees.all() and table.work_agrees.all()
    assert json.loads((folder / "meta.json").read_text())["theory"]["lstm"]["depth_exponent"] == 1.0


def test_path_length_column_from_max_path_length_rows():
    rows = [{"arch": "lstm", "arch_kind": "lstm", "metric": "max_path_length", "status": "ok", "value": n - 1.0,
             "seq_len": n, "d_model": 4, "batch": 1} for n in (16, 32, 64, 128)]
    table = table1(pd.DataFrame(rows), _theory())
    assert table.path_length.tolist() == [127] and table.path_n.tolist() == [128]
    assert table.path_exponent.iloc[0] == pytest.approx(1.0, abs=0.03) and table.path_length_theory.iloc[0] == "n"
    assert "127 at n=128" in format_table1(table)
