"""EvalConfig's modes and template, and the one dev-chosen reader (ReaderConfig / DEFAULT_READER)."""

from __future__ import annotations

import pytest

from rag_bench.config import DEFAULT_READER, ConfigError, EvalConfig, ReaderConfig
from rag_bench.prompt import list_templates


def test_the_default_reader_names_a_registered_template_and_a_retriever():
    assert DEFAULT_READER.template in list_templates()
    assert DEFAULT_READER.retrieval in ("dense", "bm25", "hybrid") and DEFAULT_READER.k >= 1
    assert DEFAULT_READER.grounded_mode == {"free": "grounded", "span": "grounded_span", "scored": "grounded_scored"}[
        DEFAULT_READER.answers]
    assert ReaderConfig.from_dict(DEFAULT_READER.to_dict()) == DEFAULT_READER


def test_a_reader_with_no_passages_or_no_tokens_is_refused():
    with pytest.raises(ConfigError, match="k, max_new_tokens and span_words must be >= 1"):
        ReaderConfig(k=0)
    with pytest.raises(ConfigError, match="k, max_new_tokens and span_words must be >= 1"):
        ReaderConfig(max_new_tokens=0)


def test_eval_config_takes_the_oracle_modes_and_a_template():
    cfg = EvalConfig(modes=("closed", "grounded", "oracle", "oracle_span"), template="short")
    assert EvalConfig.from_dict(cfg.to_dict()) == cfg
    assert EvalConfig().template == "auto" and EvalConfig().decode.max_new_tokens >= 48
    with pytest.raises(ConfigError, match="modes must be distinct names"):
        EvalConfig(modes=("oracle", "psychic"))


def test_the_reader_over_a_dense_index_is_the_best_scored_reader_of_the_dev_grid():
    """INDEXED_READER is the scored reader that read best on bench/results/reader_grid.json's dev probes, and the
    reader without a dense index (DEFAULT_READER) is the best of those that need none (bm25)."""
    import json
    from pathlib import Path

    from rag_bench.config import INDEXED_READER, reader_for

    grid = json.loads((Path(__file__).resolve().parents[1] / "bench" / "results" / "reader_grid.json").read_text())
    assert grid["split"] == "dev"
    rows = [r for r in grid["compare"] if r["answers"] == "scored" and "grounded" in r]
    best = max(rows, key=lambda r: r["grounded"]["contains"])
    bm25 = max((r for r in rows if r["retrieval"] == "bm25"), key=lambda r: r["grounded"]["contains"])
    assert (INDEXED_READER.retrieval, INDEXED_READER.k) == (best["retrieval"], best["k"]) == ("hybrid", 3)
    assert (DEFAULT_READER.retrieval, DEFAULT_READER.k) == (bm25["retrieval"], bm25["k"])
    assert reader_for(True) == INDEXED_READER and reader_for(False) == DEFAULT_READER
    assert INDEXED_READER.replace(retrieval="bm25", k=5) == DEFAULT_READER  # only retrieval and k differ
