"""The implementation axis: compile, attention_backend, amp and cuda_graphs in suites, point ids, the
implementation metric, and what a device or an architecture cannot run (skipped, with the reason)."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import requires_cuda
from torch import nn

from archbench.errors import BadInput
from archbench.execute.group import Settings, run_group
from archbench.instruments import implementation
from archbench.instruments.implementation import Implemented
from archbench.instruments.passes import train_step
from archbench.stop_rule import StopRule
from archbench.suite.load import parse_suite
from archbench.suite.plan import count_points, expand
from archbench.tasks.base import Batch

SUITE = """
name: impl
experiments:
  - name: e
    architectures: [lstm, {{kind: transformer, heads: 2}}]
    metrics: [{metrics}]
    passes: [{passes}]
    {implementation}
    sweep: {{seq_len: {seq_len}, batch: 2, d_model: 16}}
"""
FAST = Settings(rule=StopRule(min_samples=2, min_time=0.0, max_time=0.05, warmup=0.0))


def suite(implementation: str = "", metrics: str = "implementation, latency", passes: str = "forward",
          seq_len: str = "8"):
    return parse_suite(SUITE.format(implementation=implementation, metrics=metrics, passes=passes, seq_len=seq_len))


def rows(result) -> dict:
    return {r.metric: r for r in result.rows}


def test_eager_points_keep_their_ids_and_an_implementation_is_part_of_the_id():
    plain = expand(suite())
    defaults = expand(suite("implementation: {compile: false, attention_backend: auto, amp: none, cuda_graphs: false, "
                            "compile_backend: aot_eager}"))
    assert [p.id for p in plain] == [p.id for p in defaults]
    assert all("implementation" not in p.to_dict() for p in plain)
    swept = expand(suite("implementation: {compile: [false, true, max-autotune], amp: [none, bf16]}"))
    assert len(swept) == 2 * 6 == count_points(suite("implementation: {compile: [false, true, max-autotune], "
                                                     "amp: [none, bf16]}"))
    assert len({p.id for p in swept}) == 12
    assert {p.id for p in plain} <= {p.id for p in swept}
    compiled = next(p for p in swept if dict(p.implementation) == {"compile": "max-autotune", "amp": "bf16"})
    assert "compile=max-autotune" in compiled.describe()
    assert type(compiled).from_dict(compiled.to_dict()) == compiled


@pytest.mark.parametrize("implementation, named", [
    ("{compile: fast}", "compile 'fast' is not allowed; allowed: false, true, default, reduce-overhead"),
    ("{amp: fp8}", "experiments[0].implementation.amp"),
    ("{attention_backend: xformers}", "experiments[0].implementation.attention_backend"),
    ("{cuda_graph: true}", "unknown key; allowed: "),
    ("{compile: []}", "compile is empty"),
])
def test_a_bad_value_is_one_line_naming_it_and_what_is_allowed(implementation, named):
    with pytest.raises(BadInput) as err:
        suite(f"implementation: {implementation}")
    assert named in str(err.value) and "\n" not in str(err.value)
    if "amp" in implementation:
        assert "'none', 'bf16' or 'fp16'" in str(err.value) and "fp8" in str(err.value)


def test_a_metric_of_the_model_itself_refuses_an_implementation():
    with pytest.raises(BadInput, match=r"metrics\[0\]: 'flops' measures the model, not how it is run.*latency"):
        suite("implementation: {compile: true}", metrics="flops")


def test_what_the_cpu_or_the_architecture_cannot_run_is_skipped_with_the_reason():
    points = expand(suite("implementation: {attention_backend: [auto, cudnn, math], cuda_graphs: [false, true]}"))
    results = {(p.arch, dict(p.implementation).get("attention_backend"), dict(p.implementation).get("cuda_graphs")): r
               for p, r in zip(points, run_group(points, FAST))}
    why = {k: rows(r)["latency"].error for k, r in results.items() if r.status == "skipped"}
    assert why[("lstm", "math", None)] == ("attention_backend math: lstm calls no scaled_dot_product_attention, "
                                           "so there is no attention kernel to choose")
    assert why[("transformer", "cudnn", None)].startswith("attention_backend cudnn: a CPU has no cudnn attention")
    assert why[("transformer", "math", True)] == "cuda_graphs needs a CUDA device; this point runs on cpu"
    ran = results[("transformer", "math", None)]
    assert ran.status == "ok" and rows(ran)["latency"].value > 0
    assert rows(ran)["logit_diff"].value <= 1e-5  # the math kernel against auto's (flash on a CPU)
    assert rows(ran)["compile_time"].status == "skipped"
    eager = results[("lstm", None, None)]
    assert eager.status == "ok" and "logit_diff" not in rows(eager)  # the baseline: no rows of its own


def test_compiled_points_count_compile_time_and_match_eager():
    # compile_backend eager: dynamo's tracing and counting without a compiler's minutes
    points = [p for p in expand(suite("implementation: {compile: [false, true], compile_backend: eager}"))
              if p.arch == "lstm"]  # the transformer's trace costs many seconds more
    results = run_group(points, FAST)
    compiled = [r for r in results if r.point.implementation]
    assert [r.status for r in results] == ["ok"] * 2 and len(compiled) == 1
    for r in compiled:
        got = rows(r)
        assert got["compile_time"].value > 0 and got["compile_time"].stats["calls"] >= 1
        assert got["recompilations"].value == 0
        # dynamo does not trace an nn.LSTM: it breaks the graph there, and the LSTM runs eager
        assert got["graph_breaks"].value == (1 if r.point.arch == "lstm" else 0)
        if r.point.arch == "lstm":
            assert "LSTM" in got["graph_breaks"].stats["reasons"]
        assert got["logit_diff"].value <= got["logit_diff"].stats["tolerance"]
        assert got["logit_diff"].stats["compute_dtype"] == "float32"


class Broken(nn.Module):
    """A model with one graph break in its forward."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(11, 8), nn.Linear(8, 11)

    def forward(self, x):
        h = self.embed(x)
        torch._dynamo.graph_break()
        return self.head(h)


