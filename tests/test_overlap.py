"""The share of a text's word 8-grams found in the human training text."""

from __future__ import annotations

import pytest

from rag_bench.overlap import HumanNgrams, word_ngrams

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
