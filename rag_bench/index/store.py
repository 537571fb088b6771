"""The FAISS index over a human corpus: build, update incrementally, load without pickle.

    rag-bench ingest ./docs --name acme         # build or update data/indexes/acme
    rag-bench search "capital of Algeria" -k 5  # dense | bm25 | hybrid

Layout of an index folder::

    CURRENT                      name of the live version (replaced atomically)
    versions/<version>/index.faiss    inner-product flat index of normalized MiniLM vectors
    versions/<version>/docstore.jsonl one chunk per line, in FAISS row order (JSON, never pickle)
    versions/<version>/bm25.npz       bm25 statistics of those chunks (rag_bench.index.bm25; arrays, never pickle)
    versions/<version>/manifest.json  embedder, backend, dimension, dtype, chunker, corpus hash, sha256s, versions
    embedding-progress/<embedder>[-<backend>]-<dtype>-b<batch>/batch-*.npz   finished batches (during a build)

<version> is ``<stamp>-manifest-<sha256 of manifest.json>``: the checks of rag_bench.index.integrity
never take the manifest's word for itself. A build writes a whole new version folder and only then points
CURRENT at it, so a build that is killed midway leaves the previous index loadable and whole; the vectors
it had finished wait in embedding-progress/ and the next build reads them instead of embedding again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from langchain_community.docstore.in_memory import InMemoryDocstore
from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from rag_bench.config import CorpusConfig, IndexConfig
from rag_bench.corpus.load import LoadedCorpus
from rag_bench.index.ann import build_index, choose_type, configure_loaded, recall_report
from rag_bench.index.bm25 import BM25_FILE, Bm25Stats
from rag_bench.index.embedding import (
    embed_texts,
    embedder_backend,
    embedder_fingerprint,
    load_embedder,
    progress_folder,
    resolve_backend,
    resolve_dtype,
)
from rag_bench.index.integrity import (
    FORMAT,
    IndexStoreError,
    check_counts,
    check_files,
    corpus_hash,
    parse_manifest,
    read_current,
    read_faiss,
    read_manifest,
    refuse_langchain_layout,
    sealed_name,
)
from rag_bench.records import sha256_file, write_json, write_text_atomic

_SINGLE_QUERY_LOCK = threading.Lock()


@contextlib.contextmanager
def single_thread_search() -> Iterator[None]:
    """One torch and one FAISS thread for the duration of a single query, then as before.

    On 2 cores a single query with the default threads was measured 2-25x slower than with one,
    in CPU time as well as wall time (thread start-up dominates a 10-token MiniLM forward and a
    flat search of a few MB). It is scoped rather than set at import because FAISS and torch
    share one OpenMP runtime: a global setting would pin training in the same process to one
    thread too. The lock keeps concurrent queries from restoring each other's settings.
    """
    import torch

    with _SINGLE_QUERY_LOCK:
        torch_before, faiss_before = torch.get_num_threads(), faiss.omp_get_max_threads()
        torch.set_num_threads(1)
        faiss.omp_set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(torch_before)
            faiss.omp_set_num_threads(faiss_before)


@dataclasses.dataclass(frozen=True, kw_only=True)
class UpdateStats:
    """What an update did to the index."""

    embedded: int  # chunks whose vectors were computed now
    resumed: int  # chunks whose vectors a killed build had computed (read back from embedding-progress/)
    reused: int  # new chunk ids whose text was already embedded (moved chunks)
    kept: int  # chunks unchanged from the previous version
    removed: int  # chunks of changed or removed files that left the index
    preserved: int  # chunks kept because their file was skipped this time
    total: int  # chunks in the new version
    seconds: float  # wall time of the update
    embed_chunks_per_s: float  # embedding throughput over the chunks computed now (read-back ones excluded)


class IndexStore(FAISS):
    """LangChain's FAISS store plus the bm25 statistics sealed with the version (None for older versions)."""

    bm25: Bm25Stats | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadedIndex:
    """A loaded index: the LangChain FAISS store and its manifest."""

    store: FAISS  # LangChain vector store over the FAISS index and a JSON docstore
    manifest: dict[str, Any]  # as written at build time
    path: Path  # the version folder it came from

    @property
    def chunks(self) -> list[Document]:
        ids = self.store.index_to_docstore_id
        return [self.store.docstore.search(ids[i]) for i in range(len(ids))]


# ---------------------------------------------------------------------------------------
# Load


def current_version(index_dir: str | Path) -> Path | None:
    """The live version folder, or None if there is no CURRENT; a CURRENT leaving versions/ is an error."""
    index_dir = Path(index_dir)
    name = read_current(index_dir)
    return None if name is None else index_dir / "versions" / name


