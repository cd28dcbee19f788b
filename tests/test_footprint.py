"""Sizes bounded before anything is built (archbench.execute.footprint): the estimate against the
peak measured on the CPU and against analytic counts; a point that cannot fit ends ``oom`` unbuilt,
an experiment none of whose points fits is refused at load; the time limit covers building the
model and drawing the data.
"""
from __future__ import annotations

import time

import pytest
import torch
from click.testing import CliRunner

from archbench import registry
from archbench.cli import cli
from archbench.execute import footprint
from archbench.execute.group import Settings, run_group
from archbench.instruments.passes import loss_fn, scored_targets
from archbench.metrics.memory import peak_bytes
from archbench.stop_rule import StopRule
from archbench.suite.point import Point
from archbench.tasks.base import build_task
from archbench.tasks.uniform import Uniform

FAST = StopRule(min_samples=1, min_time=0.0, max_time=0.001, warmup=0.0, min_sample_time=0.0)
HUGE = {"d_model": 65536, "layers": 64}  # a transformer of about 13 TB of weights


def point(kind: str, pass_: str = "forward", seq_len: int = 64, batch: int = 4, metrics=("peak_memory",),
          task: str = "copy_memory", task_params=(), training=(), **params) -> Point:
    full = registry.architectures.validate(kind, params)
    return Point(experiment="e", arch=kind, arch_kind=kind, arch_params=tuple(sorted(full.items())), task=task,
                 task_params=tuple(task_params), metrics=tuple(metrics), seq_len=seq_len, batch=batch, pass_=pass_,
                 seed=0, causal=True, device="cpu", dtype="float32", threads=1, training=tuple(sorted(training)))


def built(p: Point):
    task = build_task(p.task, p.seq_len, p.causal, **dict(p.task_params))
    model = registry.architectures.get(p.arch_kind)(vocab_size=task.vocab_size, causal=True, **p.params)
    return task, model, task.sample(p.batch, torch.Generator().manual_seed(0))


def measured(p: Point) -> int:
    """The peak bytes one pass allocates on the CPU (the profiler's count), gradients included."""
    _, model, b = built(p)

    def run() -> None:
        if p.pass_ == "forward":
            with torch.inference_mode():
                model(b.inputs)
        else:
            model.zero_grad(set_to_none=True)
            loss_fn(model(b.inputs), scored_targets(b)).backward()

    return peak_bytes(run)


# Within a factor of 2: the fused recurrent kernels are sized analytically (0.6-1.6 of the
# measured peak); the others are traced operation by operation (0.8-1.05).
@pytest.mark.parametrize("kind", ["transformer", "tcn", "lstm"])
@pytest.mark.parametrize("pass_", ["forward", "backward"])
def test_the_activations_estimated_on_meta_are_within_a_factor_of_two_of_the_measured_peak(kind, pass_):
    p = point(kind, pass_, d_model=32)
    estimated, real = footprint.estimate(p).activations, measured(p)
    assert estimated is not None and 0.5 <= estimated / real <= 2.0, (estimated, real)


def test_weights_data_and_optimiser_state_are_the_analytic_counts():
    p = point("transformer", "train_step", d_model=32, layers=3)
    task, model, b = built(p)
    fp = footprint.estimate(p)
    weights = 4 * sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    assert fp.weights == weights and fp.optimizer == 2 * weights  # float32; AdamW's two moments
    per_sequence = sum(t.numel() * t.element_size() for t in (b.inputs, b.targets, b.mask, b.answer)
                       if t is not None) // p.batch
    assert fp.data == p.batch * per_sequence
    trained = footprint.estimate(point("transformer", metrics=("accuracy",), training=[("eval_size", 1000)],
                                       d_model=32, layers=3))
    assert trained.data == (p.batch + 1000) * per_sequence and trained.optimizer == 2 * weights
    assert footprint.estimate(point("transformer", d_model=32, layers=3)).optimizer == 0


def test_a_deep_stack_is_extrapolated_from_two_depths_exactly():
    p = point("transformer", "backward", d_model=16, layers=7)
    full = footprint._traced(p, p.params)
    assert footprint.estimate(p) == full  # 7 > DEPTHS[-1]: traced at 2 and 4 layers, extrapolated


def test_attention_is_traced_as_the_fused_kernel_not_the_quadratic_weights():
    short, long = (footprint.estimate(point("transformer", "backward", seq_len=n, d_model=16)).activations
                   for n in (512, 1024))
    assert long / short < 2.2  # the math path's (T, T) weights would make it about 4


def test_a_point_that_cannot_fit_is_oom_without_being_built_and_the_others_run():
    small, huge = point("transformer", d_model=16, layers=1), point("transformer", **HUGE)
    t0 = time.perf_counter()
    results = run_group([small, huge], Settings(rule=FAST))
    assert time.perf_counter() - t0 < 30
    assert [r.status for r in results] == ["ok", "oom"]
    message = results[1].rows[0].error
    assert message.startswith("not built: needs about 13.") and "TB (weights 13." in message
    assert "RAM available)" in message and "\n" not in message


