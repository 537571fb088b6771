"""Paired bootstrap intervals against cases computed by hand."""

from __future__ import annotations

import math

import pytest

from rag_bench.eval.bootstrap import bootstrap_means, difference, interval, read_scores
from rag_bench.records import write_jsonl


def scores(values: list[float], prefix: str = "p") -> dict[str, float]:
    return {f"{prefix}{i}": v for i, v in enumerate(values)}


def test_a_paired_difference_matches_the_hand_computed_interval():
    # a = [1, 1, 0, 0], b = [1, 1, 0, 1]: the paired differences are d = [0, 0, 0, 1], mean 0.25.
    # A resample of 4 probes has k ones with k ~ Binomial(4, 1/4): P(k=0) = 81/256 = 0.316, so the 2.5% point
    # is 0; P(k<=2) = 243/256 = 0.949 < 0.975 <= P(k<=3) = 255/256, so the 97.5% point is 3/4 = 0.75.
    # The bootstrap SE is sqrt(p(1-p)/n) = sqrt(0.25 * 0.75 / 4) = 0.2165.
    a, b = scores([1, 1, 0, 0]), scores([1, 1, 0, 1])
    result = difference([a], [b], replicates=20_000)
    assert (result.value, result.low, result.high, result.probes, result.seeds) == (0.25, 0.0, 0.75, 4, 1)
    import numpy as np

    means = bootstrap_means(np.array([[0, 0, 0, 1.0]]), replicates=20_000)
    assert means.std() == pytest.approx(math.sqrt(0.25 * 0.75 / 4), rel=0.03)


def test_pairing_makes_a_shared_difference_exact():
    # the same 200 probes, b right on exactly 10 more of them: an unpaired interval would be about +-0.1 wide,
    # the paired one only reflects which probes changed
    a = scores([i % 2 for i in range(200)])
    b = {k: 1.0 if int(k[1:]) < 20 else v for k, v in a.items()}
    result = difference([a], [b])
    assert result.value == pytest.approx(0.05) and result.excludes_zero
    assert result.high - result.low < 0.07
    same = difference([a], [a])
    assert (same.low, same.high) == (0.0, 0.0) and not same.excludes_zero


def test_seeds_are_resampled_and_probes_shared():
    # two seeds that disagree completely: the seed level alone spreads the interval to [0, 1]
    one, zero = scores([1.0] * 50), scores([0.0] * 50)
    result = interval([one, zero], replicates=4000)
    assert result.value == 0.5 and result.seeds == 2 and (result.low, result.high) == (0.0, 1.0)
    with pytest.raises(ValueError, match="same number"):
        difference([one], [one, zero])


def test_only_probes_every_side_answered_count(tmp_path):
    path = tmp_path / "samples_closed.jsonl"
    write_jsonl(path, [{"id": "p0", "scores": {"exact_match": 1.0}}, {"id": "p1", "scores": {"exact_match": 0.0}},
                       {"id": "p2", "scores": {"exact_match": 1.0}}])
    assert read_scores(path) == {"p0": 1.0, "p1": 0.0, "p2": 1.0}
    assert read_scores(path, ids={"p0", "p1"}) == {"p0": 1.0, "p1": 0.0}
    result = difference([read_scores(path)], [{"p0": 0.0, "p2": 0.0, "p9": 1.0}])
    assert result.probes == 2 and result.value == -1.0


def test_perplexity_intervals_resample_texts_and_pair_them():
    from rag_bench.eval.bootstrap import perplexity_interval

    # two texts of 10 tokens: NLL 10 and 30 nats; the perplexity is exp(40 / 20) = e^2. A resample holds both
    # (p = 1/2): e^2, or one text twice: e^1 or e^3 (p = 1/4 each), so the 95% interval is [e, e^3].
    a = [[[10.0, 10], [30.0, 10]]]
    result = perplexity_interval(a, replicates=4000)
    assert result.value == pytest.approx(math.e**2)
    assert (result.low, result.high) == (pytest.approx(math.e), pytest.approx(math.e**3))
    same = perplexity_interval(a, a)
    assert same.value == 0.0 and (same.low, same.high) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same seeds and texts"):
        perplexity_interval(a, [[[10.0, 10]]])


def test_the_command_prints_a_difference_on_a_split(tmp_path, capsys):
    from rag_bench.eval.bootstrap import main
    from rag_bench.eval.splits import probe_split

    ids = [f"q{i}" for i in range(40)]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, [{"id": i, "scores": {"exact_match": 0.0}} for i in ids])
    write_jsonl(b, [{"id": i, "scores": {"exact_match": 1.0}} for i in ids])
    assert main([str(a), str(b), "--split", "dev"]) == 0
    dev = sum(probe_split(i) == "dev" for i in ids)
    assert f"exact_match +1.000 [+1.000, +1.000] over {dev} dev probes" in capsys.readouterr().out
