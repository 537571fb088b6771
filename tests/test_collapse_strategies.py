"""Data strategies: what each pool holds (mix share, accumulate growth, subsample budget, filters, watermark)."""

from __future__ import annotations

import pytest

from rag_bench.collapse.strategies import PoolNeighbours, Strategy, build_pool, detection_scores, tokens_of
from rag_bench.config import ConfigError

BUDGET = 1000


def unit(uid: str, text: str, tokens: int, source: str, **meta) -> dict:
    return {"id": uid, "contents": text, "metadata": {"source": source, "tokens": tokens, **meta}}


@pytest.fixture
def human() -> list[dict]:
    return [unit(f"human/{i}", f"Country{i} | Geography | Area: {i} sq km", 20, "human") for i in range(50)]


def generation(g: int, n: int = 50, tokens: int = 20) -> list[dict]:
    return [unit(f"gen{g}/plain/{i}/0", f"written by generation {g} number {i} zz", tokens, "synthetic",
                 gen0_ppl=float(100 + i), generation=g) for i in range(n)]


def pool_of(name: str, human: list[dict], k: int, **kwargs):
    return build_pool(Strategy.parse(name), generation=k, human=human, synthetic=[generation(g) for g in range(k)],
                      budget=BUDGET, seed=0, **kwargs)


def test_replace_holds_only_the_newest_generation(human):
    pool, stats = pool_of("replace", human, 3)
    assert {u["id"].split("/")[0] for u in pool} == {"gen2"}
    assert stats["human_tokens"] == 0 and stats["human_share"] == 0.0 and stats["tokens"] == BUDGET


def test_mix_keeps_the_human_share_and_resamples_it_each_generation(human):
    pool1, stats1 = pool_of("mix:0.3", human, 1)
    pool2, stats2 = pool_of("mix:0.3", human, 2)
    for pool, stats in ((pool1, stats1), (pool2, stats2)):
        assert stats["human_tokens"] == 300 and stats["synthetic_tokens"] == 700 and tokens_of(pool) == 1000
        assert stats["human_share"] == pytest.approx(0.3)
    assert {u["id"] for u in pool1 if u["metadata"]["source"] == "human"} != \
           {u["id"] for u in pool2 if u["metadata"]["source"] == "human"}
    assert {u["id"].split("/")[0] for u in pool2 if u["metadata"]["source"] == "synthetic"} == {"gen1"}
    again, _ = pool_of("mix:0.3", human, 2)
    assert again == pool2  # seeded: a resumed run builds the same pool


def test_accumulate_grows_and_accumulate_subsample_keeps_the_budget(human):
    sizes = [pool_of("accumulate", human, k)[1]["tokens"] for k in (1, 2, 3)]
    assert sizes == [tokens_of(human) + 1000 * k for k in (1, 2, 3)]
    pool, stats = pool_of("accumulate-subsample", human, 3)
    assert stats["tokens"] == BUDGET
    sources = {u["id"].split("/")[0] for u in pool}
    assert {"human", "gen0", "gen1", "gen2"} <= sources  # sampled from the whole union


def test_perplexity_filter_keeps_the_lowest_share_and_reports_it(human):
    pool, stats = pool_of("filter", human, 1, keep=0.4)
    assert len(pool) == 20
    assert max(u["metadata"]["gen0_ppl"] for u in pool) == 119.0
    assert stats["filter"]["by"] == "perplexity"
    assert stats["filter"]["kept_share_units"] == pytest.approx(0.4)
    assert stats["filter"]["kept_share_tokens"] == pytest.approx(0.4)


def test_dedup_filter_drops_near_duplicates(human):
    texts = ["the capital is Flying Fish Cove on the north coast"] * 3 + \
            ["the capital is Flying Fish Cove on the north shore"] + \
            [f"entirely different text about topic {i} and more words here" for i in range(4)]
    units = [unit(f"gen0/plain/{i}/0", t, 10, "synthetic") for i, t in enumerate(texts)]
    pool, stats = build_pool(Strategy.parse("filter:dedup"), generation=1, human=human, synthetic=[units],
                             budget=BUDGET, seed=0, dedup_ngram=4, dedup_threshold=0.5)
    kept = [u["contents"] for u in pool]
    assert kept.count(texts[0]) == 1 and texts[3] not in kept and len(kept) == 5
    assert stats["filter"]["kept_share_units"] == pytest.approx(5 / 8)


