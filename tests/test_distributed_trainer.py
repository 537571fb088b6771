"""Ray Train: the training loop on two TorchTrainer workers of a real local cluster gives the same model as one
process (held-out perplexity within float-order noise) and the same checkpoint layout; `rag-bench train --ray`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rag_bench.cli import main
from rag_bench.config import ModelConfig, TrainConfig
from rag_bench.distributed.trainer import train_on_ray
from rag_bench.records import read_jsonl
from rag_bench.training.loop import train

TEXTS = [f"Country {i} | Geography | Capital: City{i}\nCountry {i} | Economy | Exports: grain, tin, wool {i}\n" * 3
         for i in range(40)]
CFG = TrainConfig(model=ModelConfig.preset("tiny"), max_steps=6, batch_size=8, warmup_steps=1, eval_every=3,
                  save_every=3, eval_max_texts=4, probe_count=0)


def heldout_ppl(model_dir: Path) -> list[float]:
    return [row["heldout_ppl"] for row in read_jsonl(model_dir / "train_log.jsonl") if "heldout_ppl" in row]


def test_two_ray_train_workers_train_the_model_one_process_trains(ray_cluster, tmp_path: Path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plain = train(CFG, train_texts=TEXTS[4:], heldout_texts=TEXTS[:4], out_dir=tmp_path / "plain")
    finally:
        torch.set_num_threads(threads)
    on_ray = train_on_ray(CFG, train_texts=TEXTS[4:], heldout_texts=TEXTS[:4], out_dir=tmp_path / "ray", workers=2,
                          address=ray_cluster)
    assert sorted(p.name for p in on_ray.iterdir()) == sorted(p.name for p in plain.iterdir())
    assert (tmp_path / "ray" / "last" / "trainer_state.pt").is_file()  # resumable from OUT/last, with or without Ray
    expected, got = heldout_ppl(plain), heldout_ppl(on_ray)
    assert len(got) == len(expected) == 2
    assert all(abs(a - b) <= 0.02 * a for a, b in zip(expected, got, strict=True)), (expected, got)


def test_the_cli_trains_on_ray_and_refuses_index_neighbours(ray_cluster, tmp_path: Path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "contents": t, "metadata": {
        "split": "heldout" if i < 4 else "train"}}) + "\n" for i, t in enumerate(TEXTS)))
    args = ["train", "--corpus", str(corpus), "--out", str(tmp_path / "m"), "--model-size", "tiny", "--max-steps",
            "2", "--data-dir", str(tmp_path), "--ray", ray_cluster, "--workers", "2"]
    assert main([*args, "--retrieval-share", "0.2", "--index", "factbook"]) == 2
    assert "neighbours from an index are not shipped to Ray workers" in capsys.readouterr().err
    assert main(args) == 0
    assert (tmp_path / "m" / "model" / "model.safetensors").is_file()
