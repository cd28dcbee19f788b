"""Step detection: the exact Potts fit against brute force over every partition, and steps found where
a series' level moved (and nowhere in noise alone)."""
import itertools

import numpy as np
import pytest

from archbench.results.steps import detect_steps, noise, segments


def _cost(y, pieces, sigma, penalty):
    return sum(np.abs(y[a:b] - np.median(y[a:b])).sum() / sigma + penalty for a, b in pieces)


@pytest.mark.parametrize("seed", range(6))
def test_segments_are_the_cheapest_of_every_partition(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, 8) + np.repeat(rng.choice([0.0, 3.0, 6.0], 3), [3, 3, 2])
    sigma, penalty = 0.8, 2.5
    best = min(_cost(y, list(zip((0, *cuts), (*cuts, 8))), sigma, penalty)
               for k in range(8) for cuts in itertools.combinations(range(1, 8), k))
    assert _cost(y, segments(y, sigma, penalty), sigma, penalty) == pytest.approx(best)


def test_a_level_shift_is_found_at_the_run_where_it_began():
    y = [1.00, 1.02, 0.99, 1.01, 1.31, 1.29, 1.30, 1.32]
    (step,) = detect_steps(y)
    assert step.index == 4 and step.before == pytest.approx(1.0, abs=0.011) and step.ratio == pytest.approx(1.3, abs=0.02)
    assert step.is_regression(higher_is_better=False) and not step.is_regression(higher_is_better=True)


def test_a_shift_in_the_latest_run_alone_is_a_step_and_a_return_is_another():
    assert [s.index for s in detect_steps([1.0, 1.02, 0.99, 1.01, 1.03, 1.5])] == [5]
    assert [(s.index, s.after > s.before) for s in detect_steps([1.0, 1.02, 0.99, 1.5, 1.49, 1.0, 1.01])] == \
        [(3, True), (5, False)]


@pytest.mark.parametrize("seed", range(10))
def test_noise_alone_has_no_step(seed):
    y = 1.0 + np.random.default_rng(seed).normal(0, 0.02, 12)  # 2 % run-to-run noise, no level shift
    assert detect_steps(y) == []


def test_small_changes_and_short_series_are_not_steps():
    assert detect_steps([1.0, 1.0, 1.0, 1.03, 1.03, 1.03]) == []       # under min_change (5 %)
    assert [s.index for s in detect_steps([1.0, 1.0, 1.0, 1.03, 1.03, 1.03], min_change=0.01)] == [3]
    assert detect_steps([1.0, 2.0]) == []


def test_noise_is_the_larger_of_the_spread_and_the_runs_own_intervals():
    y = [1.0, 1.1, 1.0, 1.1, 1.0]
    assert noise(y) == pytest.approx(0.1 * 1.4826 / np.sqrt(2))
    assert noise(y, [0.392] * 5) == pytest.approx(0.2)   # 95 % half-width 0.392 -> sigma 0.2
