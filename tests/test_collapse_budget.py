"""Token budgets: a unit cut at a token, pools sampled to an exact budget, the fresh control's disjoint samples."""

from __future__ import annotations

import random
from collections import deque

import pytest

from rag_bench.collapse.budget import FreshShortage, fresh_samples, sample_budget, take_budget, token_cutter, tokens_of
from rag_bench.collapse.strategies import Strategy, build_pool
from rag_bench.models.scratch import train_tokenizer

TEXTS = [f"Country{i} | Geography | Area: {i * 37} sq km; coastline {i * 3} km; capital city number {i}"
         for i in range(60)]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


@pytest.fixture(scope="module")
def units(tokenizer) -> list[dict]:
    counts = [len(ids) for ids in tokenizer(TEXTS, add_special_tokens=False)["input_ids"]]
    return [{"id": f"fresh/{i}", "contents": t, "metadata": {"source": "human", "tokens": n}}
            for i, (t, n) in enumerate(zip(TEXTS, counts, strict=True))]


def test_a_cut_splits_a_unit_at_a_token_and_keeps_its_count(tokenizer, units):
    unit = units[5]
    head, tail = token_cutter(tokenizer)(unit, 7)
    assert head["metadata"]["tokens"] == 7 and tail["metadata"]["tokens"] == unit["metadata"]["tokens"] - 7
    assert len(tokenizer(head["contents"], add_special_tokens=False)["input_ids"]) == 7
    assert head["contents"] + tail["contents"] == unit["contents"] and head["id"] == unit["id"] != tail["id"]


def test_a_budget_is_met_exactly_with_a_cut_and_overshot_without(tokenizer, units):
    budget = tokens_of(units[:10]) + 3  # never a sum of whole units in this order
    exact = sample_budget(units, budget, random.Random(1), token_cutter(tokenizer))
    loose = sample_budget(units, budget, random.Random(1))
    assert tokens_of(exact) == budget and tokens_of(loose) > budget
    queue = deque(units)
    first = take_budget(queue, 25, token_cutter(tokenizer))
    assert tokens_of(first) == 25 and queue[0]["id"].endswith("/rest")  # the rest opens the next take


def test_fresh_samples_are_exact_disjoint_and_cover_no_text_twice(tokenizer, units):
    budget = tokens_of(units) // 4
    samples = fresh_samples(units, samples=3, budget=budget, seed=0, cut=token_cutter(tokenizer))
    assert [tokens_of(s) for s in samples] == [budget] * 3
    ids = [u["id"] for s in samples for u in s]
    assert len(ids) == len(set(ids))  # no unit (or piece of one) in two samples
    assert fresh_samples(units, samples=3, budget=budget, seed=0, cut=token_cutter(tokenizer)) == samples
    assert fresh_samples(units, samples=3, budget=budget, seed=1, cut=token_cutter(tokenizer)) != samples


def test_too_little_fresh_text_names_the_tokens_needed_and_available(units):
    available = tokens_of(units)
    with pytest.raises(FreshShortage, match=rf"need {3 * available} tokens .* only {available} are held aside"):
        fresh_samples(units, samples=3, budget=available, seed=0)


def test_the_fresh_pool_is_human_text_only_and_generation_k_takes_sample_k(tokenizer, units):
    budget = tokens_of(units) // 4
    cut = token_cutter(tokenizer)
    samples = fresh_samples(units, samples=2, budget=budget, seed=0, cut=cut)
    strategy = Strategy.parse("fresh")
    assert strategy.keeps_human and strategy.human_only and not strategy.writes
    pool, stats = build_pool(strategy, generation=2, human=units, synthetic=[[], []], budget=budget, seed=0, cut=cut)
    assert sorted(u["id"] for u in pool) == sorted(u["id"] for u in samples[1])
    assert stats["origin_tokens"] == {"human": budget} and stats["synthetic_tokens"] == 0
    written = [{"id": "gen0/plain/0/0", "contents": "x", "metadata": {"source": "synthetic", "tokens": 1}}]
    with pytest.raises(ValueError, match="human text only"):
        build_pool(strategy, generation=1, human=units + written, synthetic=[[]], budget=tokens_of(units) + 1,
                   seed=0, cut=cut)


@pytest.mark.parametrize("preset", ["quick", "smol"])
def test_the_published_presets_keep_the_last_step_so_every_seed_trains_the_whole_dose(preset):
    # A later generation of quick used to keep the best of 4 checkpoints by validation perplexity, so the kept
    # model's trained tokens could differ between seeds; the primary comparisons need the same dose in every seed.
    from rag_bench.collapse.data import checkpoint_every
    from rag_bench.config import collapse_preset

    cfg = collapse_preset(preset)
    steps = cfg.next_train.max_steps
    assert checkpoint_every(steps, cfg) == steps
