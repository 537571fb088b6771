"""MiniLM on OpenVINO: the default embedder of an index build on a CPU (bench/results/embed.json has the figures).

    rag-bench ingest ./docs --name acme                      # --backend auto: OpenVINO where installed
    rag-bench ingest ./docs --name acme --backend torch      # sentence-transformers on torch, as before

    from rag_bench.index.openvino_embedding import load_openvino_embedder
    emb = load_openvino_embedder(IndexConfig(), dtype="bfloat16")   # a LangChain Embeddings

The packaged sentence-transformers folder is converted once, offline, into OpenVINO's IR (``model.xml`` and
``model.bin``) under ``IndexConfig.embedder_cache`` (DATA_DIR/models/embedders), in a folder named by the hash
of the weights and the OpenVINO version (``$RAG_BENCH_EMBEDDER_CACHE``, when set, names one such folder for every
DATA_DIR); a conversion that is killed leaves no folder behind (it is renamed into place whole). The converted
graph is the BERT encoder and the mean pooling of the sentence-transformers model written out as one torch module
(``PooledBert``): equal to sentence-transformers' vectors within 1e-6 in fp32 (tests/test_index_openvino_embedding.py).
Precision is OpenVINO's inference hint: ``bf16`` only where the CPU runs it natively (the caller decides,
``rag_bench.index.embedding.resolve_dtype``), else ``f32``.

Texts are tokenized without padding, sorted by token count and cut into batches of ``OPENVINO_BATCH`` padded to
their longest text, so almost no compute goes to padding (bench/results/embed.json, ``tokens``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from rag_bench.config import IndexConfig
from rag_bench.index.integrity import IndexStoreError

EXPORT_FORMAT = 1  # bump when PooledBert changes, so that older exports in the cache are not reused
SHARED_CACHE_ENV = "RAG_BENCH_EMBEDDER_CACHE"  # set: every DATA_DIR's exports go into (and come from) this folder
# Texts per inference call. Small batches keep each layer's activations in cache: batches of 8-16 ran 1.2-1.4x
# batches of 64 in fp32 and bf16 on a 2-core EPYC (bench/embed_bench.py, candidates "@64").
OPENVINO_BATCH = 8
OV_PRECISION = {"float32": "f32", "bfloat16": "bf16"}


def unsupported_reason(path: Path) -> str | None:
    """Why ``path`` cannot run on this backend (None when it can): a BERT encoder with mean pooling only."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable config.json or modules.json ({exc})"
    if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
        return f"model_type {config.get('model_type')!r} is not a BERT with absolute positions"
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        return f"modules {kinds} are not Transformer, Pooling[, Normalize]"
    pooling = json.loads((path / modules[1].get("path", "1_Pooling") / "config.json").read_text(encoding="utf-8"))
    if not pooling.get("pooling_mode_mean_tokens") or sum(bool(v) for k, v in pooling.items()
                                                          if k.startswith("pooling_mode")) != 1:
        return "its pooling is not mean pooling alone"
    return None


def max_seq_length(path: Path) -> int:
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 512


