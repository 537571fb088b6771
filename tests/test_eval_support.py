"""find_support: the answer's span in its passages, normalised as the contains metric, or None (not found)."""

from __future__ import annotations

import pytest

from rag_bench.eval.metrics import contains
from rag_bench.eval.support import find_support, span_in

PASSAGES = ["Kenya | Government | Capital: Nairobi", "Tuvalu | Government | Capital: Funafuti",
            "Liechtenstein | People and Society | Population - total: 39,584 (2024 est.)"]


@pytest.mark.parametrize("answer, question, passage, span", [
    ("The capital of Tuvalu is Funafuti.", "What is the capital of Tuvalu?", 1, "Funafuti"),
    ("FUNAFUTI", "Tuvalu | Government | Capital:", 1, "Funafuti"),  # a model trained here answers the value
    ("About 39584 people live in Liechtenstein.", "What is the population of Liechtenstein?", 2, "39,584"),
    ("39,584 (2024 est.)", "Liechtenstein | People and Society | Population - total:", 2, "39,584 (2024 est"),
    ("Capital: Nairobi", "", 0, "Capital: Nairobi"),  # the longest run, not only the content word
])
def test_a_supported_answer_names_its_passage_and_span(answer, question, passage, span):
    found = find_support(answer, PASSAGES, question=question)
    assert found is not None and found.passage == passage and found.text == span
    assert PASSAGES[passage][found.start:found.end] == span
    # the same normalisation as the contains metric: the span's words are "contained" in the answer
    assert contains(answer, [span]) == 1.0


@pytest.mark.parametrize("answer, question", [
    ("The capital of Tuvalu is Tuvalu.", "What is the capital of Tuvalu?"),  # repeats the question: no content
    ("The capital of Tuvalu is Avai.", "What is the capital of Tuvalu?"),  # content in no passage
    ("14.6% of the total population of the European Union", "What is the population of Liechtenstein?"),
    ("", "What is the capital of Kenya?"),
    ("The capitals are Nairobi and Funafuti", ""),  # content split over two passages is not one supporting span
    ("3", "How many?"),  # "3" is not inside "39,584" or "2024": whole words only
])
def test_an_unsupported_answer_is_none(answer, question):
    assert find_support(answer, PASSAGES, question=question) is None


def test_span_in_finds_whole_words_only():
    assert span_in(PASSAGES[1], "funafuti") == (31, 39)
    assert span_in("Capital: Algiers; algiers", "ALGIERS") == (9, 16)
    assert span_in("Ebene east", "e") is None and span_in("anything", "") is None
