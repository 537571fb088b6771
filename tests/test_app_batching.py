"""The chat's micro-batching queue: questions asked at once share a batch and get the answers asked alone."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest
from transformers import TextIteratorStreamer

from rag_bench.answer import closed_book
from rag_bench.app import batching
from rag_bench.app.batching import BatchedLM, batched
from rag_bench.config import DecodeConfig, ModelConfig
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer

QUESTIONS = [f"Land{i} | Government | Capital:" for i in range(8)]
DECODE = DecodeConfig(max_new_tokens=6)


@pytest.fixture(scope="module")
def lm() -> LM:
    texts = [f"Land{i} | Government | Capital: City{i}" for i in range(8)] * 10
    return LM.build(ModelConfig.preset("tiny", arch="llama"), train_tokenizer(texts, vocab_size=300), seed=0,
                    device="cpu")


def ask_at_once(model, questions: list[str], decode: DecodeConfig = DECODE) -> list:
    """Each question in its own thread, all released together, as Gradio's workers would run them."""
    answers: list = [None] * len(questions)
    start = threading.Barrier(len(questions))

    def one(i: int) -> None:
        start.wait()
        try:
            answers[i] = closed_book(model, [questions[i]], decode=decode)[0]
        except Exception as exc:
            answers[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_questions_asked_at_once_share_batches_and_get_the_answers_asked_alone(lm):
    alone = [closed_book(lm, [q], decode=DECODE)[0] for q in QUESTIONS]
    model = BatchedLM(lm, threading.Lock(), gather_s=0.2)
    assert ask_at_once(model, QUESTIONS) == alone
    assert max(model.batch_sizes) > 1 and sum(model.batch_sizes) == len(QUESTIONS)
    assert model.tokenizer is lm.tokenizer and model.max_positions == lm.max_positions  # the LM's own


def test_different_decoding_settings_never_share_a_batch(lm):
    model = BatchedLM(lm, threading.Lock(), gather_s=0.2)
    decodes = [DECODE, DECODE.replace(max_new_tokens=3)] * 4
    answers: list = [None] * len(decodes)
    start = threading.Barrier(len(decodes))

    def one(i: int) -> None:
        start.wait()
        answers[i] = model.generate_detailed([QUESTIONS[i]], decodes[i])[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(decodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [lm.generate_detailed([q], d)[0] for q, d in zip(QUESTIONS, decodes, strict=True)]
    assert all(a.new_tokens <= d.max_new_tokens for a, d in zip(answers, decodes, strict=True))


def test_a_lone_question_streams_and_a_batched_one_gets_its_whole_answer(lm):
    model = BatchedLM(lm, threading.Lock(), gather_s=0.0)
    streamer = TextIteratorStreamer(lm.tokenizer, skip_prompt=True, skip_special_tokens=True)
    (ans,) = closed_book(model, [QUESTIONS[0]], decode=DECODE, streamer=streamer)
    assert "".join(streamer).strip().startswith(ans.text) and model.batch_sizes == [1]

    model = BatchedLM(lm, threading.Lock(), gather_s=0.3)
    streamer = TextIteratorStreamer(lm.tokenizer, skip_prompt=True, skip_special_tokens=True)
    results: dict = {}
    threads = [threading.Thread(target=lambda: results.update(a=closed_book(model, [QUESTIONS[1]], decode=DECODE,
                                                                           streamer=streamer)[0])),
               threading.Thread(target=lambda: results.update(b=closed_book(model, [QUESTIONS[2]], decode=DECODE)[0]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert model.batch_sizes == [2]
    streamed = "".join(streamer).strip()  # the raw generation; the answer may drop a word cut at the token cap
    assert streamed.startswith(results["a"].text) and len(streamed) >= len(results["a"].text) > 0


def test_an_error_reaches_every_caller_of_the_batch_and_the_queue_goes_on(lm):
    model = BatchedLM(lm, threading.Lock(), gather_s=0.2)
    too_long = DECODE.replace(max_new_tokens=lm.max_positions)
    answers = ask_at_once(model, QUESTIONS[:3], too_long)
    assert all(isinstance(a, ValueError) and "no room for a prompt" in str(a) for a in answers)
    assert ask_at_once(model, QUESTIONS[:2]) == [closed_book(lm, [q], decode=DECODE)[0] for q in QUESTIONS[:2]]


def test_one_batched_lm_per_model(lm):
    lock = threading.Lock()
    first = batched(lm, lock)
    assert batched(lm, lock) is first and batched(first, lock) is first and first.lock is lock


def test_a_model_nobody_holds_is_freed_with_its_queue(monkeypatch):
    monkeypatch.setattr(batching, "IDLE_S", 0.1)  # the worker ends soon after its last batch
    texts = [f"Land{i} | Government | Capital: City{i}" for i in range(8)]
    model = LM.build(ModelConfig.preset("tiny", arch="llama"), train_tokenizer(texts, vocab_size=300), seed=0,
                     device="cpu")
    shared = batched(model, threading.Lock())
    assert len(ask_at_once(shared, QUESTIONS[:2])) == 2
    freed, worker = weakref.ref(model), shared._worker
    del model, shared  # as the app drops a model past AppConfig.max_models
    deadline = time.monotonic() + 10
    while worker is not None and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    gc.collect()
    assert freed() is None
