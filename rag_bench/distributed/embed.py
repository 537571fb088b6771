"""Embedding chunks sharded over workers with Ray Data: one embedder actor per worker.

    rag-bench ingest corpus.jsonl --name big --index hnsw --ray          # update_index(..., embed=...)

    from rag_bench.distributed.embed import ray_embedder
    update_index(folder, corpus, index_cfg=cfg, embed=ray_embedder(cfg, address="local"))

Each actor loads the index's embedder once (the same weights and dtype the manifest records) and embeds
blocks of chunks with ``rag_bench.index.embedding.embed_texts``; rows come back in their order. The vectors are those of
a local build up to the float noise of different batch compositions (cosine > 0.9999 in the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rag_bench.distributed.cluster import cluster_cpus, connect

ROWS_PER_BLOCK = 1024  # chunks per Ray Data block; each actor call embeds one block


class ChunkEmbedder:
    """The Ray Data actor: the embedder, loaded once."""

    def __init__(self, *, index_cfg: dict[str, Any], dtype: str, backend: str | None, threads: int) -> None:
        import torch

        from rag_bench.config import IndexConfig
        from rag_bench.index.embedding import load_embedder

        torch.set_num_threads(threads)
        self.cfg = IndexConfig.from_dict(index_cfg)
        self.embeddings = load_embedder(self.cfg, dtype=dtype, backend=backend)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from rag_bench.index.embedding import embed_texts

        vectors = embed_texts(self.embeddings, [str(t) for t in batch["text"]], batch_size=self.cfg.batch_size,
                              progress=False)
        return {"row": batch["row"], "vector": list(vectors)}


def ray_embedder(index_cfg: Any, *, address: str = "local", threads: int = 1,
                 actors: int | None = None) -> Callable[..., np.ndarray]:
    """``embed(texts, dtype, backend)`` for ``update_index``: one actor per ``threads`` CPUs of the cluster (or
    ``actors``); backend None resolves it from ``index_cfg`` in the actor."""

    def embed(texts: list[str], dtype: str, backend: str | None = None) -> np.ndarray:
        ray = connect(address)
        ray.data.DataContext.get_current().enable_progress_bars = False
        blocks = max(1, -(-len(texts) // ROWS_PER_BLOCK))
        size = actors or max(1, min(blocks, cluster_cpus(ray) // threads))
        dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=blocks)
        rows = dataset.map_batches(ChunkEmbedder, batch_size=ROWS_PER_BLOCK, num_cpus=threads,
                                   compute=ray.data.ActorPoolStrategy(size=size),
                                   fn_constructor_kwargs={"index_cfg": index_cfg.to_dict(), "dtype": dtype,
                                                          "backend": backend, "threads": threads}).take_all()
        rows.sort(key=lambda r: int(r["row"]))
        return np.stack([np.asarray(r["vector"], dtype="float32") for r in rows])

    return embed
