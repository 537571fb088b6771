"""Collapse presets on a pretrained base (offline SmolLM2-135M-Instruct): ``smol`` for 2 CPU cores, ``paper`` for a GPU.

    rag-bench probes --kind natural                        # 1500 natural questions (smol: 150 on the test side)
    rag-bench collapse --preset smol                       # data/runs/smol-factbook; the same command resumes
    rag-bench collapse --preset smol --seed 1
    rag-bench collapse --preset paper --run-dir data/runs/paper      # on a GPU

Both follow Shumailov et al. (Nature 2024): generation 0 is the base fine-tuned on the human text; every later
generation is fine-tuned from the same base on text the previous generation wrote (continuations of the human
texts' first tokens), under ``replace`` (that text only) and ``mix:0.1`` (10% human text kept); ``smol`` adds the
control ``fresh`` (the same fine-tuning on a fresh sample of human prose no generation saw,
rag_bench.collapse.fresh). Every seed trains the same steps on pools of the same tokens. No generation
trains on fact rows, copy rows or retrieval rows: only text. The probes are natural questions
(``rag_bench.probes.natural``) answered through the model's chat template, and every generation's metrics are
also reported by knowledge bucket (``rag_bench.eval.buckets``).

The human text is the Factbook's prose (``kinds=("prose",)``: backgrounds, etymologies, notes), a seeded sample
of documents in ``smol``; the probes ask about every country, so the base's own knowledge is what a generation
can lose. Sizes are in ``bench/smol_sizing.py``, which reads the rates measured by ``bench/smol_rates.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rag_bench.config.collapse import CollapseConfig
from rag_bench.config.eval import FREE_ANSWER_TOKENS, EvalConfig
from rag_bench.config.model import DecodeConfig, ModelConfig, TrainConfig

BASE = "smollm2-135m"  # rag_bench.models registry name (named, not imported): converted from the wheel on first use
SMOL_DOCUMENTS = 30  # human prose documents: about 5.3k SmolLM2 tokens, written anew by every generation
SMOL_BLOCK = 128  # training block (tokens); a prose document is about 170 tokens
SMOL_POOL_TOKENS = 8_192  # every later generation's pool, in every seed (seed 0's pools of issue 13 held ~8k)
SMOL_NEXT_STEPS = 12  # 12 x 8 x 128 = 12,288 tokens: 1.5 passes over the pool, fixed in the config (issue 20)
SMOL_GEN0_STEPS = 10  # 10 x 8 x 128 = 10k tokens: two passes over the human sample
SMOL_LR = 2e-4  # a high fine-tuning rate, so that a few short generations move the model measurably
# natural questions evaluated per generation: a seeded sample of the test side only (rag_bench.eval.splits). The
# reader was chosen on dev before any seed and every reported figure is on test, so dev answers were half the
# evaluation for nothing (300 of both sides held 157 test probes; bench/results/smol_preset_partial.json)
SMOL_PROBES = 150
# The reader of `smol`'s free answers, chosen on 120 dev probes with the base model before any control seed ran
# (bench/results/reader_smol.json, docs/smol-control.md): FlashRAG's short-answer template (the three templates read
# alike with the gold passage: 0.52-0.55), hybrid retrieval, k=3 (grounded `contains` 0.367, against 0.375 for bm25
# k=5, one probe apart, with 3 passages to prefill instead of 5; bm25 k=1, the history runs' reader, 0.242), answers
# capped as measured there (FREE_ANSWER_TOKENS; they end at the newline or the end of the turn first).
PROSE_TOKENS = 451_621  # SmolLM2 tokens of the Factbook's prose, training split (bench/smol_sizing.py counts them)


def _answer_decode(max_new_tokens: int = 24) -> DecodeConfig:
    # an instruct model ends its answer with its end-of-turn token; 24 tokens hold a sentence with the figure
    return DecodeConfig(max_new_tokens=max_new_tokens, do_sample=False, stop=("\n",))


def _text_only(**values) -> TrainConfig:
    """Fine-tuning on text alone: no copy, fact or retrieval rows, no copy probes during training."""
    return TrainConfig(retrieval_share=0.0, copy_share=0.0, fact_share=0.0, copy_warmup_steps=0, probe_count=0,
                       weight_decay=0.0, **values)


def _smol_preset() -> CollapseConfig:
    train = _text_only(model=ModelConfig(name=BASE, n_positions=SMOL_BLOCK), max_steps=SMOL_GEN0_STEPS,
                       batch_size=8, lr=SMOL_LR, min_lr_ratio=0.1, warmup_steps=2, eval_every=SMOL_GEN0_STEPS,
                       eval_max_texts=24, save_every=SMOL_GEN0_STEPS)  # one resumable checkpoint: at the end
    return CollapseConfig(
        name="smol", kinds=("prose",), human_documents=SMOL_DOCUMENTS, probe_kind="natural", knowledge_buckets=True,
        generations=4, strategies=("replace", "mix:0.1", "fresh"), init="base", base_model=BASE, train=train,
        next_train=train.replace(max_steps=SMOL_NEXT_STEPS, eval_every=SMOL_NEXT_STEPS, warmup_steps=1,
                                 save_every=1000), pool_tokens=SMOL_POOL_TOKENS, prompt_tokens=32,
        decode=DecodeConfig(max_new_tokens=64, do_sample=True, temperature=1.0, stop=(), batch_size=32),
        score_synthetic=False, segment_chars=1000,
        eval=EvalConfig(modes=("closed", "grounded", "oracle"), template="short", retrieval="hybrid", k=3,
                        split="test", limit=SMOL_PROBES, decode=_answer_decode(FREE_ANSWER_TOKENS),
                        batch_size=32, diversity_prompts=8,
                        diversity_prompt_words=24, heldout_max_texts=24))


def _paper_preset(epochs: float) -> Callable[[], CollapseConfig]:
    # Shumailov et al. 2024 (OPT-125m on wikitext2): 64-token blocks, each continued for 64 tokens with 5-way beam
    # search and a repetition penalty, every generation fine-tuned from the pretrained base for 1 or 5 epochs, 0% or
    # 10% of the human data kept, 10 generations. Here the base is SmolLM2-135M and the human text all the
    # Factbook's prose (about 0.45M tokens); the learning rate is a usual fine-tuning rate, not the paper's.
    def build() -> CollapseConfig:
        steps = math.ceil(epochs * PROSE_TOKENS / (32 * 64))  # generation 0: the same epochs over the human text
        train = _text_only(model=ModelConfig(name=BASE, n_positions=64), max_steps=steps, batch_size=32, lr=2e-5,
                           warmup_steps=50, eval_every=steps, eval_max_texts=200, save_every=250)
        return CollapseConfig(
            name="paper" if epochs == 5 else f"paper-{epochs:g}epoch", kinds=("prose",), probe_kind="natural",
            knowledge_buckets=True, generations=10, strategies=("replace", "mix:0.1"), init="base", base_model=BASE,
            train=train, next_train=train, next_epochs=epochs, pool_tokens=PROSE_TOKENS, prompt_tokens=64,
            score_synthetic=True,
            decode=DecodeConfig(max_new_tokens=64, num_beams=5, repetition_penalty=3.0, stop=(), batch_size=32),
            eval=EvalConfig(k=1, decode=_answer_decode(), diversity_prompts=256))

    return build


PRETRAINED_PRESETS: dict[str, Callable[[], CollapseConfig]] = {
    "smol": _smol_preset, "paper": _paper_preset(5.0), "paper-1epoch": _paper_preset(1.0)}
