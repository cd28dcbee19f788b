"""A Ray run that starts its own cluster begins on a local worker (executors/local_first.py): a suite
too small to pay for Ray's start never starts it, a larger one gives Ray a group only once a Ray
worker is warm and free, and either way the points and their deterministic values are serial's.
``ray.init`` starts a cluster of its own (``address="local"``), never one found on the machine.

Counts, not wall times: where each group ran, whether Ray was started, what each Ray submission saw.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import archbench
from archbench.errors import BadInput
from archbench.execute.executors import local_first
from archbench.execute.group import Settings
from archbench.suite.point import Point

pytestmark = pytest.mark.heavy(50)  # s of the run on one core: started first (conftest.py)

SUITE = """
name: local_first
device: cpu
threads: 1
experiments:
  - name: det
    architectures: [lstm, {kind: tcn, levels: 2}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [flops, graph]
    sweep: {seq_len: [8, 16, 32], batch: 1, d_model: 8}
"""
DETERMINISTIC = ("flops", "graph_work")


def point(tmp_path: Path, **changes) -> Point:
    path = tmp_path / "one.yaml"
    path.write_text(SUITE)
    return dataclasses.replace(archbench.expand(archbench.load_suite(path), device="cpu")[0], **changes)


def test_ray_is_worth_starting_from_twenty_seconds_of_points_left():
    assert not local_first.worth_starting(100, None)  # no group has finished: nothing known yet
    assert local_first.worth_starting(10, 2.0)  # 20 s
    assert not local_first.worth_starting(9, 2.0)  # 18 s
    assert not local_first.worth_starting(0, 5.0)


def test_the_local_queue_covers_ray_init():
    assert local_first.depth(None) == 1
    assert local_first.depth(2.0) == 1 + 4  # 8 s of ray.init at 2 s a group
    assert local_first.depth(3.0) == 1 + 3  # ceil(8 / 3)
    assert local_first.depth(0.001) == 1 + local_first.MAX_DEPTH


def test_only_cpu_points_begin_locally(tmp_path):
    assert local_first.fits([point(tmp_path), point(tmp_path, seq_len=64)])
    assert local_first.fits([point(tmp_path), point(tmp_path, metrics=("latency",))])  # timing too (one at a time)
    assert not local_first.fits([])
    assert not local_first.fits([point(tmp_path, device="cuda")])


def test_once_worth_it_ray_is_started_when_the_local_queue_covers_its_start(monkeypatch):
    """The groups queued locally for ray.init no longer count as left for Ray: the decision stands."""
    pytest.importorskip("ray")
    from archbench.execute.executors.ray import RayExecutor

    class Local:
        retired, queued = False, 0

        def seconds_per_point(self) -> float:
            return 2.0

        def depth(self) -> int:
            return 6

        def idle(self) -> bool:
            return self.queued == 0

    ex, local, started = RayExecutor(2), Local(), []
    local.executor = type("Pending", (), {"pending": lambda _: local.queued})()
    ex._local, ex._left = local, 11  # 22 s left: worth it
    ex._left_untimed = 11
    monkeypatch.setattr(ex, "_start", lambda: started.append(ex._left))
    monkeypatch.setattr(ex, "_warm_up", lambda n: None)
    while ex.has_room():  # what run_points does: each group queued on the local worker
        ex._left, ex._left_untimed, local.queued = ex._left - 1, ex._left_untimed - 1, local.queued + 1
    assert local.queued == 6 and started == [5]  # 10 s left then, and started all the same


def test_timing_points_do_not_make_ray_worth_starting_and_never_run_beside_a_local_one(tmp_path, monkeypatch):
    """Timing groups run one at a time whatever runs them: 22 s of them alone never start Ray, and
    once Ray is up a timing group goes there only after the local worker's timing groups are done."""
    pytest.importorskip("ray")
    from archbench.execute.executors.ray import RayExecutor

    class Local:
        retired, queued, waited, submitted = False, 0, 0, 0

        def seconds_per_point(self) -> float:
            return 2.0

        def depth(self) -> int:
            return 6

        def idle(self) -> bool:
            return True

        def wait_timing(self) -> None:
            self.waited += 1

        def submit(self, group, settings) -> None:
            self.submitted += 1

    ex, local = RayExecutor(2), Local()
    local.executor = type("Pending", (), {"pending": lambda _: 0})()
    ex._local, ex._left, ex._left_untimed = local, 11, 0  # 22 s left, all of it timing
    monkeypatch.setattr(ex, "_start", lambda: pytest.fail("Ray started for timing points"))
    assert ex.has_room() and not ex._wanted
    timing, untimed = point(tmp_path, metrics=("latency",)), point(tmp_path)
    ex.submit([timing], Settings())  # Ray not up: here
    assert (local.submitted, local.waited) == (1, 0)
    sent = []
    monkeypatch.setattr(ex, "_task", lambda options: type("Task", (), {"remote": lambda *a: sent.append(options) or object()})())
    ex._up, ex._warmed = True, 0  # Ray up, no Ray worker warm yet: an untimed group still goes here
    monkeypatch.setattr(ex, "_free", lambda: 0)
    ex.submit([untimed], Settings())
    assert (local.submitted, local.waited, sent) == (2, 0, [])
    ex.submit([timing], Settings())  # a timing group: to Ray, after the local timing groups
    assert (local.submitted, local.waited) == (2, 1) and sent == [{"num_cpus": 1, "resources": {"archbench_timing": 1}}]


@pytest.fixture
def seen(monkeypatch):
    """What each Ray executor of the test did: its local groups, whether Ray started, and for each
    group given to Ray the warm Ray workers and the groups in flight there at that moment."""
    pytest.importorskip("ray")
    from archbench.execute.executors.ray import RayExecutor

    found: dict = {"local": [], "started": [], "ray_submits": []}
    close, task = RayExecutor.close, RayExecutor._task

    def closing(self):
        found["local"].append(self.local_groups)
        found["started"].append(self.ray_started)
        close(self)

    def tasked(self, options):
        found["ray_submits"].append((self._warmed, len(self._refs)))
        return task(self, options)

    monkeypatch.setattr(RayExecutor, "close", closing)
    monkeypatch.setattr(RayExecutor, "_task", tasked)
    return found


def values(folder: Path) -> pd.Series:
    df = pd.read_csv(folder / "results.csv")
    assert (df.status == "ok").all(), df[df.status != "ok"]
    return df[df.metric.isin(DETERMINISTIC)].set_index(["point_id", "metric"]).value.sort_index()


def test_a_small_suite_runs_on_the_local_worker_and_never_starts_ray(tmp_path, seen):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    ray_run = archbench.run(path, out=tmp_path / "ray", executor="ray", workers=2, progress=False, say=lambda s: None)
    serial = archbench.run(path, out=tmp_path / "serial", progress=False, say=lambda s: None)
    assert seen["started"] == [False] and seen["local"] == [6] and seen["ray_submits"] == []
    import ray

    assert not ray.is_initialized()
    pd.testing.assert_series_equal(values(ray_run.folder), values(serial.folder))


def test_ray_gets_a_group_only_when_a_warm_ray_worker_is_free(tmp_path, seen, monkeypatch):
    monkeypatch.setattr(local_first, "RAY_WORTH_S", 0.0)  # worth it as soon as one group has finished
    monkeypatch.setattr(local_first, "INIT_S", 0.0)       # one group queued locally for ray.init
    # the local worker takes no group of its own accord after its first: the rest wait for Ray's workers
    monkeypatch.setattr(local_first.LocalFirst, "idle", lambda self: self.executor.pending() == 0 and not self.groups)
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace("[8, 16, 32]", "[8, 16, 32, 64]"))
    ray_run = archbench.run(path, out=tmp_path / "ray", executor="ray", workers=2, progress=False, say=lambda s: None)
    assert seen["started"] == [True]
    assert seen["local"] == [2] and len(seen["ray_submits"]) == 6  # the first, the one queued for ray.init
    assert all(warm > in_flight for warm, in_flight in seen["ray_submits"]), seen["ray_submits"]
    import ray

    assert not ray.is_initialized()  # shut down at the end
    serial = archbench.run(path, out=tmp_path / "serial", progress=False, say=lambda s: None)
    pd.testing.assert_series_equal(values(ray_run.folder), values(serial.folder))


