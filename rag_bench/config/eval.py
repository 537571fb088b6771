"""Evaluation of one model (rag_bench.eval.run, rag_bench.eval.continuations): modes, retrieval, decoding.

    from rag_bench.config import EvalConfig
    EvalConfig(modes=("closed", "grounded"), k=1, limit=200)
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from rag_bench.config.base import ConfigBase, ConfigError
from rag_bench.config.model import DecodeConfig


def _answer_decode() -> DecodeConfig:
    return DecodeConfig(max_new_tokens=24, do_sample=False, stop=("\n",))


def _continuation_decode() -> DecodeConfig:
    # Pure sampling at temperature 1 shows the model's own distribution; greedy would hide its diversity.
    return DecodeConfig(max_new_tokens=64, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, stop=())


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig(ConfigBase):
    """How ``rag-bench eval`` scores one model: modes, retrieval, decoding, diversity prompts, histogram."""

    modes: tuple[str, ...] = ("closed", "grounded")  # answer modes: closed | grounded | grounded_span
    k: int = 3  # passages per grounded prompt (3 chunks of 500 characters fit 512 positions)
    retrieval: Literal["dense", "bm25", "hybrid"] = "bm25"  # bm25 finds the record line a Factbook probe asks for
    limit: int | None = None  # evaluate a seeded sample of this many probes (None: all)
    decode: DecodeConfig = dataclasses.field(default_factory=_answer_decode)  # answers: greedy, stop at newline
    batch_size: int = 32  # prompts per generation batch and texts per scoring batch (overrides decode.batch_size)
    numeric_rel_tol: float = 0.01  # numeric_match tolerance, relative (number probes only)
    diversity_prompts: int = 64  # human prompts continued for diversity and distribution (0: skip both)
    diversity_prompt_words: int = 32  # words of a held-out text that make one prompt
    continuation_decode: DecodeConfig = dataclasses.field(default_factory=_continuation_decode)  # continuations
    rare_max_count: int = 3  # an n-gram seen at most this often in the human training texts is rare
    heldout_max_texts: int = 0  # held-out texts scored for perplexity (0: all)
    histogram_bins: int = 40  # log-spaced bins of the per-sequence perplexity histogram
    histogram_range: tuple[float, float] = (1.0, 10_000.0)  # fixed edges, so generations overlay
    seed: int = 0  # probe sample, prompt choice and sampling
    cache_dir: str = ""  # retrieved contexts and reference scores; empty: beside the output (see evaluate)

    def __post_init__(self) -> None:
        allowed = ("closed", "grounded", "grounded_span")
        if not self.modes or any(m not in allowed for m in self.modes) or len(set(self.modes)) != len(self.modes):
            raise ConfigError(f"modes must be distinct names among {list(allowed)}, got {list(self.modes)}")
        if self.k < 1 or self.batch_size < 1:
            raise ConfigError(f"k and batch_size must be >= 1, got k={self.k}, batch_size={self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1 or None, got {self.limit}")
        if self.diversity_prompts < 0 or self.diversity_prompt_words < 1 or self.heldout_max_texts < 0:
            raise ConfigError("diversity_prompts and heldout_max_texts must be >= 0, diversity_prompt_words >= 1")
        if self.rare_max_count < 1 or self.histogram_bins < 1:
            raise ConfigError("rare_max_count and histogram_bins must be >= 1")
        low, high = self.histogram_range
        if not 0 < low < high:
            raise ConfigError(f"histogram_range must be 0 < low < high, got {self.histogram_range}")
