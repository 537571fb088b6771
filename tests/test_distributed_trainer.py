"""Ray Train: the training loop on two TorchTrainer workers of a real local cluster gives the same model as one
process (held-out perplexity within float-order noise) and the same checkpoint layout; `rag-bench train --ray`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rag_bench.cli import main
from rag_bench.config import ModelConfig, TrainConfig
from rag_bench.records import read_jsonl

TEXTS = [f"Country {i} | Geography | Capital: City{i}\nCountry {i} | Economy | Exports: grain, tin, wool {i}\n" * 3
         for i in range(40)]
CFG = TrainConfig(model=ModelConfig.preset("tiny"), max_steps=6, batch_size=8, warmup_steps=1, eval_every=3,
                  save_every=3, eval_max_texts=4, probe_count=0)


def heldout_ppl(model_dir: Path) -> list[float]:
    return [row["heldout_ppl"] for row in read_jsonl(model_dir / "train_log.jsonl") if "heldout_ppl" in row]


def test_the_cli_trains_on_two_ray_workers_the_model_one_process_trains_and_refuses_index_neighbours(
        ray_cluster, tmp_path: Path, capsys):
    """One Ray Train run (`rag-bench train --ray`, which calls train_on_ray) against the same command without Ray."""
    corpus, config = tmp_path / "c.jsonl", tmp_path / "train.json"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "contents": t, "metadata": {
        "split": "heldout" if i < 4 else "train"}}) + "\n" for i, t in enumerate(TEXTS)))  # held out: TEXTS[:4]
    config.write_text(json.dumps(CFG.to_dict()))
    args = ["train", "--corpus", str(corpus), "--config", str(config), "--data-dir", str(tmp_path)]
    on_ray = [*args, "--out", str(tmp_path / "ray"), "--ray", ray_cluster, "--workers", "2"]
    assert main([*on_ray, "--retrieval-share", "0.2", "--index", "factbook"]) == 2
    assert "neighbours from an index are not shipped to Ray workers" in capsys.readouterr().err
    assert not (tmp_path / "ray").exists()  # refused before any work
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker: the same floats need the same thread count
    try:
        assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert main(on_ray) == 0
    plain, ray = tmp_path / "plain" / "model", tmp_path / "ray" / "model"
    assert (ray / "model.safetensors").is_file()
    assert sorted(p.name for p in ray.iterdir()) == sorted(p.name for p in plain.iterdir())
    assert (tmp_path / "ray" / "last" / "trainer_state.pt").is_file()  # resumable from OUT/last, with or without Ray
    expected, got = heldout_ppl(plain), heldout_ppl(ray)
    assert len(got) == len(expected) == 2
    assert all(abs(a - b) <= 0.02 * a for a, b in zip(expected, got, strict=True)), (expected, got)
