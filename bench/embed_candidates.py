"""The embedders that bench/embed_bench.py races against torch fp32, and the token counts behind two candidates.

    from bench.embed_candidates import make_candidate, token_stats
    emb = make_candidate("openvino-bfloat16", IndexConfig(batch_size=64))   # a LangChain Embeddings, or a reason

Candidates (``name``: what it is):

- ``torch-float32`` / ``torch-bfloat16`` / ``torch-int8``: sentence-transformers on torch (the path before);
- ``openvino-float32`` / ``openvino-bfloat16``: ``rag_bench.index.openvino_embedding`` (the default now), in
  batches of 8; ``openvino-bfloat16@64`` and the like: the same in batches of 64;
- ``onnxruntime-float32`` / ``onnxruntime-int8``: the same encoder exported to ONNX and run by onnxruntime,
  plain or with onnxruntime's dynamic int8 quantization (int8 weights per channel, activations per batch).
  These need ``onnxruntime`` and ``onnx``, which requirements.txt does not install (they lost: README); without
  them the candidate is reported as not installed.

A candidate that cannot run here (a package missing, bf16 under the AVX2 limit) comes back as a string saying why.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from rag_bench.config import IndexConfig
from rag_bench.index.embedding import embedder_path, load_embedder, native_bf16
from rag_bench.index.openvino_embedding import (
    load_openvino_embedder,
    load_tokenizer,
    max_seq_length,
    padded_batches,
    pooled_bert,
)

CANDIDATES = ("torch-float32", "torch-bfloat16", "torch-int8", "openvino-float32", "openvino-bfloat16",
              "onnxruntime-float32", "onnxruntime-int8")


class OnnxRuntimeEmbeddings:
    """The encoder on an onnxruntime session, batched as the OpenVINO embedder batches (sorted by tokens)."""

    backend = "onnxruntime"

    def __init__(self, session, tokenizer, batch_size: int) -> None:
        self.session, self.tokenizer, self.batch_size = session, tokenizer, batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out = np.zeros((len(texts), 384), dtype="float32")
        for rows, ids, mask in padded_batches(self.tokenizer, texts, self.batch_size):
            out[rows] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def onnxruntime_candidate(cfg: IndexConfig, dtype: str, threads: int):
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        return f"not installed ({exc.name}; pip install onnxruntime onnx)"
    import torch

    path = embedder_path(cfg)
    folder = Path(tempfile.mkdtemp(prefix="embed_bench_onnx_"))
    example = torch.ones(2, 8, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(pooled_bert(path), (example, example), str(folder / "fp32.onnx"), dynamo=False,
                          input_names=["input_ids", "attention_mask"], output_names=["embedding"], opset_version=17,
                          dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}})
    model = folder / "fp32.onnx"
    if dtype == "int8":
        quantize_dynamic(str(model), str(folder / "int8.onnx"), weight_type=QuantType.QInt8, per_channel=True)
        model = folder / "int8.onnx"
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # a shared machine: no spinning
    tokenizer = load_tokenizer(path)
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return OnnxRuntimeEmbeddings(session, tokenizer, cfg.batch_size)


def make_candidate(name: str, cfg: IndexConfig, threads: int):
    """The embedder called ``name`` (see CANDIDATES; ``@N`` sets OpenVINO's batch), or why it cannot run here."""
    name, _, batch = name.partition("@")
    backend, dtype = name.split("-")
    if dtype == "bfloat16" and not native_bf16():
        return "bf16 is not native under this ISA limit (the build falls back to float32, with one logged line)"
    if backend == "onnxruntime":
        return onnxruntime_candidate(cfg, dtype, threads)
    if backend == "openvino" and batch:
        return load_openvino_embedder(cfg, embedder_path(cfg), dtype=dtype, threads=threads, batch=int(batch))
    return load_embedder(cfg, dtype=dtype, backend=backend)


def token_stats(texts: list[str], batch_size: int) -> dict:
    """Padding share of length-sorted batches (by characters: the torch path; by tokens: OpenVINO) and the
    share of tokens a smaller sequence cap would cut."""
    from tokenizers import Tokenizer

    path = embedder_path(IndexConfig())
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    lengths = np.array([len(e.ids) for e in tokenizer.encode_batch(texts)])
    cap = max_seq_length(path)

    def padding(order: np.ndarray) -> float:
        used = np.minimum(lengths[order], cap)
        padded = sum(used[i:i + batch_size].max() * len(used[i:i + batch_size]) for i in range(0, len(used),
                                                                                                 batch_size))
        return round(1 - used.sum() / padded, 4)

    by_chars = np.argsort([-len(t) for t in texts], kind="stable")
    return {"texts": len(texts), "tokens_mean": round(float(lengths.mean()), 1),
            "tokens_percentiles_50_90_99_max": [int(x) for x in np.percentile(lengths, [50, 90, 99, 100])],
            "padding_share_sorted_by_chars": padding(by_chars),
            "padding_share_sorted_by_tokens": padding(np.argsort(-lengths, kind="stable")),
            "padding_share_unsorted": padding(np.arange(len(texts))),
            "cap": cap,
            "tokens_cut_by_cap": {str(c): round(float(1 - np.minimum(lengths, c).sum() / np.minimum(lengths, cap)
                                                      .sum()), 4) for c in (128, 192)},
            "texts_cut_by_cap": {str(c): round(float((lengths > c).mean()), 4) for c in (128, 192, cap)}}


def cpu_flags() -> list[str]:
    """The ISA flags that decide the kernels (the house rule: record them with every benchmark)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return sorted({f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
                   if f" {f}" in text}) + ([f"ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}"]
                                          if os.environ.get("ONEDNN_MAX_CPU_ISA") else [])
