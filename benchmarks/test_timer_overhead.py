"""The harness's own cost per timing sample: what archbench adds around the call it measures.

    python -m pytest benchmarks -n 0 --benchmark-only
"""
import time

from archbench.instruments.timing import StopRule, measure

SAMPLES = 200
# Exactly SAMPLES samples of one call each: a target of 1.0 is met as soon as min_samples is.
RULE = StopRule(min_samples=SAMPLES, min_time=0.0, max_time=60.0, target=1.0, warmup=0.0, min_sample_time=0.0)


def noop() -> None:
    return None


def test_overhead_per_sample(benchmark):
    """Time of measure() on a no-op, divided by its samples: clock reads, loop and stop rule."""
    result = benchmark.pedantic(measure, args=(noop, "cpu", RULE), rounds=20, warmup_rounds=2)
    assert result.n == SAMPLES
    benchmark.extra_info["samples_per_measure"] = SAMPLES
    benchmark.extra_info["overhead_per_sample_us"] = benchmark.stats.stats.median / SAMPLES * 1e6


def test_clock_read(benchmark):
    """One perf_counter_ns read, the floor under any host timing."""
    benchmark(time.perf_counter_ns)


def test_stop_check_at_1000_samples(benchmark):
    """The stop rule once min_samples is reached: sort and CI of 1000 samples (outside the timed calls)."""
    import random

    from archbench.instruments.timing import should_stop

    rng = random.Random(0)
    samples = sorted(1e-3 * (1 + 0.1 * rng.random()) for _ in range(1000))  # the sampler keeps them sorted
    rule = StopRule(min_samples=10, min_time=0.0, max_time=60.0, target=1e-9)
    assert benchmark(should_stop, samples, 1.0, rule, ordered=True) == (False, False)
