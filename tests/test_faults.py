"""Faults while a run goes on: test-only architectures that raise, diverge, run out of memory or run
too long each end in their status, larger points after an out-of-memory are skipped, the memory of a
failed point is let go, and the other points finish ``ok``; the run itself exits 0.

The stand-ins are registered for each test and removed after it.
"""
from __future__ import annotations

import json
import signal
import time
import weakref
from typing import Annotated

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from pydantic import Field
from torch import nn

import archbench
from archbench import registry
from archbench.cli import cli
from archbench.execute.group import PointResult, Settings, classify, run_group
from archbench.execute.schedule import OomSkips, run_points
from archbench.instruments.timing import StopRule
from archbench.metrics.base import Metric, Row
from archbench.results.store import ResultStore
from archbench.suite.point import Point

FAST = StopRule(min_samples=1, min_time=0.0, max_time=0.001, warmup=0.0, min_sample_time=0.0)  # one sample


class Tiny(archbench.Architecture):
    """Embedding -> linear head: the cheapest model the contract allows."""

    def __init__(self, vocab_size: int, causal: bool = True, d_model: Annotated[int, Field(gt=0)] = 8):
        super().__init__()
        self.vocab_size, self.causal, self.d_model = vocab_size, causal, d_model
        self.embed, self.head = nn.Embedding(vocab_size, d_model), nn.Linear(d_model, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        return self.head(self.embed(x))


class Raises(Tiny):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(f"broken at seq_len {x.shape[1]}\nsecond line")


class NaNLoss(Tiny):
    """Finite weights, NaN logits: a forward pass is fine to time, a training loss is not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


class Greedy(Tiny):
    """Allocates ``unit`` bytes per token; over ``cap`` the allocation is refused (MemoryError).

    Every instance is kept as a weak reference, to check that a failed point's model is let go.
    """

    unit, cap = 1024, 31 * 1024
    built: list[weakref.ref] = []

    def __init__(self, vocab_size: int, causal: bool = True, d_model: Annotated[int, Field(gt=0)] = 8):
        super().__init__(vocab_size, causal, d_model)
        Greedy.built.append(weakref.ref(self))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        need = x.numel() * self.unit
        if need > self.cap:
            raise MemoryError(f"refused {need} bytes: over the cap of {self.cap}")
        work = torch.ones(need // 4)  # the memory it needs, really allocated
        return super().forward(x) + work[0]


class Sleeper(Tiny):
    """Sleeps ``nap`` seconds a call from seq_len ``slow_from`` on: a point that runs too long. The limits
    here are seconds, not fractions (3 s): the points that must finish have time to spare on a loaded
    machine; a sleeper's first call (2 s) ends under the limit, and its timing, two calls on, runs past it."""

    nap, slow_from = 2.0, 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] >= self.slow_from:
            time.sleep(self.nap)
        return super().forward(x)


class Interrupts(Tiny):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] >= 16:
            raise KeyboardInterrupt
        return super().forward(x)


STAND_INS = {"tiny": Tiny, "raises": Raises, "nan_loss": NaNLoss, "greedy": Greedy, "sleeper": Sleeper,
             "interrupts": Interrupts}


@pytest.fixture(autouse=True)
def stand_ins():
    for name, cls in STAND_INS.items():
        registry.architectures.add(name, cls)
    Greedy.built.clear()
    try:
        yield
    finally:
        for name in STAND_INS:
            registry.architectures.remove(name)


def points(archs, seq_lens=(8, 16, 32), batches=(2,), passes=("forward",), metrics=("latency",)) -> list[Point]:
    out = []
    for n in seq_lens:
        for b in batches:
            for p in passes:
                for kind in archs:
                    out.append(Point(
                        experiment="e", arch=kind, arch_kind=kind, arch_params=(("d_model", 8),), task="uniform",
                        task_params=(("vocab_size", 8),), metrics=tuple(metrics), seq_len=n, batch=b, pass_=p,
                        seed=0, causal=True, device="cpu", dtype="float32", threads=1,
                    ))
    return out


