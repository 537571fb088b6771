"""One contaminated index per share, each built incrementally on a copy of the one before it.

    from rag_bench.contaminate.build import build_share_indexes
    built = build_share_indexes(human_dir, plan, names, embeddings=emb)   # {share: index folder}

A share's index is its own folder (``DATA_DIR/indexes/<name>``). It starts as a copy of the live
version of the previous share's index (the human index for the first), and ``rag_bench.index.store.update_index``
then embeds only the synthetic chunks that are new to it: the human vectors are reused, never recomputed,
and the human index folder is only read. Every human chunk is labelled ``origin: human``, every
rewrite ``origin: synthetic`` with its generation and watermark flag.

A finished index has ``contamination.json`` (written last, atomically) with the hash of its synthetic
chunk ids; a folder without it, or with another hash, is rebuilt from the copy, so a build killed at any
point resumes with the same command and the human index is never touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from rag_bench.config import CorpusConfig, IndexConfig
from rag_bench.corpus.load import FileOutcome, LoadedCorpus, chunk_documents
from rag_bench.index.store import LoadedIndex, current_version, load_index, update_index
from rag_bench.records import read_json, write_json, write_text_atomic

FORMAT = "rag_bench.contaminated_index/1"
MARKER = "contamination.json"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SharePlan:
    """What one share's index holds beyond the human index."""

    share: float  # the share asked for
    rows: tuple[dict[str, Any], ...]  # rewrites (corpus JSONL rows) added to the human index
    pool: int  # human answer chunks the share is of
    info: dict[str, Any]  # run, generation, writer: stored in the marker file


def synthetic_chunks(rows: Sequence[dict[str, Any]], chunker: CorpusConfig) -> list[Document]:
    """Rewrites chunked as the human corpus was; each chunk keeps its rewrite's origin."""
    docs = [Document(page_content=r["contents"], metadata={**r["metadata"], "doc_id": r["id"]}) for r in rows]
    return chunk_documents(docs, chunker)


def chunker_of(manifest: dict[str, Any]) -> CorpusConfig:
    chunker = manifest.get("chunker", {})
    return CorpusConfig(chunk_size=chunker.get("chunk_size", 500), chunk_overlap=chunker.get("chunk_overlap", 50))


def synthetic_hash(chunks: Sequence[Document]) -> str:
    return hashlib.sha256("\n".join(sorted(c.metadata["chunk_id"] for c in chunks)).encode()).hexdigest()[:16]


def is_built(index_dir: Path, digest: str) -> bool:
    marker = index_dir / MARKER
    return marker.is_file() and current_version(index_dir) is not None and read_json(marker).get("synthetic") == digest


def seed_from(source_dir: Path, target_dir: Path) -> None:
    """``target_dir`` becomes a copy of ``source_dir``'s live version (``source_dir`` is only read)."""
    version = current_version(source_dir)
    if version is None:
        raise FileNotFoundError(f"{source_dir}: no index here (missing CURRENT)")
    shutil.rmtree(target_dir, ignore_errors=True)
    (target_dir / "versions").mkdir(parents=True)
    shutil.copytree(version, target_dir / "versions" / version.name)
    write_text_atomic(target_dir / "CURRENT", version.name + "\n")


def build_share_indexes(human_dir: str | Path, plans: Sequence[SharePlan], targets: Sequence[str | Path], *,
                        index_cfg: IndexConfig = IndexConfig(), embeddings: Any = None, progress: bool = False,
                        human: LoadedIndex | None = None, echo: Any = None) -> list[dict[str, Any]]:
    """Build (or find built) one index per plan, in order; returns each index's marker contents.

    ``human`` is the human index already loaded from ``human_dir`` (it is loaded here otherwise).
    """
    human_dir = Path(human_dir)
    human = human or load_index(human_dir, index_cfg, embeddings=embeddings)
    embeddings = human.store.embedding_function
    chunker = chunker_of(human.manifest)
    human_chunks = [Document(page_content=d.page_content, metadata={**d.metadata, "origin": "human"}, id=d.id)
                    for d in human.chunks]
    files = [FileOutcome(**f) for f in human.manifest.get("files", [])]
    markers, previous = [], human_dir
    for plan, target in zip(plans, targets, strict=True):
        target = Path(target)
        chunks = synthetic_chunks(plan.rows, chunker)
        digest = synthetic_hash(chunks)
        if not is_built(target, digest):
            seed_from(previous, target)
            outcome = FileOutcome(path="uncurated/ (rag-bench contaminate)", status="ingested",
                                  documents=len(plan.rows), chunks=len(chunks))
            stats = update_index(target, LoadedCorpus(chunks=human_chunks + chunks, files=[*files, outcome]),
                                 index_cfg=index_cfg, corpus_cfg=chunker, embeddings=embeddings, progress=progress)
            total = len(human_chunks) + len(chunks)
            write_json(target / MARKER, {
                "format": FORMAT, "share": plan.share, "synthetic": digest, "human_index": str(human_dir.resolve()),
                "human_version": human.path.name, "human_chunks": len(human_chunks), "synthetic_chunks": len(chunks),
                "rewrites": len(plan.rows), "pool_chunks": plan.pool,
                "pool_share": len(chunks) / (plan.pool + len(chunks)) if plan.pool + len(chunks) else 0.0,
                "index_share": len(chunks) / total, "embedded": stats.embedded, "seconds": stats.seconds,
                **plan.info})
            if echo:
                echo(f"index {target.name}: {len(chunks)} synthetic chunks added, {stats.embedded} embedded "
                     f"in {stats.seconds:.0f} s")
        markers.append(read_json(target / MARKER))
        previous = target
    return markers


def origin_note(meta: dict[str, Any]) -> str:
    """How the chat marks a citation once the answer is written; "" for a chunk of an index without labels."""
    if "origin" not in meta:
        return ""
    if meta["origin"] != "synthetic":
        return "human-written"
    writer = meta.get("origin_writer") or f"generation {meta.get('origin_generation')}"
    return (f"⚠ model-written by {writer}"
            + (", watermarked" if meta.get("origin_watermarked") else ", not watermarked"))
