"""Named collapse presets: ``tiny`` (tests), ``quick`` (2 cores), ``full``; ``smol`` and ``paper`` on SmolLM2.

    rag-bench collapse --preset quick
    from rag_bench.config import collapse_preset
    collapse_preset("tiny", generations=3)
"""

from __future__ import annotations

import typing
from typing import Any

from rag_bench.config.base import ConfigError
from rag_bench.config.collapse import STRATEGY_KINDS, CollapseConfig
from rag_bench.config.eval import EvalConfig, _continuation_decode
from rag_bench.config.model import DecodeConfig, ModelConfig, TrainConfig
from rag_bench.config.presets_pretrained import PRETRAINED_PRESETS


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


QUICK_POOL_TOKENS = 126_000  # about the 16 countries' human training text (126,551 tokens under quick's tokenizer)
FULL_POOL_TOKENS = 1_900_000  # about the whole Factbook's training text, the pool `full` was sized with

# Passages per grounded prompt in the presets: these small readers copy a fact from the one passage they are
# given (0.95 of the probes whose answer it holds, base stage 5) but pick the wrong line beside one or two more
# passages of similar records (0.70, 0.63); grounded exact match 0.829 at k=1 against 0.592 at k=3 (README).
READER_K = 1
# The answering modes of the collapse presets: the primary comparisons (docs/primary_comparisons.json) name all
# three; grounded minus oracle is the retrieval loss, oracle alone the reading skill.
PRIMARY_MODES = ("closed", "grounded", "oracle")


def _quick_preset() -> CollapseConfig:
    # Generation 0 first learns to read: 700 steps of the copy curriculum alone (copying appears as a phase change
    # between steps 500 and 600), then 400 steps of the mixture over 127k human tokens, a quarter of it fact rows
    # of the probed fields, so that generation 0 can be asked for them alone and later generations can lose them
    # (docs/copying.md, findings 12 and 14). Later generations train for
    # 16 steps on pools of exactly QUICK_POOL_TOKENS, in every seed, and are evaluated on 205 probes; ``fresh`` is the
    # control (other countries' record documents, rag_bench.collapse.fresh); the README gives the measured run times.
    model = ModelConfig.preset("small")
    train = TrainConfig(model=model, max_steps=1100, batch_size=32, lr=5e-3, warmup_steps=30, eval_every=275,
                        save_every=100, eval_max_texts=100, probe_count=50, retrieval_share=0.125,
                        retrieval_examples=2000, copy_share=0.375, copy_warmup_steps=700, copy_max_lines=3,
                        copy_max_value_chars=30, copy_max_distractors=0, fact_share=0.25)
    return CollapseConfig(
        name="quick", countries=_quick_countries(), kinds=("record",), generations=5, fact_fields_from_probes=True,
        strategies=("replace", "accumulate", "fresh"), init="previous", train=train, pool_tokens=QUICK_POOL_TOKENS,
        next_checkpoints=1,  # keep the last step: every seed's later generations train the same dose (issue 20)
        next_train=train.replace(max_steps=16, batch_size=16, lr=1e-3, warmup_steps=2, eval_every=16, save_every=8,
                                 copy_warmup_steps=0),
        decode=DecodeConfig(max_new_tokens=64, do_sample=True, temperature=1.0, stop=(), batch_size=128),
        score_synthetic=False,  # 40% of a write; the eval's reference perplexities give Shumailov's histogram
        eval_heldout_tokens=60_000,  # held-out record documents of other countries (about 65k tokens exist)
        eval=EvalConfig(modes=PRIMARY_MODES, k=READER_K, diversity_prompts=32, heldout_max_texts=0, batch_size=64))


def _full_preset() -> CollapseConfig:
    # Estimated from the rates measured for `quick` and the figures in docs for the base model (about 4.5k training
    # tokens/s on 2 idle cores): generation 0 ~2 h, 63 later trainings ~13 h, 59 beam-search writes of 1.9M tokens
    # ~33 h (~13 h with --decoding sample), 64 evaluations ~3 h: about two days on 2 CPU cores, a few hours on a GPU.
    train = TrainConfig(model=ModelConfig.preset("base"), max_steps=4000, retrieval_share=0.125, fact_share=0.25)
    # every strategy but the control: generation 0 trains on the whole training split, so no human text is left
    # for fresh samples (a run with `fresh` is refused with the numbers before any training)
    return CollapseConfig(
        name="full", generations=10, pool_tokens=FULL_POOL_TOKENS,
        strategies=tuple(s if s != "mix" else "mix:0.1" for s in STRATEGY_KINDS if s != "fresh"),
        fact_fields_from_probes=True,
        init="previous", train=train, next_train=train.replace(max_steps=400, lr=1e-3, warmup_steps=40,
                                                               eval_every=400, save_every=100, copy_warmup_steps=0),
        eval=EvalConfig(k=READER_K, diversity_prompts=128))


COLLAPSE_PRESETS.update(tiny=_tiny_preset, quick=_quick_preset, full=_full_preset)
COLLAPSE_PRESETS.update(PRETRAINED_PRESETS)  # smol and paper: generation 0 fine-tunes the offline SmolLM2
