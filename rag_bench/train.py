"""``rag-bench train``: train generation 0 from scratch (or fine-tune ``--base-model``) on a corpus.

    from rag_bench.config import DecodeConfig, TrainConfig
    from rag_bench.train import train
    model_dir = train(TrainConfig(), train_texts=texts, heldout_texts=heldout, out_dir="runs/r1/gen_0",
                      neighbours=retriever_fn)          # -> runs/r1/gen_0/model (best held-out perplexity)

Each optimizer step sees ``batch_size`` rows of ``n_positions`` tokens: packed corpus blocks,
fact rows (record lines in random order), retrieval-augmented examples (passages from ``neighbours``
rendered with the answering prompt, loss on the text only) and copy-curriculum examples (see
train_data). Every batch is a pure function of (seed, step), so a run resumed from
``out_dir/last`` sees the same data as one that never stopped. ``torchrun`` / ``accelerate launch``
run it data-parallel without code changes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from rag_bench.config import DecodeConfig, TrainConfig
from rag_bench.lm import LM, autocast, pick_device
from rag_bench.models.lora import add_lora, lora_state, plain_lm
from rag_bench.models.scratch import train_tokenizer
from rag_bench.records import read_json, read_jsonl, replace_dir, write_json, write_jsonl
from rag_bench.train_data import (
    IGNORE,
    CopyTask,
    Example,
    FactRows,
    corpus_stream,
    probe_lines,
    record_lines,
    repeat_example,
    retrieval_examples,
)

Neighbours = Callable[[list[str]], list[list[str]]]  # texts -> passages to place before each text
STATE_FILE = "trainer_state.pt"
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
    and origin (``trained_tokens``, see ``_Batches.account``).
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
    data = _Batches(cfg, lm, train_texts, block, neighbours, origins)
    timings = {"setup_s": time.perf_counter() - started}
    if device.type == "cpu" and KEEP_FREED_MEMORY:
        _keep_freed_memory()
    model = lm.model.train()
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    # compiled after the DDP wrap (so DDP's buckets split the graph) and used for the training step only:
    # evaluation, generation and checkpoints go through lm.model, so no `_orig_mod.` key reaches a checkpoint
    step_model = torch.compile(ddp_model) if cfg.compile else ddp_model
    optimizer = _optimizer(model, cfg)
    log_rows, best_ppl, step = [], math.inf, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, best_ppl, log_rows = state["step"], state["best_ppl"], read_jsonl(last / "train_log.jsonl")
        torch.set_rng_state(state["torch_rng"])
        timings = state["timings"]
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
        lr = _lr(cfg, step)
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
            _save_checkpoint(lm, cfg, log_rows, timings, out_dir / "model", None)
        if rank == 0 and (step % cfg.save_every == 0 or finished):
            state = {"optimizer": optimizer.state_dict(), "step": step, "best_ppl": best_ppl,
                     "torch_rng": torch.get_rng_state(), "timings": timings, "lora": lora_state(lm.model)}
            _save_checkpoint(lm, cfg, log_rows, timings, last, state)
    bar.close()
    if world > 1:
        dist.barrier()
    if rank == 0 and not (out_dir / "model").is_dir():  # e.g. resumed after the last step
        _save_checkpoint(lm, cfg, log_rows, timings, out_dir / "model", None)
    return out_dir / "model"


def _evaluate(lm: LM, data: _Batches, heldout_texts: Sequence[str], cfg: TrainConfig, timings: dict) -> dict:
    started = time.perf_counter()
    lm.model.eval()
    texts = list(heldout_texts[: cfg.eval_max_texts] if cfg.eval_max_texts else heldout_texts)
    scores = {"heldout_ppl": round(lm.perplexity(texts, batch_size=cfg.batch_size), 4)} if texts else {}
    scores.update(data.probe_scores(lm))
    lm.model.train()
    timings["eval_s"] = timings.get("eval_s", 0.0) + time.perf_counter() - started
    return scores


class _Batches:
    """The rows of every step: corpus blocks, retrieval-augmented, fact and copy rows, by (seed, step)."""

    def __init__(self, cfg: TrainConfig, lm: LM, texts: Sequence[str], block: int, neighbours: Neighbours | None,
                 origins: Sequence[str] | None = None):
        self.cfg, self.block, self.tok = cfg, block, lm.tokenizer
        self._orders: dict[tuple[int, int], list[int]] = {}
        self.pad = lm.tokenizer.pad_token_id
        stream, stream_origins = corpus_stream(texts, lm.tokenizer, origins=origins or ["train"] * len(texts))
        self.corpus = [stream[i:i + block] for i in range(0, len(stream) - block + 1, block)]
        self.block_origins = [Counter(stream_origins[i:i + block]) for i in range(0, len(stream) - block + 1, block)]
        self.row_kinds: list[str] = []  # the kind of each row of the last batch, in order
        self.corpus_picked: list[int] = []  # the corpus blocks of the last batch
        # what each curriculum kind is built from: tokens of the texts (that hold record lines) by origin
        self.built_from = _built_from(texts, origins or ["train"] * len(texts), lm.tokenizer)
        if not self.corpus:
            raise ValueError(f"the training texts hold {len(stream)} tokens, fewer than one block of {block}")
        self.retrieval: list[Example] = []
        if cfg.retrieval_share > 0:
            if neighbours is None:
                raise ValueError("retrieval_share > 0 needs a neighbours function (the index's retriever)")
            self.retrieval = retrieval_examples(texts, lm.tokenizer, neighbours, block=block,
                                                max_examples=cfg.retrieval_examples, seed=cfg.seed)
        records = record_lines(texts)
        self.copy = None
        if cfg.copy_share > 0 and records:
            self.copy = CopyTask(records, seed=cfg.seed, min_lines=cfg.copy_min_lines, max_lines=cfg.copy_max_lines,
                                 max_distractors=cfg.copy_max_distractors, max_value_chars=cfg.copy_max_value_chars,
                                 loss_on=cfg.copy_loss_on, p_invented=cfg.copy_invented_share,
                                 p_same_fields=cfg.copy_same_fields_share)
        elif cfg.copy_share > 0:
            print("no 'Entity | Section | Field: value' record lines in the corpus: copy rows are random repeats only")
        self.facts = FactRows(records, lm.tokenizer, fields=cfg.fact_fields) if cfg.fact_share > 0 and records else None
        if self.facts is not None:
            print(f"fact rows: {len(self.facts.lines):,} record lines, {sum(map(len, self.facts.lines)):,} tokens")
        if cfg.fact_share > 0 and not records:
            print("no 'Entity | Section | Field: value' record lines in the corpus: no fact rows")
        self.rng = random.Random(cfg.seed)
        self.skip_ids = [i for i in (lm.tokenizer.bos_token_id, lm.tokenizer.pad_token_id, lm.tokenizer.eos_token_id)
                         if i is not None]
        # the facts this run means to store: those of the fact rows' fields when the rows are limited to some
        fields = cfg.fact_fields if self.facts is not None else ()
        self.probes = probe_lines(records, cfg.probe_count, seed=cfg.seed, fields=fields) if cfg.probe_count else []
        if 0 < len(self.probes) < cfg.probe_count:
            print(f"warning: probe_count={cfg.probe_count} requested, {len(self.probes)} closed-book probes used: "
                  "only so many short record lines in the training texts")
        self.copy_probes = []
        if cfg.probe_count and records:
            probe_task = CopyTask(records, seed=cfg.seed + 7919, min_lines=2, max_lines=max(2, cfg.copy_max_lines),
                                  max_distractors=cfg.copy_max_distractors, max_value_chars=cfg.copy_max_value_chars)
            self.copy_probes = [probe_task.probe(invented=True)[:2] for _ in range(cfg.probe_count)]

    def batch(self, step: int) -> list[Example]:
        cfg = self.cfg
        copy_share = 1.0 if cfg.copy_share > 0 and step < cfg.copy_warmup_steps else cfg.copy_share
        n_copy = round(copy_share * cfg.batch_size)
        n_retrieval = min(round(cfg.retrieval_share * cfg.batch_size), cfg.batch_size - n_copy) if self.retrieval else 0
        n_fact = min(round(cfg.fact_share * cfg.batch_size), cfg.batch_size - n_copy - n_retrieval) if self.facts else 0
        n_corpus = cfg.batch_size - n_copy - n_retrieval - n_fact
        self.corpus_picked = self._take(list(range(len(self.corpus))), step, n_corpus, key=id(self.corpus))
        rows = [Example(ids=self.corpus[i], labels=self.corpus[i]) for i in self.corpus_picked]
        rows += self._take(self.retrieval, step, n_retrieval)
        if n_fact:
            fact_rng = random.Random(cfg.seed * 1_000_033 + step)
            rows += [self.facts.example(fact_rng, block=self.block) for _ in range(n_fact)]
        n_repeat = 0
        if n_copy:
            self.rng.seed(cfg.seed * 1_000_003 + step)
            n_repeat = n_copy if self.copy is None else round(cfg.copy_repeat_share * n_copy)
            rows += [repeat_example(self.rng, len(self.tok), skip_ids=self.skip_ids, bos_id=self.tok.bos_token_id,
                                    max_len=min(32, (self.block - 1) // 2)) for _ in range(n_repeat)]
            if self.copy is not None:
                self.copy.rng.seed(cfg.seed * 1_000_003 + step)
                rows += [self.copy.example(self.tok, max_tokens=self.block) for _ in range(n_copy - n_repeat)]
        self.row_kinds = (["corpus"] * n_corpus + ["retrieval"] * n_retrieval + ["fact"] * n_fact
                          + ["repeat"] * n_repeat + ["copy"] * (n_copy - n_repeat))
        return rows

    def account(self, totals: dict, rows: list[Example]) -> None:
        """Add the last batch's tokens to ``totals``: per row kind, corpus blocks split by origin (exact), the
        curriculum kinds with the origins of the texts they are built from (``built_from``)."""
        for row, kind in zip(rows, self.row_kinds, strict=True):
            entry = totals.setdefault(kind, {"rows": 0, "tokens": 0})
            entry["rows"] += 1
            entry["tokens"] += len(row.ids)
        corpus = totals.get("corpus")
        for i in self.corpus_picked:
            by_origin = corpus.setdefault("by_origin", {})
            for origin, n in self.block_origins[i].items():
                by_origin[origin] = by_origin.get(origin, 0) + n
        for kind in ("retrieval", "fact", "copy"):
            if kind in totals:
                totals[kind]["built_from"] = self.built_from["texts" if kind == "retrieval" else "records"]
        if "repeat" in totals:
            totals["repeat"]["built_from"] = {"random tokens": totals["repeat"]["tokens"]}

    def _take(self, pool: list, step: int, n: int, key: int | None = None) -> list:
        """Rows ``step*n .. step*n+n`` of an endless sequence of seeded per-epoch permutations of ``pool``."""
        out, name = [], id(pool) if key is None else key
        for index in range(step * n, step * n + n):
            epoch, offset = divmod(index, len(pool))
            if (name, epoch) not in self._orders:
                order = list(range(len(pool)))
                random.Random(self.cfg.seed * 7_919 + epoch).shuffle(order)
                self._orders = {k: v for k, v in self._orders.items() if k[0] != name} | {(name, epoch): order}
            out.append(pool[self._orders[(name, epoch)][offset]])
        return out

    def probe_scores(self, lm: LM) -> dict[str, float]:
        """Closed-book EM on training facts and copy EM on invented entities (held-out names)."""
        scores = {}
        for name, pairs in (("closed_book_em", self.probes), ("copy_em", self.copy_probes)):
            if pairs:
                answers = lm.generate([p for p, _ in pairs], _PROBE_DECODE)
                scores[name] = sum(a.strip() == g for a, (_, g) in zip(answers, pairs, strict=True)) / len(pairs)
        return scores


def _built_from(texts: Sequence[str], origins: Sequence[str], tokenizer) -> dict[str, dict[str, int]]:
    """Tokens of the training texts by origin: all of them (retrieval rows) and those holding record lines (fact
    and copy rows)."""
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]] if texts else []
    every, records = Counter(), Counter()
    for text, origin, n in zip(texts, origins, lengths, strict=True):
        every[origin] += n
        if record_lines([text]):
            records[origin] += n
    return {"texts": dict(every), "records": dict(records)}


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


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
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


def _lr(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, the peak held through the copy warm-up (``copy_lr_hold``), then cosine to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    start = cfg.warmup_steps
    if cfg.copy_lr_hold and cfg.copy_share > 0:
        start = max(start, cfg.copy_warmup_steps)
    progress = min(1.0, max(0, step - start) / max(1, cfg.max_steps - start))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _save_checkpoint(lm: LM, cfg: TrainConfig, log_rows: list[dict], timings: dict, path: Path,
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


def load_train_log(model_dir: str | Path) -> list[dict]:
    return read_jsonl(Path(model_dir) / "train_log.jsonl")


def load_timings(model_dir: str | Path) -> dict:
    return read_json(Path(model_dir) / "timings.json")


_PROBE_DECODE = DecodeConfig(max_new_tokens=24, batch_size=64)  # greedy, up to the newline
