"""The Gaussian anchor through build_pool and the generation loop agrees with its closed form."""

from __future__ import annotations

import numpy as np
import pytest

from rag_bench.theory.harness import gaussian_chain, gaussian_through_harness, harness_zscores


def test_replace_through_the_harness_matches_the_closed_form():
    series = gaussian_through_harness("replace", samples=20, generations=8, chains=400, seed=1)
    z = harness_zscores(series)
    assert len(z) == 5 * 8 and max(z) < 4.5
    # MLE variance shrinks by (M-1)/M per fit, as Theorem 3.1's recursion says
    mle = gaussian_through_harness("replace", samples=20, generations=8, chains=400, seed=2, estimator="mle")
    assert max(harness_zscores(mle)) < 4.5
    assert mle["simulated"]["var"][-1] == pytest.approx((19 / 20) ** 8, rel=0.1)


def test_a_wrong_pool_would_be_caught():
    # if the harness fed generation k the human data instead of generation k-1's text (accumulate keeps it),
    # the replace closed form no longer holds: the check can fail
    series = gaussian_through_harness("accumulate", samples=20, generations=8, chains=400, seed=1)
    series["closed_form"] = gaussian_through_harness("replace", samples=20, generations=8, chains=2)["closed_form"]
    assert max(harness_zscores(series)) > 5
    # accumulate's mean shift stays under Gerstgrasser et al.'s bound, replace's grows past it (n / M)
    assert max(series["simulated"]["mean_shift_sq"]) < series["mean_shift_bound"] * 1.15
    replace = gaussian_through_harness("replace", samples=20, generations=8, chains=400, seed=3)
    assert replace["simulated"]["mean_shift_sq"][-1] > 2 * replace["mean_shift_bound"]


def test_one_chain_fits_the_pools_the_strategies_build():
    rng = np.random.default_rng(0)
    fits = gaussian_chain("replace", samples=10, generations=3, rng=rng)
    assert len(fits) == 3 and all(v > 0 for _, v in fits)


def test_the_report_summary_states_the_harness_check():
    from rag_bench.report.summary import _theory_line
    from rag_bench.theory.harness import harness_report
    from rag_bench.theory.recursions import TheoryConfig, theory_report

    config = TheoryConfig(gaussian_chains=500, gaussian_generations=6, regression_chains=50, regression_generations=3)
    theory = theory_report(config=config)
    theory["harness"] = harness_report(config)
    line = _theory_line(theory)
    assert "Through the harness (build_pool and the generation loop" in line
    assert "replace agrees with the closed form" in line and "is below the bound" in line
