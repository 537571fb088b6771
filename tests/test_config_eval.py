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
