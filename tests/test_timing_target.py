"""benchmarks/timing_target.py: the samples a timed point needs to reach its target, checked against
intervals of simulated samples (Monte Carlo, through the timer's own Measurement) and closed forms."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from archbench.instruments.timing import Measurement

RULE = {"target": 0.02, "max_time": 0.15, "min_samples": 5, "min_time": 0.05, "confidence": 0.95}


@pytest.fixture()
def tt(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import timing_target

    return timing_target


def _mean_rel_ci(draw, n: int, reps: int = 400) -> float:
    """The mean, over ``reps`` sets of ``n`` simulated samples, of the timer's own interval width."""
    return float(np.mean([Measurement(tuple(draw(n))).rel_ci for _ in range(reps)]))


def test_noise_is_the_iqr_over_1349_over_the_median(tt):
    assert tt.noise([1, 2, 3, 4, 5]) == pytest.approx((4 - 2) / 1.3489795 / 3)
    assert tt.noise([5, 5, 5, 5, 5, 5, 5, 100]) == 0  # an outlier does not move it
    assert math.isnan(tt.noise([0.1]))
    rng = np.random.default_rng(0)
    assert tt.noise(rng.normal(1.0, 0.05, 20000)) == pytest.approx(0.05, rel=0.03)


@pytest.mark.parametrize("n", [2, 5, 8, 9, 30, 100])
def test_the_expected_interval_is_the_simulated_mean(tt, n):
    rng = np.random.default_rng(n)
    assert tt.predicted_rel_ci(n, 0.05) == pytest.approx(_mean_rel_ci(lambda k: rng.normal(1.0, 0.05, k), n, 1000),
                                                        rel=0.1 if n < 9 else 0.05)


def test_the_expected_interval_approaches_its_large_n_closed_form(tt):
    # h: the median's standard error sqrt(pi / 2) s / sqrt(n) times z; |c|: sqrt(z) s / n^(3/4)
    z = 1.959964
    for n in (1000, 5000):
        closed = 0.05 * (math.sqrt(math.pi / 2) * z / math.sqrt(n) + math.sqrt(z) / n**0.75)
        assert tt.predicted_rel_ci(n, 0.05) == pytest.approx(closed, rel=0.02)


@pytest.mark.parametrize("spread", [0.04, 0.06, 0.1])
def test_samples_needed_meets_the_target_in_simulation_and_fewer_do_not(tt, spread):
    rng = np.random.default_rng(1)
    n = tt.samples_needed(spread, 0.02)
    draw = lambda k: rng.normal(1.0, spread, k)  # noqa: E731
    assert _mean_rel_ci(draw, n) == pytest.approx(0.02, rel=0.05)
    assert _mean_rel_ci(draw, int(n * 0.7)) > 0.02 * 1.1
    assert tt.samples_needed(math.nan, 0.02) is None and tt.samples_needed(0.0, 0.02) == 1


def test_the_width_scaled_to_the_target_meets_it_on_skewed_samples_with_outliers(tt):
    rng = np.random.default_rng(2)

    def draw(k: int) -> np.ndarray:  # lognormal times, one in ten an outlier three times as long
        x = rng.lognormal(0.0, 0.06, k)
        return np.where(rng.random(k) < 0.1, 3 * x, x)

    predicted = [tt.scaled_needed(40, Measurement(tuple(draw(40))).rel_ci, 0.02) for _ in range(200)]
    n = int(np.median(predicted))
    assert _mean_rel_ci(draw, n) == pytest.approx(0.02, rel=0.2)


def test_need_names_the_cause(tt):
    rng = np.random.default_rng(3)
    one = tt.need([0.2], calls=1, noisy=True, rule=RULE)
    assert one.cause == "unknown (one sample)" and "1 sample of 0.2 s" in one.reason(0.15)
    slow = tt.need([0.060, 0.0601], calls=1, noisy=True, rule=RULE)  # 5 samples of 60 ms: 0.3 s
    assert slow.cause == "sample too long" and slow.needed == 5 and slow.needed_s == pytest.approx(5 * 0.06005)
    both = tt.need([0.060, 0.063, 0.066, 0.069], calls=1, noisy=True, rule=RULE)  # 5 % noise wants more than 9
    assert both.cause == "sample too long and noise" and both.needed > 9
    noisy = tt.need(list(rng.normal(1e-3, 1e-4, 150)), calls=1, noisy=True, rule=RULE)
    assert noisy.cause == "noise" and noisy.needed_s > 0.15
    assert noisy.needed == tt.scaled_needed(150, noisy.rel_ci, 0.02)
    # few samples, quiet but for one far one: below 9 the interval is their range, so 9 at least
    outlier = tt.need([1e-3, 1.001e-3, 0.999e-3, 1.0005e-3, 1.2e-3], calls=2, noisy=False, rule=RULE)
    assert outlier.needed == 9 and outlier.needed_s == pytest.approx(0.05)  # min_time: 9 x 2 ms is less
    assert outlier.cause == "within max_time at this noise"


def test_a_point_missed_in_every_run_says_what_it_needs_even_with_one_sample(tt, monkeypatch):
    """harness_speed --repeat's line per point: one sample a run has no spread to scale from, so it needs
    the fewest samples whose interval is not their range (their time at its call's length), not 10^7."""
    import harness_speed

    def need(samples, block_s, needed_s):
        return tt.Need(samples=samples, median_s=block_s, block_s=block_s, rel_ci=0.0 if samples < 2 else 0.05,
                       noise=math.nan if samples < 2 else 0.03, cv=math.nan, spread=math.nan,
                       stopped_at_max_time=True, needed=None if needed_s is None else 40, needed_s=needed_s,
                       cause="unknown (one sample)" if samples < 2 else "noise")

    def figures(*needs):
        return [{"missed": [{"arch": "gru", "seq_len": 512, "pass": "train_step", "need": x}]} for x in needs]

    [one] = harness_speed.missed_in_every_run(figures(need(1, 0.2, None), need(1, 0.1, None)))
    assert f"needs at least {tt.RANGE_BELOW} samples, {tt.RANGE_BELOW * 0.15:.3g} s (median)" in one
    [noisy] = harness_speed.missed_in_every_run(figures(need(20, 0.01, 0.4), need(20, 0.01, 0.6)))
    assert "needs 0.5 s of sampling (median)" in noisy
    assert harness_speed.missed_in_every_run(figures(need(20, 0.01, 0.4)) + [{"missed": []}]) == []  # met once


@pytest.mark.parametrize("damage", ["missing", "not-a-table", "suite-not-yaml"])
def test_a_folder_it_cannot_read_is_one_line_and_exit_2(tt, tmp_path, capsys, damage):
    folder = tmp_path / "run"
    if damage != "missing":
        shutil.copytree(Path(__file__).parent / "fixtures" / "results_v1", folder)
    if damage == "not-a-table":
        (folder / "results.csv").write_text("garbage\n")
    if damage == "suite-not-yaml":
        (folder / "suite.yaml").write_text("{{{\n")
    assert tt.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder}: ") and err.count("\n") == 1, err
