"""Aggregation of contaminated retrievals: means with intervals per cell; defences over the test probes only."""

from __future__ import annotations

from langchain_core.documents import Document

from rag_bench.answer import Answer
from rag_bench.contaminate.evaluate import aggregate_rows
from rag_bench.contaminate.measure import score_sample
from rag_bench.records import Probe

PROBE = Probe(id="p", prompt="Algeria | Government | Capital:", golden_answers=("Algiers",), metadata={})
DOCS = [Document(page_content="Algeria | Government | Capital: Oran", id="s", metadata={"origin": "synthetic"}),
        Document(page_content="Algeria | Government | Capital: Algiers", id="h", metadata={})]


def answer(text: str) -> Answer:
    return Answer(question=PROBE.prompt, mode="grounded", text=text, prompt="", sources=[], prompt_tokens=1,
                  truncated_tokens=0)


def row(text: str, defence: str = "none", split: str = "test", arm: str = "synthetic") -> dict:
    return {"model_generation": 0, "arm": arm, "share": 0.5, "retriever": "bm25", "defence": defence, "k": 1,
            "split": split, **score_sample(answer(text), PROBE, DOCS, k=1, rewrites=1)}


def test_aggregate_rows_gives_means_with_intervals_per_arm():
    rows = [row(t) for t in ("Oran", "Algiers", "Algiers", "x")] + [row("Algiers", arm="human")]
    marker = {"share": 0.5, "pool_share": 0.5, "index_share": 0.01}
    control = {**marker, "arm": "human", "index_share": 0.02}
    synthetic, human = sorted(aggregate_rows(rows, [marker, control]), key=lambda r: r["arm"] != "synthetic")
    assert synthetic["exact_match"]["value"] == 0.5 and synthetic["exact_match"]["n"] == 4
    assert synthetic["exact_match"]["low"] < 0.5 < synthetic["exact_match"]["high"]
    assert synthetic["copied_synthetic"]["value"] == 0.25 and synthetic["pool_share"] == 0.5
    assert synthetic["normalised_exposure"]["value"] == 1.0 and synthetic["split"] == "all"
    assert human["arm"] == "human" and human["index_share"] == 0.02 and human["exact_match"]["n"] == 1


def test_a_defence_is_aggregated_over_the_test_probes_only():
    rows = [row("Algiers", "trusted-4", "test"), row("Oran", "trusted-4", "dev"), row("Oran", "trusted-4", "dev")]
    [agg] = aggregate_rows(rows, [{"share": 0.5, "pool_share": 0.5, "index_share": 0.01}])
    assert agg["split"] == "test" and agg["exact_match"]["n"] == 1 and agg["exact_match"]["value"] == 1.0
