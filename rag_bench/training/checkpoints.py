"""Training checkpoints: ``out_dir/model`` (the best held-out perplexity) and ``out_dir/last`` (to resume from).

    from rag_bench.training.checkpoints import load_train_log, save_checkpoint
    save_checkpoint(lm, cfg, log_rows, timings, out_dir / "last", trainer_state)   # swapped in atomically
    rows = load_train_log("data/runs/quick-factbook/gen_0/model")                  # train_log.jsonl

A checkpoint folder holds the model and tokenizer, ``train_config.json``, ``train_log.jsonl``, ``timings.json`` and,
for ``last``, ``trainer_state.pt`` (optimizer, step, best perplexity, RNG state, LoRA adapters).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rag_bench.config import TrainConfig
from rag_bench.lm import LM
from rag_bench.models.lora import plain_lm
from rag_bench.records import read_json, read_jsonl, replace_dir, write_json, write_jsonl

STATE_FILE = "trainer_state.pt"


def save_checkpoint(lm: LM, cfg: TrainConfig, log_rows: list[dict], timings: dict, path: Path,
                     state: dict | None) -> None:
    """Model, tokenizer, config, log and timings (and the trainer state for ``last``), swapped in atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    plain_lm(lm).save(tmp)
    write_json(tmp / "train_config.json", cfg.to_dict())
    write_jsonl(tmp / "train_log.jsonl", log_rows)
    write_json(tmp / "timings.json", timings)
    if state is not None:
        torch.save(state, tmp / STATE_FILE)
    replace_dir(tmp, path)


def load_train_log(model_dir: str | Path) -> list[dict]:
    return read_jsonl(Path(model_dir) / "train_log.jsonl")


def load_timings(model_dir: str | Path) -> dict:
    return read_json(Path(model_dir) / "timings.json")