@pytest.fixture
def asked(monkeypatch):
    """What ``ray.init`` was asked for; it then fails, so no cluster starts."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray of this process is running")
    kwargs: dict = {}

    def init(**given):
        kwargs.update(given)
        raise RuntimeError("no cluster today")

    monkeypatch.setattr(ray, "init", init)
    return kwargs


def test_ray_init_starts_a_cluster_of_its_own(asked):
    from archbench.execute.executors.ray import RayExecutor

    ex = RayExecutor(2)
    assert not ex.ray_started  # a cluster of its own: started when worth it, not when made
    with pytest.raises(BadInput, match="^cannot start a local Ray cluster: no cluster today$"):
        ex._start()
    assert asked["address"] == "local" and asked["resources"] == {"archbench_timing": 1}


# a quick point, whose seconds make Ray worth starting (RAY_WORTH_S 0 in the run), then two that train for ever
FOREVER = """
name: forever
device: cpu
threads: 1
experiments:
  - name: quick
    architectures: [{kind: tcn, levels: 1}]
    task: {kind: uniform, vocab_size: 8}
    metrics: [flops]
    sweep: {seq_len: 8, batch: 1, d_model: 8}
  - name: long
    architectures: [{kind: tcn, levels: 1}, {kind: lstm, layers: 1}]
    task: {kind: reverse, vocab_size: 8}
    metrics: [accuracy]
    training: {steps: 1000000, eval_every: 1000000}
    sweep: {seq_len: 8, batch: 1, d_model: 8}
