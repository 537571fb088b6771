"""The training steps of a collapse run: generation 0 (through the shared cache) and every later generation.

    from rag_bench.collapse.train_steps import train_gen0, train_next
    train_gen0(runner)                                  # runner: a rag_bench.collapse.context.RunContext
    train_next(runner, Strategy.parse("replace"), 1)

Each trains into its generation folder (generation 0 into ``DATA_DIR/gen0_cache/<hash>``, then copied), keeps
the checkpoint with the lowest validation perplexity, and records its config, seeds, inputs, chosen checkpoint
and timings in the manifest; the ``train`` step is marked finished last, so a killed run retrains only the
model it was training.
"""

from __future__ import annotations

import fcntl
import functools
import shutil
from pathlib import Path
from typing import Any

import torch

from rag_bench.collapse.context import RunContext
from rag_bench.collapse.data import (
    base_model_dir,
    checkpoint_every,
    copy_guard,
    copy_model,
    curriculum_off,
    fact_guard,
    gen0_cache_key,
    next_steps,
    stable_seed,
)
from rag_bench.collapse.strategies import PoolNeighbours, Strategy, unit_origin
from rag_bench.lm import LM
from rag_bench.records import read_json, read_jsonl, sha256_file, write_json
from rag_bench.run_status import utc_now
from rag_bench.training.loop import train


def train_progress(runner: RunContext, step: int, max_steps: int, row: dict) -> None:
    """A training step done: the stage's fraction, and its step and loss on the page (docs/runs.md)."""
    runner.progress.update(step / max(1, max_steps), detail=f"step {step}/{max_steps}, loss {row['loss']:.3f}")


def train_gen0(runner: RunContext) -> None:
    cfg, texts = runner.cfg, runner.inputs.train_texts
    tcfg, copy_state, fact_state = runner.gen0_train

    def train_into(out_dir: Path) -> None:
        neighbours = PoolNeighbours(texts, k=cfg.neighbours_k) if tcfg.retrieval_share > 0 else None
        train(tcfg, train_texts=texts, heldout_texts=runner.inputs.heldout_texts, out_dir=out_dir,
              neighbours=neighbours, base_model=base_model_dir(cfg, runner.data_dir),
              on_step=functools.partial(train_progress, runner), origins=["human"] * len(texts))

    key, material = gen0_cache_key(cfg, runner.inputs, tcfg, base_model_dir(cfg, runner.data_dir))
    cache = runner.data_dir / "gen0_cache" / key
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f"{key}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            runner.progress.log(f"another run is training generation 0 {key}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (cache / "done.json").is_file():
            runner.progress.log(f"generation 0 taken from the cache {cache}")
        else:
            write_json(cache / "key.json", material)
            train_into(cache)
            write_json(cache / "checkpoint.json", chosen_checkpoint(cache))
            shutil.rmtree(cache / "last", ignore_errors=True)
            write_json(cache / "done.json", {"finished": utc_now()})
    g0 = runner.gen_dir(None, 0)
    copy_model(cache / "model", g0 / "model")
    human = runner.file_info(runner.inputs.train_path, texts)
    runner.update_manifest(
        g0, config={"train": tcfg.to_dict(), "init": "base_model" if cfg.base_model else "scratch",
                    "base_model": cfg.base_model or None,
                    "run_config_sha256": sha256_file(runner.run_dir / "config.json")},
        seeds={"train": tcfg.seed},
        inputs={"train_texts": human, "neighbours": {"source": "train_texts", "passages_k": cfg.neighbours_k,
                                                     "enabled": tcfg.retrieval_share > 0},
                "copy_curriculum": {"source": "train_texts", "state": copy_state},
                "fact_rows": {"source": "train_texts", "state": fact_state},
                "heldout_texts": {**runner.file_info(runner.inputs.heldout_path),
                                  "use": "validation: checkpoint selection"},
                "eval_texts": {**runner.file_info(runner.inputs.eval_path), "use": "measurement (perplexity, "
                               "diversity prompts)"}},
        gen0_cache={"key": key, "path": str(cache)},
        trained_tokens=model_timings(g0).get("trained_tokens", {}), train=model_timings(g0),
        checkpoint=read_json(cache / "checkpoint.json") if (cache / "checkpoint.json").is_file() else {},
        steps={"train": {"finished": utc_now()}})


def chosen_checkpoint(out_dir: Path) -> dict[str, Any]:
    """Which step the kept model is: the lowest validation perplexity among the evaluated steps (read from the
    full log in ``last/``, before it is removed; ``model/`` holds the log up to the kept step)."""
    log = next((p for p in (out_dir / "last" / "train_log.jsonl", out_dir / "model" / "train_log.jsonl")
                if p.is_file()), None)
    rows = read_jsonl(log) if log else []
    scored = [(r["step"], r["heldout_ppl"]) for r in rows if "heldout_ppl" in r]
    best = [r["step"] for r in rows if r.get("best")]
    return {"rule": "lowest validation perplexity among evenly spaced steps (checkpoint_every)",
            "validation_ppl_by_step": dict(scored), "chosen_step": best[-1] if best else None}


def model_timings(gen_dir: Path) -> dict[str, Any]:
    path = gen_dir / "model" / "timings.json"
    return read_json(path) if path.is_file() else {}


