"""Grounded answers before a dense index exists: bm25 over the chunks of a corpus file, as the index will hold them.

    from rag_bench.app.bm25 import corpus_bm25
    retriever = corpus_bm25(Path("data/corpora/factbook/corpus.jsonl"))   # ~5 s for the Factbook's 24k chunks
    retriever.batch_search(["What is the capital of Kenya?"], k=1)

On first start the Factbook corpus exists within seconds while embedding its 24k chunks takes many minutes on
2 cores; bm25 needs no embeddings, so the chat answers grounded meanwhile. The chunks are the ones `ingest`
gives the index (same loader, same default chunker), ranked by the same IndexRetriever code, so an answer does
not change when the index arrives and the page switches to it.
"""

from __future__ import annotations

from pathlib import Path

from langchain_community.docstore.in_memory import InMemoryDocstore
from langchain_community.vectorstores import FAISS
from langchain_core.embeddings import Embeddings

from rag_bench.config import CorpusConfig
from rag_bench.corpus.load import load_corpus
from rag_bench.index.retrieve import IndexRetriever


class NoVectors(Embeddings):
    """The embedder of a store without vectors: dense search is refused until the index exists."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("this corpus has no dense index yet; only bm25 retrieval works")

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("this corpus has no dense index yet; only bm25 retrieval works")


def corpus_bm25(corpus_file: Path, cfg: CorpusConfig = CorpusConfig()) -> IndexRetriever:
    """A bm25 IndexRetriever over ``corpus_file``'s chunks; its store has a docstore and no vectors."""
    chunks = load_corpus(corpus_file, cfg, progress=False).chunks
    ids = [chunk.metadata["chunk_id"] for chunk in chunks]
    docstore = InMemoryDocstore(dict(zip(ids, chunks, strict=True)))
    # No FAISS index and no vectors: only the bm25 path of IndexRetriever reads this store.
    store = FAISS(embedding_function=NoVectors(), index=None, docstore=docstore,
                  index_to_docstore_id=dict(enumerate(ids)))
    return IndexRetriever(store=store, mode="bm25")
