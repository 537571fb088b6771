"""The one prompt template shared by training and answering."""

from __future__ import annotations

import pytest

from rag_bench.prompt import PASSAGE_SEPARATOR, render_prompt

QUESTION = "Algeria | Government | Capital:"


def test_closed_book_prompt_is_the_record_prefix_itself():
    assert render_prompt(QUESTION) == QUESTION
    assert render_prompt(QUESTION, []) == QUESTION


def test_passages_come_first_separated_by_blank_lines():
    passages = ["  Algeria | Government | Capital: Algiers\n", "Chad | Government | Capital: N'Djamena"]
    prompt = render_prompt(QUESTION, passages)
    assert prompt == ("Algeria | Government | Capital: Algiers" + PASSAGE_SEPARATOR
                      + "Chad | Government | Capital: N'Djamena" + PASSAGE_SEPARATOR + QUESTION)
    assert prompt.endswith(QUESTION)  # the answer follows the question directly, as in the corpus


def test_empty_passages_are_dropped():
    assert render_prompt(QUESTION, ["", "   ", "Chad | Government | Capital: N'Djamena"]) == (
        "Chad | Government | Capital: N'Djamena" + PASSAGE_SEPARATOR + QUESTION)


def test_a_single_string_is_refused_rather_than_split_into_characters():
    with pytest.raises(TypeError, match="sequence of strings"):
        render_prompt(QUESTION, "Algeria | Government | Capital: Algiers")
