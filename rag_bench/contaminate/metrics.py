"""Contamination metrics: pure functions registered by name in ``rag_bench.eval.metrics`` when this module is imported.

    import rag_bench.contaminate.metrics                       # registers them (eval never imports contaminate)
    from rag_bench.eval.metrics import get_metric
    get_metric("synthetic_retrieved").fn(["synthetic", "human"])                      # 0.5
    get_metric("copied_synthetic").fn("Oran", ["Algiers"], ["... Capital: Oran"], [])  # 1.0
    get_metric("filter_recall").fn([True, False], [True, True])                         # 0.5
    get_metric("exposure_ceiling").fn(2, 5)                                             # 0.4 = min(r, k) / k
    get_metric("normalised_exposure").fn(0.4, 2, 5)                                     # 1.0: every rewrite read
    get_metric("rewrite_ranks_higher").fn(4, 1)                                         # 1.0: the rewrite outranks

``wilson_interval`` gives the 95% interval of a mean of 0/1 scores (every exact match and share in the
contamination table carries one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rag_bench.eval.metrics import exact_match, normalize_answer, register_metric, supported


@register_metric("synthetic_retrieved", higher_is_better=False, kind="provenance")
def synthetic_retrieved(origins: Sequence[str]) -> float:
    """Share of retrieved passages that are model-written (``origin == "synthetic"``); 0 when none was retrieved."""
    origins = list(origins)
    return sum(o == "synthetic" for o in origins) / len(origins) if origins else 0.0


@register_metric("copied_synthetic", higher_is_better=False, kind="provenance")
def copied_synthetic(prediction: str, golden_answers: Sequence[str], synthetic_texts: Sequence[str],
                     human_texts: Sequence[str]) -> float:
    """1.0 if a wrong answer is found in a retrieved synthetic passage and in no retrieved human one."""
    if not normalize_answer(prediction) or exact_match(prediction, golden_answers):
        return 0.0
    return float(bool(supported(prediction, synthetic_texts)) and not supported(prediction, human_texts))


def _check(dropped: Sequence[bool], synthetic: Sequence[bool]) -> None:
    if len(dropped) != len(synthetic):
        raise ValueError(f"{len(dropped)} verdicts but {len(synthetic)} labels")


@register_metric("filter_precision", higher_is_better=True, kind="provenance")
def filter_precision(dropped: Sequence[bool], synthetic: Sequence[bool]) -> float:
    """Share of dropped chunks that are synthetic (nan when nothing was dropped)."""
    _check(dropped, synthetic)
    hits = [s for d, s in zip(dropped, synthetic, strict=True) if d]
    return sum(hits) / len(hits) if hits else math.nan


@register_metric("filter_recall", higher_is_better=True, kind="provenance")
def filter_recall(dropped: Sequence[bool], synthetic: Sequence[bool]) -> float:
    """Share of synthetic chunks that were dropped (nan when there was none)."""
    _check(dropped, synthetic)
    caught = [d for d, s in zip(dropped, synthetic, strict=True) if s]
    return sum(caught) / len(caught) if caught else math.nan


@register_metric("exposure_ceiling", higher_is_better=False, kind="provenance")
def exposure_ceiling(rewrites: int, k: int) -> float:
    """The largest synthetic share of a top k when the true chunk has ``rewrites`` rewrites: min(r, k) / k."""
    return min(max(rewrites, 0), k) / k if k > 0 else math.nan


@register_metric("normalised_exposure", higher_is_better=False, kind="provenance")
def normalised_exposure(share: float, rewrites: int, k: int) -> float:
    """A top k's synthetic share over its ceiling min(r, k) / k (1: every rewrite that could be read is; nan
    when the ceiling is 0, i.e. no rewrite exists)."""
    ceiling = exposure_ceiling(rewrites, k)
    return share / ceiling if ceiling > 0 else math.nan


@register_metric("rewrite_ranks_higher", higher_is_better=False, kind="provenance")
def rewrite_ranks_higher(original_rank: float | None, rewrite_rank: float | None) -> float:
    """1.0 when a rewrite ranks above its own original for the probe's question, 0.0 below, nan for a tie or
    when neither was retrieved (a rank of None: below the depth read)."""
    a = math.inf if original_rank is None else original_rank
    b = math.inf if rewrite_rank is None else rewrite_rank
    if a == b:
        return math.nan
    return float(b < a)


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial (Clopper-Pearson) interval of a proportion; (nan, nan) for n = 0."""
    from scipy.stats import beta

    if n <= 0:
        return math.nan, math.nan
    tail = (1 - level) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - tail, successes + 1, n - successes))
    return low, high


def sign_test(outcomes: Sequence[float]) -> dict[str, float]:
    """The pairwise rank test: of the untied pairs, the share where the rewrite ranks higher, its exact 95%
    interval, and the two-sided sign-test p-value against 0.5 (no preference); nan outcomes are ties, left out."""
    from scipy.stats import binomtest

    wins = [o for o in outcomes if not math.isnan(o)]
    n, higher = len(wins), int(sum(wins))
    low, high = clopper_pearson(higher, n)
    return {"rewrite_higher": higher / n if n else math.nan, "low": low, "high": high, "pairs": n,
            "ties": len(outcomes) - n, "p_value": float(binomtest(higher, n).pvalue) if n else math.nan}


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% by default); (nan, nan) for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