def _implemented(model: nn.Module, backend: str = "aot_eager", device: str = "cpu", **settings) -> Implemented:
    point = expand(suite(), device=device)[0]
    impl = {"compile": True, "compile_backend": backend, **settings}
    point = type(point).from_dict({**point.to_dict(), "implementation": impl})
    return Implemented(model, point, torch.device(device))


def test_graph_breaks_and_recompilations_are_counted():
    model = _implemented(Broken().eval())
    x = torch.randint(0, 11, (2, 5))
    with torch.inference_mode():
        model(x)
        assert (model.calls, model.recompilations) == (1, 0)
        breaks = model.graph_breaks  # as dynamo's counters record them: once per frame that meets the break
        assert breaks >= 1 and "graph_break" in " ".join(model.break_reasons)
        model(x)
        assert (model.recompilations, model.graph_breaks) == (0, breaks)  # the same shape: nothing compiled
        model(torch.randint(0, 11, (2, 7)))  # a new shape under dynamic=False: compiled again
    assert model.recompilations >= 1 and model.graph_breaks > breaks
    assert model.compile_time is not None and model.compile_time > 0


def test_a_logit_difference_beyond_the_tolerance_is_an_error_naming_it(monkeypatch):
    points = [p for p in expand(suite("implementation: {amp: bf16}")) if p.arch == "transformer"]
    ok = rows(run_group(points, FAST)[0])["logit_diff"]
    assert ok.status == "ok" and 0 < ok.value <= ok.stats["tolerance"]  # bf16 rounds, within its tolerance
    assert ok.stats["compute_dtype"] == "bfloat16"
    monkeypatch.setitem(implementation.TOLERANCE, "bfloat16", (0.0, 0.0))
    result = run_group(points, FAST)[0]
    assert result.status == "error"
    assert rows(result)["logit_diff"].error.startswith("logit_diff ")
    assert "beyond the bfloat16 tolerance 0" in rows(result)["logit_diff"].error


