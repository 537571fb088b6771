"""The one prompt template shared by training and answering."""

from __future__ import annotations

import pytest

from rag_bench.prompt import PASSAGE_SEPARATOR, render_prompt, uses_chat_template

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


def test_an_instruct_model_gets_passages_and_question_as_one_user_turn_of_its_chat_template(smollm2):
    tok = smollm2.tokenizer
    prompt = render_prompt("What is the capital of Kenya?", ["Kenya | Government | Capital: Lumbara"], tokenizer=tok)
    assert prompt.endswith("<|im_start|>user\nKenya | Government | Capital: Lumbara\n\nWhat is the capital of Kenya?"
                           "<|im_end|>\n<|im_start|>assistant\n")
    assert prompt.count("<|im_start|>user") == 1 and uses_chat_template(tok)


def test_a_tokenizer_without_a_chat_template_gets_the_plain_text():
    from rag_bench.models.scratch import train_tokenizer

    tok = train_tokenizer([QUESTION + " Algiers"] * 20, vocab_size=300)
    assert not uses_chat_template(tok) and not uses_chat_template(None)
    assert render_prompt(QUESTION, ["Algeria | Government | Capital: Algiers"], tokenizer=tok) == (
        "Algeria | Government | Capital: Algiers" + PASSAGE_SEPARATOR + QUESTION)
