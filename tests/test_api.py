"""The Python API's doors: a wrong type or value is one BadInput naming the function and the argument
(archbench/api.py), before anything is written; measure's timeout is the suite's watchdog."""
from __future__ import annotations

import time

import pytest
import torch

import archbench
from archbench.errors import BadInput, PointTimeout

SUITE = "name: ok\nexperiments:\n  - name: e\n    architectures: [lstm]\n    metrics: [flops]\n    sweep: {seq_len: 8, d_model: 8}\n"


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(SUITE)
    return path


RUN_CASES = [
    ({"suite": None}, "suite=None"), ({"suite": 5}, "suite=5"), ({"out": None}, "out=None"), ({"out": 5}, "out=5"),
    ({"out": ""}, "out=''"), ({"shard": (1, "2")}, "shard=(1, '2')"), ({"shard": 5}, "shard=5"),
    ({"shard": (True, 2)}, "shard=(True, 2)"), ({"shard": (3, 2)}, "shard=(3, 2)"), ({"shard": (1, 2, 3)}, "shard="),
    ({"device": "tpu"}, "device='tpu'"), ({"device": 5}, "device=5"), ({"executor": 5}, "executor=5"),
    ({"workers": "2"}, "workers='2'"), ({"workers": 0}, "workers=0"), ({"workers": True}, "workers=True"),
    ({"max_points": -1}, "max_points=-1"), ({"max_points": "x"}, "max_points='x'"), ({"resume": 5}, "resume=5"),
    ({"say": 5}, "say=5"), ({"progress": "no"}, "progress='no'"), ({"retry_failed": 1}, "retry_failed=1"),
    ({"allow_plugins": "yes"}, "allow_plugins='yes'"), ({"address": 5}, "address=5"),
]


@pytest.mark.parametrize(("kwargs", "named"), RUN_CASES, ids=[c[1] for c in RUN_CASES])
def test_run_refuses_a_bad_argument_naming_it_and_writes_nothing(kwargs, named, suite_file, tmp_path):
    out = tmp_path / "results"
    args = {"suite": suite_file, "out": out, **kwargs}
    with pytest.raises(BadInput) as info:
        archbench.run(args.pop("suite"), args.pop("out"), **args)
    message = str(info.value)
    assert message.startswith(f"archbench.run: {named}") and "\n" not in message, message
    assert not out.exists()


@pytest.mark.parametrize(("call", "start"), [
    (lambda: archbench.load_suite(None), "archbench.load_suite: path=None"),
    (lambda: archbench.load_suite(5), "archbench.load_suite: path=5"),
    (lambda: archbench.load_suite("s.yaml", max_points="x"), "archbench.load_suite: max_points='x'"),
    (lambda: archbench.load_suite("s.yaml", allow_plugins=1), "archbench.load_suite: allow_plugins=1"),
    (lambda: archbench.expand(None), "archbench.expand: suite=None"),
    (lambda: archbench.expand("suites/quick.yaml"), "archbench.expand: suite='suites/quick.yaml'"),
    (lambda: archbench.load_results(None), "archbench.load_results: path=None"),
    (lambda: archbench.load_results(5), "archbench.load_results: path=5"),
    (lambda: archbench.load_results("x", role=5), "archbench.load_results: role=5"),
    (lambda: archbench.build_architecture("lstm", vocab_size="x"), "build_architecture('lstm'): vocab_size='x'"),
    (lambda: archbench.build_architecture("lstm", vocab_size=0), "build_architecture('lstm'): vocab_size=0"),
    (lambda: archbench.build_architecture("lstm", vocab_size=10**12), "build_architecture('lstm'): vocab_size=1000000"),
    (lambda: archbench.build_architecture("lstm", vocab_size=4, causal="no"), "build_architecture('lstm'): causal='no'"),
    (lambda: archbench.build_architecture("lstm", vocab_size=4, layers=10**9), "lstm.layers: 1000000000 is beyond"),
    (lambda: archbench.build_architecture("encoder_decoder", vocab_size=4, encoder="lstmm"), "encoder_decoder.encoder: "),
])
def test_the_other_entry_points_refuse_a_bad_argument_naming_it(call, start):
    with pytest.raises(BadInput) as info:
        call()
    assert str(info.value).startswith(start) and "\n" not in str(info.value), str(info.value)


def test_expand_refuses_a_device_it_cannot_run_on(suite_file):
    suite = archbench.load_suite(suite_file)
    with pytest.raises(BadInput, match=r"^archbench.expand: device='tpu': allowed: auto, cpu, cuda, or None$"):
        archbench.expand(suite, device="tpu")
    assert [p.device for p in archbench.expand(suite, device="cpu")] == ["cpu"]


@pytest.mark.parametrize(("kwargs", "start"), [
    ({"fn": None}, "fn=None"), ({"device": "tpu"}, "device='tpu'"), ({"device": 5}, "device=5"),
    ({"device": "cuda:x"}, "device='cuda:x'"), ({"rule": "x"}, "rule='x'"), ({"clock": "x"}, "clock='x'"),
    ({"cold_cache": "yes"}, "cold_cache='yes'"), ({"timeout": 0}, "timeout=0"), ({"timeout": -1}, "timeout=-1"),
    ({"timeout": float("inf")}, "timeout=inf"), ({"timeout": "5"}, "timeout='5'"), ({"timeout": True}, "timeout=True"),
])
def test_measure_refuses_a_bad_argument_naming_it(kwargs, start):
    args = {"fn": lambda: None, **kwargs}
    with pytest.raises(BadInput) as info:
        archbench.measure(args.pop("fn"), **args)
    assert str(info.value).startswith(f"archbench.measure: {start}"), str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of cuda on a CPU-only machine")
def test_measure_refuses_cuda_on_a_machine_without_it():
    with pytest.raises(BadInput, match="this machine has no CUDA device; allowed here: 'cpu'"):
        archbench.measure(lambda: None, device="cuda")


def test_measure_stops_at_its_timeout_and_the_timer_is_put_back():
    import signal

    rule = archbench.StopRule(min_samples=10**6, min_time=50.0, max_time=60.0, target=0.01, warmup=0.0)
    start = time.monotonic()
    with pytest.raises(PointTimeout, match="over the time limit of 0.3 s"):
        archbench.measure(lambda: sum(range(100)), rule=rule, timeout=0.3)
    assert time.monotonic() - start < 30  # the rule alone would sample for 50 s
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    m = archbench.measure(lambda: sum(range(100)), rule=archbench.StopRule(min_samples=3, min_time=0.0,
                                                                            max_time=1.0), timeout=30)
    assert len(m.samples) >= 3