def test_an_fp16_training_step_scales_its_loss():
    torch.manual_seed(0)
    model = _implemented(nn.Sequential(nn.Embedding(11, 8), nn.Linear(8, 11)), compile=False, amp="fp16")
    x = torch.randint(0, 11, (2, 5))
    step = train_step(model, Batch(x, x, torch.ones_like(x, dtype=torch.bool)))
    before = [p.detach().clone() for p in model.parameters()]
    loss = step()
    assert model.grad_scaler is not None and model.grad_scaler.get_scale() > 1  # the scaler ran
    assert math.isfinite(float(loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_inductor_compiles_a_tiny_model_to_the_eager_logits():
    """The real compiler (C++ on a CPU), on the smallest model; slow (about 10 s) but the path users run."""
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Embedding(11, 8), nn.GELU(), nn.Linear(8, 11)).eval()
    model = _implemented(eager, backend="inductor")
    x = torch.randint(0, 11, (2, 5))
    with torch.inference_mode():
        got, want = model(x), eager(x)
    assert model.compile_time is not None and model.compile_time > 0
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


@requires_cuda
def test_cuda_graph_replay_gives_the_eager_logits_on_every_call():
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Embedding(11, 8), nn.Linear(8, 11)).cuda().eval()
    model = _implemented(eager, device="cuda", compile=False, cuda_graphs=True)
    with torch.inference_mode():
        for seed in range(3):
            x = torch.randint(0, 11, (2, 5), device="cuda", generator=torch.Generator("cuda").manual_seed(seed))
            assert torch.equal(model(x).clone(), eager(x))
    assert len(model._graphs) == 1


@requires_cuda
@pytest.mark.parametrize("backend", ["math", "flash", "efficient", "cudnn"])
def test_each_sdpa_backend_runs_or_is_skipped_on_cuda(backend):
    text = SUITE.format(implementation=f"implementation: {{attention_backend: {backend}}}",
                        metrics="implementation, latency", passes="forward", seq_len="64")
    points = [p for p in expand(parse_suite(text.replace("d_model: 16", "d_model: 64")), device="cuda")
              if p.arch == "transformer"]
    for dtype in ("float32", "bfloat16"):
        point = type(points[0]).from_dict({**points[0].to_dict(), "dtype": dtype})
        result = run_group([point], FAST)[0]
        assert result.status in ("ok", "skipped"), rows(result)["latency"].error
        if result.status == "skipped":
            assert "no viable kernel" in rows(result)["latency"].error
        else:
            assert rows(result)["logit_diff"].status == "ok"


def test_the_report_divides_eager_latency_by_each_implementation_s(tmp_path):
    from archbench.report.implementations import section, speedups
    from archbench.report.section import ReportData
    from archbench.results.load import records_to_frame

    def data(frame):
        return ReportData(frame, {}, [], None, tmp_path, tmp_path, {})

    points = expand(suite("implementation: {compile: [false, true], attention_backend: [auto, math]}",
                          seq_len="[8, 16]"))
    latency = {p.id: 0.001 * (1 + i) for i, p in enumerate(points)}
    records = [{"suite": "impl", "point": p.to_dict(), "status": "ok", "rows": [
        {"metric": "latency", "value": latency[p.id], "unit": "s", "higher_is_better": False, "status": "ok"},
        {"metric": "logit_diff", "value": 1e-7, "unit": "abs", "higher_is_better": False, "status": "ok"}]}
        for p in points]
    table = speedups(records_to_frame(records))
    eager = {(p.arch, p.seq_len): latency[p.id] for p in points if not p.implementation}
    assert len(table) == len(points) - len(eager)
    for p in points:
        if p.implementation:
            got = table[(table.arch == p.arch) & (table.seq_len == p.seq_len)
                        & (table.implementation == " ".join(f"{k}={v}" for k, v in p.implementation))]
            assert got.speedup.item() == pytest.approx(eager[(p.arch, p.seq_len)] / latency[p.id])
    found = section(data(records_to_frame(records)))
    assert found is not None and found.figures == ["implementations_e"]
    assert (tmp_path / "implementations_e.png").exists()
    assert any("| e | transformer | forward | 16 | attention_backend=math" in x for x in found.lines)
    assert section(data(records_to_frame(records[:1]))) is None


@requires_cuda
def test_amp_and_cuda_graphs_run_on_cuda_within_tolerance():
    points = expand(suite("implementation: {amp: [bf16, fp16], cuda_graphs: [false, true]}"), device="cuda")
    for r in run_group(points, FAST):
        assert r.status == "ok", r.point.describe()
        assert rows(r)["logit_diff"].value <= rows(r)["logit_diff"].stats["tolerance"]
    steps = expand(suite("implementation: {amp: fp16, cuda_graphs: [false, true]}", passes="train_step"), device="cuda")
    got = {dict(p.implementation).get("cuda_graphs", False): r for p, r in zip(steps, run_group(steps, FAST))}
    assert got[False].status == "ok" and got[True].status == "skipped"
    assert "the train_step pass is not captured" in rows(got[True])["latency"].error