def statuses(results: list[PointResult]) -> dict[tuple, str]:
    return {(r.point.arch, r.point.seq_len, r.point.batch, r.point.pass_): r.status for r in results}


def run_all(pts: list[Point], tmp_path, settings: Settings | None = None) -> list[PointResult]:
    results: list[PointResult] = []
    store = ResultStore.create(tmp_path, "faults")
    run_points(pts, settings or Settings(rule=FAST), store, "faults", progress=False, on_result=results.append)
    return results


# ------------------------------------------------------------------------------ the whole run

SUITE = """
name: faults
timeout: 3.0
timing: {min_samples: 1, min_time: 0.0, max_time: 0.001, warmup: 0.0}
experiments:
  - name: e
    architectures: [tiny, raises, nan_loss, greedy, sleeper]
    task: {kind: uniform, vocab_size: 8}
    metrics: [latency]
    passes: [forward, train_step]
    sweep: {seq_len: [8, 16, 32], batch: 2, d_model: 8}
"""


def test_each_fault_ends_in_its_status_the_others_finish_ok_and_the_run_exits_0(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text(SUITE)
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "30 points, 60 rows (15 ok, 2 oom, 2 timeout, 3 diverged, 6 error, 2 skipped)" in result.stdout

    folder = next((tmp_path / "out" / "faults").iterdir())
    df = archbench.load_results(folder)
    lat = df[df.metric == "latency"].set_index(["arch", "seq_len", "pass"])
    expected = {
        "tiny": ["ok"] * 3,
        "raises": ["error"] * 3,
        "greedy": ["ok", "oom", "skipped"],
        "sleeper": ["ok", "ok", "timeout"],
    }
    for pass_ in ("forward", "train_step"):
        for arch, want in expected.items():
            assert [lat.status[arch, n, pass_] for n in (8, 16, 32)] == want, (arch, pass_)
        assert [lat.status["nan_loss", n, pass_] for n in (8, 16, 32)] == ["ok" if pass_ == "forward" else "diverged"] * 3
    assert lat.error["raises", 8, "forward"] == "RuntimeError: broken at seq_len 8"
    assert lat.error["nan_loss", 8, "train_step"] == "Diverged: the train_step loss is nan"
    assert lat.error["greedy", 16, "forward"] == f"MemoryError: refused {2 * 16 * 1024} bytes: over the cap of {31 * 1024}"
    oom_id = lat.point_id["greedy", 16, "forward"]
    assert lat.error["greedy", 32, "forward"] == f"not run: e/greedy n=16 b=2 forward d_model=8 (point {oom_id}) ran out of memory"
    assert lat.error["sleeper", 32, "train_step"] == "PointTimeout: over the time limit of 3 s"
    ok = lat[lat.status == "ok"]
    assert (ok.value > 0).all() and lat[lat.status != "ok"].value.isna().all()

    records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    assert len(records) == 30 and json.loads((folder / "meta.json").read_text())["statuses"] == {
        "ok": 15, "error": 6, "diverged": 3, "oom": 2, "skipped": 2, "timeout": 2}


# ---------------------------------------------------------------------------------------- oom


def test_after_an_oom_larger_points_of_that_architecture_are_skipped_and_no_others(tmp_path):
    pts = points(["greedy", "tiny"], seq_lens=(8, 16, 32), batches=(1, 2, 4))
    got = statuses(run_all(pts, tmp_path))
    # tokens per point = seq_len x batch; over 31 (x 1 KiB) is out of memory
    want = {
        (8, 1): "ok", (8, 2): "ok", (8, 4): "oom",          # 32 tokens: out of memory
        (16, 1): "ok", (16, 2): "oom", (16, 4): "skipped",  # longer and as large a batch as (8, 4)
        (32, 1): "oom", (32, 2): "skipped", (32, 4): "skipped",  # (32, 1) is not larger than (8, 4) or (16, 2)
    }
    assert {k: got[("greedy", *k, "forward")] for k in want} == want
    assert {got[("tiny", *k, "forward")] for k in want} == {"ok"}


def test_oom_skips_are_by_family():
    [small, large] = points(["greedy"], seq_lens=(8, 16))
    other_pass = points(["greedy"], seq_lens=(16,), passes=("backward",))[0]
    other_arch = points(["tiny"], seq_lens=(16,))[0]
    shorter = points(["greedy"], seq_lens=(4,), batches=(8,))[0]
    skips = OomSkips()
    skips.record(PointResult(small, [Row("latency", float("nan"), "s", False, status="oom")], "", 0.0))
    assert skips.cause(large) == small and skips.cause(small) == small
    assert skips.cause(other_pass) is None and skips.cause(other_arch) is None and skips.cause(shorter) is None
    skipped = OomSkips.skipped(large, small)
    assert skipped.status == "skipped" and [r.metric for r in skipped.rows] == ["latency", "throughput"]


def test_a_failed_points_model_and_tensors_are_let_go(tmp_path):
    pts = points(["greedy"], seq_lens=(8, 16), passes=("forward", "train_step"))
    got = statuses(run_all(pts, tmp_path))
    assert sorted(got.values()) == ["ok", "ok", "oom", "oom"]
    assert len(Greedy.built) == 4
    assert [ref() for ref in Greedy.built] == [None] * 4  # without a gc.collect() here: the runner let go


def test_torch_refusing_host_memory_is_oom():
    with pytest.raises(RuntimeError) as info:
        torch.empty(2**62, dtype=torch.uint8)  # more than any address space: the allocator refuses
    assert classify(info.value)[0] == "oom"
    assert classify(torch.cuda.OutOfMemoryError("CUDA out of memory"))[0] == "oom"
    assert classify(MemoryError())[0] == "oom"
    assert classify(RuntimeError("can't allocate a tensor here"))[0] == "error"


# ---------------------------------------------------------------------------------- diverged


@pytest.mark.parametrize("pass_", ["backward", "train_step"])
def test_a_non_finite_training_loss_is_diverged(pass_, tmp_path):
    pts = points(["nan_loss", "tiny"], seq_lens=(8,), passes=(pass_,), metrics=("latency", "peak_memory"))
    results = run_all(pts, tmp_path)
    assert statuses(results) == {("nan_loss", 8, 2, pass_): "diverged", ("tiny", 8, 2, pass_): "ok"}
    assert {r.error for r in results[0].rows} == {f"Diverged: the {pass_} loss is nan"}


def test_a_non_finite_metric_value_is_diverged(tmp_path):
    class Infinite(Metric):
        name, unit, higher_is_better = "test_infinite", "x", True

        def run(self, ctx):
            return [Row(self.name, float("inf"), self.unit, self.higher_is_better)]

    registry.metrics.add("test_infinite", Infinite)
    try:
        [result] = run_all(points(["tiny"], seq_lens=(8,), metrics=("test_infinite",)), tmp_path)
    finally:
        registry.metrics.remove("test_infinite")
    assert result.status == "diverged" and result.rows[0].error == "Diverged: test_infinite is inf"


# ------------------------------------------------------------------------------------ timeout


def test_a_point_over_its_time_limit_is_timeout_the_others_go_on_and_the_alarm_is_put_back(tmp_path):
    def previous(signum, frame):
        raise AssertionError("the runner's alarm should have been the only one")

    before = signal.signal(signal.SIGALRM, previous)
    try:
        pts = points(["tiny", "sleeper"], seq_lens=(8, 32), metrics=("latency", "peak_memory"))
        results = run_all(pts, tmp_path, Settings(rule=FAST, timeout=3.0))
        assert signal.getsignal(signal.SIGALRM) is previous
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, before)
    assert [r.status for r in results] == ["ok", "ok", "ok", "timeout"]
    slow = results[-1]
    assert [(r.metric, r.status) for r in slow.rows] == [
        ("latency", "timeout"), ("throughput", "timeout"), ("peak_memory", "timeout")]
    assert slow.rows[0].error == "PointTimeout: over the time limit of 3 s"
    assert slow.rows[2].error == "PointTimeout: not run: the point was over its time limit of 3 s"


