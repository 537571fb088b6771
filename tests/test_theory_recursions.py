"""Theory anchors: the simulations agree with their closed forms within sampling error.

    .venv/bin/python -m pytest tests/test_theory_recursions.py -q

Chains are many enough that an off-by-one (dividing by M instead of M-1, T-d instead of
T-d-1, n-1 fits instead of n) moves the mean by well over 4 standard errors.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rag_bench.config import ConfigError
from rag_bench.theory.recursions import (
    GAUSSIAN_QUANTITIES,
    TheoryConfig,
    gaussian_closed_form,
    regression_closed_form,
    simulate_gaussian,
    simulate_regression,
    theory_report,
)

Z_MAX = 4.0


def _z(simulated: np.ndarray, exact: np.ndarray, se: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(simulated) - np.asarray(exact)) / np.asarray(se)


@pytest.mark.parametrize("estimator", ["unbiased", "mle"])
def test_gaussian_simulation_matches_closed_form(estimator):
    samples, generations, chains = 20, 20, 5000
    sim = simulate_gaussian(samples, generations, chains, seed=11, estimator=estimator, mu0=3.0, sigma0=2.0)
    exact = gaussian_closed_form(samples, generations, estimator=estimator, mu0=3.0, sigma0=2.0)
    for q in GAUSSIAN_QUANTITIES:
        z = _z(sim[f"mean_{q}"], exact[f"mean_{q}"], sim[f"se_{q}"])
        assert z.max() < Z_MAX, f"{estimator} {q}: worst |z| = {z.max():.1f} at generation {z.argmax()}"


def test_gaussian_closed_forms_have_the_papers_shape():
    unbiased = gaussian_closed_form(10, 40, estimator="unbiased")
    mle = gaussian_closed_form(10, 40, estimator="mle")
    np.testing.assert_allclose(unbiased["mean_var"], 1.0)  # the martingale
    np.testing.assert_allclose(mle["mean_var"], (9 / 10) ** np.arange(1, 41))
    np.testing.assert_allclose(unbiased["mean_mean_shift_sq"], np.arange(1, 41) / 10)
    assert unbiased["log_var_drift"] < 0 and mle["log_var_drift"] < unbiased["log_var_drift"]
    assert np.all(np.diff(unbiased["mean_sd"]) < 0)
    # E[W_2^2] grows without bound for the unbiased fit, stays below 2 sigma_0^2 for the MLE
    assert unbiased["mean_w2_sq"][-1] > 4 and np.all(np.diff(unbiased["mean_w2_sq"]) > 0)
    assert mle["mean_w2_sq"][-1] < 2


def test_typical_chain_collapses_while_the_unbiased_mean_variance_holds():
    sim = simulate_gaussian(20, 20, 5000, seed=5, estimator="unbiased")
    assert abs(sim["mean_var"][-1] - 1.0) < Z_MAX * sim["se_var"][-1]
    assert sim["median_var"][-1] < 0.5  # almost-sure collapse: most chains have lost over half the variance
    assert sim["median_var"][-1] < sim["median_var"][len(sim["median_var"]) // 2] < sim["median_var"][0]


@pytest.mark.parametrize("strategy", ["replace", "accumulate"])
def test_regression_simulation_matches_closed_form(strategy):
    dim, samples, noise, generations, chains = 4, 12, 1.5, 8, 20000
    sim = simulate_regression(dim, samples, noise, generations, chains, seed=3, strategy=strategy)
    exact = regression_closed_form(dim, samples, noise, generations, strategy=strategy)
    z = _z(sim["mean_error"], exact["mean_error"], sim["se_error"])
    assert z.max() < Z_MAX, f"{strategy}: worst |z| = {z.max():.1f} at generation {z.argmax()}"


def test_replace_grows_linearly_and_accumulate_stays_below_pi_squared_over_six():
    dim, samples, noise, generations, chains = 10, 50, 1.0, 10, 4000
    replace = simulate_regression(dim, samples, noise, generations, chains, seed=8, strategy="replace")
    accumulate = simulate_regression(dim, samples, noise, generations, chains, seed=9, strategy="accumulate")
    fits = replace["fits"]
    slope, intercept = np.polyfit(fits, replace["mean_error"], 1)
    first = replace["mean_error"][0]
    assert slope == pytest.approx(first, rel=0.1) and abs(intercept) < 0.1 * first
    assert replace["mean_error"][-1] / first == pytest.approx(generations, rel=0.1)
    accumulated = accumulate["mean_error"]
    assert np.all(accumulated < math.pi**2 / 6 * accumulated[0])
    assert accumulated[-1] > 1.4 * accumulated[0]  # it does grow, towards sum 1/i^2 = 1.55 at 10 fits
    assert accumulated[-1] < replace["mean_error"][1]


def test_theory_report_is_json_ready_and_consistent():
    report = theory_report(seed=0)
    json.dumps(report)
    cfg = TheoryConfig()
    for estimator in ("unbiased", "mle"):
        series = report["gaussian"][estimator]
        assert series["generation"] == list(range(cfg.gaussian_generations))
        for q in GAUSSIAN_QUANTITIES:
            assert _z(series["simulated"][q], series["closed_form"][q], series["se"][q]).max() < Z_MAX, q
    for strategy in ("replace", "accumulate"):
        series = report["regression"][strategy]
        assert len(series["simulated"]) == cfg.regression_generations
        assert _z(series["simulated"], series["closed_form"], series["se"]).max() < Z_MAX, strategy
    assert max(report["regression"]["accumulate"]["closed_form"]) < report["regression"]["accumulate_bound"]
    assert theory_report(seed=0) == report
    assert theory_report(seed=1)["regression"]["replace"]["simulated"] != report["regression"]["replace"]["simulated"]


def test_bad_sizes_are_refused_with_the_key_named():
    with pytest.raises(ConfigError, match="regression_samples"):
        TheoryConfig(regression_dim=10, regression_samples=13)
    with pytest.raises(ConfigError, match="gaussian_samples"):
        TheoryConfig.from_dict({"gaussian_samples": 1})
    with pytest.raises(ConfigError, match="unknown key 'chains'"):
        TheoryConfig.from_dict({"chains": 10})
    with pytest.raises(ValueError, match="estimator"):
        simulate_gaussian(10, 2, 10, estimator="median")
    with pytest.raises(ValueError, match="strategy"):
        regression_closed_form(2, 10, 1.0, 3, strategy="mix")
