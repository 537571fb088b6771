"""The contamination metrics: registered by name with their direction, and their values on small cases."""

from __future__ import annotations

import math

import pytest

from rag_bench.contaminate.metrics import wilson_interval
from rag_bench.eval.metrics import get_metric, list_metrics


def test_registered_with_direction():
    names = {m.name: m.higher_is_better for m in list_metrics(kind="provenance")}
    assert names == {"synthetic_retrieved": False, "copied_synthetic": False, "filter_precision": True,
                     "filter_recall": True}


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
