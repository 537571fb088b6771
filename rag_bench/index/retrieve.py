"""Retrievers over a loaded index: dense (FAISS), bm25, and hybrid (reciprocal-rank fusion).

    rag-bench search "capital of Algeria" -k 5 --mode hybrid

Each is a LangChain ``BaseRetriever``, so it composes into LCEL chains. Every returned
Document is a copy whose metadata carries ``score``, ``rank`` and ``retriever``. bm25 reads the statistics
sealed with the index (rag_bench.index.bm25) when the loaded store has them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from langchain_community.vectorstores import FAISS
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from rag_bench.config import ConfigError
from rag_bench.index.bm25 import Bm25Stats, bm25_tokens
from rag_bench.index.store import single_thread_search

RetrievalMode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[str, ...] = ("dense", "bm25", "hybrid")
RRF_K = 60  # the constant of Cormack et al. 2009; damps the weight of the very top ranks


class RetrievalError(ConfigError):
    """A retrieval request that cannot be served (k below 1, an unknown mode); one line for the user."""


def check_k(k: int) -> int:
    """``k`` itself if it is a whole number of 1 or more; else one clear error (FAISS would assert, BM25 go empty)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise RetrievalError(f"-k must be a whole number of 1 or more (chunks to retrieve), got {k!r}")
    return int(k)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise RetrievalError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


class IndexRetriever(BaseRetriever):
    """Top-k chunks of a FAISS store by dense, bm25 or hybrid retrieval."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: FAISS  # the LangChain FAISS store of a LoadedIndex
    mode: RetrievalMode = "dense"  # dense | bm25 | hybrid
    k: int = 5  # chunks returned
    fusion_depth: int = 4  # hybrid fuses the top k*fusion_depth of each retriever
    _bm25: Any = PrivateAttr(default=None)
    _ids: list[str] = PrivateAttr(default_factory=list)

    def __init__(self, **fields: Any) -> None:
        # checked before pydantic, whose validators would wrap the one line in a many-line ValidationError
        check_k(fields.get("k", 5))
        check_mode(fields.get("mode", "dense"))
        super().__init__(**fields)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.search(query, k=self.k, mode=self.mode)

    def search(self, query: str, *, k: int | None = None, mode: RetrievalMode | None = None) -> list[Document]:
        k = check_k(self.k if k is None else k)
        mode = check_mode(mode or self.mode)
        if mode == "dense":
            ranked = self._dense(query, k)
        elif mode == "bm25":
            ranked = self._bm25_search(query, k)
        else:
            depth = k * self.fusion_depth
            ranked = reciprocal_rank_fusion([self._dense(query, depth), self._bm25_search(query, depth)])[:k]
        return [self._result(cid, score, rank, mode) for rank, (cid, score) in enumerate(ranked, start=1)]

    def batch_search(self, queries: list[str], *, k: int | None = None,
                     mode: RetrievalMode | None = None) -> list[list[Document]]:
        """Many queries at once: dense retrieval embeds them in one batch and searches FAISS once."""
        k, mode = check_k(self.k if k is None else k), check_mode(mode or self.mode)
        if mode != "dense" or not queries:
            return [self.search(q, k=k, mode=mode) for q in queries]
        vectors = np.asarray(self.store.embedding_function.embed_documents(list(queries)), dtype="float32")
        scores, rows = self.store.index.search(vectors, k)  # a batch uses every thread it is given
        ids = self.store.index_to_docstore_id
        return [[self._result(ids[int(r)], float(s), rank, mode)
                 for rank, (s, r) in enumerate(zip(row_scores, row_ids, strict=True), start=1) if r >= 0]
                for row_scores, row_ids in zip(scores, rows, strict=True)]

    def _dense(self, query: str, k: int) -> list[tuple[str, float]]:
        with single_thread_search():
            vector = self.store.embedding_function.embed_query(query)
            found = self.store.similarity_search_with_score_by_vector(vector, k=k)
        return [(doc.id, float(score)) for doc, score in found]

    def _bm25_search(self, query: str, k: int) -> list[tuple[str, float]]:
        if self._bm25 is None:
            self._build_bm25()
        scores = self._bm25.get_scores(bm25_tokens(query))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[int(i)], float(scores[i])) for i in top if scores[i] > 0]

    def _build_bm25(self) -> None:
        """The statistics sealed with the index (bm25.npz) when it has them, else counted from the chunks now."""
        ids = self.store.index_to_docstore_id
        self._ids = [ids[i] for i in range(len(ids))]
        stored = getattr(self.store, "bm25", None)
        self._bm25 = stored if stored is not None else Bm25Stats.from_texts(
            [self.store.docstore.search(cid).page_content for cid in self._ids])

    def _result(self, chunk_id: str, score: float, rank: int, mode: str) -> Document:
        doc = self.store.docstore.search(chunk_id)
        meta = {**doc.metadata, "chunk_id": chunk_id, "score": round(score, 6), "rank": rank, "retriever": mode}
        return Document(page_content=doc.page_content, metadata=meta, id=chunk_id)


def reciprocal_rank_fusion(rankings: list[list[tuple[str, float]]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse ranked lists: score(d) = sum over lists of 1 / (k + rank of d)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def make_retriever(store: FAISS, *, mode: RetrievalMode = "dense", k: int = 5) -> IndexRetriever:
    return IndexRetriever(store=store, mode=check_mode(mode), k=check_k(k))