def train_next(runner: RunContext, strategy: Strategy, k: int) -> None:
    cfg, gen_dir = runner.cfg, runner.gen_dir(strategy, k)
    rows = read_jsonl(gen_dir / "pool.jsonl")
    texts = [r["contents"] for r in rows]
    block = min(cfg.train.model.n_positions, runner.gen0.max_positions)
    pool_tokens = sum(runner.count_tokens(texts))
    unit_tokens = sum(r["metadata"]["tokens"] for r in rows)  # the budget's unit: a pool cut to it holds exactly it
    steps = next_steps(cfg, runner.budget, block, strategy.compute_scale(unit_tokens, runner.budget))
    nt = cfg.next_train if cfg.next_curriculum else curriculum_off(cfg.next_train)
    tcfg = nt.replace(model=cfg.train.model, seed=stable_seed(cfg.seed, "train", k, strategy.folder),
                      max_steps=steps, warmup_steps=min(nt.warmup_steps, steps // 4),
                      eval_every=checkpoint_every(steps, cfg), save_every=min(nt.save_every, steps))
    tcfg, copy_state = copy_guard(tcfg, texts)
    tcfg, fact_state = fact_guard(tcfg, texts, runner.fact_fields)
    neighbours = PoolNeighbours(texts, k=cfg.neighbours_k) if tcfg.retrieval_share > 0 else None
    init = init_model(runner, strategy, k, gen_dir)
    train(tcfg, train_texts=texts, heldout_texts=runner.inputs.heldout_texts, out_dir=gen_dir,
          neighbours=neighbours, base_model=init, on_step=functools.partial(train_progress, runner),
          origins=[unit_origin(r) for r in rows])
    checkpoint = chosen_checkpoint(gen_dir)
    shutil.rmtree(gen_dir / "last", ignore_errors=True)
    shutil.rmtree(gen_dir / "init", ignore_errors=True)
    pool_info = {**runner.file_info(gen_dir / "pool.jsonl"), "texts": len(texts), "tokens": pool_tokens}
    curriculum = "on: built from the pool only" if cfg.next_curriculum else "off (next_curriculum=false)"
    timings = read_json(gen_dir / "model" / "timings.json")
    runner.update_manifest(
        gen_dir, config={"train": tcfg.to_dict(), "init": cfg.init, "init_from": runner.rel(init)
                         if Path(init).is_relative_to(runner.run_dir) else str(init), "strategy": strategy.name,
                         "keeps_human": strategy.keeps_human, "curriculum": curriculum,
                         "run_config_sha256": sha256_file(runner.run_dir / "config.json")},
        seeds={"train": tcfg.seed},
        inputs={"train_texts": pool_info,
                "neighbours": {"source": "train_texts", "passages_k": cfg.neighbours_k,
                               "enabled": neighbours is not None},
                "copy_curriculum": {"source": "train_texts", "state": copy_state},
                "fact_rows": {"source": "train_texts", "state": fact_state},
                "heldout_texts": {**runner.file_info(runner.inputs.heldout_path),
                                  "use": "validation: the best of the evenly spaced checkpoints, as in gen 0"},
                "eval_texts": {**runner.file_info(runner.inputs.eval_path), "use": "measurement"}},
        trained_tokens=timings.get("trained_tokens", {}), checkpoint=checkpoint,
        dose=dose(tcfg, block, budget=runner.budget, pool_tokens=unit_tokens, retokenized=pool_tokens,
                  kept_step=checkpoint["chosen_step"]),
        train=timings, steps={"train": {"finished": utc_now()}})


def dose(tcfg: Any, block: int, *, budget: int, pool_tokens: int, retokenized: int,
         kept_step: int | None) -> dict[str, int | None]:
    """What a later generation trained on, the same in every seed of a config (issue 20): optimizer steps, tokens
    trained (steps x batch x block), the pool budget and the pool's tokens (``metadata.tokens``). Not fixed, and
    recorded for that reason: ``pool_tokens_retokenized`` (the pool's texts encoded again: a model's written ids
    need not be the tokenizer's own encoding of their text) and ``kept_step`` (the checkpoint kept, by validation
    perplexity, when a generation has more than one: ``checkpoint_every``)."""
    return {"steps": tcfg.max_steps, "batch_size": tcfg.batch_size, "block": block,
            "train_tokens": tcfg.max_steps * tcfg.batch_size * block, "budget_tokens": budget,
            "pool_tokens": pool_tokens, "pool_tokens_retokenized": retokenized, "kept_step": kept_step}


def init_model(runner: RunContext, strategy: Strategy, k: int, gen_dir: Path) -> Path:
    """Where generation k starts: generation k-1, the base model, or a fresh model saved to ``gen_dir/init``."""
    if runner.cfg.init == "previous":
        return runner.gen_dir(strategy, k - 1) / "model"
    if runner.cfg.init == "base":
        return base_model_dir(runner.cfg, runner.data_dir)
    init = gen_dir / "init"
    if not (init / "config.json").is_file():
        torch.manual_seed(stable_seed(runner.cfg.seed, "init", k, strategy.folder))
        fresh = type(runner.gen0.model)(runner.gen0.model.config)
        LM(fresh, runner.gen0.tokenizer, config=runner.gen0.config, device="cpu").save(init)
    return init