def pooled_bert(path: Path):
    """The BERT encoder and mean pooling as one module: (input_ids, attention_mask) -> unnormalized vectors."""
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32).eval()

    class PooledBert(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert
            self.heads = bert.config.num_attention_heads

        def forward(self, input_ids, attention_mask):
            emb = self.bert.embeddings
            positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
            # token types are all 0 for a single text, as in sentence-transformers
            h = emb.LayerNorm(emb.word_embeddings(input_ids) + emb.position_embeddings(positions)
                              + emb.token_type_embeddings.weight[0])
            mask = attention_mask.to(h.dtype)
            bias = (1.0 - mask)[:, None, None, :] * torch.finfo(h.dtype).min
            batch, seq, width = h.shape
            head = width // self.heads

            def split(x):
                return x.view(batch, seq, self.heads, head).transpose(1, 2)

            for layer in self.bert.encoder.layer:
                att = layer.attention
                scores = split(att.self.query(h)) @ split(att.self.key(h)).transpose(-1, -2) / head ** 0.5
                context = (torch.softmax(scores + bias, dim=-1) @ split(att.self.value(h))).transpose(1, 2)
                h = att.output.LayerNorm(att.output.dense(context.reshape(batch, seq, width)) + h)
                inner = torch.nn.functional.gelu(layer.intermediate.dense(h))
                h = layer.output.LayerNorm(layer.output.dense(inner) + h)
            weights = mask.unsqueeze(-1)
            return (h * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    return PooledBert().eval()


@lru_cache(maxsize=8)
def weights_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".json"}):
        digest.update(name.encode())
        with open(path / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def export_dir(cfg: IndexConfig, path: Path) -> Path:
    """Where the export of ``path`` lives: in ``cfg.embedder_cache``, or in the folder ``$RAG_BENCH_EMBEDDER_CACHE``
    names when it is set (one export shared by every DATA_DIR on a machine, as the test suite shares one)."""
    import openvino

    version = openvino.__version__.split("-")[0]  # "2026.4.1-22982-...-releases/2026/4" -> "2026.4.1"
    cache = os.environ.get(SHARED_CACHE_ENV) or cfg.embedder_cache
    return Path(cache) / f"{path.name}-{weights_digest(path)}-ov{version}-f{EXPORT_FORMAT}"


def export_ir(cfg: IndexConfig, path: Path) -> Path:
    """The OpenVINO IR of ``path``'s model, converted now if the cache has none (about 30 s on 2 cores)."""
    import openvino as ov
    import torch

    folder = export_dir(cfg, path)
    if (folder / "model.xml").is_file() and (folder / "model.bin").is_file():
        return folder / "model.xml"
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    example = torch.ones(2, 8, dtype=torch.long)
    inputs = [(name, [-1, -1], ov.Type.i64) for name in ("input_ids", "attention_mask")]  # any batch, any length
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript tracing's deprecation notes: the conversion is checked by tests
        model = ov.convert_model(pooled_bert(path), example_input={"input_ids": example, "attention_mask": example},
                                 input=inputs)
    ov.save_model(model, str(staging / "model.xml"), compress_to_fp16=False)
    try:
        os.replace(staging, folder)
    except OSError:  # another process put the same export there first
        shutil.rmtree(staging, ignore_errors=True)
    return folder / "model.xml"


def load_tokenizer(path: Path):
    """The fast tokenizer, unpadded, truncating at sentence-transformers' cap (256, not the file's 128)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128; batches are padded to their longest text instead
    tokenizer.enable_truncation(max_seq_length(path))
    return tokenizer


def padded_batches(tokenizer, texts: list[str], batch_size: int) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """(rows, input_ids, attention_mask) per batch of ``texts`` sorted by token count, padded to its longest."""
    encoded = tokenizer.encode_batch(list(texts))
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i].ids))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(encoded[i].ids) for i in rows)
        ids, mask = np.zeros((len(rows), width), dtype="int64"), np.zeros((len(rows), width), dtype="int64")
        for r, i in enumerate(rows):
            ids[r, :len(encoded[i].ids)], mask[r, :len(encoded[i].ids)] = encoded[i].ids, 1
        yield rows, ids, mask


class OpenVINOEmbeddings(Embeddings):
    """LangChain embeddings over a compiled OpenVINO model: length-sorted batches, vectors normalized in fp32."""

    backend = "openvino"

    def __init__(self, compiled, tokenizer, *, batch_size: int, dtype: str) -> None:
        self.compiled, self.tokenizer, self.batch_size, self.dtype = compiled, tokenizer, batch_size, dtype
        self.request = compiled.create_infer_request()

    def embed_array(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.compiled.output(0).get_partial_shape()[1].get_length()), dtype="float32")
        for rows, ids, mask in padded_batches(self.tokenizer, texts, self.batch_size):
            out[rows] = self.request.infer({"input_ids": ids, "attention_mask": mask})[0]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()


def load_openvino_embedder(cfg: IndexConfig, path: Path, *, dtype: str, threads: int,
                           batch: int = OPENVINO_BATCH) -> OpenVINOEmbeddings:
    """The embedder on OpenVINO at ``dtype`` (float32 or bfloat16), ``threads`` threads, ``batch`` texts a call.

    ``IndexConfig.batch_size`` still sets how many texts make one resumable group (four batches of it).
    """
    try:
        import openvino as ov
    except ImportError:
        raise IndexStoreError("this index was built with the OpenVINO embedder, which is not installed: "
                              "pip install -r requirements.txt (or rebuild with --backend torch)") from None
    if dtype not in OV_PRECISION:
        raise IndexStoreError(f"the OpenVINO embedder runs float32 or bfloat16, not {dtype}; use --backend torch")
    reason = unsupported_reason(path)
    if reason:
        raise IndexStoreError(f"{path}: cannot run on OpenVINO: {reason}; use --backend torch")
    tokenizer = load_tokenizer(path)
    compiled = ov.Core().compile_model(export_ir(cfg, path), "CPU", {
        "INFERENCE_PRECISION_HINT": OV_PRECISION[dtype], "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY"})
    return OpenVINOEmbeddings(compiled, tokenizer, batch_size=min(batch, cfg.batch_size), dtype=dtype)
