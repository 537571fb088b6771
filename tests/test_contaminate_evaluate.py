"""Per-sample scores of a contaminated retrieval and their aggregation (origins read after answering)."""

from __future__ import annotations

from langchain_core.documents import Document

from rag_bench.answer import Answer
from rag_bench.contaminate.evaluate import aggregate_rows, origin_of, score_sample
from rag_bench.records import Probe

PROBE = Probe(id="p", prompt="Algeria | Government | Capital:", golden_answers=("Algiers",), metadata={})


def answer(text: str) -> Answer:
    return Answer(question=PROBE.prompt, mode="grounded", text=text, prompt="", sources=[], prompt_tokens=1,
                  truncated_tokens=0)


DOCS = [Document(page_content="Algeria | Government | Capital: Oran", id="s",
                 metadata={"origin": "synthetic", "origin_generation": 3, "origin_watermarked": True}),
        Document(page_content="Algeria | Government | Capital: Algiers", id="h", metadata={}),
        Document(page_content="Algeria | Geography | Area - total: 2,381,740 sq km", id="s2",
                 metadata={"origin": "synthetic", "origin_generation": 3})]


def test_a_chunk_without_labels_is_human():
    assert origin_of({}) == {"origin": "human", "origin_generation": None, "origin_watermarked": False}


def test_score_sample_counts_synthetic_passages_and_copies():
    copied = score_sample(answer("Oran"), PROBE, DOCS, k=1)
    assert copied["exact_match"] == 0.0 and copied["copied_synthetic"] == 1.0
    assert copied["synthetic_retrieved"] == 1.0 and copied["synthetic_retrieved_depth"] == 2 / 3
    assert [r["origin"] for r in copied["retrieved"]] == ["synthetic", "human", "synthetic"]
    right = score_sample(answer("Algiers"), PROBE, DOCS, k=2)
    assert right["exact_match"] == 1.0 and right["copied_synthetic"] == 0.0 and right["synthetic_retrieved"] == 0.5


def test_aggregate_rows_gives_means_with_intervals():
    rows = [{"model_generation": 0, "share": 0.5, "retriever": "bm25", "defence": "none",
             **score_sample(answer(text), PROBE, DOCS, k=1)} for text in ("Oran", "Algiers", "Algiers", "x")]
    marker = {"share": 0.5, "pool_share": 0.5, "index_share": 0.01}
    [row] = aggregate_rows(rows, [marker])
    assert row["exact_match"]["value"] == 0.5 and row["exact_match"]["n"] == 4
    assert row["exact_match"]["low"] < 0.5 < row["exact_match"]["high"]
    assert row["copied_synthetic"]["value"] == 0.25 and row["pool_share"] == 0.5