SUITE = """
name: sized
device: cpu
experiments:
  - name: fits
    architectures: [{kind: transformer, layers: 1}]
    task: copy_memory
    metrics: [peak_memory]
    sweep: {seq_len: 32, batch: 2, d_model: 16}
  - name: big
    architectures: [{kind: transformer, layers: 64}]
    task: copy_memory
    metrics: [peak_memory]
    sweep: {seq_len: [32, 64], batch: 2, d_model: 65536}
"""


def test_an_experiment_none_of_whose_points_fits_is_refused_at_load_in_one_line(tmp_path):
    path = tmp_path / "sized.yaml"
    path.write_text(SUITE)
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: experiment 'big': none of its 2 point(s) fits the memory of cpu: the smallest, "
                           "big/transformer n=32 b=2 forward d_model=65536, needs about 13.")
    assert "RAM available)" in line and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the time limit while building


SPIN = compile("import time\nend = time.monotonic() + seconds\nwhile time.monotonic() < end:\n    pass\n",
               "<somewhere else>", "exec")  # code in no file of the point's: the old watchdog never raised here


class SlowToBuild(torch.nn.Module):
    def __init__(self, vocab_size: int, causal: bool = True):
        super().__init__()
        exec(SPIN, {"seconds": 20.0})
        self.head = torch.nn.Embedding(vocab_size, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class SlowData(Uniform):
    """Each draw takes 20 ms: a held-out set of 10^6 sequences would take five minutes."""

    def sample(self, batch, generator):
        time.sleep(0.02)
        return super().sample(batch, generator)


@pytest.fixture
def slow():
    registry.architectures.add("slow_to_build", SlowToBuild)
    registry.tasks.add("slow_data", SlowData)
    yield
    registry.architectures.remove("slow_to_build")
    registry.tasks.remove("slow_data")


def test_the_time_limit_covers_building_the_model_and_drawing_the_data(slow):
    small = point("transformer", d_model=16, layers=1, metrics=("latency",))
    building = point("slow_to_build", metrics=("latency",), task="uniform")
    drawing = point("transformer", d_model=16, layers=1, metrics=("accuracy",), task="slow_data", seq_len=8,
                    training=[("eval_size", 1_000_000), ("steps", 1)])
    # generous margins, for a loaded machine: the small point has a minute; the slow ones a limit of 2 s,
    # far under what they would take without it (20 s to build, 5 minutes to draw)
    for p in (building, drawing):
        t0 = time.perf_counter()
        late, ok = run_group([p], Settings(rule=FAST, timeout=2.0)), run_group([small], Settings(rule=FAST, timeout=60))
        assert late[0].status == "timeout" and ok[0].status == "ok"
        assert late[0].seconds < 2.0 + 8, (p.arch_kind, late[0].seconds)
        assert time.perf_counter() - t0 < 18  # stopped at its limit, not after the 20 s build


def gen_point(kind: str, prompt: int, tokens: int, seq_len: int = 16, batch: int = 2, **params) -> Point:
    p = point(kind, seq_len=seq_len, batch=batch, metrics=("generation",), task="uniform", **params)
    import dataclasses

    return dataclasses.replace(p, generation=(("cuda_graphs", False), ("prompt", prompt), ("tokens", tokens)))


def test_generation_counts_the_key_value_cache_of_prompt_plus_tokens():
    """A transformer's cache holds k and v, (B, capacity, d_model) float32 per layer: G more tokens add
    exactly layers x 2 x B x G x d x 4 bytes, plus the G generated ids (B x G int64)."""
    layers, d, b = 2, 64, 2
    small, large = (footprint.estimate(gen_point("transformer", 8, g, batch=b)).activations for g in (100, 1100))
    assert large - small == layers * 2 * b * 1000 * d * 4 + b * 1000 * 8
    recurrent = [footprint.estimate(gen_point("lstm", 8, g, batch=b)).activations for g in (10**6, 2 * 10**6)]
    assert recurrent[1] - recurrent[0] == b * 10**6 * 8  # a recurrent state does not grow: the ids alone


def test_a_generation_that_would_not_fit_is_oom_before_it_is_built():
    p = gen_point("transformer", 2**24, 2**24, batch=2**10)
    message = footprint.too_large(p)
    assert message is not None and message.startswith("not built: needs about")


def test_the_estimate_at_load_runs_under_the_points_timeout(monkeypatch):
    """An estimate past the suite's timeout stops there; the point counts as fitting (its own run is
    stopped by the same limit)."""
    def endless(p):
        while True:
            sum(range(1000))

    monkeypatch.setattr(footprint, "estimate", endless)
    t0 = time.perf_counter()
    footprint.check_fits([point("transformer", d_model=16, layers=1, metrics=("latency",))], timeout=0.3)
    assert time.perf_counter() - t0 < 20  # stopped: without the watchdog it would never return
