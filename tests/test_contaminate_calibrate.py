"""Defence thresholds: chosen on dev candidates only, recorded in a file whose split must be dev."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rag_bench.contaminate.calibrate import (
    FORMAT,
    ThresholdError,
    calibrate,
    choose_band,
    choose_threshold,
    read_thresholds,
)
from rag_bench.records import write_json


def test_one_sided_threshold_separates_high_scores():
    scores = [0.1, 0.5, 1.0, 1.2, 5.0, 6.0, 7.0, 0.8]
    synthetic = [False, False, False, False, True, True, True, True]
    t = choose_threshold(scores, synthetic)
    assert t == 1.2  # drops 5, 6, 7: recall 3/4, no human dropped; lower cuts drop humans for one more catch
    assert choose_threshold([1.0, 2.0], [False, False]) == math.inf  # nothing synthetic on dev: drop nothing
    assert choose_threshold([1.0, 2.0], [True, False]) == math.inf  # no cut gains anything


def test_two_sided_band_catches_both_tails():
    human = [float(x) for x in range(40, 60)]
    scores = [*human, 1.0, 2.0, 90.0, 95.0]  # too predictable and too surprising text
    synthetic = [False] * len(human) + [True] * 4
    low, high = choose_band(scores, synthetic)
    assert 2.0 < low < 41.0 and 58.0 < high < 90.0
    dropped = [(s < low) or (s > high) for s in scores]
    assert dropped[-4:] == [True] * 4 and sum(dropped[:20]) <= 2  # both tails caught, at most the human extremes


def test_calibrate_records_the_dev_split(tmp_path: Path):
    out = calibrate({"provenance": [(5.0, True), (0.1, False)], "perplexity": [(1.0, True), (4.0, False)]})
    assert out["split"] == "dev" and out["format"] == FORMAT and out["provenance"]["z"] == 0.1
    assert out["dev"]["provenance"] == {"candidates": 2, "synthetic": 1}
    write_json(tmp_path / "t.json", out)
    assert read_thresholds(tmp_path / "t.json")["provenance"]["z"] == 0.1
    assert read_thresholds(tmp_path / "t.json")["perplexity"]["band"][1] == math.inf  # JSON keeps infinity


@pytest.mark.parametrize(("data", "message"), [({"format": FORMAT, "split": "test"}, "split 'test'"),
                                               ({"format": FORMAT}, "split None"),
                                               ({"split": "dev"}, "not a thresholds file")])
def test_a_thresholds_file_not_chosen_on_dev_is_refused(tmp_path: Path, data: dict, message: str):
    write_json(tmp_path / "t.json", data)
    with pytest.raises(ThresholdError, match=message) as info:
        read_thresholds(tmp_path / "t.json")
    assert len(str(info.value).splitlines()) == 1 and str(tmp_path / "t.json") in str(info.value)
    with pytest.raises(ThresholdError, match="not found"):
        read_thresholds(tmp_path / "missing.json")