def test_watermark_web_removes_flagged_texts_and_reports_precision_recall(human):
    def detector(texts: list[str]) -> list[float]:  # a stand-in detector: flags 'zz' and one human text
        return [9.0 if ("zz" in t or t.startswith("Country7 ")) else 0.0 for t in texts]

    pool, stats = pool_of("watermark:0.5", human, 1, z_scores=detector, z_threshold=4.0)
    wm = stats["watermark"]
    assert wm["contamination"] == 0.5 and wm["synthetic"] == 25 and wm["recall"] == 1.0
    assert wm["precision"] == pytest.approx(25 / wm["flagged"])
    assert all(u["metadata"]["source"] == "human" for u in pool)
    assert stats["human_share"] == 1.0
    with pytest.raises(ValueError, match="detector"):
        pool_of("watermark", human, 1)


def test_detection_scores_handle_empty_sides():
    assert detection_scores([False, False], [False, False]) == {
        "precision": None, "recall": None, "flagged": 0, "true_positives": 0, "synthetic": 0, "human": 2}
    scores = detection_scores([True, True, False], [True, False, True])
    assert scores["precision"] == 0.5 and scores["recall"] == 0.5


def test_pool_neighbours_rank_the_pools_own_passages():
    texts = ["Norfolk Island | Government | Capital: Kingston", "Pitcairn | Government | Capital: Adamstown",
             "Cocos | Economy | Currency: Australian dollar"]
    neighbours = PoolNeighbours(texts, k=2)
    (found,) = neighbours(["Pitcairn | Government | Capital:"])
    assert found[0] == texts[1] and all(p in texts for p in found)
    assert neighbours(["zzzz"]) == [[]]


def test_strategy_names_and_folders():
    assert Strategy.parse("mix:0.1").folder == "mix-0.1"
    assert Strategy.parse("watermark").writer == "watermark" and Strategy.parse("filter:dedup").writer == "plain"
    for bad in ("mixx", "mix", "mix:2", "replace:1", "filter:length"):
        with pytest.raises(ConfigError, match="strategies"):
            Strategy.parse(bad)


def test_only_strategies_that_keep_human_data_may_hold_it(human):
    keeping = {name: Strategy.parse(name).keeps_human for name in
               ("replace", "grounded", "filter", "mix:0.1", "accumulate", "accumulate-fixed", "accumulate-subsample",
                "watermark")}
    assert keeping == {"replace": False, "grounded": False, "filter": False, "mix:0.1": True, "accumulate": True,
                       "accumulate-fixed": True, "accumulate-subsample": True, "watermark": True}
    with pytest.raises(ValueError, match="replace: its pool must hold no human text"):
        build_pool(Strategy.parse("replace"), generation=1, human=human, budget=BUDGET, seed=0,
                   synthetic=[human[:5] + generation(0)])  # a human unit slipped into what gen 0 "wrote"


def test_pools_count_their_tokens_by_origin(human):
    _, stats = pool_of("accumulate", human, 3)
    assert stats["origin_tokens"] == {"human": BUDGET, "gen_0": BUDGET, "gen_1": BUDGET, "gen_2": BUDGET}
    assert list(stats["origin_tokens"]) == ["human", "gen_0", "gen_1", "gen_2"]
    assert pool_of("replace", human, 2)[1]["origin_tokens"] == {"gen_1": BUDGET}


def test_accumulate_compute_grows_with_its_pool_and_the_fixed_variant_keeps_it():
    assert Strategy.parse("accumulate").compute_scale(3 * BUDGET, BUDGET) == 3.0
    assert Strategy.parse("accumulate-fixed").compute_scale(3 * BUDGET, BUDGET) == 1.0
    assert Strategy.parse("replace").compute_scale(BUDGET, BUDGET) == 1.0
    assert Strategy.parse("accumulate").compute_scale(BUDGET // 2, BUDGET) == 1.0  # never below fixed compute
