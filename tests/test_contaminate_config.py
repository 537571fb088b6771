"""ContaminateConfig and the share list: a share outside [0, 1) is one clear error."""

from __future__ import annotations

import pytest

from rag_bench.config import ConfigError
from rag_bench.contaminate.config import ContaminateConfig, parse_shares, rewrites_for


def test_shares_are_parsed_sorted_and_distinct():
    assert parse_shares("0.5, 0,0.9,0.5") == (0.0, 0.5, 0.9)


@pytest.mark.parametrize("text", ["1", "1.5", "-0.1", "abc", ""])
def test_a_share_outside_the_range_or_not_a_number_is_refused(text: str):
    with pytest.raises(ConfigError, match="--shares"):
        parse_shares(text)


def test_config_refuses_a_share_of_one_and_unknown_defences():
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        ContaminateConfig(shares=(0.0, 1.0))
    with pytest.raises(ConfigError, match="defences"):
        ContaminateConfig(defences=("none", "magic"))
    cfg = ContaminateConfig.from_dict(ContaminateConfig(limit=5).to_dict())
    assert cfg.limit == 5 and cfg.shares == (0.0, 0.25, 0.5, 0.75, 0.9)


def test_rewrites_make_the_share_of_the_pool():
    assert [rewrites_for(s, 10) for s in (0.0, 0.25, 0.5, 0.75, 0.9)] == [0, 3, 10, 30, 90]
    assert rewrites_for(0.9, 10) / (10 + rewrites_for(0.9, 10)) == pytest.approx(0.9)


def test_the_writer_is_named_and_checked():
    assert ContaminateConfig().writer_tag() == "" and ContaminateConfig().decoding() == "sampling at temperature 1"
    fluent = ContaminateConfig(writer="restate", writer_temperature=0.3)
    assert fluent.writer_tag() == "-restate-t0.3" and fluent.decoding() == "sampling at temperature 0.3"
    assert ContaminateConfig(writer_temperature=0).writer_tag() == "-generation-greedy"
    assert ContaminateConfig(seed=2).writer_tag() == "-seed2"  # seeds never share rewrites or indexes
    looped = ContaminateConfig(writer="restate", writer_temperature=0, writer_repetition_penalty=1.3)
    assert looped.writer_tag() == "-restate-greedy-rp1.3" and looped.decoding() == "greedy, repetition penalty 1.3"
    with pytest.raises(ConfigError, match="writer"):
        ContaminateConfig(writer="gpt")
    with pytest.raises(ConfigError, match="ks"):
        ContaminateConfig(ks=(0, 3))
    with pytest.raises(ConfigError, match="ks"):
        ContaminateConfig(trusted_depths=())
