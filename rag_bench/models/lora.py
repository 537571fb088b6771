"""LoRA fine-tuning through PEFT (``TrainConfig.lora_rank > 0``): adapters on every linear layer of a base model.

    rag-bench collapse --preset smol --lora-rank 16        # every generation fine-tunes adapters, not all weights

    from rag_bench.models.lora import add_lora, lora_state, plain_lm
    add_lora(lm, cfg)                 # lm.model becomes a PeftModel; only the adapters train
    plain_lm(lm).save(path)           # a merged copy: an ordinary model folder that LM.load reads

Checkpoints hold merged weights, so every reader of a model folder (evaluation, the writer, the next
generation) sees an ordinary causal LM. A resumable checkpoint also keeps the adapters' own weights in the
trainer state (``lora_state``); a resumed run puts them back on the base model it started from, so it goes
on exactly where it stopped.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from rag_bench.config import TrainConfig
from rag_bench.lm import LM


def add_lora(lm: LM, cfg: TrainConfig, adapter_state: dict[str, Any] | None = None) -> None:
    """Wrap ``lm.model`` with rank-``cfg.lora_rank`` adapters (restored from ``adapter_state`` when given)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict  # peft loads in seconds: only when used

    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                        bias="none", task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):  # A is drawn at random: the same adapters for the same seed
        torch.manual_seed(cfg.seed)
        lm.model = get_peft_model(lm.model, config)
    if adapter_state is not None:
        result = set_peft_model_state_dict(lm.model, adapter_state)
        if result.unexpected_keys:
            raise ValueError(f"the saved LoRA adapters do not fit this model: {result.unexpected_keys[0]!r}")


def lora_state(model: Any) -> dict[str, Any] | None:
    """The adapters' weights of a PeftModel (None for an ordinary model)."""
    if not is_lora(model):
        return None
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model)


def is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def plain_lm(lm: LM) -> LM:
    """``lm`` itself, or for a LoRA model an LM holding a merged copy (the adapters in training stay untouched)."""
    if not is_lora(lm.model):
        return lm
    merged = copy.deepcopy(lm.model).merge_and_unload()
    return LM(merged, lm.tokenizer, config=lm.config, device=lm.device)
