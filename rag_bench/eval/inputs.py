"""What an evaluation reads: probes, the human texts it scores against, and retrieved contexts (cached).

    from rag_bench.eval.inputs import human_texts, load_eval_probes, retrieve_contexts
    probes, info = load_eval_probes("data/probes/factbook-factbook.jsonl", limit=200, seed=0)
    test_only, _ = load_eval_probes("data/probes/factbook-natural.jsonl", split="test", limit=150)
    texts = human_texts(loaded_index.chunks, corpus_jsonl="data/corpora/factbook/corpus.jsonl")
    contexts, status = retrieve_contexts(retriever, [p.prompt for p in probes], k=3, cache_dir="runs/r1/cache")
    gold = gold_documents(retriever, probes)     # the oracle modes' passage: each probe's own source chunk

Held-out human texts: the ``split == "heldout"`` records of a corpus JSONL (the Factbook builder writes
the split); a corpus without a split (a company folder ingested by ``rag-bench ingest``) holds out a
deterministic 5% of its chunks, chosen by a hash of the chunk id so that the choice survives index
updates; ``is_heldout_chunk`` is that rule, for a trainer that must leave the same chunks out.

Retrieved contexts do not change between generations of a run, so they are cached as JSON under a key
that hashes the index's chunk ids, the retrieval mode, k and the queries. A cache hit skips the embedder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from tqdm.auto import tqdm

from rag_bench.answer import PassagesGiven
from rag_bench.eval.splits import split_ids
from rag_bench.probes.build import load_probes
from rag_bench.records import Probe, RecordError, read_corpus, read_json, sha256_file, sha256_text, write_json

HELDOUT_CHUNK_SHARE = 0.05  # of chunks held out when the corpus has no split
CACHE_FORMAT = "rag_bench.contexts/1"
RETRIEVAL_BATCH = 256  # queries embedded and searched per call


# ---------------------------------------------------------------------------------------
# Probes


def load_eval_probes(probes: str | Path | Sequence[Probe], *, limit: int | None = None, seed: int = 0,
                     split: str = "all") -> tuple[list[Probe], dict[str, Any]]:
    """Probes to evaluate and where they came from; ``split`` keeps one side of ``rag_bench.eval.splits`` (``all``:
    both), then ``limit`` keeps a seeded sample of it in file order.

    A path is read with line-numbered errors and unique ids; its sidecar ``<name>.meta.json``
    (bucket thresholds, builder arguments) is returned in the info when present.
    """
    info: dict[str, Any] = {"path": None, "sha256": None, "meta": None}
    if isinstance(probes, (str, Path)):
        path = Path(probes)
        loaded = load_probes(path)
        info.update(path=str(path), sha256=sha256_file(path))
        sidecar = path.with_name(path.stem + ".meta.json")
        if sidecar.is_file():
            info["meta"] = read_json(sidecar)
    else:
        loaded = list(probes)
        info["sha256"] = sha256_text("\n".join(json.dumps(p.to_dict(), sort_keys=True) for p in loaded))
    if not loaded:
        raise RecordError(f"{info['path'] or 'probes'}: no probes to evaluate")
    info["total"] = len(loaded)
    if split != "all":
        on_side = split_ids([p.id for p in loaded], split)
        loaded = [p for p in loaded if p.id in on_side]
        if not loaded:
            raise RecordError(f"{info['path'] or 'probes'}: no probes on the {split} side of rag_bench.eval.splits")
    info["split"], info["on_split"] = split, len(loaded)
    if limit is not None and limit < len(loaded):
        keep = set(random.Random(seed).sample(range(len(loaded)), limit))
        loaded = [p for i, p in enumerate(loaded) if i in keep]
    info["evaluated"] = len(loaded)
    info["limit"] = limit
    thresholds = next((p.metadata["bucket_thresholds"] for p in loaded if "bucket_thresholds" in p.metadata), None)
    info["bucket_thresholds"] = thresholds or (info["meta"] or {}).get("bucket_thresholds")
    return loaded, info


# ---------------------------------------------------------------------------------------
# Human texts


@dataclasses.dataclass(frozen=True, kw_only=True)
class HumanTexts:
    """Held-out texts (perplexity, diversity prompts) and training texts (rare n-grams)."""

    heldout: list[str]  # never trained on
    train: list[str]  # the human training texts
    source: str  # where they came from, for results.json
    note: str = ""  # said in the output when the split had to be made here


def is_heldout_chunk(chunk_id: str, share: float = HELDOUT_CHUNK_SHARE) -> bool:
    """The deterministic held-out rule for corpora without a split: a hash of the chunk id."""
    value = int(hashlib.sha256(chunk_id.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return value < share


def human_texts(chunks: Sequence[Document] = (), *, corpus_jsonl: str | Path | None = None) -> HumanTexts:
    """Split the human corpus into held-out and training texts (see the module docstring)."""
    if corpus_jsonl is not None and Path(corpus_jsonl).is_file():
        records = read_corpus(corpus_jsonl)
        splits = [r.metadata.get("split") for r in records]
        if any(s is not None for s in splits):
            heldout = [r.contents for r, s in zip(records, splits, strict=True) if s == "heldout"]
            train = [r.contents for r, s in zip(records, splits, strict=True) if s != "heldout"]
            if heldout:
                return HumanTexts(heldout=heldout, train=train, source=f"{corpus_jsonl} (split == 'heldout')")
    if not chunks:
        raise RecordError(f"{corpus_jsonl or 'corpus'}: no held-out split and no chunks to hold out from")
    ids = [c.metadata.get("chunk_id") or sha256_text(c.page_content) for c in chunks]
    held = [is_heldout_chunk(i) for i in ids]
    if not any(held):  # a tiny corpus: hold out the chunk with the smallest hash
        held[min(range(len(ids)), key=lambda i: hashlib.sha256(ids[i].encode()).hexdigest())] = True
    heldout = [c.page_content for c, h in zip(chunks, held, strict=True) if h]
    train = [c.page_content for c, h in zip(chunks, held, strict=True) if not h]
    note = (f"the corpus has no held-out split: {len(heldout)} of {len(chunks)} chunks "
            f"({HELDOUT_CHUNK_SHARE:.0%} by a hash of the chunk id) are held out; they are still in the index")
    return HumanTexts(heldout=heldout, train=train, source="index chunks (hashed 5% held out)", note=note)


# ---------------------------------------------------------------------------------------
# Retrieved contexts, cached


class ContextRetriever(PassagesGiven):
    """Serves precomputed contexts through ``batch_search``, so ``rag_bench.answer`` needs no index."""


def gold_documents(retriever: Any, probes: Sequence[Probe]) -> list[Document | None]:
    """Each probe's gold chunk (``metadata.source_chunk_id``, the chunk it was made from) from the retriever's
    store, for the oracle modes; None where the probe names none or the index does not hold it."""
    docstore = getattr(getattr(retriever, "store", None), "docstore", None)
    found: list[Document | None] = []
    for probe in probes:
        chunk_id = probe.metadata.get("source_chunk_id")
        doc = docstore.search(chunk_id) if docstore is not None and chunk_id else None
        found.append(Document(page_content=doc.page_content, id=chunk_id,
                              metadata={**doc.metadata, "chunk_id": chunk_id, "rank": 1, "score": None,
                                        "retriever": "oracle"}) if isinstance(doc, Document) else None)
    return found


def oracle_inputs(retriever: Any, probes: Sequence[Probe], notes: list[str]) -> tuple[list[Probe], Any]:
    """The probes the oracle modes can answer (their gold chunk is in the index) and a retriever serving it;
    how many were left out goes into ``notes``."""
    gold = gold_documents(retriever, probes)
    kept = [(p, d) for p, d in zip(probes, gold, strict=True) if d is not None]
    if len(kept) < len(probes):
        notes.append(f"oracle modes: {len(probes) - len(kept)} of {len(probes)} probes have no gold chunk in the "
                     "index and are left out of them")
    return [p for p, _ in kept], PassagesGiven([p.prompt for p, _ in kept], [[d] for _, d in kept])


def index_fingerprint(retriever: Any) -> str | None:
    """Hash of the chunk ids in the retriever's store (ids hash the chunk text), or None if it has none."""
    store = getattr(retriever, "store", None)
    ids = getattr(store, "index_to_docstore_id", None)
    if ids is None:
        return None
    return sha256_text("\n".join(ids[i] for i in range(len(ids))))[:16]


