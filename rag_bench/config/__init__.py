"""Frozen, keyword-only config dataclasses: one per stage, every field with a default.

Each config round-trips through JSON (``to_dict`` / ``from_dict`` / ``from_file``), and a
malformed file is refused before any work with the offending key named::

    from rag_bench.config import IndexConfig
    cfg = IndexConfig.from_file("index.json")   # ConfigError: index.json: unknown key 'chunk_sise'

The resolved config is saved beside every index, checkpoint and result. Every name is imported from here;
the modules behind them, by concern:

* ``base``: ``ConfigBase`` (JSON round trip, validation) and ``ConfigError``;
* ``index``: ``CorpusConfig``, ``IndexConfig``;
* ``model``: ``ModelConfig`` and its presets, ``DecodeConfig``, ``TrainConfig`` (generation 0);
* ``eval``: ``EvalConfig``;
* ``collapse``: ``CollapseConfig``, the data strategies' names and ``parse_strategy``;
* ``presets``: ``collapse_preset`` (tiny, quick, full; smol and paper come from ``presets_pretrained``);
* ``presets_pretrained``: the smol and paper presets on the offline SmolLM2 base (a registry name, not an import).
"""

from rag_bench.config.base import ConfigBase, ConfigError
from rag_bench.config.collapse import FILTER_KINDS, STRATEGY_KINDS, CollapseConfig, parse_strategy
from rag_bench.config.eval import DEFAULT_READER, INDEXED_READER, EvalConfig, ReaderConfig, reader_for
from rag_bench.config.index import CorpusConfig, IndexConfig
from rag_bench.config.model import MODEL_PRESETS, DecodeConfig, ModelConfig, TrainConfig
from rag_bench.config.presets import COLLAPSE_PRESETS, READER_K, collapse_preset

__all__ = ["COLLAPSE_PRESETS", "DEFAULT_READER", "FILTER_KINDS", "INDEXED_READER", "MODEL_PRESETS", "READER_K",
           "STRATEGY_KINDS", "CollapseConfig", "ConfigBase", "ConfigError", "CorpusConfig", "DecodeConfig",
           "EvalConfig", "IndexConfig", "ModelConfig", "ReaderConfig", "TrainConfig", "collapse_preset",
           "parse_strategy", "reader_for"]
