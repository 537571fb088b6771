"""The contamination metrics: registered by name with their direction, and their values on small cases."""

from __future__ import annotations

import math

import pytest

from rag_bench.contaminate.metrics import clopper_pearson, sign_test, wilson_interval
from rag_bench.eval.metrics import get_metric, list_metrics


def test_registered_with_direction():
    names = {m.name: m.higher_is_better for m in list_metrics(kind="provenance")}
    assert names == {"synthetic_retrieved": False, "copied_synthetic": False, "filter_precision": True,
                     "filter_recall": True, "exposure_ceiling": False, "normalised_exposure": False,
                     "rewrite_ranks_higher": False}


def test_synthetic_retrieved_share():
    fn = get_metric("synthetic_retrieved").fn
    assert fn(["synthetic", "human", "human", "synthetic"]) == 0.5
    assert fn([]) == 0.0


def test_copied_synthetic_only_for_a_wrong_answer_found_in_synthetic_text_alone():
    fn = get_metric("copied_synthetic").fn
    synthetic = ["Algeria | Government | Capital: Oran"]
    human = ["Algeria | Government | Capital: Algiers"]
    assert fn("Oran", ["Algiers"], synthetic, human) == 1.0
    assert fn("Algiers", ["Algiers"], synthetic + human, human) == 0.0  # right answers are not copies
    assert fn("Oran", ["Algiers"], synthetic, synthetic) == 0.0  # a human passage says it too
    assert fn("Tunis", ["Algiers"], synthetic, human) == 0.0  # found nowhere
    assert fn("", ["Algiers"], synthetic, human) == 0.0


def test_filter_precision_and_recall():
    dropped = [True, True, False, False]
    synthetic = [True, False, True, False]
    assert get_metric("filter_precision").fn(dropped, synthetic) == 0.5
    assert get_metric("filter_recall").fn(dropped, synthetic) == 0.5
    assert math.isnan(get_metric("filter_precision").fn([False], [True]))
    with pytest.raises(ValueError, match="verdicts"):
        get_metric("filter_recall").fn([True], [])


def test_wilson_interval():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_exposure_over_its_ceiling():
    ceiling, normalised = get_metric("exposure_ceiling").fn, get_metric("normalised_exposure").fn
    assert ceiling(1, 5) == 0.2 and ceiling(9, 5) == 1.0 and ceiling(0, 3) == 0.0
    assert normalised(0.2, 1, 5) == 1.0  # the one rewrite that exists is in the top 5: all it could be
    assert normalised(0.6, 9, 5) == pytest.approx(0.6) and normalised(1 / 3, 3, 3) == pytest.approx(1 / 3)
    assert math.isnan(normalised(0.0, 0, 5))  # no rewrite: nothing to normalise by


def test_pairwise_rank_outcome():
    fn = get_metric("rewrite_ranks_higher").fn
    assert fn(3, 1) == 1.0 and fn(1, 3) == 0.0
    assert fn(None, 7) == 1.0 and fn(2, None) == 0.0  # below the depth read counts as lower
    assert math.isnan(fn(None, None))


def test_clopper_pearson_and_the_sign_test():
    # closed forms: 0 of n has upper bound 1 - (alpha/2)^(1/n); n of n has lower bound (alpha/2)^(1/n)
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** 0.1))
    assert clopper_pearson(10, 10) == (pytest.approx(0.025 ** 0.1), 1.0)
    low, high = clopper_pearson(5, 10)  # the exact interval is wider than Wilson's
    assert low == pytest.approx(0.1871, abs=1e-4) and high == pytest.approx(0.8129, abs=1e-4)
    test = sign_test([1.0] * 9 + [0.0] + [math.nan] * 3)
    assert test["pairs"] == 10 and test["ties"] == 3 and test["rewrite_higher"] == 0.9
    assert test["p_value"] == pytest.approx(22 / 1024)  # two-sided: 2 * (1 + 10) / 2^10
    assert test["low"] == pytest.approx(clopper_pearson(9, 10)[0])
    assert math.isnan(sign_test([math.nan])["rewrite_higher"])
