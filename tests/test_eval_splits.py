"""The dev/test split of probes by a hash of their id."""

from __future__ import annotations

import pytest

from rag_bench.eval.splits import probe_split, split_ids


def test_the_split_is_stable_and_about_half_and_half():
    ids = [f"factbook/c{i}/government/capital" for i in range(2000)]
    sides = [probe_split(i) for i in ids]
    assert sides == [probe_split(i) for i in ids]  # a pure function of the id
    assert 0.45 < sides.count("dev") / len(ids) < 0.55
    assert probe_split("factbook/ja/government/capital") == "dev"  # fixed forever: a change would move probes
    dev, test = split_ids(ids, "dev"), split_ids(ids, "test")
    assert not dev & test and dev | test == set(ids) and split_ids(ids, "all") == set(ids)
    with pytest.raises(ValueError, match="split must be one of"):
        split_ids(ids, "train")