def load_index(index_dir: str | Path, cfg: IndexConfig = IndexConfig(), *,
               embeddings: Embeddings | None = None, unsealed: bool = False) -> LoadedIndex:
    """Load an index after the checks of rag_bench.index.integrity; no pickle is ever read.

    ``unsealed`` accepts a version from before manifests were sealed (its sha256 section must still be
    whole): only ``update_index`` uses it, to re-seal such an index without embedding again.
    """
    index_dir = Path(index_dir)
    refuse_langchain_layout(index_dir)
    version = current_version(index_dir)
    if version is None:
        raise IndexStoreError(f"{index_dir}: no index here (missing CURRENT); build one with `rag-bench ingest`")
    if not version.is_dir():
        raise IndexStoreError(f"{version}: the version that CURRENT names is missing")
    refuse_langchain_layout(version)
    legacy = unsealed and "-manifest-" not in version.name
    manifest = parse_manifest(version / "manifest.json") if legacy else read_manifest(version)
    if manifest.get("embedder") != cfg.embedder or manifest.get("embedder_fingerprint") != embedder_fingerprint(cfg):
        raise IndexStoreError(
            f"{index_dir}: built with embedder {manifest.get('embedder')!r} "
            f"({manifest.get('embedder_fingerprint')}), but this run uses {cfg.embedder!r} "
            f"({embedder_fingerprint(cfg)}); rebuild it with `rag-bench ingest --rebuild`")
    check_files(version, manifest)
    index = configure_loaded(read_faiss(version / "index.faiss"), manifest.get("index") or {})
    ids, docs = _read_docstore(version / "docstore.jsonl")
    check_counts(version, manifest, ntotal=index.ntotal, dimension=index.d, ids=ids)
    bm25 = _read_bm25(version, manifest, len(ids))
    store = IndexStore(
        embedding_function=embeddings or load_embedder(cfg, dtype=manifest.get("dtype"),
                                                       backend=manifest.get("backend", "torch")),
        index=index,
        docstore=InMemoryDocstore(docs),
        index_to_docstore_id=dict(enumerate(ids)),
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )
    store.bm25 = bm25
    return LoadedIndex(store=store, manifest=manifest, path=version)


def _read_bm25(version: Path, manifest: dict[str, Any], count: int) -> Bm25Stats | None:
    """The sealed bm25 statistics (check_files has matched their sha256), or None if this version has none."""
    if BM25_FILE not in manifest["sha256"]:
        return None
    try:
        stats = Bm25Stats.load(version / BM25_FILE)
    except ValueError as exc:
        raise IndexStoreError(str(exc)) from None
    if stats.chunks != count:
        raise IndexStoreError(f"{version / BM25_FILE}: counts {stats.chunks} chunks, the docstore {count}")
    return stats


def _read_docstore(path: Path) -> tuple[list[str], dict[str, Document]]:
    ids: list[str] = []
    docs: dict[str, Document] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                row = json.loads(line)
                chunk_id, text, meta = row["id"], row["text"], row["metadata"]
            except (ValueError, KeyError, TypeError):
                raise IndexStoreError(f"{path}:{number}: malformed docstore line") from None
            ids.append(chunk_id)
            docs[chunk_id] = Document(page_content=text, metadata=meta, id=chunk_id)
    return ids, docs


# ---------------------------------------------------------------------------------------
# Build and update


