"""Defences as retriever wrappers: drop retrieved chunks by watermark, by perplexity, or by trusted source.

    from rag_bench.contaminate.defences import FilteredRetriever, ProvenanceCheck, TrustedSourceCheck
    check = ProvenanceCheck(writer_lm, watermark_cfg, z_threshold=4.0)
    retriever = FilteredRetriever(base=index_retriever, check=check, k=1, depth=4)
    grounded(lm, retriever, questions, k=1)     # the same LCEL chain answers

Each wrapper is a LangChain ``BaseRetriever``: it asks its base retriever for ``k * depth`` candidates,
drops those its check rejects and returns the first ``k`` left, re-ranked. The checks read only what a
deployment could read: the text (watermark z-score, perplexity under generation 0) or the folder a chunk
came from (``source``); never the ``origin`` labels, which only the evaluation reads.

* ``ProvenanceCheck``: Kirchenbauer et al.'s green-list z-score over the tokens a writer could have
  generated: in a record line ``Country | Section | Field: value`` only the value's tokens count, never the
  field names a rewrite copies (they would dilute the score towards 0); in any other line every token.
  A chunk whose z-score passes the threshold is dropped. Unmarked model text passes it.
* ``PerplexityCheck``: two-sided: a chunk whose log-perplexity under generation 0 lies outside a band is
  dropped, so text that is too predictable (a memorising writer) and text that is too surprising (a
  temperature-1 writer) are both caught. The band, like the z threshold, is chosen on the dev probes'
  candidates (``rag_bench.contaminate.calibrate``).
* ``TrustedSourceCheck``: only chunks from curated sources (the human index's) are kept.

Scores are cached per chunk id (``scores``, shareable between the checks of several shares), so each chunk is
scored once however often it is retrieved; ``dropped`` holds this check's verdicts, for precision and recall.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag_bench.training.examples import RECORD_LINE


class ChunkCheck:
    """Keeps or drops chunks; ``scores`` holds the score behind each verdict (for precision and recall)."""

    name = "none"

    def __init__(self, scores: dict[str, float] | None = None) -> None:
        self.scores: dict[str, float] = {} if scores is None else scores
        self.dropped: dict[str, bool] = {}

    def score_docs(self, docs: Sequence[Document]) -> list[float]:
        """Each chunk's score, computed once per chunk id."""
        new = {d.id: d for d in docs if d.id not in self.scores}
        if new:
            self.scores.update(zip(new, self.score(list(new.values())), strict=True))
        return [self.scores[d.id] for d in docs]

    def keep(self, docs: Sequence[Document]) -> list[bool]:
        verdicts = [not self.drops(s) for s in self.score_docs(docs)]
        self.dropped.update((d.id, not v) for d, v in zip(docs, verdicts, strict=True))
        return verdicts

    def score(self, docs: list[Document]) -> list[float]:
        raise NotImplementedError

    def drops(self, score: float) -> bool:
        raise NotImplementedError


def generated_spans(text: str) -> list[tuple[int, int]]:
    """Character spans a writer generated, as far as the text shows: the value of each record line (with the
    space before it, which a BPE tokenizer joins to the value's first token), and every other line whole."""
    spans, offset = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        lead = len(body) - len(body.lstrip())
        match = RECORD_LINE.match(body.strip())
        if match:
            spans.append((offset + lead + match.end("prefix"), offset + lead + match.end("value")))
        elif body.strip():
            spans.append((offset, offset + len(body)))
        offset += len(line)
    return spans


def watermark_z(lm: Any, texts: Sequence[str], watermark: Any, *, generated_only: bool = True) -> list[float]:
    """Kirchenbauer z-score of each text over the tokens in ``generated_spans`` (every token when
    ``generated_only`` is False, which is what ``watermark_z_scores`` of the collapse package computes).
    A token counts when its last character is in a span; its green list is seeded by the token before it
    (context width 1, "lefthash"). 0 for a text with no token to count."""
    import torch
    from transformers.generation.watermarking import WatermarkDetector

    detector = WatermarkDetector(model_config=lm.model.config, device=str(lm.device), watermarking_config=watermark)
    gamma = detector.greenlist_ratio
    greens: dict[int, set[int]] = {}
    out = []
    for text in texts:
        enc = lm.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        spans = generated_spans(text) if generated_only else [(0, len(text))]
        counted = green = 0
        for i in range(1, len(ids)):
            last = offsets[i][1] - 1
            if not any(a <= last < b for a, b in spans):
                continue
            prev = ids[i - 1]
            if prev not in greens:
                seed = torch.tensor([prev], device=lm.device)
                greens[prev] = set(detector.processor._get_greenlist_ids(seed).tolist())
            counted += 1
            green += ids[i] in greens[prev]
        out.append((green - gamma * counted) / math.sqrt(counted * gamma * (1 - gamma)) if counted else 0.0)
    return out


class ProvenanceCheck(ChunkCheck):
    """Drop chunks whose watermark z-score over their generated tokens exceeds ``z_threshold``."""

    name = "provenance"

    def __init__(self, lm: Any, watermark: Any, *, z_threshold: float, scores: dict[str, float] | None = None,
                 generated_only: bool = True) -> None:
        super().__init__(scores)
        self.lm, self.watermark, self.z_threshold = lm, watermark, z_threshold
        self.generated_only = generated_only

    def score(self, docs: list[Document]) -> list[float]:
        return watermark_z(self.lm, [d.page_content for d in docs], self.watermark,
                           generated_only=self.generated_only)

    def drops(self, score: float) -> bool:
        return score > self.z_threshold


class PerplexityCheck(ChunkCheck):
    """Drop chunks whose log-perplexity under ``lm`` (generation 0) lies outside ``band`` = (low, high)."""

    name = "perplexity"

    def __init__(self, lm: Any, *, band: tuple[float, float] = (-math.inf, math.inf), batch_size: int = 32,
                 scores: dict[str, float] | None = None) -> None:
        super().__init__(scores)
        self.lm, self.band, self.batch_size = lm, tuple(band), batch_size

    def score(self, docs: list[Document]) -> list[float]:
        ppl = self.lm.sequence_perplexities([d.page_content for d in docs], batch_size=self.batch_size)
        return [math.log(p) if np.isfinite(p) and p > 0 else math.nan for p in ppl]

    def drops(self, score: float) -> bool:
        return bool(np.isfinite(score)) and not self.band[0] <= score <= self.band[1]


class TrustedSourceCheck(ChunkCheck):
    """Keep only chunks whose ``source`` is one of ``trusted`` (e.g. every source of the curated index)."""

    name = "trusted"

    def __init__(self, trusted: set[str], scores: dict[str, float] | None = None) -> None:
        super().__init__(scores)
        self.trusted = set(trusted)
        self._sources: dict[str, str] = {}

    def score_docs(self, docs: Sequence[Document]) -> list[float]:
        self._sources.update({d.id: str(d.metadata.get("source", "")) for d in docs})
        return super().score_docs(docs)

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
