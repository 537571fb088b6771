"""Scored extractive answers (rag_bench.extract, the grounded_scored / oracle_scored modes): the candidates, the
batched scoring, the chosen span and the refusal."""

from __future__ import annotations

import math

import pytest
from langchain_core.documents import Document

from rag_bench.answer import NO_SPAN, PassagesGiven, answer, grounded, oracle
from rag_bench.config import DEFAULT_READER, ModelConfig, ReaderConfig
from rag_bench.eval.support import support_at
from rag_bench.extract import candidate_spans, choose_span, echoes, question_match, span_logprobs
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer
from tests.conftest import PLANTED_FACT

RECORDS = ("Andorra | People and Society | Population: 85,370 (2024 est.)\n"
           "Andorra | Government | Capital: Andorra la Vella; note - the seat is in the valley, near the river\n"
           "Andorra | Economy | Exchange rates - Currency: euros (EUR) per US dollar")


@pytest.fixture(scope="module")
def tiny_lm() -> LM:
    texts = [PLANTED_FACT, RECORDS, "The Orrin valley grows barley and rye."] * 20
    return LM.build(ModelConfig.preset("tiny"), train_tokenizer(texts, vocab_size=300), seed=0)


def test_record_values_and_their_parts_are_the_candidates():
    texts = [s.text for s in candidate_spans(RECORDS)]
    assert "85,370 (2024 est.)" in texts and "85,370" in texts  # the value, and without its trailing (...)
    assert "85" not in texts and "370" not in texts  # a thousands comma does not split
    assert "Andorra la Vella" in texts and "note - the seat is in the valley" in texts  # the ';' parts ...
    assert "near the river" in texts  # ... and their ',' parts
    assert "euros (EUR) per US dollar" in texts
    keys = {s.text: s.context for s in candidate_spans(RECORDS)}
    assert keys["Andorra la Vella"] == "Andorra | Government | Capital"
    assert not any("|" in t or t.endswith(":") for t in texts)  # never a record key


def test_prose_candidates_are_short_runs_that_neither_start_nor_end_on_a_function_word():
    spans = candidate_spans(PLANTED_FACT, max_words=3)
    texts = {s.text for s in spans}
    assert {"1873", "Quillmark lighthouse", "Varnholt island", "first time"} <= texts
    assert not any(t.split()[0].lower() in ("the", "on", "in", "for") for t in texts)
    assert not any(t.split()[-1].lower() in ("the", "on", "in", "for", "was") for t in texts)
    assert max(len(t.split()) for t in texts) == 3
    assert all(s.context == PLANTED_FACT[:-1] or s.context == PLANTED_FACT for s in spans)  # its sentence


@pytest.mark.parametrize("passage", [RECORDS, PLANTED_FACT, "A 3.5 m wall, built in 1,204 days; it fell (once)."])
def test_every_candidate_is_a_verbatim_slice_of_its_passage(passage: str):
    spans = candidate_spans(passage)
    assert spans and len({(s.start, s.end) for s in spans}) == len(spans)
    for span in spans:
        assert passage[span.start:span.end] == span.text == span.text.strip() and span.text


def test_the_question_matches_the_field_name_the_whole_key_and_what_the_field_adds():
    question = "What is the capital of Andorra?"
    capital = question_match(question, "Andorra | Government | Capital")
    assert (capital.key, capital.extra) == (1.0, 0.0)
    coordinates = question_match(question, "Andorra | Government | Capital - geographic coordinates")
    assert (coordinates.key, coordinates.extra) == (1.0, 2 / 3)
    elsewhere = question_match(question, "Chad | People and Society | Population")
    assert (elsewhere.key, elsewhere.extra) == (0.0, 1.0)
    assert question_match("In which year did Chad become independent?", "Chad | Government | Independence").key == 0.5
    assert question_match("What is it?", "Andorra").key == 0.0  # no content words
    assert echoes(question, "Capital of Andorra") and not echoes(question, "Andorra la Vella")


@pytest.mark.parametrize("arch", ["lfm2", "llama"])  # llama repeats the prompt's KV cache, lfm2 reads it again
def test_batched_scores_over_the_shared_prompt_equal_scoring_each_answer_alone(arch: str):
    texts = [PLANTED_FACT, RECORDS] * 10
    tiny_lm = LM.build(ModelConfig.preset("tiny").replace(arch=arch), train_tokenizer(texts, vocab_size=300))
    prompt = f"{RECORDS}\n\nAndorra | Government | Capital:"
    # different lengths (padding), and answers that begin another (they share its row)
    answers = [" Andorra la Vella", " Andorra", " Andorra la", " 85,370", " euros (EUR) per US dollar", " x"]
    end = tiny_lm.tokenizer.eos_token  # one token: a shorter answer's end is read off the longer one's row
    for ending in ("", end):
        batched = span_logprobs(tiny_lm, prompt, answers, end=ending, batch_size=3)
        for text, mean in zip(answers, batched, strict=True):
            n = len(tiny_lm.tokenizer(text + ending, add_special_tokens=False)["input_ids"])
            (alone,) = tiny_lm.score([prompt], [text + ending])
            assert math.isclose(mean * n, alone, rel_tol=0.03, abs_tol=0.05), (text, ending, mean * n, alone)


