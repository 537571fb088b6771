"""``ContaminateConfig``: which shares, retrievers and defences ``rag-bench contaminate`` measures.

    from rag_bench.contaminate.config import ContaminateConfig, parse_shares
    cfg = ContaminateConfig(shares=parse_shares("0,0.5,0.9"), limit=100)

The share is of the *answer pool*: the human chunks that hold the probed facts (each probe's
``source_chunk_id``) plus the synthetic rewrites of them. A share s adds round(s / (1 - s) * C)
rewrites to the C answer chunks, so s = 0.9 puts nine model-written versions beside every true one.
The whole index's share is much smaller and is reported too (``index_share``).
"""

from __future__ import annotations

import dataclasses

from rag_bench.config import ConfigBase, ConfigError

DEFAULT_SHARES = (0.0, 0.25, 0.5, 0.75, 0.9)
DEFENCES = ("none", "provenance", "perplexity", "trusted")
RETRIEVERS = ("dense", "bm25", "hybrid")


def parse_shares(text: str) -> tuple[float, ...]:
    """``"0,0.25,0.9"`` -> ``(0.0, 0.25, 0.9)``: sorted, distinct, each in [0, 1)."""
    shares = []
    for item in str(text).split(","):
        if not item.strip():
            continue
        try:
            share = float(item)
        except ValueError:
            raise ConfigError(f"--shares: {item.strip()!r} is not a number") from None
        if not 0.0 <= share < 1.0:
            raise ConfigError(f"--shares: {item.strip()} is outside [0, 1): a share of 1 leaves no human text")
        shares.append(share)
    if not shares:
        raise ConfigError("--shares: give at least one share, e.g. 0,0.5,0.9")
    return tuple(sorted(set(shares)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContaminateConfig(ConfigBase):
    """``rag-bench contaminate``: contaminated indexes of one run and generation, measured with defences."""

    shares: tuple[float, ...] = DEFAULT_SHARES  # synthetic share of the answer pool, each in [0, 1)
    retrievers: tuple[str, ...] = RETRIEVERS  # dense | bm25 | hybrid
    defences: tuple[str, ...] = DEFENCES  # none | provenance | perplexity | trusted
    strategy: str = ""  # whose last generation answers ("": the run's first strategy)
    limit: int | None = None  # a seeded sample of this many probes (None: all); the answer pool follows it
    k: int = 0  # passages per grounded prompt (0: the run's eval k)
    depth: int = 5  # retrieved passages counted for the retrieved synthetic share (Yu et al.'s curve)
    filter_depth: int = 4  # a defence retrieves k * filter_depth candidates before it filters
    watermark_share: float = 0.5  # of rewrites written with the run's watermark (the rest unmarked)
    z_threshold: float = 0.0  # provenance filter: drop chunks above this z-score (0: the run's watermark_z)
    perplexity_quantile: float = 0.1  # perplexity filter: drop chunks below this quantile of human chunks' ppl
    perplexity_sample: int = 400  # human chunks scored to set the perplexity threshold
    value_tokens: int = 24  # new tokens per record value (cut at the line end)
    prose_words: int = 12  # a prose chunk's first words prompt its rewrite
    prose_tokens: int = 96  # new tokens per prose rewrite
    batch_size: int = 64  # prompts per generation batch
    seed: int = 0  # probe sample, rewrites and watermark coin

    def __post_init__(self) -> None:
        if not self.shares or any(not 0.0 <= s < 1.0 for s in self.shares):
            raise ConfigError(f"shares must each be in [0, 1), got {list(self.shares)}")
        for name, allowed in (("retrievers", RETRIEVERS), ("defences", DEFENCES)):
            values = getattr(self, name)
            if not values or any(v not in allowed for v in values):
                raise ConfigError(f"{name} must be among {list(allowed)}, got {list(values)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1 or None, got {self.limit}")
        if min(self.depth, self.filter_depth, self.value_tokens, self.prose_words, self.prose_tokens,
               self.batch_size, self.perplexity_sample) < 1 or self.k < 0:
            raise ConfigError("depth, filter_depth, token and word counts, batch_size and perplexity_sample "
                              "must be >= 1, k >= 0")
        if not 0.0 <= self.watermark_share <= 1.0 or not 0.0 <= self.perplexity_quantile < 1.0:
            raise ConfigError("watermark_share must be in [0, 1] and perplexity_quantile in [0, 1)")


def rewrites_for(share: float, pool: int) -> int:
    """Synthetic rewrites that make ``share`` of a pool of ``pool`` human chunks model-written."""
    return round(share / (1.0 - share) * pool)
