"""Config dataclasses: defaults, JSON round trip, and refusal naming the offending key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rag_bench import config as config_module
from rag_bench.config import ConfigBase, ConfigError, CorpusConfig, IndexConfig

CONFIGS = [obj for obj in vars(config_module).values()
           if isinstance(obj, type) and issubclass(obj, ConfigBase) and obj is not ConfigBase]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_config_is_frozen_keyword_only_with_defaults(cls):
    cfg = cls()
    assert cls.__dataclass_params__.frozen
    assert all(f.kw_only for f in dataclasses.fields(cls))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, dataclasses.fields(cls)[0].name, None)
    assert cls.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_from_file_names_the_bad_key(tmp_path: Path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"chunk_sise": 10}))
    with pytest.raises(ConfigError, match=r"cfg\.json: unknown key 'chunk_sise'"):
        CorpusConfig.from_file(path)
    path.write_text(json.dumps({"chunk_size": "big"}))
    with pytest.raises(ConfigError, match="key 'chunk_size': expected int"):
        CorpusConfig.from_file(path)
    path.write_text(json.dumps({"dtype": "float8"}))
    with pytest.raises(ConfigError, match="'float8' is not one of"):
        IndexConfig.from_file(path)
    path.write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        IndexConfig.from_file(path)


def test_values_are_validated():
    with pytest.raises(ConfigError, match="chunk_overlap"):
        CorpusConfig(chunk_size=100, chunk_overlap=100)
    assert CorpusConfig.from_dict({"extensions": [".txt"]}).extensions == (".txt",)


def test_training_row_shares_are_validated():
    from rag_bench.config import TrainConfig

    assert TrainConfig(retrieval_share=0.25, copy_share=0.25, fact_share=0.5).fact_share == 0.5
    for shares in ({"fact_share": -0.1}, {"fact_share": 0.5, "copy_share": 0.375, "retrieval_share": 0.25},
                   {"copy_invented_share": 1.5}):
        with pytest.raises(ConfigError, match="must be in"):
            TrainConfig(**shares)
