"""Per-sample scores of a contaminated retrieval (origins read after answering), exposure and rank pairs."""

from __future__ import annotations

import math

from langchain_core.documents import Document

from rag_bench.answer import Answer
from rag_bench.contaminate.measure import origin_of, rank_pair, rewrite_counts, score_sample
from rag_bench.records import Probe

PROBE = Probe(id="p", prompt="Algeria | Government | Capital:", golden_answers=("Algiers",),
              metadata={"source_chunk_id": "h"})


def answer(text: str) -> Answer:
    return Answer(question=PROBE.prompt, mode="grounded", text=text, prompt="", sources=[], prompt_tokens=1,
                  truncated_tokens=0)


DOCS = [Document(page_content="Algeria | Government | Capital: Oran", id="s",
                 metadata={"origin": "synthetic", "origin_generation": 3, "origin_watermarked": True,
                           "rewrite_of": "h", "rewrite_round": 1}),
        Document(page_content="Algeria | Government | Capital: Algiers", id="h", metadata={}),
        Document(page_content="Algeria | Geography | Area - total: 2,381,740 sq km", id="s2",
                 metadata={"origin": "synthetic", "origin_generation": 3, "rewrite_of": "h", "rewrite_round": 0})]


def test_a_chunk_without_labels_is_human():
    assert origin_of({}) == {"origin": "human", "origin_generation": None, "origin_watermarked": False}


def test_score_sample_counts_synthetic_passages_copies_and_exposure():
    copied = score_sample(answer("Oran"), PROBE, DOCS, k=1, rewrites=2)
    assert copied["exact_match"] == 0.0 and copied["copied_synthetic"] == 1.0
    assert copied["synthetic_retrieved"] == 1.0 and copied["synthetic_retrieved_depth"] == 2 / 3
    assert copied["exposure_ceiling"] == 1.0 and copied["normalised_exposure"] == 1.0
    assert [r["origin"] for r in copied["retrieved"]] == ["synthetic", "human", "synthetic"]
    right = score_sample(answer("Algiers"), PROBE, DOCS, k=3, rewrites=2)
    assert right["exact_match"] == 1.0 and right["copied_synthetic"] == 0.0
    assert right["synthetic_retrieved"] == 2 / 3 and right["exposure_ceiling"] == 2 / 3
    assert right["normalised_exposure"] == 1.0  # both rewrites that exist are read: the most there can be
    assert math.isnan(score_sample(answer("x"), PROBE, DOCS[1:2], k=1)["normalised_exposure"])  # no rewrite


def test_rank_pair_compares_the_original_with_its_own_first_rewrite():
    assert rewrite_counts(DOCS) == {"h": 2}
    pair = rank_pair(PROBE, DOCS)
    assert (pair["original_rank"], pair["rewrite_rank"], pair["rewrite_higher"]) == (2, 3, 0.0)
    pair = rank_pair(PROBE, [DOCS[2], DOCS[0]])  # the original is below the depth read
    assert (pair["original_rank"], pair["rewrite_rank"], pair["rewrite_higher"]) == (None, 1, 1.0)