def update_index(index_dir: str | Path, corpus: LoadedCorpus, *, index_cfg: IndexConfig = IndexConfig(),
                 corpus_cfg: CorpusConfig = CorpusConfig(), embeddings: Embeddings | None = None,
                 rebuild: bool = False, progress: bool = True,
                 embed: Callable[[list[str], str], np.ndarray] | None = None) -> UpdateStats:
    """Make the index at ``index_dir`` hold exactly the chunks of ``corpus``.

    ``embed(texts, dtype, backend)`` replaces this process's embedder for the chunks to embed (``--ray``: Ray Data
    actors). The backend and precision are the old index's, if any: an index is never extended by another embedder.

    Unchanged chunks keep their vectors; changed or new ones are embedded; chunks of files that
    are gone leave. Chunks of files that were skipped this time (unreadable now) are preserved,
    so a bad file never loses what was stored before.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    old = None if rebuild or current_version(index_dir) is None else load_index(
        index_dir, index_cfg, embeddings=embeddings, unsealed=True)
    dtype = old.manifest["dtype"] if old else resolve_dtype(index_cfg)
    if old is not None:
        backend = old.manifest.get("backend", "torch")  # indexes from before backends were built on torch
    else:
        backend = embedder_backend(embeddings) if embeddings else resolve_backend(index_cfg, dtype)
    asked = embedder_backend(embeddings) if embeddings else index_cfg.backend
    if asked not in ("auto", backend):  # vectors of two embedders in one index would not be comparable
        raise IndexStoreError(f"{index_dir}: built with the {backend} embedder, but this run embeds with {asked}; "
                              f"use the same backend, or rebuild it with `rag-bench ingest --rebuild`")
    embeddings = embeddings or (old.store.embedding_function if old else
                                load_embedder(index_cfg, dtype=dtype, backend=backend))

    old_rows: dict[str, int] = {}
    old_docs: dict[str, Document] = {}
    if old is not None:
        for row, chunk_id in old.store.index_to_docstore_id.items():
            old_rows[chunk_id] = row
            old_docs[chunk_id] = old.store.docstore.search(chunk_id)
    skipped = corpus.skipped_sources
    preserved = [cid for cid, doc in old_docs.items() if doc.metadata.get("source") in skipped]
    new_chunks = {c.metadata["chunk_id"]: c for c in corpus.chunks}
    for cid in preserved:
        new_chunks.setdefault(cid, old_docs[cid])

    by_text = {old_docs[cid].page_content: row for cid, row in old_rows.items()}
    to_embed = [cid for cid in new_chunks if cid not in old_rows and new_chunks[cid].page_content not in by_text]
    embed_started = time.perf_counter()
    texts = [new_chunks[c].page_content for c in to_embed]
    counts = {"computed": len(to_embed), "resumed": 0, "computed_seconds": None}
    fresh = embed(texts, dtype, backend) if embed is not None and texts else \
        embed_texts(embeddings, texts, ids=to_embed, batch_size=index_cfg.batch_size, progress=progress,
                    progress_dir=progress_folder(index_dir, index_cfg, dtype, backend), counts=counts)
    embed_seconds = counts["computed_seconds"] if counts["computed_seconds"] is not None else \
        time.perf_counter() - embed_started
    fresh_rows = {cid: i for i, cid in enumerate(to_embed)}

    ids = list(new_chunks)
    dim = fresh.shape[1] if len(to_embed) else (old.store.index.d if old else len(embeddings.embed_query("x")))
    matrix = np.zeros((len(ids), dim), dtype="float32")
    for i, cid in enumerate(ids):
        if cid in fresh_rows:
            matrix[i] = fresh[fresh_rows[cid]]
        else:
            row = old_rows.get(cid, by_text.get(new_chunks[cid].page_content))
            matrix[i] = old.store.index.reconstruct(row)
    index, index_params = build_index(matrix, choose_type(index_cfg.index_type, old.manifest if old else None,
                                                          len(ids)))
    if index_params["type"] != "flat":  # how much the approximate index loses against exact search
        index_params.update(recall_report(index, matrix))

    kept = sum(1 for cid in ids if cid in old_rows)
    _write_version(index_dir, index, ids, new_chunks, manifest={
        "format": FORMAT, "embedder": index_cfg.embedder, "embedder_fingerprint": embedder_fingerprint(index_cfg),
        "dimension": dim, "dtype": dtype, "backend": backend, "normalized": True, "metric": "inner_product",
        "chunker": {"splitter": "RecursiveCharacterTextSplitter", **corpus_cfg.to_dict()},
        "corpus_hash": corpus_hash(ids),
        "count": len(ids), "files": [dataclasses.asdict(f) for f in corpus.files], "index": index_params,
        "versions": package_versions(),
    })
    return UpdateStats(
        embedded=int(counts["computed"]), resumed=int(counts["resumed"]), reused=len(ids) - kept - len(to_embed),
        kept=kept,
        removed=len(old_rows) - kept, preserved=len(preserved), total=len(ids),
        seconds=round(time.perf_counter() - started, 3),
        embed_chunks_per_s=round(counts["computed"] / embed_seconds, 1) if counts["computed"] and embed_seconds > 0
        else 0.0,
    )


def _write_version(index_dir: Path, index: faiss.Index, ids: list[str], chunks: dict[str, Document],
                   *, manifest: dict[str, Any]) -> Path:
    versions = index_dir / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.perf_counter_ns() % 10**6:06d}"
    staging = versions / f".staging-{stamp}"
    staging.mkdir()
    faiss.write_index(index, str(staging / "index.faiss"))
    with open(staging / "docstore.jsonl", "w", encoding="utf-8") as fh:
        for cid in ids:
            doc = chunks[cid]
            fh.write(json.dumps({"id": cid, "text": doc.page_content, "metadata": doc.metadata},
                                ensure_ascii=False, sort_keys=True) + "\n")
    Bm25Stats.from_texts([chunks[cid].page_content for cid in ids]).save(staging / BM25_FILE)
    manifest["sha256"] = {name: sha256_file(staging / name) for name in ("index.faiss", "docstore.jsonl", BM25_FILE)}
    write_json(staging / "manifest.json", manifest)
    final = versions / sealed_name(stamp, staging / "manifest.json")
    os.replace(staging, final)
    write_text_atomic(index_dir / "CURRENT", final.name + "\n")
    for other in versions.iterdir():
        if other.name != final.name:
            shutil.rmtree(other, ignore_errors=True)
    # The vectors are in the version now; batches kept for a resumed build are not needed any more.
    shutil.rmtree(index_dir / "embedding-progress", ignore_errors=True)
    return final


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("rag-bench", "faiss-cpu", "langchain-community", "langchain-huggingface",
                 "sentence-transformers", "transformers", "torch", "openvino"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
