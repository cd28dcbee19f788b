"""archbench.run(): the whole run from Python, as `archbench run` does it."""
from __future__ import annotations

import json
import os

import pytest

import archbench
from archbench.errors import BadInput
from archbench.execute.session import RunOutcome
from archbench.results.load import latest, read_records, records_to_frame

SUITE = """
name: pysession
threads: 1
experiments:
  - name: counts
    architectures: [lstm, tcn]
    metrics: [flops, receptive_field]
    sweep: {seq_len: [8, 16], d_model: 8}
"""


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE)
    return path


def test_run_from_a_path_writes_the_folder_the_cli_would(suite_file, tmp_path):
    lines = []
    outcome = archbench.run(suite_file, out=tmp_path / "out", progress=False, say=lines.append)
    assert isinstance(outcome, RunOutcome) and os.fspath(outcome) == str(outcome.folder)
    assert outcome.folder.parent == tmp_path / "out" / "pysession"
    points = archbench.expand(archbench.load_suite(suite_file), device="cpu")
    meta = json.loads((outcome.folder / "meta.json").read_text())
    assert meta["point_ids"] == [p.id for p in points] and meta["interrupted"] is False
    assert outcome.summary.points == len(points) == 4 and meta["statuses"] == {"ok": 4}
    assert lines[0] == f"pysession: 4 points on cpu (serial) -> {outcome.folder}"
    # the consolidated table is the records, made a table again
    table = archbench.load_results(outcome.folder)
    rebuilt = records_to_frame(latest(read_records(outcome.folder / "records.jsonl")))
    assert table.point_id.tolist() == rebuilt.point_id.tolist() and table.metric.tolist() == rebuilt.metric.tolist()
    assert table.value.tolist() == pytest.approx(rebuilt.value.tolist(), nan_ok=True)


def test_run_takes_a_loaded_suite_and_resumes_its_folder(suite_file, tmp_path):
    suite = archbench.load_suite(suite_file)
    first = archbench.run(suite, out=tmp_path / "out", progress=False, say=lambda line: None)
    lines = []
    again = archbench.run(suite, resume=first.folder, progress=False, say=lines.append)
    assert again.folder == first.folder and again.summary.points == 0
    assert "4 of 4 points done, 0 to run" in lines[0]


def test_a_suite_without_its_text_is_refused_before_anything_is_written(tmp_path):
    suite = archbench.Suite.model_validate({"name": "bare", "experiments": [
        {"name": "e", "architectures": ["lstm"], "metrics": ["flops"], "sweep": {"seq_len": 8}}]})
    with pytest.raises(BadInput, match="give a suite file's path"):
        archbench.run(suite, out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
