"""Prompt templates: ``plain`` shared by training and answering, and the registered instruct templates."""

from __future__ import annotations

import pytest

from rag_bench.prompt import (
    PASSAGE_SEPARATOR,
    PromptTemplate,
    get_template,
    list_templates,
    register_template,
    render_prompt,
    uses_chat_template,
)

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


# --- templates registered by name (issue 20: the reader is chosen among them on the dev split) ---------------


def test_the_registry_holds_plain_short_and_oneshot_and_refuses_unknown_names():
    assert {"plain", "short", "oneshot"} <= set(list_templates())
    assert get_template("short").system.startswith("Answer the question based on the given document.")
    with pytest.raises(ValueError, match="unknown prompt template 'verbose'"):
        render_prompt(QUESTION, [], template="verbose")
    with pytest.raises(ValueError, match="already registered"):
        register_template(PromptTemplate(name="plain", doc="another plain"))


def test_a_model_trained_here_gets_the_plain_text_whatever_the_template():
    passages = ["Algeria | Government | Capital: Algiers"]
    for name in list_templates():
        assert render_prompt(QUESTION, passages, template=name) == passages[0] + PASSAGE_SEPARATOR + QUESTION


def test_short_labels_passages_and_puts_the_instruction_in_the_system_turn(smollm2):
    tok = smollm2.tokenizer
    question = "What is the capital of Tuvalu?"
    prompt = render_prompt(question, ["Fiji | Government | Capital: Suva", "Tuvalu | Government | Capital: Funafuti"],
                           tokenizer=tok, template="short")
    assert prompt.startswith("<|im_start|>system\nAnswer the question based on the given document. Only give me "
                             "the answer and do not output any other words.<|im_end|>\n")
    assert prompt.endswith("<|im_start|>user\nDoc 1: Fiji | Government | Capital: Suva\n\nDoc 2: Tuvalu | "
                           "Government | Capital: Funafuti\n\nQuestion: What is the capital of Tuvalu?<|im_end|>\n"
                           "<|im_start|>assistant\n")
    assert "SmolLM" not in prompt  # the template's system turn replaces the model's default one


def test_closed_book_shares_the_template_without_passages(smollm2):
    prompt = render_prompt("What is the capital of Tuvalu?", [], tokenizer=smollm2.tokenizer, template="short")
    assert "based on your own knowledge" in prompt and "Doc 1" not in prompt
    assert prompt.endswith("<|im_start|>user\nQuestion: What is the capital of Tuvalu?<|im_end|>\n"
                           "<|im_start|>assistant\n")


def test_oneshot_shows_one_worked_example_before_the_question(smollm2):
    tok = smollm2.tokenizer
    prompt = render_prompt("What is the capital of Tuvalu?", ["Tuvalu | Government | Capital: Funafuti"],
                           tokenizer=tok, template="oneshot")
    example = get_template("oneshot")
    assert prompt.count("<|im_start|>user") == 2 and prompt.count("<|im_start|>assistant") == 2
    assert f"<|im_start|>assistant\n{example.example_answer}<|im_end|>" in prompt
    assert prompt.index(example.example_question) < prompt.index("What is the capital of Tuvalu?")
    assert f"Doc 1: {example.example_passages[0]}" in prompt
