"""Seed-aware intervals of a paired difference between two arms, Holm's adjustment and the minimum detectable effect.

    from rag_bench.eval.seed_intervals import cluster_bootstrap, seed_t_interval, holm, minimum_detectable_effect
    d = b - a                                   # (seeds, probes): per-probe score differences, the same probes
    cluster_bootstrap(d)                        # SeedInterval(value, low, high, method=CLUSTER, p_value, ...)
    seed_t_interval(d.mean(axis=1))             # the same difference from its seed-level means (method=SEED_T)
    holm([0.01, 0.04, 0.03])                    # Holm-adjusted p-values, in the order given
    minimum_detectable_effect(sd=0.03, seeds=5, alpha=0.05 / 10)   # at 80% power

A collapse run's seeds are its replicates: each seed draws its own pool, its own training order and its own
answers, so a difference measured on one seed's probes says nothing about the next seed. Two intervals account
for that, and every output names which one it is:

- ``CLUSTER``: a two-level bootstrap. Each replicate draws the seeds with replacement, then, for every drawn
  seed on its own, that seed's probes with replacement. The per-probe difference b - a is what is resampled, so
  both arms always get the same draw (paired). The interval is the percentile interval of the replicate means;
  the p-value is twice the smaller share of replicates on either side of 0. With few seeds the seed level has
  few distinct draws (3 for 2 seeds) and the interval is too narrow: it covers less than its nominal level.
- ``SEED_T``: Student's t over the seed-level differences d_s (the mean over probes of b - a in seed s):
  mean(d) +- t_{1-alpha/2, n-1} sd(d) / sqrt(n), with n seeds and n - 1 degrees of freedom; it needs 2 seeds.

The minimum detectable effect of a comparison is the true difference that a two-sided t-test over the seeds
finds with probability ``power``: (t_{1-alpha/2, n-1} + t_{power, n-1}) sd / sqrt(n), from the seed-level SD.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

CLUSTER = "cluster bootstrap over seeds then probes"
CLUSTER_TEXTS = "cluster bootstrap over seeds then texts"  # the same, for held-out perplexity
SEED_T = "t-interval over seed-level differences"
METHODS = {"cluster_bootstrap": CLUSTER, "seed_t": SEED_T}  # the names a primary-comparisons file may give
REPLICATES = 2000
LEVEL = 0.95
POWER = 0.8
CHUNK = 250  # replicates drawn at once: (CHUNK, seeds, probes) indices stay small


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeedInterval:
    """A difference between two arms over seeds, its interval, and the method that made it."""

    value: float  # mean over seeds of the seed-level difference
    low: float
    high: float
    method: str  # CLUSTER, CLUSTER_TEXTS or SEED_T, word for word
    p_value: float  # two-sided, against a difference of 0
    seeds: int
    units: int  # probes (or texts) per seed; 0 when only seed-level values were given
    sd: float  # SD of the seed-level differences (nan with one seed)

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float | int | str]:
        return dataclasses.asdict(self)


def _sd(seed_values: np.ndarray) -> float:
    return float(seed_values.std(ddof=1)) if seed_values.size > 1 else math.nan


def seed_t_interval(seed_values: Sequence[float], *, level: float = LEVEL, units: int = 0) -> SeedInterval:
    """Student's t interval of the mean of seed-level differences (one per seed, n >= 2)."""
    d = np.asarray(seed_values, dtype=np.float64)
    n = d.size
    if n < 2:
        raise ValueError(f"a t-interval over seeds needs at least 2 seeds, got {n}")
    mean, sd = float(d.mean()), _sd(d)
    se = sd / math.sqrt(n)
    if not se > 0:
        # Every seed gave the same difference (two seeds that tie on 147 probes, or a floor of 0): an SD of 0 is
        # an estimate from a tie, not a spread of 0, so there is no interval and no test (never "p = 0").
        return SeedInterval(value=mean, low=math.nan, high=math.nan, method=SEED_T, p_value=math.nan, seeds=n,
                            units=units, sd=sd)
    half = float(stats.t.ppf(1 - (1 - level) / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return SeedInterval(value=mean, low=mean - half, high=mean + half, method=SEED_T, p_value=p, seeds=n,
                        units=units, sd=sd)


def _replicates(n_seeds: int, n_units: int, replicates: int, rng: np.random.Generator):
    """Chunks of (seed indices (r, seeds), unit indices (r, seeds, units)): units drawn anew for every drawn seed."""
    for start in range(0, replicates, CHUNK):
        r = min(CHUNK, replicates - start)
        yield rng.integers(n_seeds, size=(r, n_seeds)), rng.integers(n_units, size=(r, n_seeds, n_units))


def _cluster(values: np.ndarray, per_seed: Callable[[np.ndarray], np.ndarray], *, replicates: int, level: float,
             seed: int, method: str = CLUSTER) -> SeedInterval:
    """The two-level bootstrap of ``mean over seeds of per_seed(values[seed])``; ``values``: (seeds, units, ...)."""
    n_seeds, n_units = values.shape[:2]
    seed_level = per_seed(values)
    stat = np.concatenate([per_seed(values[rows[:, :, None], cols]).mean(axis=1)
                           for rows, cols in _replicates(n_seeds, n_units, replicates, np.random.default_rng(seed))])
    tail = (1 - level) / 2
    low, high = np.quantile(stat, [tail, 1 - tail], method="inverted_cdf")
    p = min(1.0, 2 * min(float((stat <= 0).mean()), float((stat >= 0).mean())))
    return SeedInterval(value=float(seed_level.mean()), low=float(low), high=float(high), method=method,
                        p_value=p, seeds=n_seeds, units=n_units, sd=_sd(seed_level))


def cluster_bootstrap(differences: np.ndarray, *, replicates: int = REPLICATES, level: float = LEVEL,
                      seed: int = 0) -> SeedInterval:
    """The cluster bootstrap of the mean of per-probe differences b - a, given as a (seeds, probes) array."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 2 or not d.size:
        raise ValueError(f"per-probe differences must be a non-empty (seeds, probes) array, got shape {d.shape}")
    return _cluster(d, lambda v: v.mean(axis=-1), replicates=replicates, level=level, seed=seed)


def perplexity(nll: np.ndarray) -> np.ndarray:
    """Token-weighted perplexity exp(sum NLL / sum tokens) over the texts axis of (..., texts, [nll, tokens])."""
    return np.exp(nll[..., 0].sum(axis=-1) / nll[..., 1].sum(axis=-1))


def _paired_nll(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 2:
        raise ValueError(f"per-text NLL must be (seeds, texts, 2) on both arms, got {a.shape} and {b.shape}")
    return np.stack([a, b], axis=-1)  # (seeds, texts, 2, arm)


def _ppl_difference(both: np.ndarray) -> np.ndarray:
    return perplexity(both[..., 1]) - perplexity(both[..., 0])


def perplexity_cluster_bootstrap(a: np.ndarray, b: np.ndarray, *, replicates: int = REPLICATES,
                                 level: float = LEVEL, seed: int = 0) -> SeedInterval:
    """ppl(b) - ppl(a) per seed, averaged over seeds; texts resampled within each drawn seed, the same on both arms.
    ``a`` and ``b``: (seeds, texts, [summed NLL in nats, tokens])."""
    return _cluster(_paired_nll(a, b), _ppl_difference, replicates=replicates, level=level, seed=seed,
                    method=CLUSTER_TEXTS)


def perplexity_cluster_interval(nll: np.ndarray, *, replicates: int = REPLICATES, level: float = LEVEL,
                                seed: int = 0) -> SeedInterval:
    """One arm's perplexity, averaged over seeds, with the cluster bootstrap over seeds then texts.
    ``nll``: (seeds, texts, [summed NLL in nats, tokens])."""
    values = np.asarray(nll, dtype=np.float64)
    if values.ndim != 3 or values.shape[-1] != 2 or not values.size:
        raise ValueError(f"per-text NLL must be a non-empty (seeds, texts, 2) array, got shape {values.shape}")
    return _cluster(values, perplexity, replicates=replicates, level=level, seed=seed, method=CLUSTER_TEXTS)


def perplexity_seed_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Seed-level perplexity differences ppl(b_s) - ppl(a_s), for ``seed_t_interval``."""
    return _ppl_difference(_paired_nll(a, b))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest of m is multiplied by m - i + 1
    (i from 1), kept no smaller than the one before it, and capped at 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def minimum_detectable_effect(sd: float, seeds: int, *, alpha: float, power: float = POWER) -> float:
    """The smallest true difference a two-sided t-test over ``seeds`` seed-level differences of SD ``sd`` finds
    with probability ``power`` at level ``alpha``; nan with fewer than 2 seeds or an unknown or zero SD (seeds that
    all gave the same difference, as at a floor of 0, say nothing about the spread a real effect would meet)."""
    if seeds < 2 or not math.isfinite(sd) or sd == 0:
        return math.nan
    df = seeds - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(seeds))