def retrieve_contexts(retriever: Any, queries: Sequence[str], *, k: int, cache_dir: str | Path | None = None,
                      exclude_containing: bool = False, progress: bool = False) -> tuple[list[list[Document]], str]:
    """Top-k documents per query and the cache status ("hit", "miss" or "off").

    ``exclude_containing`` drops a chunk whose text contains the query itself (after whitespace
    folding): a diversity prompt cut from a held-out text must not be continued by copying its source.
    """
    queries = list(queries)
    mode = getattr(retriever, "mode", "retriever")
    fingerprint = index_fingerprint(retriever)
    path = None
    if cache_dir and fingerprint:
        key = sha256_text(json.dumps([fingerprint, mode, k, exclude_containing, queries]))[:24]
        path = Path(cache_dir) / f"contexts-{key}.json"
        if path.is_file():
            try:
                cached = read_json(path)
                if cached["format"] != CACHE_FORMAT or len(cached["results"]) != len(queries):
                    raise ValueError("stale cache")
                return [[_cached_doc(retriever.store, row, mode) for row in rows] for rows in cached["results"]], "hit"
            except (RecordError, KeyError, TypeError, ValueError):
                pass  # a damaged or foreign cache file is recomputed and replaced
    depth = k + 3 if exclude_containing else k
    found: list[list[Document]] = []
    with tqdm(total=len(queries), desc="retrieving", unit="query", disable=not progress) as bar:
        for start in range(0, len(queries), RETRIEVAL_BATCH):
            batch = queries[start:start + RETRIEVAL_BATCH]
            if hasattr(retriever, "batch_search"):
                found += retriever.batch_search(batch, k=depth)
            else:  # any LangChain retriever
                found += [docs[:depth] for docs in retriever.batch(batch)]
            bar.update(len(batch))
    if exclude_containing:
        found = [[d for d in docs if _fold(q) not in _fold(d.page_content)] for q, docs in zip(queries, found,
                                                                                                  strict=True)]
    found = [_reranked(docs[:k]) for docs in found]
    if path is not None:
        rows = [[{"chunk_id": d.metadata["chunk_id"], "score": d.metadata.get("score"), "rank": d.metadata["rank"]}
                 for d in docs] for docs in found]
        write_json(path, {"format": CACHE_FORMAT, "index": fingerprint, "retrieval": mode, "k": k,
                          "queries": len(queries), "results": rows})
    return found, "miss" if path is not None else "off"


def _reranked(docs: list[Document]) -> list[Document]:
    """Ranks 1..n after filtering, so the prompt order (best passage last) stays right."""
    return [Document(page_content=d.page_content, metadata={**d.metadata, "rank": rank}, id=d.id)
            for rank, d in enumerate(docs, start=1)]


def _cached_doc(store: Any, row: dict[str, Any], mode: str) -> Document:
    doc = store.docstore.search(row["chunk_id"])
    if not isinstance(doc, Document):
        raise KeyError(row["chunk_id"])
    meta = {**doc.metadata, "chunk_id": row["chunk_id"], "score": row["score"], "rank": row["rank"],
            "retriever": mode}
    return Document(page_content=doc.page_content, metadata=meta, id=row["chunk_id"])


def _fold(text: str) -> str:
    return " ".join(text.split())
