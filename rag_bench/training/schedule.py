"""The optimizer and the learning-rate schedule of the training loop.

    from rag_bench.training.schedule import learning_rate, make_optimizer
    optimizer = make_optimizer(lm.model, cfg)            # fused AdamW, no decay on embeddings, norms, biases
    lr = learning_rate(cfg, step)                        # warm-up, hold through the copy warm-up, cosine
"""

from __future__ import annotations

import math

import torch

from rag_bench.config import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on embeddings, norms and biases (decaying them only hurts small models).

    Fused (one kernel over each parameter, as transformers' Trainer defaults to) rather than foreach, whose chains of
    full-size temporaries made the step of the 135M SmolLM2 take 3.2x as long on 2 busy cores (1.79 s against 0.56 s,
    ``bench/smol_train_bench.py --optimizers-only``); a model trained here has too few parameters to notice.
    """
    decay, no_decay = [], []
    for name, param in {id(p): (n, p) for n, p in model.named_parameters()}.values():
        is_embedding = any(k in name for k in ("wte", "wpe", "embed_tokens", "lm_head"))
        (decay if param.dim() >= 2 and not is_embedding else no_decay).append(param)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, cfg.beta2),
                             fused=True)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, the peak held through the copy warm-up (``copy_lr_hold``), then cosine to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    start = cfg.warmup_steps
    if cfg.copy_lr_hold and cfg.copy_share > 0:
        start = max(start, cfg.copy_warmup_steps)
    progress = min(1.0, max(0, step - start) / max(1, cfg.max_steps - start))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
