"""Continuations of human prompts: prompt choice, conditional perplexity, fixed histograms, the report.

    .venv/bin/pytest tests/test_eval_continuations.py -q
"""

from __future__ import annotations

import math

import pytest
import torch

from rag_bench.config import DecodeConfig, EvalConfig, ModelConfig
from rag_bench.eval.continuations import (
    conditional_perplexities,
    continuation_prompts,
    fixed_histogram,
    generation_eval,
    human_prompts,
    model_fingerprint,
)
from rag_bench.eval.diversity import rare_ngrams
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer

TEXTS = [
    "The old lighthouse keeper walked along the cliffs every morning and counted the ships in the bay below.",
    "Brellin harbour was quiet in winter, when the timber barges stayed frozen in the northern forests.",
    "Copper prices fell sharply that year, and the Orrin valley mines cut their shifts from three to two.",
    "Too short.",
]


@pytest.fixture(scope="module")
def lm() -> LM:
    return LM.build(ModelConfig.preset("tiny"), train_tokenizer(TEXTS * 10, vocab_size=300), seed=0)


def test_prompts_are_seeded_prefixes_and_the_human_continuation_fits_the_budget(lm: LM):
    prompts = human_prompts(TEXTS, count=2, words=5, tokenizer=lm.tokenizer, max_new_tokens=6, seed=0)
    assert prompts == human_prompts(TEXTS, count=2, words=5, tokenizer=lm.tokenizer, max_new_tokens=6, seed=0)
    assert len(prompts) == 2
    for p in prompts:
        source = next(t for t in TEXTS if t.startswith(p.prompt))
        assert len(p.prompt.split()) == 5 and source.startswith(p.prompt + p.continuation)
        assert 0 < len(lm.tokenizer(p.continuation, add_special_tokens=False)["input_ids"]) <= 6
    everything = human_prompts(TEXTS, count=10, words=40, tokenizer=lm.tokenizer, max_new_tokens=6)
    assert len(everything) == 3  # "Too short." has too few words
    assert all(len(p.prompt.split()) == len(next(t for t in TEXTS if t.startswith(p.prompt)).split()) // 2
               for p in everything)  # a text shorter than the prompt length gives half its words


def test_grounded_prompt_puts_passages_before_the_prompt(lm: LM):
    from langchain_core.documents import Document

    prompts = human_prompts(TEXTS[:1], count=1, words=4, tokenizer=lm.tokenizer, max_new_tokens=4)
    docs = [[Document(page_content="best", metadata={"rank": 1}), Document(page_content="worse", metadata={"rank": 2})]]
    assert continuation_prompts(prompts, "closed") == [prompts[0].prompt]
    assert continuation_prompts(prompts, "grounded", docs) == [f"worse\n\nbest\n\n{prompts[0].prompt}"]
    with pytest.raises(ValueError, match="needs retrieved contexts"):
        continuation_prompts(prompts, "grounded")


def test_conditional_perplexity_is_the_exponent_of_the_mean_token_nll(lm: LM):
    prompt, text = "The old lighthouse", " keeper walked along"
    (value, empty) = conditional_perplexities(lm, [prompt, prompt], [text, ""])
    ids = lm.tokenizer(prompt)["input_ids"] + lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    n_text = len(ids) - len(lm.tokenizer(prompt)["input_ids"])
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits.float()
    logp = torch.log_softmax(logits[0, :-1], -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    expected = math.exp(-float(logp[-n_text:].sum()) / n_text)
    assert value == pytest.approx(expected, rel=2e-2)  # bf16 autocast where the CPU has it
    assert math.isnan(empty)


def test_fixed_histogram_keeps_its_edges_and_counts_outliers():
    cfg = EvalConfig(histogram_bins=4, histogram_range=(1.0, 10_000.0))
    hist = fixed_histogram([0.5, 5.0, 50.0, 500.0, 5e6, float("nan")], cfg)
    assert hist["edges"] == pytest.approx([1.0, 10.0, 100.0, 1000.0, 10_000.0])
    assert hist["counts"] == [2, 1, 1, 1] and hist["n_below"] == 1 and hist["n_above"] == 1
    assert hist["n_nonfinite"] == 1 and hist["median"] == 50.0 and hist["scale"] == "log"
    assert fixed_histogram([], cfg)["edges"] == hist["edges"]


def test_fingerprint_follows_the_weights(lm: LM):
    before = model_fingerprint(lm)
    assert model_fingerprint(lm) == before
    with torch.no_grad():
        next(lm.model.parameters()).add_(1e-3)
    try:
        assert model_fingerprint(lm) != before
    finally:
        with torch.no_grad():
            next(lm.model.parameters()).sub_(1e-3)


def test_generation_eval_scores_each_mode_and_the_human_baseline(lm: LM, embeddings):
    cfg = EvalConfig(batch_size=2, continuation_decode=DecodeConfig(max_new_tokens=6, do_sample=True, stop=()))
    prompts = human_prompts(TEXTS, count=3, words=5, tokenizer=lm.tokenizer, max_new_tokens=6)
    out = generation_eval(lm, prompts, modes=("closed", "grounded_span"), cfg=cfg, embedder=embeddings,
                          rare=rare_ngrams(TEXTS), progress=False)
    assert out["modes"] == ["closed"] and set(out["diversity"]) == {"human", "closed"}
    assert out["diversity"]["closed"]["vendi_score"]["n"] == 3
    assert {"tail_survival_unigram", "distinct_2", "self_bleu"} <= set(out["diversity"]["human"])
    assert out["distribution"]["closed"]["reference"] == "self" and out["notes"]
    assert len(out["distribution"]["human"]["perplexities"]) == 3 and len(out["samples"]) == 6
    again = generation_eval(lm, prompts, modes=("closed",), cfg=cfg, progress=False)
    assert [s["text"] for s in again["samples"]] == [s["text"] for s in out["samples"]]  # seeded sampling
