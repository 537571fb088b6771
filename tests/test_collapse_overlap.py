"""The share of a text's word 8-grams found in the human training text."""

from __future__ import annotations

import pytest

from rag_bench.collapse.overlap import HumanNgrams, word_ngrams

HUMAN = ["Japan | Government | Capital: Tokyo is the seat of the national government and the largest city"]


def test_a_copied_text_overlaps_fully_and_a_new_one_not_at_all():
    human = HumanNgrams(HUMAN, n=8)
    assert human.share(HUMAN) == 1.0
    assert human.share(["an entirely different sentence with no words in common with the corpus at all"]) == 0.0
    assert human.share(["too short"]) is None  # fewer than 8 words: no 8-gram


def test_partial_overlap_is_counted_per_position():
    human = HumanNgrams(HUMAN, n=8)
    # the first 9 words copied (2 of its 8-grams), then 7 new words: 2 of 9 positions are found
    text = "Japan Government Capital Tokyo is the seat of the zz yy xx ww vv uu tt"
    assert len(word_ngrams(text, 8)) == 9
    assert human.summary([text]) == {"ngram": 8, "found": 2, "ngrams": 9, "share": pytest.approx(2 / 9)}


def test_pool_overlap_lines_average_seeds_by_strategy_and_generation():
    from rag_bench.collapse.overlap import pool_overlap_lines

    def manifest(share):
        return {"pool": {"human_overlap": {"written": {"share": share}}}}

    lines = pool_overlap_lines([("replace", 1, manifest(0.2)), ("replace", 1, manifest(0.4)),
                                ("replace", 2, manifest(0.1)), ("accumulate", 1, {}), ("accumulate", 2, manifest(0.5))])
    assert lines == [
        "accumulate: share of the written pool's word 8-grams found in the human training text, by generation: "
        "2: 0.500",
        "replace: share of the written pool's word 8-grams found in the human training text, by generation: "
        "1: 0.300, 2: 0.100 (mean of the seeds)"]
