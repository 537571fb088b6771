"""Fluency as a number: the perplexity of a writer's rewrites and of the human originals under one scorer."""

from __future__ import annotations

from pathlib import Path

from langchain_core.documents import Document

from rag_bench.contaminate.fluency import cached_fluency, fluency
from rag_bench.lm import LM

ORIGINAL = Document(page_content="Pitcairn Islands | Government | Capital: Adamstown",
                    metadata={"chunk_id": "rec"})
REWRITES = [{"id": "u/rec/0", "contents": "Pitcairn Islands | Government | Capital: zq xv kk pp", "metadata":
             {"rewrite_of": "rec"}},
            {"id": "u/rec/1", "contents": ORIGINAL.page_content, "metadata": {"rewrite_of": "rec"}}]


def test_fluency_scores_rewrites_and_originals_under_the_same_scorer(contaminate_data: Path, tmp_path: Path):
    scorer = LM.load(contaminate_data / "runs" / "tiny" / "gen_0" / "model")
    out = fluency(scorer, REWRITES, [ORIGINAL], scorer="gen0", writer="generation 1", scorer_is_writer=False)
    assert out["rewrites"]["n"] == 2 and out["human"]["n"] == 1 and out["unchanged"] == 1
    [human] = scorer.sequence_perplexities([ORIGINAL.page_content])
    assert out["human"]["median"] == human and out["ratio"] == out["rewrites"]["median"] / human
    loads = []

    def load():
        loads.append(1)
        return scorer

    first = cached_fluency(tmp_path / "fluency.json", load, REWRITES, [ORIGINAL], scorer="gen0", writer="w",
                           scorer_is_writer=False)
    again = cached_fluency(tmp_path / "fluency.json", load, REWRITES, [ORIGINAL], scorer="gen0", writer="w",
                           scorer_is_writer=False)
    assert first == again and len(loads) == 1  # read back: the scorer is not loaded again
    cached_fluency(tmp_path / "fluency.json", load, REWRITES[:1], [ORIGINAL], scorer="gen0", writer="w",
                   scorer_is_writer=False)
    assert len(loads) == 2  # other rewrites: scored again
