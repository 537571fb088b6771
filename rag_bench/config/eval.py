"""Evaluation of one model (rag_bench.eval.run, rag_bench.eval.continuations): modes, retrieval, decoding;
and the reader an instruct model answers with everywhere (evaluation, ``rag-bench ask``, the chat).

    from rag_bench.config import DEFAULT_READER, EvalConfig, reader_for
    EvalConfig(modes=("closed", "grounded", "oracle"), k=1, limit=200, template="auto")
    DEFAULT_READER.template, DEFAULT_READER.k, DEFAULT_READER.retrieval, DEFAULT_READER.answers
    reader_for(dense_index=True).retrieval, reader_for(dense_index=True).k     # hybrid, 3
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from rag_bench.config.base import ConfigBase, ConfigError
from rag_bench.config.model import DecodeConfig

ANSWER_MODES = ("closed", "grounded", "grounded_span", "grounded_scored", "oracle", "oracle_span",
                "oracle_scored")  # rag_bench.answer.MODES
READER_ANSWERS = {"free": "grounded", "span": "grounded_span", "scored": "grounded_scored"}  # -> grounded mode
FREE_ANSWER_TOKENS = 48  # cap on a free answer; it stops at the newline or EOS first (24 cut answers mid-expression)


def _answer_decode() -> DecodeConfig:
    return DecodeConfig(max_new_tokens=FREE_ANSWER_TOKENS, do_sample=False, stop=("\n",))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReaderConfig(ConfigBase):
    """How an instruct model reads retrieved passages: chosen on the Factbook dev split (bench/reader_bench.py).

    Models trained here keep the ``plain`` record-prefix reader whatever this says.
    """

    template: str = "short"  # registered prompt template (rag_bench.prompt): plain | short | oneshot
    k: int = 5  # passages per grounded prompt
    retrieval: Literal["dense", "bm25", "hybrid"] = "bm25"  # which retriever finds them (no wait for the dense index)
    # free: generated; span: greedy decoding held to a span of the passages (grounded_span); scored: the passage
    # span the model scores best as the answer (grounded_scored, rag_bench.extract)
    answers: Literal["free", "span", "scored"] = "scored"
    # scored: weights of how a span's record key (prose: its sentence) matches the question (rag_bench.extract.
    # question_match), added to the model's mean log-probability: the share of the question's words in the key,
    # and minus the share of the field name's words the question lacks
    match_weights: tuple[float, float] = (100.0, 4.0)
    min_score: float | None = 40.0  # scored: a best score below this is a refusal ("not found in the passages")
    span_words: int = 4  # scored: words of a prose candidate span at most (record values are taken whole and split)
    max_new_tokens: int = FREE_ANSWER_TOKENS  # cap on a free answer (it ends at a newline or EOS first)

    def __post_init__(self) -> None:
        if self.k < 1 or self.max_new_tokens < 1 or self.span_words < 1:
            raise ConfigError(f"k, max_new_tokens and span_words must be >= 1, got k={self.k}, "
                              f"max_new_tokens={self.max_new_tokens}, span_words={self.span_words}")
        if self.answers not in READER_ANSWERS:
            raise ConfigError(f"answers must be one of {list(READER_ANSWERS)}, got {self.answers!r}")

    @property
    def extractive(self) -> bool:
        """The answer is a span of the passages (span-constrained or scored), not free text."""
        return self.answers != "free"

    @property
    def grounded_mode(self) -> str:
        return READER_ANSWERS[self.answers]


# The reader of instruct models. Evaluation (EvalConfig.template "auto"), `rag-bench ask` and the chat import this
# one object. SmolLM2-135M's free answers do not read their passages: on 120 Factbook dev probes (bench/results/
# reader.json, seed 0; load ~7 on 2 shared cores) free answers over bm25 k=3 hold the answer in 0.29 of them, 0.49
# where a passage holds it. The scored extractive reader (rag_bench.extract) answers with a passage span: the
# question's words pick the record line, the model picks the span within it, and a best score under min_score is
# the refusal. Its weights and floor were chosen on 100 other dev probes (bench/results/reader_tuning.json: over bm25
# k=3 the model's own span scores alone hold the answer in 0.08, the matched line's whole value without the model
# 0.59, the reader 0.62; with the gold chunk 0.24, 0.91 and 0.88, exact match 0.23, 0.86, 0.88). On the 120: contains
# 0.52 over bm25 k=3 (0.95 where a passage holds the answer; recall 0.54 bounds it), 0.625 over bm25 k=5 (0.95; exact
# match 0.61), 0.62 dense k=3 (0.89), 0.69 dense k=5 (0.83), 0.71 hybrid k=3 (0.89), 0.91 oracle; 0.79 against 0.39
# free on the held-out company set (38 questions, bm25 k=3). k=5 over bm25 was picked on those same 120 (both targets
# met, no wait for the dense index at first start); hybrid k=3 reads better once the dense index exists.
DEFAULT_READER = ReaderConfig()
# The same reader once the corpus's dense index exists (`rag-bench ask` always has it; the chat once the first build
# is done): hybrid retrieval (bm25 and dense, rank-fused) over k=3 read 0.708 against 0.625 for bm25 k=5 on the same
# 120 dev probes (bench/results/reader_grid.json; 0.89 against 0.95 where a passage holds the answer: hybrid's 3
# passages hold it more often). Both were chosen on those 120, so the gap is optimistic; neither was tuned on test.
INDEXED_READER = ReaderConfig(retrieval="hybrid", k=3)


def reader_for(dense_index: bool) -> ReaderConfig:
    """The dev-chosen reader for a corpus with (``INDEXED_READER``) or still without (``DEFAULT_READER``) its dense
    index: bm25 needs none, so the chat answers from the first second."""
    return INDEXED_READER if dense_index else DEFAULT_READER


def _continuation_decode() -> DecodeConfig:
    # Pure sampling at temperature 1 shows the model's own distribution; greedy would hide its diversity.
    return DecodeConfig(max_new_tokens=64, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, stop=())


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig(ConfigBase):
    """How ``rag-bench eval`` scores one model: modes, retrieval, decoding, diversity prompts, histogram."""

    modes: tuple[str, ...] = ("closed", "grounded")  # ANSWER_MODES: closed, grounded, oracle and their _span, _scored
    template: str = "auto"  # prompt template; auto: DEFAULT_READER.template for an instruct model, else plain
    k: int = 3  # passages per grounded prompt (3 chunks of 500 characters fit 512 positions)
    retrieval: Literal["dense", "bm25", "hybrid"] = "bm25"  # bm25 finds the record line a Factbook probe asks for
    # the probes' side (rag_bench.eval.splits) to evaluate: a run whose settings were chosen on dev and that reports
    # on test alone need not pay for answering dev probes (all: both sides)
    split: Literal["all", "dev", "test"] = "all"
    limit: int | None = None  # evaluate a seeded sample of this many probes of that side (None: all)
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
        allowed = ANSWER_MODES
        if not self.modes or any(m not in allowed for m in self.modes) or len(set(self.modes)) != len(self.modes):
            raise ConfigError(f"modes must be distinct names among {list(allowed)}, got {list(self.modes)}")
        if self.k < 1 or self.batch_size < 1:
            raise ConfigError(f"k and batch_size must be >= 1, got k={self.k}, batch_size={self.batch_size}")
        if self.split not in ("all", "dev", "test"):
            raise ConfigError(f"split must be all, dev or test, got {self.split!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1 or None, got {self.limit}")
        if self.diversity_prompts < 0 or self.diversity_prompt_words < 1 or self.heldout_max_texts < 0:
            raise ConfigError("diversity_prompts and heldout_max_texts must be >= 0, diversity_prompt_words >= 1")
        if self.rare_max_count < 1 or self.histogram_bins < 1:
            raise ConfigError("rare_max_count and histogram_bins must be >= 1")
        low, high = self.histogram_range
        if not 0 < low < high:
            raise ConfigError(f"histogram_range must be 0 < low < high, got {self.histogram_range}")