def test_time_is_charged_to_the_point_that_spends_it():
    # three slow architectures of one shape, interleaved: each spends about 6 naps (cold call, warm-up,
    # 4 samples; a sample as long as the slice needs no untimed call before it) = 0.6 s, half the
    # limit of 1.2 s on its own (the rest to spare on a loaded machine), though the group together
    # sleeps 1.8 s, longer than the limit
    rule = StopRule(min_samples=4, min_time=0.0, max_time=10.0, target=1.0, warmup=0.0)  # 4 samples
    slow = [type(f"Sleeper{k}", (Sleeper,), {"nap": 0.1, "slow_from": 8}) for k in range(3)]
    for k, cls in enumerate(slow):
        registry.architectures.add(f"slow{k}", cls)
    try:
        t0 = time.perf_counter()
        results = run_group(points(["slow0", "tiny", "slow1", "slow2"], seq_lens=(8,)), Settings(rule=rule, timeout=1.2))
        elapsed = time.perf_counter() - t0
    finally:
        for k in range(3):
            registry.architectures.remove(f"slow{k}")
    assert elapsed > 1.2 and [r.status for r in results] == ["ok"] * 4


def test_no_timeout_no_alarm(tmp_path):
    before = signal.getsignal(signal.SIGALRM)
    run_all(points(["tiny"], seq_lens=(8,)), tmp_path)
    assert signal.getsignal(signal.SIGALRM) is before


