"""The collapse experiment (rag_bench.collapse): generations, data strategies, the writer and its training.

    from rag_bench.config import CollapseConfig, parse_strategy
    CollapseConfig(generations=3, strategies=("replace", "mix:0.1"))
    parse_strategy("mix:0.1")      # ("mix", "0.1")
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from rag_bench.config.base import ConfigBase, ConfigError
from rag_bench.config.eval import EvalConfig
from rag_bench.config.model import DecodeConfig, TrainConfig

STRATEGY_KINDS = ("replace", "mix", "accumulate", "accumulate-fixed", "accumulate-subsample", "filter", "watermark",
                  "grounded", "fresh")
FILTER_KINDS = ("perplexity", "dedup")


def parse_strategy(text: str) -> tuple[str, str]:
    """``"mix:0.1"`` -> ``("mix", "0.1")``; ``"replace"`` -> ``("replace", "")``. Raises ConfigError naming the problem.

    ``mix:p`` keeps a share p of human data; ``filter[:perplexity|dedup]``; ``watermark[:c]`` sets the
    contamination ratio of the web pool; ``fresh`` is the control: fresh human text, no model-written text.
    The other kinds take no parameter.
    """
    kind, _, param = str(text).partition(":")
    if kind not in STRATEGY_KINDS:
        raise ConfigError(f"strategies: unknown strategy {text!r}; choose from {list(STRATEGY_KINDS)} "
                          "(mix needs a share, e.g. 'mix:0.1')")
    if kind in ("mix", "watermark") and (param or kind == "mix"):
        try:
            share = float(param)
        except ValueError:
            raise ConfigError(f"strategies: {text!r} needs a share p in [0, 1], e.g. '{kind}:0.1'") from None
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"strategies: p of {text!r} must be in [0, 1], got {share}")
    elif kind == "filter" and param and param not in FILTER_KINDS:
        raise ConfigError(f"strategies: {text!r}: filter by one of {list(FILTER_KINDS)}")
    elif kind not in ("mix", "watermark", "filter") and param:
        raise ConfigError(f"strategies: {text!r}: {kind} takes no parameter")
    return kind, param


def _writer_decode() -> DecodeConfig:
    # Shumailov et al. 2024 wrote with 5-way beam search; the presets say which decoding they use.
    return DecodeConfig(max_new_tokens=64, num_beams=5, repetition_penalty=1.2, do_sample=False, stop=(),
                        batch_size=64)


def _next_train() -> TrainConfig:
    return TrainConfig(max_steps=200, warmup_steps=20, eval_every=200, save_every=50, copy_warmup_steps=0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CollapseConfig(ConfigBase):
    """``rag-bench collapse``: generations retrained on their own text, under data strategies (rag_bench.collapse)."""

    name: str = "custom"  # the preset it came from; default run folder DATA_DIR/runs/<name>-<corpus>
    corpus: str = "factbook"  # DATA_DIR/corpora/<corpus>/corpus.jsonl, records with metadata.split train|heldout
    index: str = ""  # DATA_DIR/indexes/<index>: human index of grounded eval and of the grounded writer ("": corpus)
    probes: str = ""  # probe JSONL ("": DATA_DIR/probes/<index>-<probe_kind>.jsonl)
    probe_kind: str = "factbook"  # the default probe file's kind: factbook (record prefixes) or natural (questions)
    countries: tuple[str, ...] = ()  # keep documents and probes of these metadata.country_code values (empty: all)
    kinds: tuple[str, ...] = ()  # keep documents of these metadata.kind values, e.g. ["record"] (empty: all)
    human_documents: int = 0  # a seeded sample of this many human training documents (0: all); probes unaffected
    generations: int = 5  # models per strategy, generation 0 included: gen_0 .. gen_<generations-1>
    strategies: tuple[str, ...] = ("replace", "accumulate")  # see parse_strategy; all share one generation 0
    init: Literal["scratch", "previous", "base"] = "previous"  # gen n+1 starts as: a fresh model, gen n, base_model
    base_model: str = ""  # a local HF causal-LM folder or a registry name (smollm2-135m): gen 0 fine-tunes it
    seed: int = 0  # every seed of the run derives from it (training, decoding, pool sampling)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # generation 0 on the human training split
    next_train: TrainConfig = dataclasses.field(default_factory=_next_train)  # generations >= 1 (model size from train)
    next_epochs: float = 0.0  # > 0: later generations train ceil(next_epochs * pool budget / (batch * block)) steps
    # (the configured budget, never the pool's measured length), not next_train.max_steps
    pool_tokens: int = 0  # the pool budget of every later generation, in tokens: the writer writes exactly this many
    # (continuing the human blocks again when they run out) and every pool is cut to it; the same in every seed.
    # 0: the human training split's tokens, one continuation per human block (varies with a seeded human sample)
    next_checkpoints: int = 0  # evenly spaced checkpoints of a later generation, the lowest validation perplexity
    # kept; 0: as many as generation 0 has (issue 13's rule; the kept step may then differ between seeds); 1: the last
    # step only, so the kept model has trained exactly the configured dose in every seed (issue 20)
    next_curriculum: bool = False  # later generations keep next_train's fact, copy and retrieval rows (built from
    # their pool only); False: they train on plain blocks of their pool, the shares set to 0 (issue 13, point 1)
    fact_fields_from_probes: bool = False  # every generation's fact rows teach only the record fields probes ask about
    knowledge_buckets: bool = False  # metrics by gen 0's confidence, known/unknown and run frequency (collapse_buckets)
    eval_heldout_tokens: int = 0  # > 0: perplexity and diversity prompts come from the corpus's held-out documents
    # of the run's kinds outside its countries (at least this many tokens at 4.5 characters a token); the run's own
    # held-out documents then only choose checkpoints (validation). 0: the run's held-out documents do both
    prompt_tokens: int = 64  # k: each human training block's first k tokens prompt the writer
    decode: DecodeConfig = dataclasses.field(default_factory=_writer_decode)  # the writer; max_new_tokens is m
    score_synthetic: bool = True  # perplexity of every synthetic text under generation 0 (filter needs it)
    filter_by: Literal["perplexity", "dedup"] = "perplexity"  # what plain 'filter' does
    filter_keep: float = 0.8  # perplexity filter: share of synthetic texts kept, lowest perplexity first
    dedup_ngram: int = 4  # near-duplicate filter: word n-grams compared
    dedup_threshold: float = 0.5  # a text sharing at least this share of its n-grams with a kept text is dropped
    contamination: float = 0.5  # watermark: share of synthetic tokens in the web pool (human tokens fill the rest)
    watermark_bias: float = 2.0  # green-list logit bias delta (Kirchenbauer et al.)
    watermark_greenlist: float = 0.25  # green-list share gamma of the vocabulary
    watermark_z: float = 4.0  # detector z-score threshold: texts above it are removed
    watermark_key: int = 15485863  # hashing key of the green lists
    grounded_k: int = 2  # human passages in the grounded writer's context (held-out chunks never)
    neighbours_k: int = 2  # pool passages placed before retrieval-augmented training rows (BM25 over the pool)
    segment_chars: int = 1000  # human texts are sampled in segments of at most this many characters (line ends)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)  # every generation, both modes
    threads: int = 0  # torch threads; 0: all cores on an idle machine, 1 when others load it (contention is ~10x)
    report: bool = True  # write the report (rag_bench.report) at the end of the run

    def __post_init__(self) -> None:
        if self.generations < 1:
            raise ConfigError(f"generations must be >= 1, got {self.generations}")
        if not self.strategies:
            raise ConfigError("strategies: give at least one strategy")
        for text in self.strategies:
            parse_strategy(text)
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigError(f"strategies: each strategy once, got {list(self.strategies)}")
        if self.init == "base" and not self.base_model:
            raise ConfigError("init: 'base' needs base_model (a local Hugging Face causal-LM folder)")
        if self.knowledge_buckets and "closed" not in self.eval.modes:
            raise ConfigError("knowledge_buckets needs 'closed' in eval.modes: generation 0's closed-book answers "
                              "say which facts it knows")
        if self.human_documents < 0:
            raise ConfigError(f"human_documents must be >= 0, got {self.human_documents}")
        if self.probe_kind not in ("factbook", "natural", "cloze"):
            raise ConfigError(f"probe_kind: {self.probe_kind!r} is not one of ['factbook', 'natural', 'cloze']")
        if self.prompt_tokens < 1:
            raise ConfigError(f"prompt_tokens must be >= 1, got {self.prompt_tokens}")
        if self.next_epochs < 0:
            raise ConfigError(f"next_epochs must be >= 0, got {self.next_epochs}")
        if self.pool_tokens < 0 or self.next_checkpoints < 0:
            raise ConfigError(f"pool_tokens and next_checkpoints must be >= 0, got {self.pool_tokens} and "
                              f"{self.next_checkpoints}")
        for key in ("filter_keep", "dedup_threshold", "contamination", "watermark_greenlist"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if self.filter_keep == 0.0 or self.dedup_ngram < 1:
            raise ConfigError("filter_keep must be > 0 and dedup_ngram >= 1")
        if min(self.grounded_k, self.neighbours_k) < 1 or self.segment_chars < 50 or self.threads < 0:
            raise ConfigError("grounded_k and neighbours_k must be >= 1, segment_chars >= 50, threads >= 0")

    def resolved_index(self) -> str:
        return self.index or self.corpus
