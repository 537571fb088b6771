"""Embedding over Ray Data actors of a real local cluster: the vectors of a local build, in order; ingest --ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag_bench.cli import main
from rag_bench.config import IndexConfig
from rag_bench.corpus.load import load_corpus
from rag_bench.distributed.embed import ray_embedder
from rag_bench.index.embedding import embed_texts, resolve_dtype
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index
from tests.conftest import PLANTED_FACT


def test_ray_vectors_equal_local_vectors_row_for_row(mixed_corpus: Path, ray_cluster, embeddings):
    texts = [c.page_content for c in load_corpus(mixed_corpus, progress=False).chunks]
    cfg = IndexConfig()
    local = embed_texts(embeddings, texts, batch_size=cfg.batch_size, progress=False)
    remote = ray_embedder(cfg, address=ray_cluster, actors=2)(texts, resolve_dtype(cfg))
    assert remote.shape == local.shape
    assert float(np.min(np.sum(remote * local, axis=1))) > 0.9999  # row i is text i's vector


def test_ingest_with_ray_builds_a_searchable_hnsw_index(mixed_corpus: Path, ray_cluster, tmp_path: Path, capsys):
    assert main(["ingest", str(mixed_corpus), "--name", "acme", "--data-dir", str(tmp_path), "--index", "hnsw",
                 "--ray", ray_cluster]) == 0
    assert "hnsw index: recall@10" in capsys.readouterr().out
    loaded = load_index(tmp_path / "indexes" / "acme")
    assert loaded.manifest["index"]["type"] == "hnsw"
    top = make_retriever(loaded.store, mode="dense", k=3).invoke("When was the Quillmark lighthouse first lit?")
    assert PLANTED_FACT in top[0].page_content
