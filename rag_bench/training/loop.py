"""The training loop (``rag-bench train``): train generation 0 from scratch (or fine-tune ``--base-model``) on a corpus.

    from rag_bench.config import TrainConfig
    from rag_bench.training.loop import train
    model_dir = train(TrainConfig(), train_texts=texts, heldout_texts=heldout, out_dir="runs/r1/gen_0",
                      neighbours=retriever_fn)          # -> runs/r1/gen_0/model (best held-out perplexity)

Each optimizer step sees ``batch_size`` rows of ``n_positions`` tokens: packed corpus blocks,
fact rows (record lines in random order), retrieval-augmented examples (passages from ``neighbours``
rendered with the answering prompt, loss on the text only) and copy-curriculum examples (see
batches.py and examples.py). Every batch is a pure function of (seed, step), so a run resumed from
``out_dir/last`` sees the same data as one that never stopped. ``torchrun`` / ``accelerate launch``
run it data-parallel without code changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from rag_bench.config import TrainConfig
from rag_bench.lm import LM, autocast, compute_record, pick_device
from rag_bench.models.lora import add_lora, lora_state
from rag_bench.models.scratch import train_tokenizer
from rag_bench.records import read_jsonl
from rag_bench.training.batches import Batches, Neighbours
from rag_bench.training.checkpoints import STATE_FILE, save_checkpoint
from rag_bench.training.examples import IGNORE, Example
from rag_bench.training.schedule import learning_rate, make_optimizer

# Logits (padded tokens x vocabulary) per forward at most; a micro-batch's further rows are accumulated (see _pieces).
# The vocabulary-wide logits and their loss dominate a small model's step. Measured on one core, base LFM2 (vocabulary
# 8192, bench/README.md): 8 x 512 tokens in one forward ran at 0.84-0.92x the tokens/s of two forwards of 4 x 512,
# and 32 x 512 at 0.47x.
MICRO_BATCH_LOGITS = 2048 * 8192
KEEP_FREED_MEMORY = True  # see _keep_freed_memory; the benchmark turns it off to time the loop without it


def train(cfg: TrainConfig, *, train_texts: Sequence[str], heldout_texts: Sequence[str], out_dir: str | Path,
          neighbours: Neighbours | None = None, base_model: str | Path | None = None,
          until_step: int | None = None, on_step: Callable[[int, int, dict], None] | None = None,
          origins: Sequence[str] | None = None) -> Path:
    """Train (resuming from ``out_dir/last`` when it exists) and return ``out_dir/model``, the best checkpoint.

    ``until_step`` ends this call after that step with a checkpoint, as an interruption would; calling
    again resumes. ``max_minutes`` does the same by wall time. ``on_step(step, max_steps, log_row)`` is called
    on rank 0 after each step (the collapse loop's progress and ETA come from it). ``origins`` names who wrote
    each training text (``human``, ``gen_<k>``); ``timings.json`` then counts the tokens trained on per row kind
    and origin (``trained_tokens``, see ``Batches.account``).
    """
    out_dir = Path(out_dir)
    if not heldout_texts:
        raise ValueError("train needs held-out texts: their perplexity picks the best checkpoint")
    rank, world, device = _distributed_setup()
    started = time.perf_counter()
    last = out_dir / "last"
    state = None
    if cfg.lora_rank and base_model is None:
        raise ValueError("lora_rank needs a base model: LoRA adapts pretrained weights (give base_model)")
    if (last / STATE_FILE).is_file():
        state = torch.load(last / STATE_FILE, weights_only=False)
        # a LoRA checkpoint holds merged weights; its adapters go back on the base they were trained on
        lm = LM.load(last if state.get("lora") is None else base_model, device=device)
        print(f"resuming from {last} at step {state['step']}")
    elif base_model is not None:
        lm = LM.from_pretrained_folder(base_model, device=device)
    else:
        lm = LM.build(cfg.model, train_tokenizer(train_texts, cfg.model.vocab_size), seed=cfg.seed, device=device)
    if cfg.lora_rank:
        add_lora(lm, cfg, state.get("lora") if state else None)
    block = min(cfg.model.n_positions, lm.max_positions)
    data = Batches(cfg, lm, train_texts, block, neighbours, origins)
    timings = {"setup_s": time.perf_counter() - started}
    if device.type == "cpu" and KEEP_FREED_MEMORY:
        _keep_freed_memory()
    model = lm.model.train()
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    # compiled after the DDP wrap (so DDP's buckets split the graph) and used for the training step only:
    # evaluation, generation and checkpoints go through lm.model, so no `_orig_mod.` key reaches a checkpoint
    step_model = torch.compile(ddp_model) if cfg.compile else ddp_model
    optimizer = make_optimizer(model, cfg)
    log_rows, best_ppl, step = [], math.inf, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, best_ppl, log_rows = state["step"], state["best_ppl"], read_jsonl(last / "train_log.jsonl")
        torch.set_rng_state(state["torch_rng"])
        timings = state["timings"]
    here = {**compute_record(lm.device), **({} if cfg.bf16 else {"precision": "fp32"})}
    if here not in timings.setdefault("compute", []):  # where training ran: a resume elsewhere adds a row
        timings["compute"].append(here)
    micro = max(1, cfg.batch_size // (world * cfg.grad_accum))
    # a model whose weights outweigh the cap (SmolLM2: 134.5M against 16.8M logits) is dominated by its body, and every
    # extra forward re-reads (under bf16 autocast, re-casts) all of them: 1.43x the tokens/s in one forward of 8 x 64
    # instead of two (bench/results/smol_train.json); the logits then stay no larger than the weights
    logits_cap = max(MICRO_BATCH_LOGITS, lm.num_parameters)
    deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    bar = tqdm(total=cfg.max_steps, initial=step, disable=rank != 0, desc="train", unit="step")
    window_tokens, window_s = 0, 0.0
    stop_step = min(cfg.max_steps, until_step or cfg.max_steps)
    while step < stop_step and not _past(deadline, world, lm.device):
        step_started = time.perf_counter()
        rows = data.batch(step)
        data.account(timings.setdefault("trained_tokens", {}), rows)
        rows = rows[rank::world]
        lr = learning_rate(cfg, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        pieces = [piece for chunk in _micro_batches(rows, micro)
                  for piece in _pieces(chunk, len(rows), logits_cap // len(lm.tokenizer))]
        for index, (piece, weight) in enumerate(pieces):
            ids, labels = _pad(piece, lm.tokenizer.pad_token_id, lm.device)
            # DDP all-reduces the gradients once per step, on the last forward
            no_sync = ddp_model.no_sync() if world > 1 and index < len(pieces) - 1 else contextlib.nullcontext()
            with no_sync:
                with autocast(lm.device) if cfg.bf16 else contextlib.nullcontext():
                    loss = step_model(input_ids=ids, labels=labels).loss * weight
                loss.backward()
            loss_sum += float(loss.detach())
            window_tokens += ids.numel() * world
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        step_s = time.perf_counter() - step_started
        window_s += step_s
        timings["train_s"] = timings.get("train_s", 0.0) + step_s
        tokens_per_s = window_tokens / window_s
        row = {"step": step, "loss": round(loss_sum, 4), "lr": lr, "grad_norm": round(grad_norm, 3),
               "tokens_per_s": round(tokens_per_s), "step_s": round(step_s, 4)}
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tokens_per_s:.0f}")
        if on_step is not None and rank == 0:
            on_step(step, cfg.max_steps, row)
        if window_s > 30:  # tokens/s over the last half minute or so, not since the start
            window_tokens, window_s = 0, 0.0
        finished = step >= stop_step or _past(deadline, world, lm.device)
        if step % cfg.eval_every == 0 or finished:
            row.update(_evaluate(lm, data, heldout_texts, cfg, timings))
            tqdm.write(json.dumps(row))
            if rank == 0 and row["heldout_ppl"] < best_ppl:
                best_ppl, row["best"] = row["heldout_ppl"], True
        log_rows.append(row)
        timings.update(steps=step, tokens_per_s=round(tokens_per_s), parameters=lm.num_parameters)
        if rank == 0 and row.get("best"):
            save_checkpoint(lm, cfg, log_rows, timings, out_dir / "model", None)
        if rank == 0 and (step % cfg.save_every == 0 or finished):
            state = {"optimizer": optimizer.state_dict(), "step": step, "best_ppl": best_ppl,
                     "torch_rng": torch.get_rng_state(), "timings": timings, "lora": lora_state(lm.model)}
            save_checkpoint(lm, cfg, log_rows, timings, last, state)
    bar.close()
    if world > 1:
        dist.barrier()
    if rank == 0 and not (out_dir / "model").is_dir():  # e.g. resumed after the last step
        save_checkpoint(lm, cfg, log_rows, timings, out_dir / "model", None)
    return out_dir / "model"


def _evaluate(lm: LM, data: Batches, heldout_texts: Sequence[str], cfg: TrainConfig, timings: dict) -> dict:
    started = time.perf_counter()
    lm.model.eval()
    texts = list(heldout_texts[: cfg.eval_max_texts] if cfg.eval_max_texts else heldout_texts)
    scores = {"heldout_ppl": round(lm.perplexity(texts, batch_size=cfg.batch_size), 4)} if texts else {}
    scores.update(data.probe_scores(lm))
    lm.model.train()
    timings["eval_s"] = timings.get("eval_s", 0.0) + time.perf_counter() - started
    return scores


def _micro_batches(rows: list[Example], size: int) -> list[list[Example]]:
    """At most ``size`` rows each, grouped by length: short copy rows are not padded to a full block."""
    chunks: list[list[Example]] = []
    for row in sorted(rows, key=lambda r: len(r.ids)):
        if not chunks or len(chunks[-1]) == size or len(row.ids) > 2 * len(chunks[-1][0].ids) + 64:
            chunks.append([])
        chunks[-1].append(row)
    return chunks


def _pieces(chunk: list[Example], step_rows: int, max_tokens: int) -> list[tuple[list[Example], float]]:
    """``chunk`` as forwards of at most ``max_tokens`` padded tokens, each with the loss weight that keeps the
    step's loss and gradient those of one forward of the chunk weighted by its share of the step's rows.

    The model's loss is a mean over predicted tokens, so a piece counts by its share of the chunk's predicted
    tokens; a piece with none is left out (its loss would be 0/0).
    """
    per_piece = max(1, max_tokens // max(len(r.ids) for r in chunk))
    if per_piece >= len(chunk):
        return [(chunk, len(chunk) / step_rows)]
    pieces = [chunk[i:i + per_piece] for i in range(0, len(chunk), per_piece)]
    predicted = [sum(label != IGNORE for r in piece for label in r.labels[1:]) for piece in pieces]
    total = sum(predicted)
    return [(piece, len(chunk) / step_rows * n / total) for piece, n in zip(pieces, predicted, strict=True) if n]


def _pad(rows: list[Example], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad rows to the longest; padding comes after the text, so a causal model needs no mask."""
    width = max(len(r.ids) for r in rows)
    ids = torch.tensor([r.ids + [pad_id] * (width - len(r.ids)) for r in rows], device=device)
    labels = torch.tensor([r.labels + [IGNORE] * (width - len(r.labels)) for r in rows], device=device)
    return ids, labels


def _keep_freed_memory() -> None:
    """Have glibc serve large tensors from its heap and keep freed memory for the next step (process-wide).

    By default glibc maps every block over 32 MB (the fp32 logits of a micro-batch are 67 MB) afresh and unmaps
    it on free, so the kernel faults in and zeroes those pages again every step: in a torch.profiler trace of
    base LFM2, the logits' fp32 cast and the loss's fill ran at 1-3 GB/s. Keeping them: 1.3-1.4x the tokens/s on
    one core (bench/README.md). The process's memory then stays near its peak. No-op without glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameter numbers from <malloc.h>
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 2**31 - 1)


def _past(deadline: float, world: int, device: torch.device) -> bool:
    """Whether wall time is past ``deadline``. Under DDP rank 0's clock decides, so no rank waits for a step alone."""
    late = time.perf_counter() >= deadline
    if world > 1 and deadline != math.inf:
        flag = torch.tensor([int(late)], device=device)
        dist.broadcast(flag, src=0)
        late = bool(flag.item())
    return late


def _distributed_setup() -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group torchrun / accelerate launch describe in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device()
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank() if world > 1 else 0), world, device