# ---------------------------------------------------------------------- the run as a whole


def test_a_metric_that_fails_as_a_whole_fails_its_points_not_the_run(tmp_path):
    class Broken(Metric):
        name, unit, higher_is_better = "test_broken", "x", True

        def run_group(self, ctxs):
            raise ValueError("the metric itself broke")

    registry.metrics.add("test_broken", Broken)
    try:
        results = run_all(points(["tiny", "lstm"], seq_lens=(8,), metrics=("test_broken", "latency")), tmp_path)
    finally:
        registry.metrics.remove("test_broken")
    for result in results:
        assert [(r.metric, r.status) for r in result.rows] == [
            ("test_broken", "error"), ("latency", "ok"), ("throughput", "ok")] + (
            [("achieved_flops", "ok")] if result.point.arch == "lstm" else [])


def test_status_of_a_point():
    p = points(["tiny"], seq_lens=(8,))[0]

    def status(*states):
        return PointResult(p, [Row("m", 1.0, "x", True, status=s) for s in states], "", 0.0).status

    assert status("ok", "skipped") == "ok"  # e.g. flops skipped where the architecture has no count
    assert status("skipped", "skipped") == "skipped"
    assert status("ok", "oom", "error") == "oom"
    assert status() == "ok"


def test_an_interrupted_run_keeps_what_finished_and_exits_130(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.replace("timeout: 3.0\n", "").replace("[tiny, raises, nan_loss, greedy, sleeper]", "[tiny, interrupts]")
                    .replace("passes: [forward, train_step]", "passes: forward"))
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 130, result.output
    assert "interrupted: 2 of 6 points finished" in result.stderr
    folder = next((tmp_path / "out" / "faults").iterdir())
    df = pd.read_csv(folder / "results.csv")
    assert set(df.seq_len) == {8} and (df.status == "ok").all() and df.point_id.nunique() == 2
    assert json.loads((folder / "meta.json").read_text())["interrupted"] is True
