"""Executors, resume and crash safety: one tiny suite through serial, process and Ray gives the same
points, statuses and deterministic values; a point that ends its process is ``error`` and the run
completes; a run killed with SIGKILL (or stopped with Ctrl-C) resumes to every point exactly once;
resume refuses another suite and runs failed points again only with --retry-failed.

The Ray tests share one local cluster on loopback (module scope) and skip without Ray.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from archbench import registry
from archbench.cli import cli
from archbench.errors import BadInput
from archbench.execute import executors
from archbench.execute.executors.worker import plugins_of
from archbench.results.load import read_records
from archbench.suite.point import Point

sys.path.insert(0, str(Path(__file__).parent))  # tests/plugins, for this process and its workers
from plugins import faulty

pytestmark = pytest.mark.heavy(65)  # s of the run on one core: started first (conftest.py)

DETERMINISTIC = ("flops", "graph_work", "rf_theoretical", "accuracy", "loss", "baseline_accuracy")

AGREE = """
name: agree
device: cpu
experiments:
  - name: det
    architectures: [lstm, {kind: tcn, levels: 2}, {kind: transformer, heads: 2, layers: 1}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [flops, graph, receptive_field]
    sweep: {seq_len: [8, 16], batch: 1, d_model: 8}
"""

# trained for 20 steps from the point's seed: the same numbers in any process
ACCURACY = """
  - name: acc
    architectures: [{kind: lstm, layers: 1}, {kind: tcn, levels: 2}]
    task: {kind: reverse, vocab_size: 8}
    metrics: [accuracy]
    training: {steps: 20, lr: 1e-2, eval_every: 10, eval_size: 32}
    sweep: {seq_len: 8, batch: 8, d_model: 8}
"""

FAULTS = """
name: faults
device: cpu
timing: {min_samples: 1, min_time: 0.0, max_time: 0.001, warmup: 0.0}
experiments:
  - name: e
    architectures: [tiny, exits]
    task: {kind: uniform, vocab_size: 8}
    metrics: [latency]
    sweep: {seq_len: 8, batch: 2, d_model: 8}
"""

# one architecture, six lengths, each point timed for at least 0.2 s: slow enough to be stopped part-way
SLOW = """
name: slow
device: cpu
timing: {min_samples: 3, min_time: 0.2, max_time: 0.3, warmup: 0.0}
experiments:
  - name: e
    architectures: [{kind: tcn, levels: 1}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [latency]
    sweep: {seq_len: [8, 12, 16, 20, 24, 28], batch: 1, d_model: 8}
"""
SLOW_POINTS = 6
# For Ctrl-C: enough points (about 0.3 s each) that the run cannot end before a busy parent sends the signal.
LONG = SLOW.replace("seq_len: [8, 12, 16, 20, 24, 28]", "seq_len: [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27]")
LONG_POINTS = 20


@pytest.fixture(autouse=True)
def stand_ins():
    added = {"tiny": faulty.Tiny, "exits": faulty.Exits, "hangs": faulty.Hangs, "greedy": faulty.Greedy,
             "flaky": faulty.Flaky}
    for name, cls in added.items():
        registry.architectures.add(name, cls)
    faulty.Flaky.broken = True
    try:
        yield
    finally:
        for name in added:
            registry.architectures.remove(name)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # "local": a cluster of the test's own, not one named in /tmp/ray/ray_current_cluster while some GCS runs here
    ray.init(address="local", num_cpus=2, include_dashboard=False, resources={"archbench_timing": 1},
             _node_ip_address="127.0.0.1", logging_level="ERROR", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(*args):
    return CliRunner().invoke(cli, ["run", *map(str, args), "--no-progress", "--no-report"])


def folder_of(result) -> Path:
    return Path(next(line for line in result.stdout.splitlines() if line.startswith("results: ")).removeprefix("results: "))


def records(folder: Path) -> list[dict]:
    return read_records(folder / "records.jsonl")


# ------------------------------------------------------------------------- the three agree


def test_serial_process_and_ray_give_the_same_points_statuses_and_values(tmp_path, ray_cluster):
    suite = AGREE + (ACCURACY if "accuracy" in registry.metrics else "")
    path = write(tmp_path, suite)
    frames = {}
    for name in ("serial", "process", "ray"):
        result = run(path, "--out", tmp_path / name, "--executor", name, "--workers", 1 if name == "serial" else 2)
        assert result.exit_code == 0, result.output
        assert json.loads((folder_of(result) / "meta.json").read_text())["executor"]["name"] == name
        frames[name] = pd.read_csv(folder_of(result) / "results.csv")
    serial = frames["serial"]
    assert serial.point_id.nunique() == (8 if "accuracy" in registry.metrics else 6) and (serial.status == "ok").all()
    key = ["point_id", "metric"]
    for name in ("process", "ray"):
        frame = frames[name]
        assert sorted(frame.point_id.unique()) == sorted(serial.point_id.unique())
        assert frame.groupby("point_id").status.first().to_dict() == serial.groupby("point_id").status.first().to_dict()
        assert frame.host.notna().all() and (frame.device == "cpu").all()
        det = lambda f: f[f.metric.isin(DETERMINISTIC)].set_index(key).value.sort_index()  # noqa: E731
        # per point flops, graph_work and rf_theoretical; per training point accuracy, loss and baseline_accuracy
        assert len(det(frame)) == 6 * 3 + (2 * 3 if "accuracy" in registry.metrics else 0)
        pd.testing.assert_series_equal(det(frame), det(serial))


# ------------------------------------------------------------------------ crashes and hangs


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_a_point_that_ends_its_process_is_error_and_the_run_completes(executor, tmp_path, request):
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    result = run(write(tmp_path, FAULTS), "--out", tmp_path / "out", "--executor", executor)
    assert result.exit_code == 0, result.output
    assert "2 points, " in result.stdout and "(1 ok, 1 error)" in result.stdout
    df = pd.read_csv(folder_of(result) / "results.csv")
    by_arch = df.groupby("arch").status.unique().to_dict()
    assert list(by_arch["tiny"]) == ["ok"] and list(by_arch["exits"]) == ["error"]  # its group ran again alone
    assert df[df.arch == "exits"].error.str.contains("exited with code 3").all()


def test_the_process_executor_kills_a_point_past_its_timeout(tmp_path):
    suite = FAULTS.replace("name: faults\n", "name: faults\ntimeout: 1.0\n").replace("[tiny, exits]", "[hangs]")
    started = time.monotonic()
    result = run(write(tmp_path, suite), "--out", tmp_path / "out", "--executor", "process")
    assert result.exit_code == 0, result.output
    assert "(1 timeout)" in result.stdout and time.monotonic() - started < 120  # Hangs sleeps 600 s
    df = pd.read_csv(folder_of(result) / "results.csv")
    assert df.error.str.contains("killed after 2 s: the suite's timeout of 1 s x 1 point").all()


def test_an_oom_still_skips_the_larger_points_submitted_after_it(tmp_path):
    suite = FAULTS.replace("[tiny, exits]", "[greedy]").replace("seq_len: 8", "seq_len: [16, 32]")
    result = run(write(tmp_path, suite), "--out", tmp_path / "out", "--executor", "process")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(folder_of(result) / "results.csv")
    assert df.groupby("seq_len").status.first().to_dict() == {16: "oom", 32: "skipped"}
    assert df[df.seq_len == 32].error.str.contains("ran out of memory").all()


# --------------------------------------------------------------------------------- resume


def start_cli(suite: Path, out: Path) -> subprocess.Popen:
    # SIGINT as at a terminal: a shell that starts the test run in the background (nohup, `cmd &`)
    # leaves it ignored in its children, and Python then keeps it ignored (Ctrl-C would do nothing)
    return subprocess.Popen(
        [sys.executable, "-m", "archbench", "run", str(suite), "--out", str(out), "--no-progress", "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_records(out: Path, k: int, proc: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(out.glob("*/*/records.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= k:
            return found[0].parent
        time.sleep(0.02)
    raise AssertionError(f"no {k} records before the run ended: {proc.communicate()}")


def test_a_run_killed_with_sigkill_resumes_to_every_point_exactly_once(tmp_path):
    suite = write(tmp_path, SLOW)
    proc = start_cli(suite, tmp_path / "out")
    folder = wait_for_records(tmp_path / "out", 2, proc)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    finished = len(records(folder))
    assert 2 <= finished < SLOW_POINTS
    with open(folder / "records.jsonl", "a") as f:  # as if killed in the middle of a line
        f.write('{"suite": "slow", "point": {"id": "abc')

    result = run(suite, "--resume", folder)
    assert result.exit_code == 0, result.output
    assert f"{finished} of {SLOW_POINTS} points done, {SLOW_POINTS - finished} to run" in result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "warning" in line.lower()]  # once, one line
    assert warning == f"warning: {folder / 'records.jsonl'}: line {finished + 1} is not whole JSON (cut short by a crash?); skipped"
    ids = [r["point"]["id"] for r in records(folder)]
    assert len(ids) == SLOW_POINTS and len(set(ids)) == SLOW_POINTS
    df = pd.read_csv(folder / "results.csv")
    assert df.point_id.nunique() == SLOW_POINTS and not df.duplicated(["point_id", "metric"]).any()


def test_ctrl_c_stops_after_the_points_in_flight_and_prints_the_resume_command(tmp_path):
    suite = write(tmp_path, LONG)
    proc = start_cli(suite, tmp_path / "out")
    folder = wait_for_records(tmp_path / "out", 1, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    line = next(line for line in stderr.splitlines() if line.startswith("resume with: "))
    assert line == f"resume with: archbench run {suite} --resume {folder}"
    lines = (folder / "records.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines) and len(lines) < LONG_POINTS
    assert json.loads((folder / "meta.json").read_text())["interrupted"] is True
    result = run(suite, "--resume", folder)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(folder / "results.csv").point_id.nunique() == LONG_POINTS


def test_resume_refuses_a_suite_with_other_points_and_allows_other_timing(tmp_path):
    first = run(write(tmp_path, AGREE), "--out", tmp_path / "out")
    assert first.exit_code == 0, first.output
    folder = folder_of(first)
    other = run(write(tmp_path, AGREE.replace("seq_len: [8, 16]", "seq_len: [8, 32]"), "other.yaml"), "--resume", folder)
    assert other.exit_code == 2 and other.stdout == ""
    [line] = other.stderr.splitlines()
    assert line.startswith(f"error: --resume {folder}: it was run with a different suite (3 of its 6 points")
    timing = write(tmp_path, AGREE + "timing: {min_samples: 3}\n", "timing.yaml")
    same = run(timing, "--resume", folder)
    assert same.exit_code == 0, same.output
    assert "gives the same points" in same.stderr and "0 points, 0 rows" in same.stdout
    assert len(records(folder)) == 6


def test_retry_failed_runs_again_only_the_failed_points_and_the_newest_record_wins(tmp_path):
    suite = write(tmp_path, FAULTS.replace("[tiny, exits]", "[tiny, flaky]"))
    first = run(suite, "--out", tmp_path / "out")
    assert first.exit_code == 0 and "(1 ok, 1 error)" in first.stdout, first.output
    folder = folder_of(first)
    failed = {r["point"]["id"] for r in records(folder) if r["status"] == "error"}

    faulty.Flaky.broken = False
    again = run(suite, "--resume", folder)
    assert again.exit_code == 0 and "0 points" in again.stdout and len(records(folder)) == 2
    retried = run(suite, "--resume", folder, "--retry-failed")
    assert retried.exit_code == 0 and "1 points, " in retried.stdout and "(1 ok)" in retried.stdout, retried.output
    assert [r["point"]["id"] for r in records(folder)[2:]] == sorted(failed)
    df = pd.read_csv(folder / "results.csv")
    assert (df.status == "ok").all() and len(df) == 2 * len(df[df.arch == "tiny"])
    assert json.loads((folder / "meta.json").read_text())["statuses"] == {"ok": 2}


# ----------------------------------------------------------------------------- bad options


@pytest.mark.parametrize("args, message", [
    (["--retry-failed"], "--retry-failed runs the failed points of an earlier run again: give it with --resume"),
    (["--workers", "2"], "--workers 2: the serial executor runs one group at a time"),
    (["--executor", "process", "--workers", "0"], "--workers 0: give a whole number of 1 or more"),
    (["--executor", "process", "--address", "h:1"], "--address h:1: where Ray runs, so it needs --executor ray"),
    (["--resume", "nowhere"], "--resume 'nowhere': not a results folder (no meta.json)"),
    (["--executor", "ray", "--address", "nohost"], "--address nohost: give HOST:PORT of the Ray head"),
    (["--executor", "ray", "--address", "127.0.0.1:1"], "--address 127.0.0.1:1: nothing answers there"),
])
def test_bad_options_are_one_line_and_write_nothing(args, message, tmp_path):
    result = run(write(tmp_path, AGREE), "--out", tmp_path / "out", *args)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert message in line and not (tmp_path / "out").exists()


def test_an_executor_in_the_suite_is_used_and_the_command_line_wins(tmp_path):
    path = write(tmp_path, FAULTS.replace("name: faults\n", "name: faults\nexecutor: process\n").replace(", exits]", "]"))
    result = run(path, "--out", tmp_path / "out")
    assert result.exit_code == 0 and "(1 ok)" in result.stdout, result.output
    assert json.loads((folder_of(result) / "meta.json").read_text())["executor"]["name"] == "process"
    result = run(path, "--out", tmp_path / "out", "--executor", "serial", "--workers", "3")
    assert result.exit_code == 2 and "serial executor runs one group at a time" in result.stderr


def test_without_ray_the_ray_executor_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(BadInput, match=r"^--executor ray needs Ray: pip install 'archbench\[ray\]'$"):
        executors.make("ray")


def test_ray_resources_give_a_timing_point_its_device_alone():
    from archbench.execute.executors.ray import GPU_SHARE, TIMING, resources

    def point(device, metrics):
        return Point(experiment="e", arch="tiny", arch_kind="tiny", arch_params=(("d_model", 8),), task="uniform",
                     task_params=(("vocab_size", 8),), metrics=metrics, seq_len=8, batch=1, pass_="forward",
                     seed=0, causal=True, device=device, dtype="float32", threads=2)

    assert resources([point("cuda", ("latency",))]) == {"num_cpus": 2, "num_gpus": 1}
    assert resources([point("cuda", ("flops", "graph"))]) == {"num_cpus": 2, "num_gpus": GPU_SHARE}
    assert resources([point("cpu", ("flops", "peak_memory"))]) == {"num_cpus": 2, "resources": {TIMING: 1}}
    assert resources([point("cpu", ("receptive_field",))]) == {"num_cpus": 2}


def test_a_plugin_a_worker_cannot_import_is_refused_by_name():
    class Local(faulty.Tiny):
        pass

    registry.architectures.add("local", Local)
    try:
        point = Point(experiment="e", arch="local", arch_kind="local", arch_params=(("d_model", 8),), task="uniform",
                      task_params=(("vocab_size", 8),), metrics=("flops",), seq_len=8, batch=1, pass_="forward",
                      seed=0, causal=True, device="cpu", dtype="float32", threads=1)
        with pytest.raises(BadInput, match="architecture 'local' is defined in .*<locals>.*cannot import"):
            plugins_of([point])
        [plugin] = plugins_of([dataclasses_replace(point, arch="tiny", arch_kind="tiny")])
        assert (plugin.module, plugin.qualname) == ("plugins.faulty", "Tiny")
    finally:
        registry.architectures.remove("local")


def dataclasses_replace(point: Point, **changes) -> Point:
    return Point(**{**{k: getattr(point, k) for k in Point.__dataclass_fields__ if k != "id"}, **changes})


def test_records_count_each_point_once_when_a_point_is_appended_again(tmp_path):
    from archbench.results.load import latest
    from archbench.results.store import ResultStore

    store = ResultStore(tmp_path)
    point = {"experiment": "e", "arch": "lstm", "task": "uniform", "pass": "forward", "device": "cpu",
             "dtype": "float32", "seq_len": 8, "batch": 1, "seed": 0, "threads": 1}  # a whole record (issue R)
    rec = lambda pid, status: {"suite": "s", "point": {"id": pid, **point}, "status": status, "rows": []}  # noqa: E731
    for r in (rec("a", "error"), rec("b", "ok"), rec("a", "ok")):
        store.append(r)
    assert [(r["point"]["id"], r["status"]) for r in latest(store.records())] == [("a", "ok"), ("b", "ok")]
    assert collections.Counter(json.loads(x)["point"]["id"] for x in store.records_path.read_text().splitlines()) == {"a": 2, "b": 1}


# ------------------------------------------------------------------------ dispatch and start-up

SWEEP = """
name: sweep
device: cpu
seeds: [0, 1, 2]
experiments:
  - name: trained
    architectures: [{kind: lstm, layers: 1}, {kind: tcn, levels: 2}]
    task: {kind: reverse, vocab_size: 8}
    metrics: [accuracy]
    training: {steps: 20}
    sweep: {seq_len: 8, batch: 8, d_model: 8}
  - name: analytic
    architectures: [lstm]
    task: {kind: uniform, vocab_size: 8}
    metrics: [flops]
    sweep: {seq_len: 8, batch: 1, d_model: 8}
"""


def test_on_several_workers_the_kind_measured_costlier_goes_first_and_the_rest_in_plan_order():
    """An LSTM and a TCN of one size cost the same to ``estimate``; once one of each has run, the
    one that took longer is submitted first, so that the workers end together."""
    from archbench.execute.group import PointResult
    from archbench.execute.schedule import Costs, _Queue, groups
    from archbench.suite.load import parse_suite
    from archbench.suite.plan import expand

    points = expand(parse_suite(SWEEP, "sweep.yaml"))
    units = groups(points, longest_first=True)
    in_order = [u[0].id for u in _drain(_Queue(units, None))]
    assert in_order == [u[0].id for u in units]  # one worker: as planned
    costs = Costs()
    unknown = _drain(_Queue(units, costs))  # nothing measured yet: as planned
    assert [u[0].id for u in unknown] == in_order and unknown[0][0].arch_kind == "lstm"
    first = {u[0].arch_kind: u[0] for u in reversed(units) if u[0].experiment == "trained"}
    costs.record(PointResult(first["lstm"], [], "", 1.0))
    # the TCN not measured yet may cost more: of equal estimates it goes first (in the sweep of
    # benchmarks/executor_speed.yaml, the LSTM's first point ends while the TCN's still runs)
    assert costs.rate(first["tcn"]) == costs.rate(first["lstm"]) and not costs.seen(first["tcn"])
    assert _drain(_Queue(units, costs))[0][0].arch_kind == "tcn"
    costs.record(PointResult(first["tcn"], [], "", 3.0))
    order = _drain(_Queue(units, costs))
    assert [(u[0].experiment, u[0].arch_kind) for u in order] == \
        [("trained", "tcn")] * 3 + [("trained", "lstm")] * 3 + [("analytic", "lstm")] * 3
    assert sorted(u[0].id for u in order) == sorted(in_order)


def _drain(queue) -> list:
    out = []
    while queue:
        out.append(queue.pop())
    return out


def test_a_forked_worker_runs_groups_and_reports_its_exit_like_a_fresh_one():
    """The process executor's first workers are forked (no imports to pay): they answer as a fresh
    worker does, and one that ends its process is reported by its exit code. In an interpreter of
    its own: a fork needs a process with one thread (this one may hold Ray's)."""
    proc = subprocess.run([sys.executable, "-c", "import test_executors as t; t.forked_worker_checks()"],
                          cwd=Path(__file__).parent, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "forked 1 of 2, ok"


def forked_worker_checks() -> None:
    from archbench.execute.executors.pool import WorkerPool
    from archbench.execute.executors.process import jobs_of, results_of, run_isolated
    from archbench.execute.group import Settings
    from archbench.suite.load import parse_suite
    from archbench.suite.plan import expand

    registry.architectures.add("tiny", faulty.Tiny)
    registry.architectures.add("exits", faulty.Exits)
    tiny, exits = expand(parse_suite(FAULTS, "faults.yaml"))
    pool = WorkerPool(1)
    try:
        pool.warm(1, forked=True)
        assert (pool.started, pool.forked) == (1, 1), (pool.started, pool.forked)
        [ok] = run_isolated([tiny], Settings(), plugins_of([tiny]), pool=pool)
        assert ok.status == "ok" and pool.startups[0] < 60, (ok.rows, pool.startups)
        [crashed] = run_isolated([exits], Settings(), plugins_of([exits]), pool=pool)
        assert crashed.status == "error" and "exited with code 3" in crashed.rows[0].error, crashed.rows
        job = jobs_of([tiny], Settings(), plugins_of([tiny]))[0]
        [again] = results_of([tiny], [pool.run(job, None, 1)])  # a fresh worker: only warm forks
        assert again.status == "ok", again.rows
        print(f"forked {pool.forked} of {pool.started}, ok")
    finally:
        pool.close()
