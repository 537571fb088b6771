"""Scores of one answer, their averages by bucket, and the grounded-minus-closed gaps."""

from __future__ import annotations

import pytest

from rag_bench.answer import Answer
from rag_bench.eval.scoring import aggregate, exact_match_gaps, sample_row, score_answer
from rag_bench.records import Probe

CAPITAL = Probe(id="p1", prompt="Zorbia | Government | Capital:", golden_answers=("Quenta",),
                metadata={"bucket": "tail", "field": "Capital", "source_chunk_id": "c1"})
POPULATION = Probe(id="p2", prompt="Zorbia | People | Population:", golden_answers=("41,200",),
                   metadata={"bucket": "head", "answer_type": "number", "source_chunk_id": "c9"})


def _answer(text: str, mode: str, sources: list[dict] | None = None, truncated: int = 0) -> Answer:
    return Answer(question="q", mode=mode, text=text, prompt="p", sources=sources or [], prompt_tokens=10,
                  truncated_tokens=truncated)


def test_closed_book_answers_get_accuracy_only_and_numbers_get_numeric_match():
    scores = score_answer(_answer(" Quenta", "closed"), CAPITAL, gold_in_index=True)
    assert scores == {"exact_match": 1.0, "token_f1": 1.0, "contains": 1.0, "prompt_truncated": 0.0}
    numeric = score_answer(_answer(" about 41200 people", "closed", truncated=3), POPULATION, gold_in_index=True)
    assert numeric["numeric_match"] == 1.0 and numeric["exact_match"] == 0.0 and numeric["prompt_truncated"] == 1.0


def test_grounded_answers_are_scored_on_what_was_retrieved():
    sources = [{"chunk_id": "c2", "text": "Zorbia's capital is Quenta."}, {"chunk_id": "c3", "text": "Other."}]
    hit_by_text = score_answer(_answer(" Quenta", "grounded", sources), CAPITAL, gold_in_index=False)
    assert hit_by_text["retrieval_recall"] == 1.0 and hit_by_text["answer_recall"] == 1.0
    assert hit_by_text["supported"] == 1.0
    # the gold chunk is in the index and was not retrieved: a chunk that merely holds the answer is no hit
    miss_by_id = score_answer(_answer(" Quenta", "grounded", sources), CAPITAL, gold_in_index=True)
    assert miss_by_id["retrieval_recall"] == 0.0 and miss_by_id["answer_recall"] == 1.0


def test_aggregate_averages_by_bucket_and_splits_exact_match_by_retrieval():
    probes = [CAPITAL, POPULATION]
    closed = aggregate(probes, [{"exact_match": 1.0}, {"exact_match": 0.0}])
    assert set(closed) == {"tail", "head", "all"}
    assert closed["all"]["exact_match"] == {"value": 0.5, "higher_is_better": True, "n": 2}
    grounded = aggregate(probes, [{"exact_match": 1.0, "retrieval_recall": 1.0, "prompt_truncated": 1.0},
                                  {"exact_match": 1.0, "retrieval_recall": 0.0, "prompt_truncated": 0.0}])
    assert grounded["all"]["exact_match_retrieval_miss"] == {"value": 1.0, "higher_is_better": True, "n": 1}
    assert grounded["all"]["prompt_truncated"]["higher_is_better"] is False
    gaps = exact_match_gaps({"closed": closed, "grounded": grounded})
    assert gaps == {"grounded-closed": {"tail": 0.0, "head": 1.0, "all": pytest.approx(0.5)}}
    assert exact_match_gaps({"grounded": grounded}) == {}


def test_a_sample_row_keeps_the_probe_the_answer_and_the_sources_without_their_text():
    ans = _answer(" Quenta", "grounded", [{"chunk_id": "c1", "score": 0.9, "rank": 1, "text": "long passage"}])
    row = sample_row(CAPITAL, ans, {"exact_match": 1.0})
    assert row["id"] == "p1" and row["prediction"] == " Quenta" and row["bucket"] == "tail"
    assert row["sources"] == [{"chunk_id": "c1", "score": 0.9, "rank": 1}]
