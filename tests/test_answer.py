"""Closed-book and grounded answering: one prompt, one generator, the LCEL chain and its sources."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from rag_bench.answer import (
    NO_SPAN,
    PassagesGiven,
    answer,
    answer_chain,
    closed_book,
    grounded,
    oracle,
    resolve_template,
)
from rag_bench.config import DecodeConfig, ModelConfig
from rag_bench.corpus.load import load_corpus
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index, update_index
from rag_bench.lm import LM
from rag_bench.models.decoding import drop_partial_word
from rag_bench.models.scratch import train_tokenizer
from rag_bench.prompt import render_prompt
from tests.conftest import PLANTED_FACT

QUESTION = "When was the Quillmark lighthouse first lit?"


@pytest.fixture(scope="module")
def tiny_lm() -> LM:
    texts = [PLANTED_FACT, "The Orrin valley grows barley and rye.", "Brellin harbour handles timber exports."] * 20
    return LM.build(ModelConfig.preset("tiny"), train_tokenizer(texts, vocab_size=300), seed=0)


@pytest.fixture
def retriever(mixed_corpus: Path, tmp_path: Path, embeddings):
    update_index(tmp_path / "idx", load_corpus(mixed_corpus, progress=False), embeddings=embeddings, progress=False)
    return make_retriever(load_index(tmp_path / "idx", embeddings=embeddings).store, k=3)


DECODE = DecodeConfig(max_new_tokens=6, batch_size=4)


def test_closed_book_prompt_is_the_question_alone(tiny_lm: LM):
    answers = closed_book(tiny_lm, ["Askel | People | Population:", "Dorvik | People | Population:"], decode=DECODE)
    assert [a.prompt for a in answers] == ["Askel | People | Population:", "Dorvik | People | Population:"]
    assert all(a.mode == "closed" and a.sources == [] and a.truncated_tokens == 0 for a in answers)
    assert all("\n" not in a.text for a in answers)  # cut at the stop string


def test_grounded_puts_the_best_passage_next_to_the_question(tiny_lm: LM, retriever):
    (ans,) = grounded(tiny_lm, retriever, [QUESTION], k=3, decode=DECODE)
    assert ans.mode == "grounded" and len(ans.sources) == 3
    assert [s["rank"] for s in ans.sources] == [1, 2, 3]
    assert PLANTED_FACT in ans.sources[0]["text"]
    assert ans.sources[0]["source"] == "sub/guide.md" and ans.sources[0]["chunk_id"]
    passages = [s["text"] for s in reversed(ans.sources)]
    assert ans.prompt == render_prompt(QUESTION, passages)
    assert ans.prompt.index(PLANTED_FACT) > ans.prompt.index(ans.sources[2]["text"].strip())


def test_span_constrained_answer_is_a_span_of_the_context(tiny_lm: LM, retriever):
    questions = [QUESTION, "Which harbour exports timber?", "What does the Orrin valley grow?"]
    answers = grounded(tiny_lm, retriever, questions, k=2, decode=DECODE, span_constrained=True)
    for ans in answers:
        assert ans.mode == "grounded_span" and ans.text
        assert any(ans.text in s["text"] for s in ans.sources), (ans.text, ans.sources)


def test_the_chain_composes_and_batches(tiny_lm: LM, retriever):
    chain = answer_chain(tiny_lm, retriever=retriever, k=2, decode=DECODE) | RunnableLambda(
        lambda out: (out["question"], len(out["docs"]), out["generation"].text))
    single = chain.invoke(QUESTION)
    batched = chain.batch([QUESTION, "Which harbour exports timber?"])
    assert single == batched[0] and batched[1][1] == 2  # greedy decoding: batch and single agree


def test_long_question_is_truncated_from_the_left_and_reported(tiny_lm: LM):
    question = "word " * 400 + "Askel | People | Population:"
    (ans,) = closed_book(tiny_lm, [question], decode=DECODE)
    assert ans.truncated_tokens > 0
    assert ans.prompt_tokens + DECODE.max_new_tokens <= tiny_lm.max_positions


def test_mode_dispatch_and_errors(tiny_lm: LM, retriever):
    assert answer(tiny_lm, [QUESTION], "grounded", retriever=retriever, decode=DECODE)[0].sources
    with pytest.raises(ValueError, match="unknown answer mode"):
        answer(tiny_lm, [QUESTION], "psychic")
    with pytest.raises(ValueError, match="needs a retriever"):
        answer(tiny_lm, [QUESTION], "grounded_span")


def test_the_real_smollm2_answers_closed_book_and_from_an_invented_passage(smollm2):
    """SmolLM2-135M-Instruct knows Kenya's capital; given a passage that invents another, it answers from it.

    The passage is a sentence: given the Factbook's record line ("Kenya | Government | Capital: Lumbara") this
    135M model mostly ignores it (0 of 6 invented values read back in five prompt layouts, in a scratch check)."""
    from langchain_community.retrievers import BM25Retriever

    question = "What is the capital of Kenya?"
    passage = "The capital of Kenya is Lumbara."
    others = ["The capital of Chad is N'Djamena.", "The capital of Peru is Lima.", "Japan's currency is the yen."]
    retriever = BM25Retriever.from_texts([*others, passage], k=1,
                                         preprocess_func=lambda text: re.findall(r"\w+", text.lower()))
    decode = DecodeConfig(max_new_tokens=16)
    (closed,) = closed_book(smollm2, [question], decode=decode)
    (ground,) = grounded(smollm2, retriever, [question], k=1, decode=decode)
    assert "Nairobi" in closed.text and "Lumbara" not in closed.text, closed.text
    assert "Lumbara" in ground.text, ground.text
    assert ground.sources[0]["text"] == passage
    # one user turn through the model's own chat template: passages, then the question
    assert ground.prompt == smollm2.tokenizer.apply_chat_template(
        [{"role": "user", "content": f"{passage}\n\n{question}"}], tokenize=False, add_generation_prompt=True)
    assert closed.prompt.endswith(f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")


def test_all_modes_in_one_pass_give_the_answers_of_each_mode_alone(tiny_lm: LM, retriever, monkeypatch):
    from rag_bench.answer import answer_modes

    questions = [QUESTION, "Which harbour exports timber?", "Askel | People | Population:"]
    calls = []
    real = tiny_lm.generate_detailed
    monkeypatch.setattr(tiny_lm, "generate_detailed", lambda prompts, *a, **kw: calls.append(len(prompts)) or
                        real(prompts, *a, **kw))
    together = answer_modes(tiny_lm, questions, ["closed", "grounded", "grounded_span"], retriever=retriever, k=2,
                            decode=DECODE)
    assert calls == [len(questions), 2 * len(questions)]  # grounded_span alone, then closed + grounded at once
    assert list(together) == ["closed", "grounded", "grounded_span"]
    for mode, answers in together.items():
        assert answers == answer(tiny_lm, questions, mode, retriever=retriever, k=2, decode=DECODE)
    with pytest.raises(ValueError, match="needs a retriever"):
        answer_modes(tiny_lm, questions, ["closed", "grounded"])


def test_the_oracle_joins_the_pass_with_its_own_questions_and_gold_passages(tiny_lm: LM, retriever, monkeypatch):
    from rag_bench.answer import answer_modes

    questions = [QUESTION, "Which harbour exports timber?", "Askel | People | Population:"]
    gold = PassagesGiven(questions[:2], [[Document(page_content=PLANTED_FACT, metadata={"chunk_id": "gold"})]] * 2)
    calls = []
    real = tiny_lm.generate_detailed
    monkeypatch.setattr(tiny_lm, "generate_detailed", lambda prompts, *a, **kw: calls.append(len(prompts)) or
                        real(prompts, *a, **kw))
    together = answer_modes(tiny_lm, questions, ["closed", "grounded", "oracle"], retriever=retriever, k=2,
                            decode=DECODE, per_mode={"oracle": (questions[:2], gold)})
    assert calls == [2 * len(questions) + 2]  # one generate call for the three modes
    assert together["oracle"] == answer(tiny_lm, questions[:2], "oracle", retriever=gold, k=2, decode=DECODE)
    assert all(a.sources[0]["chunk_id"] == "gold" for a in together["oracle"])
    assert together["grounded"] == answer(tiny_lm, questions, "grounded", retriever=retriever, k=2, decode=DECODE)
    assert answer_modes(tiny_lm, questions, ["oracle"], retriever=retriever, per_mode={"oracle": ([], gold)}) == \
        {"oracle": []}  # a chunk of probes none of which has a gold chunk


# --- templates, the oracle mode, extractive instruct answers, the token cap (issues 20 and 22) ---------------


def test_the_oracle_mode_reads_the_gold_passage_it_is_given(tiny_lm: LM):
    gold = Document(page_content=PLANTED_FACT, metadata={"chunk_id": "gold-1", "source": "sub/guide.md"})
    (ans,) = oracle(tiny_lm, [QUESTION], [gold], decode=DECODE)
    assert ans.mode == "oracle" and [s["chunk_id"] for s in ans.sources] == ["gold-1"]
    assert ans.prompt == render_prompt(QUESTION, [PLANTED_FACT])
    (span,) = oracle(tiny_lm, [QUESTION], [[gold]], decode=DECODE, span_constrained=True)
    assert span.mode == "oracle_span" and span.text in PLANTED_FACT
    served = PassagesGiven([QUESTION], [[gold]])
    (dispatched,) = answer(tiny_lm, [QUESTION], "oracle", retriever=served, k=1, decode=DECODE)
    assert dispatched.text == ans.text  # the mode name reaches the same chain


def test_every_answer_records_its_template_and_auto_keeps_plain_for_a_model_trained_here(tiny_lm: LM, retriever):
    (ans,) = grounded(tiny_lm, retriever, [QUESTION], k=1, decode=DECODE, template="auto")
    assert ans.template == "plain" and resolve_template("auto", tiny_lm.tokenizer) == "plain"
    (closed,) = closed_book(tiny_lm, [QUESTION], decode=DECODE, template="short")
    assert closed.template == "short" and closed.prompt == QUESTION  # no chat template: the plain text


def test_an_answer_that_runs_into_the_cap_ends_on_a_whole_word_and_says_so(tiny_lm: LM):
    capped = DecodeConfig(max_new_tokens=5, stop=(), batch_size=4)
    (ans,) = closed_book(tiny_lm, ["The Orrin valley grows"], decode=capped)
    assert ans.hit_cap
    full = tiny_lm.generate_detailed(["The Orrin valley grows"], capped)[0]
    assert full.hit_cap and ans.text == drop_partial_word(full.text.strip())
    (stopped,) = closed_book(tiny_lm, ["The Orrin valley grows"], decode=capped.replace(max_new_tokens=40,
                                                                                         stop=("s",)))
    assert not stopped.hit_cap  # a stop string ended it first


def test_an_extractive_answer_without_passages_says_so(smollm2):
    (ans,) = grounded(smollm2, PassagesGiven(["What is the capital of Tuvalu?"], [[]]),
                      ["What is the capital of Tuvalu?"], k=1, span_constrained=True, template="short",
                      decode=DecodeConfig(max_new_tokens=8))
    assert ans.text == NO_SPAN and ans.sources == []


def test_the_instruct_model_answers_extractively_from_the_start_of_a_word(smollm2):
    """SmolLM2 answers at the start of a line, where "Funafuti" has no leading space; the passage holds
    " Funafuti". Copying from a word's start lets the constrained answer be the name itself. (Under ``short``
    the model starts "The capital ...", which the passage lacks, and the constraint then gives "Tuvalu": the worked
    example of ``oneshot`` shows it the answer's form. Decoding is greedy, so a likelier first token elsewhere in
    the passage still wins: with "; note - the capital is an atoll" after the name it copies "Tuvalu".)"""
    passages = [Document(page_content="Tuvalu | Government | Capital: Funafuti", metadata={"chunk_id": "tv"})]
    decode = DecodeConfig(max_new_tokens=12)
    (ans,) = oracle(smollm2, ["What is the capital of Tuvalu?"], [passages], decode=decode, template="oneshot",
                    span_constrained=True)
    assert ans.text.startswith("Funafuti"), ans.text
    assert ans.text in passages[0].page_content


def test_auto_gives_an_instruct_model_the_dev_chosen_reader(smollm2):
    from rag_bench.config import DEFAULT_READER

    assert resolve_template("auto", smollm2.tokenizer) == DEFAULT_READER.template
