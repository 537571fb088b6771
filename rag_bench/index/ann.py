"""Index types of a FAISS store: exact (flat) and approximate (HNSW, IVF), with their recall against exact.

    rag-bench ingest corpus.jsonl --name big --index hnsw      # prints recall@10 of HNSW against flat

    from rag_bench.index.ann import build_index, recall_at_k
    index, params = build_index(vectors, "hnsw")
    recall_at_k(index, vectors, k=10, sample=500)               # 0.99...

Flat (exact inner product) stays the default: on 2 cores it answers a query over the Factbook's 24k chunks
in about a millisecond, and approximate search pays off only near a million chunks (bench/index_bench.py).
HNSW (M=32, efConstruction=64, efSearch=64) needs no training; IVF (nlist about 4 sqrt(n), nprobe nlist/8)
trains its coarse centroids on the vectors themselves. Every type is written with ``faiss.write_index`` and
read with ``faiss.read_index`` (no pickle); the type and its parameters go into the index manifest, and
``configure_loaded`` sets the search-time parameters again after a load.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

INDEX_TYPES = ("flat", "hnsw", "ivf")
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 64, 64
IVF_MIN_POINTS_PER_LIST = 39  # FAISS's k-means wants about 39 training points per centroid
RECALL_K, RECALL_SAMPLE = 10, 1000  # recall@10 on up to 1000 of the index's own chunks as queries
AUTO_ANN_CHUNKS = 1_000_000  # "auto" picks HNSW from here on: below it exact search is fast enough on a CPU


class IndexTypeError(ValueError):
    """An index type that does not exist; the message lists the ones that do."""


def check_type(kind: str) -> str:
    if kind not in INDEX_TYPES:
        raise IndexTypeError(f"--index: unknown index type {kind!r}; choose from {list(INDEX_TYPES)}")
    return kind


def choose_type(requested: str, stored: dict[str, Any] | None, count: int) -> str:
    """The type to build: ``requested``, or for "auto" the stored index's type, else flat below AUTO_ANN_CHUNKS."""
    if requested != "auto":
        return check_type(requested)
    if stored is not None:
        return str((stored.get("index") or {}).get("type", "flat"))
    return "flat" if count < AUTO_ANN_CHUNKS else "hnsw"


def build_index(vectors: np.ndarray, kind: str = "flat", *, seed: int = 0) -> tuple[faiss.Index, dict[str, Any]]:
    """An inner-product index of ``kind`` holding ``vectors`` (rows in order), and its parameters for the manifest."""
    check_type(kind)
    vectors = np.ascontiguousarray(vectors, dtype="float32")
    n, dim = vectors.shape
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(dim)
        params: dict[str, Any] = {"type": "flat"}
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        params = {"type": "hnsw", "M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH}
    else:
        nlist = max(1, min(round(4 * math.sqrt(n)), n // IVF_MIN_POINTS_PER_LIST))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        if n:
            index.train(vectors)
        params = {"type": "ivf", "nlist": nlist, "nprobe": max(1, math.ceil(nlist / 8))}
    if n:
        index.add(vectors)
    configure_loaded(index, params)
    return index, params


def configure_loaded(index: faiss.Index, params: dict[str, Any]) -> faiss.Index:
    """Search-time parameters after a build or ``faiss.read_index``; IVF gets the map ``reconstruct`` needs."""
    kind = params.get("type", "flat")
    if kind == "hnsw":
        index.hnsw.efSearch = int(params["efSearch"])
    elif kind == "ivf":
        index.nprobe = int(params["nprobe"])
        index.make_direct_map()
    return index


def index_type(index: faiss.Index) -> str:
    """The INDEX_TYPES name of a loaded FAISS index."""
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    return "flat"


def recall_at_k(index: faiss.Index, vectors: np.ndarray, *, k: int = RECALL_K, sample: int = RECALL_SAMPLE,
                seed: int = 0) -> float:
    """Mean share of the exact top-k that ``index`` returns, over ``sample`` of its own vectors as queries."""
    vectors = np.ascontiguousarray(vectors, dtype="float32")
    n = len(vectors)
    if n == 0:
        return 1.0
    k = min(k, n)
    rows = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
    queries = vectors[rows]
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    hits = [len(set(t.tolist()) & set(f.tolist())) for t, f in zip(truth, found, strict=True)]
    return float(np.mean(hits) / k)


def recall_report(index: faiss.Index, vectors: np.ndarray) -> dict[str, Any]:
    """What the manifest records of an approximate index: recall@10 against flat and the queries it used."""
    return {"recall_at_10": round(recall_at_k(index, vectors), 4), "recall_queries": min(RECALL_SAMPLE, len(vectors))}