def test_the_chosen_span_is_verbatim_in_its_passage_and_the_citation_points_at_it(tiny_lm: LM):
    passages = [PLANTED_FACT, RECORDS]
    reader = ReaderConfig(answers="scored", match_weights=(0.0, 0.0), min_score=None)  # the model's choice alone
    given = PassagesGiven(["What is the population of Andorra?"], [[Document(page_content=p) for p in passages]])
    (ans,) = grounded(tiny_lm, given, ["What is the population of Andorra?"], k=2, scored=True, reader=reader)
    assert ans.mode == "grounded_scored" and ans.text != NO_SPAN
    span = ans.span
    assert passages[span["passage"]][span["start"]:span["end"]] == ans.text
    support = support_at(span, [s["text"] for s in ans.sources])
    assert support is not None and support.text == ans.text and support.passage == span["passage"]


def test_the_questions_field_picks_the_record_line(tiny_lm: LM):
    """With the field match weighted far above the model's scores, the line whose key holds the question's words
    gives the answer, whatever this untrained model prefers."""
    chosen = choose_span(tiny_lm, "Q", [RECORDS], "What is the capital of Andorra?", end="",
                         weights=(100.0, 0.0))
    assert chosen is not None and chosen.text in ("Andorra la Vella", "Andorra la Vella; note - the seat is in the "
                                                  "valley, near the river", "note - the seat is in the valley",
                                                  "near the river")
    assert RECORDS[chosen.start:chosen.end] == chosen.text


def test_no_supporting_span_is_the_explicit_refusal(tiny_lm: LM):
    question = "What is the capital of Andorra?"
    nothing = PassagesGiven([question], [[Document(page_content="; , . ()")]])  # a passage with no candidate
    (ans,) = answer(tiny_lm, [question], "grounded_scored", retriever=nothing, k=1)
    assert ans.text == NO_SPAN and ans.span is None
    # without the question match every score is a mean log-probability, below 0: a floor of 0 refuses them all
    strict = ReaderConfig(answers="scored", match_weights=(0.0, 0.0), min_score=0.0)
    (refused,) = grounded(tiny_lm, PassagesGiven([question], [[Document(page_content=RECORDS)]]), [question], k=1,
                          scored=True, reader=strict)
    assert refused.text == NO_SPAN and refused.span is None and refused.sources[0]["text"] == RECORDS
    # the default reader: a passage that has none of the question's words holds no answer to it
    chad = Document(page_content="Chad | People and Society | Population: 19,093,595 (2024 est.)")
    (unrelated,) = grounded(tiny_lm, PassagesGiven([question], [[chad]]), [question], k=1, scored=True)
    assert unrelated.text == NO_SPAN and DEFAULT_READER.min_score is not None


def test_the_oracle_scored_mode_reads_the_gold_passage(tiny_lm: LM):
    (ans,) = oracle(tiny_lm, ["When was the lighthouse lit?"], [Document(page_content=PLANTED_FACT)], scored=True)
    assert ans.mode == "oracle_scored" and ans.text in PLANTED_FACT


def test_the_reader_config_names_its_answers_and_their_mode():
    assert ReaderConfig(answers="scored").grounded_mode == "grounded_scored"
    assert ReaderConfig(answers="span").extractive and not ReaderConfig(answers="free").extractive
    assert ReaderConfig.from_dict(DEFAULT_READER.to_dict()) == DEFAULT_READER


def test_the_real_smollm2_reads_an_invented_capital_from_a_record_line(smollm2):
    """The default reader on the real model: asked Kenya's capital over record lines that invent it, the answer
    is the invented value, cut from the passage (the free 135M reader mostly ignores such a line)."""
    question = "What is the capital of Kenya?"
    passages = ["Kenya | People and Society | Population: 52,428,290 (2024 est.)\n"
                "Kenya | Government | Capital: Lumbara\n"
                "Kenya | Government | Capital - time difference: UTC+3",
                "Chad | Government | Capital: N'Djamena"]
    scored = DEFAULT_READER.replace(answers="scored")
    (ans,) = grounded(smollm2, PassagesGiven([question], [[Document(page_content=p) for p in passages]]), [question],
                      k=2, scored=True, reader=scored, template="auto")
    assert ans.text == "Lumbara", ans.text
    assert ans.span["passage"] == 0
