"""Power-law fits against numpy.polyfit on known laws; the t quantile against its table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from archbench.results.fits import FIT_COLUMNS, fit_results, power_law, t_quantile, upper_range


@pytest.mark.parametrize("df, expected", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (5, 2.5706),
                                          (10, 2.2281), (30, 2.0423), (1000, 1.9623)])
def test_t_quantile_matches_the_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-4)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0, 0.5])
def test_exact_power_law_recovered(exponent):
    x = np.array([64, 128, 256, 512, 1024.0])
    fit = power_law(x, 3.5 * x**exponent)
    assert fit["exponent"] == pytest.approx(exponent, abs=1e-12)
    assert fit["ci_low"] == pytest.approx(exponent, abs=1e-9) and fit["ci_high"] == pytest.approx(exponent, abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0)
    assert (fit["n_points"], fit["x_min"], fit["x_max"]) == (5, 64, 1024)


def test_noisy_fit_agrees_with_polyfit_and_its_ci_covers_the_truth():
    rng = np.random.default_rng(0)
    x = np.repeat([32, 64, 128, 256, 512, 1024.0], 3)
    covered = 0
    for _ in range(200):
        y = 2.0 * x**1.5 * np.exp(rng.normal(0, 0.1, len(x)))
        fit = power_law(x, y)
        assert fit["exponent"] == pytest.approx(np.polyfit(np.log(x), np.log(y), 1)[0], abs=1e-10)
        covered += fit["ci_low"] <= 1.5 <= fit["ci_high"]
    assert 0.91 <= covered / 200 <= 0.99  # a 95 % interval


def test_upper_range_keeps_the_upper_half_and_at_least_three():
    assert upper_range(np.array([1, 2, 3, 4, 5, 6, 7, 8])).tolist() == [False] * 4 + [True] * 4
    assert upper_range(np.array([1, 2, 3, 4])).tolist() == [False, True, True, True]
    assert upper_range(np.array([1, 1, 2, 3])).all()


def test_fit_results_groups_by_arch_metric_pass_and_size():
    rows = []
    for arch, p in (("lstm", 1.0), ("transformer", 2.0)):
        for n in (64, 128, 256, 512, 1024, 2048):
            rows.append({"arch": arch, "metric": "latency", "pass": "forward", "status": "ok", "value": 1e-6 * n**p,
                         "seq_len": n, "d_model": 64, "batch": 8, "experiment": "e", "arch_kind": arch,
                         "causal": True, "device": "cpu", "dtype": "float32"})
    rows.append({**rows[-1], "status": "oom", "value": float("nan"), "seq_len": 4096})
    fits = fit_results(pd.DataFrame(rows))
    assert list(fits.columns[: len(FIT_COLUMNS)]) == FIT_COLUMNS
    assert len(fits) == 2 and set(fits.x) == {"seq_len"}
    got = dict(zip(fits.arch, fits.exponent))
    assert got == pytest.approx({"lstm": 1.0, "transformer": 2.0})
    assert set(fits.x_min) == {512} and set(fits.x_max) == {2048} and set(fits.n_points) == {3}


def test_the_report_figures_fit_the_exponent_fits_csv_has():
    """One rule: with five lengths a figure once fitted four of them where fits.csv fitted three, and the
    report could show two exponents for the same data."""
    import numpy as np

    from archbench.report.plots import loglog_fit
    from archbench.results.fits import power_law, upper_range

    x = np.array([64.0, 128.0, 256.0, 512.0, 1024.0])
    y = 1e-4 * x**2 + 0.05 * x  # n^2 overtakes the linear term only at the top of the range
    use = upper_range(x)
    assert use.sum() == 3
    assert loglog_fit(x, y) == pytest.approx(power_law(x[use], y[use])["exponent"], rel=1e-12)
    assert loglog_fit(x, y) != pytest.approx(power_law(x[1:], y[1:])["exponent"], rel=1e-3)  # not the four-point fit
