"""Seed-aware intervals, Holm's adjustment and the minimum detectable effect against cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rag_bench.eval.seed_intervals import (
    CLUSTER,
    CLUSTER_TEXTS,
    SEED_T,
    cluster_bootstrap,
    holm,
    minimum_detectable_effect,
    perplexity_cluster_bootstrap,
    perplexity_seed_differences,
    seed_t_interval,
)


def t2_quantile(p: float) -> float:
    """Student's t quantile with 2 degrees of freedom in closed form: (2p - 1) / sqrt(2 p (1 - p))."""
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


def test_the_cluster_bootstrap_resamples_probes_within_each_drawn_seed():
    # Seed A's per-probe differences are [0, 1], seed B's [1, 1]. A replicate draws 2 seeds (AA, AB, BA, BB, 1/4
    # each), then 2 probes within each drawn seed: A's mean is 0, 1/2 or 1 (1/4, 1/2, 1/4), B's is always 1.
    #   BB:        1                                                  p 1/4
    #   AB or BA:  (m_A + 1) / 2 = 1/2, 3/4, 1                        p 1/8, 1/4, 1/8
    #   AA:        (m_A1 + m_A2) / 2 = 0, 1/4, 1/2, 3/4, 1            p 1/64, 1/16, 3/32, 1/16, 1/64
    # P(0) = 1/64 < 0.025 <= P(<= 1/4) = 5/64, so the 2.5% point is 1/4; P(< 1) = 39/64 < 0.975, so the 97.5% point
    # is 1. (A probe draw shared by both seeds would give AA a mean of 0 with p 1/16 and the low end 0.)
    # The p-value is twice P(mean <= 0) = 2/64.
    result = cluster_bootstrap(np.array([[0.0, 1.0], [1.0, 1.0]]), replicates=40_000)
    assert (result.value, result.low, result.high) == (0.75, 0.25, 1.0)
    assert result.method == CLUSTER == "cluster bootstrap over seeds then probes"
    assert (result.seeds, result.units) == (2, 2) and result.sd == pytest.approx(math.sqrt(0.125))
    assert result.p_value == pytest.approx(2 / 64, abs=0.004)
    assert result.excludes_zero


def test_one_seed_reduces_to_the_probe_bootstrap():
    # one seed, d = [0, 0, 0, 1]: a resample of 4 probes has k ones, k ~ Binomial(4, 1/4); P(k = 0) = 81/256 > 0.025
    # and P(k <= 2) = 243/256 < 0.975 <= P(k <= 3), so the interval is [0, 3/4]; with P(k = 0) = 0.316 the p-value
    # is 2 * 0.316 = 0.63.
    result = cluster_bootstrap(np.array([[0.0, 0.0, 0.0, 1.0]]), replicates=20_000)
    assert (result.value, result.low, result.high) == (0.25, 0.0, 0.75)
    assert result.p_value == pytest.approx(2 * 81 / 256, abs=0.02) and math.isnan(result.sd)
    with pytest.raises(ValueError, match=r"\(seeds, probes\)"):
        cluster_bootstrap(np.array([0.0, 1.0]))


def test_the_t_interval_over_seed_level_differences():
    # d = [0.1, 0.2, 0.3]: mean 0.2, sd 0.1, n 3, df 2; t_{0.975, 2} = 0.95 / sqrt(2 * 0.975 * 0.025) = 4.3027.
    # t = 0.2 / (0.1 / sqrt 3) = sqrt 12, and with 2 df the two-sided p is 1 - t / sqrt(2 + t^2) = 1 - sqrt(12/14).
    result = seed_t_interval([0.1, 0.2, 0.3], units=40)
    half = t2_quantile(0.975) * 0.1 / math.sqrt(3)
    assert result.value == pytest.approx(0.2) and result.sd == pytest.approx(0.1)
    assert (result.low, result.high) == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))
    assert result.p_value == pytest.approx(1 - math.sqrt(12 / 14))
    assert result.method == SEED_T == "t-interval over seed-level differences"
    assert (result.seeds, result.units) == (3, 40) and not result.excludes_zero
    # Seeds that tie (two seeds both at -47/147) estimate an SD of 0, not a spread of 0: no interval, no p, never
    # "p = 0, differs" (it was, for the first two smol-control seeds' oracle difference).
    same = seed_t_interval([-0.32, -0.32])
    assert same.value == pytest.approx(-0.32) and same.sd == 0
    assert all(math.isnan(x) for x in (same.low, same.high, same.p_value)) and not same.excludes_zero
    assert math.isnan(seed_t_interval([0.0, 0.0]).p_value)
    with pytest.raises(ValueError, match="at least 2 seeds, got 1"):
        seed_t_interval([0.3])


def test_perplexity_differences_resample_texts_within_seeds_and_pair_the_arms():
    # Seed 0: arm a has two 10-token texts of 10 and 30 nats, arm b two of 20 nats: ppl(b) = e^2 on any resample,
    # ppl(a) = e^2 (both texts, p 1/2), e (p 1/4) or e^3 (p 1/4), so seed 0's difference D is 0, x = e^2 - e or
    # y = e^2 - e^3 with p 1/2, 1/4, 1/4. Seed 1: both arms identical, difference 0 always. Over the seed draws the
    # lowest value, y (seed 0 twice, y both times), has p 1/64; the next, y / 2, has 1/16 + 1/8 more; so the
    # interval is [y / 2, x / 2] by symmetry of the same count on the other side.
    a = np.array([[[10.0, 10], [30.0, 10]], [[20.0, 10], [20.0, 10]]])
    b = np.array([[[20.0, 10], [20.0, 10]], [[20.0, 10], [20.0, 10]]])
    e = math.e
    result = perplexity_cluster_bootstrap(a, b, replicates=20_000)
    assert result.value == pytest.approx(0.0, abs=1e-12) and result.method == CLUSTER_TEXTS
    assert (result.low, result.high) == (pytest.approx((e**2 - e**3) / 2), pytest.approx((e**2 - e) / 2))
    assert perplexity_seed_differences(a, b) == pytest.approx([0.0, 0.0])
    with pytest.raises(ValueError, match=r"\(seeds, texts, 2\)"):
        perplexity_cluster_bootstrap(a, b[:1])


def test_holm_adjusts_in_the_order_given():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept at 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []


def test_the_minimum_detectable_effect_from_the_seed_level_sd():
    # 3 seeds (df 2), sd 0.1, alpha 0.05, power 0.8: (t_{0.975, 2} + t_{0.8, 2}) * 0.1 / sqrt 3, both in closed form
    expected = (t2_quantile(0.975) + t2_quantile(0.8)) * 0.1 / math.sqrt(3)
    assert minimum_detectable_effect(0.1, 3, alpha=0.05) == pytest.approx(expected)
    assert expected == pytest.approx(0.3097, abs=1e-4)
    stricter = minimum_detectable_effect(0.1, 3, alpha=0.05 / 10)  # Holm's first step over 10 comparisons
    assert stricter > expected
    assert math.isnan(minimum_detectable_effect(0.1, 1, alpha=0.05))
    assert math.isnan(minimum_detectable_effect(math.nan, 5, alpha=0.05))
    assert math.isnan(minimum_detectable_effect(0.0, 5, alpha=0.05))  # no spread: nothing to size an effect by
