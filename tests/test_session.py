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


TERM_SUITE = """
name: term
threads: 1
timing: {min_samples: 1, min_time: 0.0, max_time: 0.01, warmup: 0.0}
experiments:
  - name: quick
    architectures: [tcn]
    metrics: [latency]
    passes: [forward]
    sweep: {seq_len: 8, batch: 1, d_model: 8}
  - name: long
    architectures: [tcn]
    task: {kind: reverse, vocab_size: 8}
    metrics: [accuracy]
    training: {steps: 1000000, eval_every: 1000000}
    sweep: {seq_len: 8, batch: 2, d_model: 8}
"""


def _descendants(pid: int) -> set[int]:
    """The live processes below ``pid`` (from /proc: each process's parent)."""
    parents: dict[int, int] = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(stat)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead: it only waits for its parent to read its status
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc")
def test_sigterm_keeps_what_finished_releases_the_lock_and_leaves_no_process(tmp_path):
    """A run that receives SIGTERM (``timeout``, a cancelled CI job) with a point in flight on a worker:
    exit 143, the finished point consolidated, the lock gone, the resume command printed, and no
    process it started (the workers) still running."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "s.yaml"
    path.write_text(TERM_SUITE)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "archbench", "run", str(path), "--out", str(out), "--no-progress",
                             "--no-report", "--executor", "process", "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 120
        records = None
        while time.monotonic() < deadline and proc.poll() is None:
            records = next(out.glob("term/*/records.jsonl"), None)
            if records is not None and records.read_text().count("\n") >= 1:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        assert records is not None, "the quick point did not finish in 120 s"
        below = _descendants(proc.pid)
        assert below, "the process executor started no worker"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert "terminated (SIGTERM): 1 of 2 points finished" in stderr
    assert f"--resume {records.parent}" in stderr
    assert not (records.parent / ".lock").exists()
    df = records_to_frame(read_records(records))
    assert df.point_id.nunique() == 1 and (df.status == "ok").all()
    assert (records.parent / "results.csv").exists()
    assert json.loads((records.parent / "meta.json").read_text())["interrupted"] is True
    time.sleep(1.5)  # a grandchild notices its parent is gone within a second
    assert not [pid for pid in below if _alive(pid)], "processes of the run outlived it"
