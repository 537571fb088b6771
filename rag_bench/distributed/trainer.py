"""Training past one device: ``rag_bench.training.loop.train`` under Ray Train's ``TorchTrainer``, same checkpoints.

    rag-bench train --model-size base --max-steps 2000 --ray auto --workers 8           # 8 CPU workers
    rag-bench train --model-size base --ray auto --workers 4 --gpu                      # one GPU each

    from rag_bench.distributed.trainer import train_on_ray
    train_on_ray(cfg, train_texts=texts, heldout_texts=heldout, out_dir="models/m", workers=2)

Every Ray Train worker runs the one training loop of rag_bench.train with the same arguments. TorchTrainer has
already joined the workers in a torch process group (gloo on CPUs, NCCL on GPUs); the loop reads WORLD_SIZE,
RANK and LOCAL_RANK as under ``torchrun``, takes its share of each step's rows (``rows[rank::world]``, each
batch a pure function of seed and step) and DDP averages the gradients, so a step sees the same rows as one
process would. Rank 0 writes ``OUT/last`` and ``OUT/model`` exactly as without Ray, on a file system every node
sees; Ray Train's own checkpoint storage holds nothing (``OUT/ray_train`` keeps its run records), so a stopped
run resumes from ``OUT/last`` with or without Ray, and with any number of workers.

Multi-node: start Ray on each node (``ray start --head`` on one, ``ray start --address HEAD:6379`` on the
others) with the same checkout and virtualenv and a shared OUT folder, then give ``--ray auto`` on the head.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_bench.distributed.cluster import connect


def worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the rank environment the loop reads, then ``rag_bench.training.loop.train``."""
    import ray.train
    import torch

    from rag_bench.collapse.strategies import PoolNeighbours
    from rag_bench.config import TrainConfig
    from rag_bench.training.loop import train

    context = ray.train.get_context()
    os.environ.update(WORLD_SIZE=str(context.get_world_size()), RANK=str(context.get_world_rank()),
                      LOCAL_RANK=str(context.get_local_rank()))
    torch.set_num_threads(config["threads"])
    cfg = TrainConfig.from_dict(config["cfg"])
    texts = config["train_texts"]
    neighbours = PoolNeighbours(texts, k=config["neighbours_k"]) if cfg.retrieval_share > 0 else None
    train(cfg, train_texts=texts, heldout_texts=config["heldout_texts"], out_dir=config["out_dir"],
          neighbours=neighbours, base_model=config["base_model"])


def train_on_ray(cfg: Any, *, train_texts: Sequence[str], heldout_texts: Sequence[str], out_dir: str | Path,
                 workers: int, use_gpu: bool = False, threads: int = 1, address: str = "local",
                 base_model: str | Path | None = None, neighbours_k: int = 2) -> Path:
    """Train on ``workers`` Ray Train workers (``threads`` CPUs each, or one GPU each); returns ``OUT/model``.

    ``cfg.batch_size`` rows per step in all, split over the workers; with ``retrieval_share`` > 0 each worker
    builds BM25 neighbours over the training texts (the same ones ``rag-bench train`` builds without an index).
    """
    # Ray Train gives a worker group 60 s to start; on a busy machine workers importing torch take longer
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "600")
    connect(address)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"cfg": cfg.to_dict(), "train_texts": list(train_texts),
                           "heldout_texts": list(heldout_texts), "out_dir": str(out_dir), "threads": threads,
                           "base_model": str(Path(base_model).resolve()) if base_model else None,
                           "neighbours_k": neighbours_k},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                     resources_per_worker={"GPU": 1} if use_gpu else {"CPU": threads}),
        run_config=RunConfig(name="train", storage_path=str(out_dir / "ray_train")))
    trainer.fit()
    return out_dir / "model"
