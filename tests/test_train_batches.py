"""The rows of every step: a pure function of (seed, step), in the configured shares, accounted by origin."""

from __future__ import annotations

from collections import Counter

from rag_bench.config import ModelConfig, TrainConfig
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer
from rag_bench.training.batches import Batches

TEXTS = [f"Land{i} | Economy | Exports: {w}\nLand{i} | Government | Capital: Town{i}\n" + "Prose about trade. " * 6
         for i, w in enumerate(["barley", "timber", "copper", "wool", "salt", "tin"])]
ORIGINS = ["human"] * 3 + ["gen_1"] * 3


def _batches(cfg: TrainConfig) -> Batches:
    lm = LM.build(cfg.model, train_tokenizer(TEXTS, 300), seed=0, device="cpu")
    return Batches(cfg, lm, TEXTS, 32, None, ORIGINS)


def test_a_batch_depends_on_seed_and_step_only_so_a_resumed_run_sees_the_same_rows():
    cfg = TrainConfig(model=ModelConfig.preset("tiny"), batch_size=8, copy_share=0.25, copy_warmup_steps=0,
                      fact_share=0.25, probe_count=0)
    first, second = _batches(cfg), _batches(cfg)
    for _ in range(3):
        first.batch(0)  # earlier calls leave no state that changes a later step's rows
    assert first.batch(5) == second.batch(5)
    assert first.batch(5) != first.batch(6)
    kinds = Counter(first.row_kinds)
    assert (kinds["corpus"], kinds["fact"], kinds["copy"] + kinds["repeat"]) == (4, 2, 2)


def test_account_counts_tokens_per_row_kind_and_corpus_tokens_by_origin():
    cfg = TrainConfig(model=ModelConfig.preset("tiny"), batch_size=4, copy_share=0.0, probe_count=0)
    batches = _batches(cfg)
    totals: dict = {}
    rows = batches.batch(0)
    batches.account(totals, rows)
    assert totals["corpus"]["rows"] == 4 and totals["corpus"]["tokens"] == sum(len(r.ids) for r in rows)
    by_origin = totals["corpus"]["by_origin"]
    assert set(by_origin) <= {"human", "gen_1"} and sum(by_origin.values()) == totals["corpus"]["tokens"]