"""

RUN = """
import sys
from archbench.execute.executors import local_first
from archbench.execute.group import Settings
local_first.RAY_WORTH_S = 0.0
local_first.INIT_S = 0.0
from archbench.cli import cli
cli(args=sys.argv[1:])
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc")
def test_sigterm_after_ray_started_late_leaves_no_process(tmp_path):
    """SIGTERM while one point trains on the local worker and another on a Ray worker started after
    the run began: exit 143, and neither the local worker nor any of Ray's processes is left."""
    pytest.importorskip("ray")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_orphans import GONE, WAIT, _alive, _cmdline, _descendants

    path = tmp_path / "suite.yaml"
    path.write_text(FOREVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", RUN, "run", str(path), "--out", str(tmp_path / "out"),
                             "--no-progress", "--no-report", "--executor", "ray", "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    seen: set = set()
    try:
        deadline = time.monotonic() + WAIT
        while not any(_cmdline(p).startswith("ray::run_jobs_resident") for p, _ in seen):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            seen |= _descendants(proc.pid)
            time.sleep(0.2)
        run = _cmdline(proc.pid)
        assert any(_cmdline(p) == run for p, _ in seen), "no local worker"  # forked: the run's command line
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    deadline = time.monotonic() + GONE
    while (left := [p for p in seen if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, "outlived the run: " + "; ".join(f"{pid} {_cmdline(pid)[:120]}" for pid, _ in left)


def test_address_local_starts_a_cluster_of_its_own_at_once(asked):
    """``--address local``: no local first, Ray started when the executor is made (a Ray setup checked
    on a small suite), a local cluster with the timing resource."""
    from archbench.execute.executors.ray import RayExecutor

    with pytest.raises(BadInput, match="^cannot start a local Ray cluster: no cluster today$"):
        RayExecutor(1, address="local")  # at once: before any point is seen
    assert asked["address"] == "local" and asked["resources"] == {"archbench_timing": 1}
