"""The optimizer and learning-rate schedule: warm-up, the hold through the copy warm-up, cosine to the floor."""

from __future__ import annotations

import math

import pytest

from rag_bench.config import ModelConfig, TrainConfig
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer
from rag_bench.training.schedule import learning_rate, make_optimizer


def test_the_rate_warms_up_holds_through_the_copy_warm_up_then_decays_to_its_floor():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=110, min_lr_ratio=0.1, copy_share=0.5, copy_warmup_steps=30)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4) and learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 20) == learning_rate(cfg, 30) == pytest.approx(1e-3)  # held, copy_lr_hold
    assert learning_rate(cfg, 70) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2))))
    assert learning_rate(cfg, 110) == pytest.approx(1e-4)
    unheld = cfg.replace(copy_lr_hold=False)
    assert learning_rate(unheld, 30) < learning_rate(unheld, 10)


def test_embeddings_norms_and_biases_are_not_decayed_and_the_step_is_fused():
    texts = ["Algeria | Government | Capital: Algiers"] * 4
    cfg = TrainConfig(model=ModelConfig.preset("tiny", arch="gpt2"), weight_decay=0.1)
    lm = LM.build(cfg.model, train_tokenizer(texts, 300), seed=0, device="cpu")
    optimizer = make_optimizer(lm.model, cfg)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0 and decayed["fused"]
    names = {id(p): n for n, p in lm.model.named_parameters()}
    assert all(p.dim() >= 2 and "wte" not in names[id(p)] for p in decayed["params"])
    assert any("wte" in names[id(p)] for p in plain["params"]) and any(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len({id(p) for p in lm.model.parameters()})
