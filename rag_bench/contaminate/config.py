"""``ContaminateConfig``: which shares, retrievers and defences ``rag-bench contaminate`` measures.

    from rag_bench.contaminate.config import ContaminateConfig, parse_shares
    cfg = ContaminateConfig(shares=parse_shares("0,0.5,0.9"), limit=100)

The share is of the *answer pool*: the human chunks that hold the probed facts (each probe's
``source_chunk_id``) plus the synthetic rewrites of them. A share s adds round(s / (1 - s) * C)
rewrites to the C answer chunks, so s = 0.9 puts nine model-written versions beside every true one.
The whole index's share is much smaller and is reported too (``index_share``).

The writer is named (``writer``, ``writer_temperature``): ``generation`` is the run's generation n continuing
each record prefix (temperature 1 is the original writer, a low temperature a more fluent one, 0 greedy);
``restate`` is an instruct model (``restate_model``, the base SmolLM2 by default) asked to restate the
passage with one value changed. The human-distractor control (``human_control``) adds, at every share, as
many held-out human chunks as that share adds rewrites; ``ks`` are the passages per prompt at which the cost
of contamination is measured against it. Defence thresholds are chosen on the dev probes
(``rag_bench.eval.splits``) and reported on test; ``trusted_depths`` sweeps how many candidates the
trusted-source filter reads.
"""

from __future__ import annotations

import dataclasses

from rag_bench.config import ConfigBase, ConfigError

DEFAULT_SHARES = (0.0, 0.25, 0.5, 0.75, 0.9)
DEFENCES = ("none", "provenance", "perplexity", "trusted")
RETRIEVERS = ("dense", "bm25", "hybrid")
WRITERS = ("generation", "restate")  # the run's generation n continuing prefixes | an instruct model restating


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
    ks: tuple[int, ...] = (1, 3, 5)  # passages per prompt at which the cost is measured against the control
    depth: int = 5  # retrieved passages counted for the retrieved synthetic share (Yu et al.'s curve)
    rank_depth: int = 100  # candidates read for the pairwise rank test (an original or rewrite below: unranked)
    filter_depth: int = 4  # the watermark and perplexity defences retrieve k * filter_depth candidates
    trusted_depths: tuple[int, ...] = (1, 2, 4, 8, 16)  # trusted source: candidates read per passage, swept
    watermark_share: float = 0.5  # of rewrites written with the run's watermark (the rest unmarked)
    writer: str = "generation"  # generation | restate (see WRITERS)
    writer_temperature: float = 1.0  # the writer's sampling temperature; 0 = greedy (one round at most)
    writer_repetition_penalty: float = 1.0  # > 1 keeps a small writer from looping (CTRL-style); 1 = off
    restate_model: str = "smollm2-135m"  # the instruct model of the restate writer (a registry name or folder)
    restate_tokens: int = 192  # new tokens per restated passage
    fluency_scorer: str = "smollm2-135m"  # neutral model scoring every writer's perplexity ("gen0": the run's)
    human_control: bool = True  # also measure each share with as many held-out human chunks instead
    perplexity_sample: int = 400  # rewrites and human chunks scored for the fluency table, each at most
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
        if min(self.depth, self.filter_depth, self.rank_depth, self.value_tokens, self.prose_words,
               self.prose_tokens, self.restate_tokens, self.batch_size, self.perplexity_sample,
               *self.ks, *self.trusted_depths) < 1 or self.k < 0 or not self.ks or not self.trusted_depths:
            raise ConfigError("ks, depths, token and word counts, batch_size and perplexity_sample must be >= 1 "
                              "(ks and trusted_depths not empty), k >= 0")
        if not 0.0 <= self.watermark_share <= 1.0:
            raise ConfigError("watermark_share must be in [0, 1]")
        if self.writer not in WRITERS or self.writer_temperature < 0 or self.writer_repetition_penalty <= 0:
            raise ConfigError(f"writer must be among {list(WRITERS)} with writer_temperature >= 0 and "
                              f"writer_repetition_penalty > 0, got {self.writer!r} at {self.writer_temperature}, "
                              f"{self.writer_repetition_penalty}")

    def writer_tag(self) -> str:
        """The writer (and a seed other than 0) in folder and index names: "" for the original writer, generation
        n at temperature 1, and seed 0, so that earlier measurements keep their folders."""
        seed = f"-seed{self.seed}" if self.seed else ""
        penalty = f"-rp{self.writer_repetition_penalty:g}" if self.writer_repetition_penalty != 1.0 else ""
        if self.writer == "generation" and self.writer_temperature == 1.0 and not penalty:
            return seed
        temp = "greedy" if self.writer_temperature == 0 else f"t{self.writer_temperature:g}"
        return f"-{self.writer}-{temp}{penalty}{seed}"

    def decoding(self) -> str:
        """The writer's decoding, in words (the report states it)."""
        words = "greedy" if self.writer_temperature == 0 else f"sampling at temperature {self.writer_temperature:g}"
        if self.writer_repetition_penalty != 1.0:
            words += f", repetition penalty {self.writer_repetition_penalty:g}"
        return words


def rewrites_for(share: float, pool: int) -> int:
    """Synthetic rewrites that make ``share`` of a pool of ``pool`` human chunks model-written."""
    return round(share / (1.0 - share) * pool)
