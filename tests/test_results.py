"""The results store: append per point, consolidate, survive a crash mid-line."""
import json

import pandas as pd
import pytest

import archbench
from archbench.errors import BadInput
from archbench.results.load import COLUMNS, latest, read_records, records_to_frame
from archbench.results.store import ResultStore


def record(i, status="ok"):
    point = {
        "id": f"p{i}", "experiment": "e", "arch": "tcn", "arch_kind": "tcn", "arch_params": {"d_model": 8, "levels": 2},
        "task": "uniform", "task_params": {"vocab_size": 4}, "metrics": ["latency"], "seq_len": 16 * (i + 1),
        "batch": 1, "pass": "forward", "seed": 0, "causal": True, "device": "cpu", "dtype": "float32", "threads": 1,
    }
    row = {"metric": "latency", "value": 0.001 * (i + 1), "unit": "s", "higher_is_better": False, "status": status,
           "error": None, "stats": {"median": 0.001 * (i + 1), "n": 3, "calls": 1}, "samples": [0.001, 0.001, 0.002]}
    return {"suite": "s", "point": point, "status": status, "host": "h", "device": "cpu", "rows": [row]}


def test_append_then_consolidate(tmp_path):
    store = ResultStore.create(tmp_path, "s")
    store.start("name: s\n", {"suite": "s"})
    for i in range(3):
        store.append(record(i))
    df = store.consolidate()
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert list(df.seq_len) == [16, 32, 48] and list(df["param.levels"]) == [2, 2, 2]
    assert list(df["param.vocab_size"]) == [4, 4, 4] and list(df.d_model) == [8, 8, 8]
    assert "samples" not in (store.folder / "records.jsonl").read_text()
    samples = [json.loads(x) for x in (store.folder / "samples.jsonl").read_text().splitlines()]
    assert [s["point_id"] for s in samples] == ["p0", "p1", "p2"] and samples[0]["samples"] == [0.001, 0.001, 0.002]
    assert json.loads((store.folder / "meta.json").read_text())["suite_sha256"]


def test_a_line_cut_by_a_crash_loses_only_itself(tmp_path):
    store = ResultStore.create(tmp_path, "s")
    store.append(record(0))
    store.append(record(1))
    with open(store.records_path, "a") as f:
        f.write('{"suite": "s", "point": {"id": "p2", "exper')  # the process died here
    df = archbench.load_results(store.folder)  # no results.csv yet: read from the records
    assert list(df.point_id) == ["p0", "p1"]


def test_two_runs_in_the_same_second_get_two_folders(tmp_path):
    a, b = ResultStore.create(tmp_path, "s"), ResultStore.create(tmp_path, "s")
    assert a.folder != b.folder and a.folder.exists() and b.folder.exists()


def test_load_results_reads_the_table_the_records_make(tmp_path):
    store = ResultStore.create(tmp_path, "s")
    for i in range(3):
        store.append(record(i))
    store.append(record(1, status="error"))  # p1 ran again (a retry): its newest record counts, in its first place
    store.consolidate()
    from_csv = archbench.load_results(store.folder / "results.csv")
    assert list(from_csv.point_id) == ["p0", "p1", "p2"] and list(from_csv.status) == ["ok", "error", "ok"]
    # the independent reference: the table rebuilt from records.jsonl itself (a CSV keeps no types, so
    # both are compared as plain values, a missing one as None)
    rebuilt = records_to_frame(latest(read_records(store.records_path)))
    pd.testing.assert_frame_equal(rebuilt.astype(object).where(rebuilt.notna(), None),
                                  from_csv.astype(object).where(from_csv.notna(), None), check_dtype=False)
    pd.testing.assert_frame_equal(archbench.load_results(store.folder), from_csv)  # a folder: its results.csv


def test_load_results_of_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(BadInput, match="no results"):
        archbench.load_results(tmp_path)


def test_consolidate_writes_fits_next_to_results(tmp_path):
    store = ResultStore.create(tmp_path, "s")
    for i in range(4):  # latency 0.001 * (i + 1) at seq_len 16 * (i + 1): exponent 1
        store.append(record(i))
    store.consolidate()
    fits = pd.read_csv(store.folder / "fits.csv")
    assert len(fits) == 1
    row = fits.iloc[0]
    assert (row.arch, row.metric, row["pass"], row.x) == ("tcn", "latency", "forward", "seq_len")
    assert row.exponent == pytest.approx(1.0) and row.n_points == 3 and (row.x_min, row.x_max) == (32, 64)


def test_results_and_fits_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, archbench.results.store, archbench.results.fits; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
