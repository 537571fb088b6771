"""Defences as retriever wrappers: drop retrieved chunks by watermark, by perplexity, or by trusted source.

    from rag_bench.contaminate.defences import FilteredRetriever, ProvenanceCheck, TrustedSourceCheck
    check = ProvenanceCheck(gen0_lm, watermark_cfg, z_threshold=4.0)
    retriever = FilteredRetriever(base=index_retriever, check=check, k=1, depth=4)
    grounded(lm, retriever, questions, k=1)     # the same LCEL chain answers

Each wrapper is a LangChain ``BaseRetriever``: it asks its base retriever for ``k * depth`` candidates,
drops those its check rejects and returns the first ``k`` left, re-ranked. The checks read only what a
deployment could read: the text (watermark z-score, perplexity under generation 0) or the folder a chunk
came from (``source``); never the ``origin`` labels, which only the evaluation reads.

* ``ProvenanceCheck``: Kirchenbauer et al.'s detector (``rag_bench.collapse.synthetic.watermark_z_scores``) with the
  run's key; a chunk whose z-score passes the threshold is dropped. Unmarked model text passes it.
* ``PerplexityCheck``: model text is likely under the model family that wrote it; a chunk whose perplexity
  under generation 0 is below the ``quantile`` of human chunks' perplexities is dropped (so the filter
  costs that share of human chunks by construction).
* ``TrustedSourceCheck``: only chunks from curated sources (the human index's) are kept.

Verdicts are cached per chunk id, so each chunk is scored once however often it is retrieved.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict


class ChunkCheck:
    """Keeps or drops chunks; ``scores`` holds the score behind each verdict (for precision and recall)."""

    name = "none"

    def __init__(self) -> None:
        self.scores: dict[str, float] = {}
        self.dropped: dict[str, bool] = {}

    def keep(self, docs: Sequence[Document]) -> list[bool]:
        new = {d.id: d for d in docs if d.id not in self.dropped}
        if new:
            scores = self.score(list(new.values()))
            for cid, score in zip(new, scores, strict=True):
                self.scores[cid] = score
                self.dropped[cid] = self.drops(score)
        return [not self.dropped[d.id] for d in docs]

    def score(self, docs: list[Document]) -> list[float]:
        raise NotImplementedError

    def drops(self, score: float) -> bool:
        raise NotImplementedError


class ProvenanceCheck(ChunkCheck):
    """Drop chunks whose watermark z-score exceeds ``z_threshold``."""

    name = "provenance"

    def __init__(self, lm: Any, watermark: Any, *, z_threshold: float) -> None:
        super().__init__()
        self.lm, self.watermark, self.z_threshold = lm, watermark, z_threshold

    def score(self, docs: list[Document]) -> list[float]:
        from rag_bench.collapse.synthetic import watermark_z_scores

        return watermark_z_scores(self.lm, [d.page_content for d in docs], self.watermark)

    def drops(self, score: float) -> bool:
        return score > self.z_threshold


class PerplexityCheck(ChunkCheck):
    """Drop chunks whose perplexity under ``lm`` (generation 0) is below ``threshold``."""

    name = "perplexity"

    def __init__(self, lm: Any, *, threshold: float, batch_size: int = 32) -> None:
        super().__init__()
        self.lm, self.threshold, self.batch_size = lm, threshold, batch_size

    @classmethod
    def calibrated(cls, lm: Any, human_texts: Sequence[str], *, quantile: float, sample: int, seed: int = 0,
                   batch_size: int = 32) -> PerplexityCheck:
        """The threshold is the ``quantile`` of the perplexities of a seeded sample of human chunks."""
        texts = list(human_texts)
        chosen = random.Random(seed).sample(texts, min(sample, len(texts)))
        ppl = np.asarray(lm.sequence_perplexities(chosen, batch_size=batch_size), dtype=float)
        ppl = ppl[np.isfinite(ppl)]
        return cls(lm, threshold=float(np.quantile(ppl, quantile)) if ppl.size else 0.0, batch_size=batch_size)

    def score(self, docs: list[Document]) -> list[float]:
        return self.lm.sequence_perplexities([d.page_content for d in docs], batch_size=self.batch_size)

    def drops(self, score: float) -> bool:
        return bool(np.isfinite(score)) and score < self.threshold


class TrustedSourceCheck(ChunkCheck):
    """Keep only chunks whose ``source`` is one of ``trusted`` (e.g. every source of the curated index)."""

    name = "trusted"

    def __init__(self, trusted: set[str]) -> None:
        super().__init__()
        self.trusted = set(trusted)
        self._sources: dict[str, str] = {}

    def keep(self, docs: Sequence[Document]) -> list[bool]:
        self._sources.update({d.id: str(d.metadata.get("source", "")) for d in docs})
        return super().keep(docs)

    def score(self, docs: list[Document]) -> list[float]:
        return [float(self._sources[d.id] in self.trusted) for d in docs]

    def drops(self, score: float) -> bool:
        return score < 1.0


class FilteredRetriever(BaseRetriever):
    """The first ``k`` of ``base``'s top ``k * depth`` chunks that ``check`` keeps."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base: Any  # an IndexRetriever (rag_bench.index.retrieve), or anything with batch_search(queries, k=)
    check: Any  # a ChunkCheck
    k: int = 3  # chunks returned
    depth: int = 4  # candidates retrieved per returned chunk

    @property
    def mode(self) -> str:
        return f"{self.base.mode}+{self.check.name}"

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.batch_search([query])[0]

    def batch_search(self, queries: list[str], *, k: int | None = None) -> list[list[Document]]:
        k = k or self.k
        found = self.base.batch_search(list(queries), k=k * self.depth)
        out = []
        for docs in found:
            kept = [d for d, keep in zip(docs, self.check.keep(docs), strict=True) if keep][:k]
            for rank, doc in enumerate(kept, start=1):
                doc.metadata["rank"] = rank
            out.append(kept)
        return out
