"""SmolLM2 fine-tuning benchmark: tokens/s and MFU of the project's training loop on the real SmolLM2-135M, against
transformers' Trainer with default arguments and against LoRA (PEFT) in the same run.

    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/smol_train_bench.py       # 8 x 128 tokens, 1 + 3 steps
    .venv/bin/python bench/smol_train_bench.py --optimizers-only                   # AdamW step: foreach against fused
    .venv/bin/python bench/smol_train_bench.py --batch-size 8 --block 256 --steps 6 --lora-rank 16

Every part fine-tunes the same base (``rag_bench.models``: ``smollm2-135m``, converted into DATA_DIR once) on the
same packed blocks (Factbook text, or generated Factbook-like records without a built corpus), in this order:
``transformers.Trainer`` with default TrainingArguments (fp32, as its defaults are);
``rag_bench.training.loop.train`` -- the loop every collapse generation runs -- in fp32; the same with bf16 autocast
where the CPU runs bf16 natively (``rag_bench.lm.autocast``; skipped elsewhere: emulated bf16 is many times slower);
the same in the native dtype
with one forward per step (the loop caps the logits per forward at ``MICRO_BATCH_LOGITS`` or the parameter
count, whichever is larger); and LoRA
(``lora_rank``, PEFT) in the native dtype. Only steps after ``--warmup`` count, each loop's own per-step time
(no evaluation or saving). MFU = 6 x parameters x tokens/s over the matmul ceiling of the dtype the part computes
in (a 2048^3 torch.matmul in fp32 and bf16, timed at the start and the end of the same process, best of both);
for LoRA the model FLOPs are 4 x parameters per token (no weight gradients for the frozen base). Prints a table
and writes bench/results/smol_train.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from train_bench import REPO, corpus_texts, load_average, machine_info, matmul_ceiling, peak_rss_mb, reset_peak_rss

from rag_bench.config import ModelConfig, TrainConfig
from rag_bench.lm import autocast
from rag_bench.models import load_model, resolve_model
from rag_bench.models.memory import folder_parameters
from rag_bench.records import read_json, read_jsonl, write_json
from rag_bench.training.examples import corpus_stream
from rag_bench.training.loop import train

TEXT_CHARS = 400_000  # enough blocks for the timed steps
train_module = importlib.import_module("rag_bench.training.loop")  # its constants are set for a timing


def native_bf16() -> bool:
    """What the training loop decides: bf16 autocast only where the CPU runs it natively."""
    return not isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)


def time_ours(base: Path, texts: list[str], heldout: list[str], *, block: int, batch: int, warmup: int, steps: int,
              bf16: bool, lora_rank: int, workdir: Path, logits_cap: int | None = None) -> dict:
    """The training loop (rag_bench.train) from the base; the median of the timed steps' own ``step_s``.
    ``logits_cap`` replaces ``MICRO_BATCH_LOGITS`` (logits per forward) for this part."""
    cfg = TrainConfig(model=ModelConfig(n_positions=block), max_steps=warmup + steps, batch_size=batch, lr=5e-5,
                      warmup_steps=1, eval_every=10_000, eval_max_texts=1, save_every=10_000, probe_count=0,
                      copy_share=0.0, copy_warmup_steps=0, bf16=bf16, lora_rank=lora_rank, seed=0)
    out = workdir / f"ours-{bf16}-{lora_rank}"
    out = out.with_name(f"{out.name}-{logits_cap}") if logits_cap else out
    rss_before = reset_peak_rss()
    saved = train_module.MICRO_BATCH_LOGITS
    train_module.MICRO_BATCH_LOGITS = logits_cap or saved
    try:
        train(cfg, train_texts=texts, heldout_texts=heldout, out_dir=out, base_model=base)
    finally:
        train_module.MICRO_BATCH_LOGITS = saved
    log = read_jsonl(out / "last" / "train_log.jsonl")[warmup:]
    return {"step_s": statistics.median(row["step_s"] for row in log), "steps": len(log),
            "step_s_all": [round(row["step_s"], 2) for row in log], "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": rss_before, "dtype": "bf16 autocast" if bf16 else "fp32",
            "lora_rank": lora_rank, "loop": "rag_bench.training.loop.train",
            "forwards_per_step": -(-batch // max(1, max(logits_cap or saved, folder_parameters(base))
                                                 // len_vocab(base) // block))}


def len_vocab(base: Path) -> int:
    return read_json(base / "config.json")["vocab_size"]


def time_hf_trainer(base: Path, blocks: list[list[int]], *, batch: int, warmup: int, steps: int,
                    workdir: Path) -> dict:
    """transformers.Trainer with default TrainingArguments, apart from what running here needs."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    marks: list[float] = []
    rss_before = reset_peak_rss()

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    lm = load_model(base, device="cpu")
    data = [{"input_ids": b, "labels": b} for b in blocks]
    args = TrainingArguments(output_dir=str(workdir / "hf"), max_steps=warmup + steps,
                             per_device_train_batch_size=batch, save_strategy="no", report_to="none", use_cpu=True,
                             disable_tqdm=True)
    Trainer(model=lm.model.train(), args=args, train_dataset=data, callbacks=[StepClock()]).train()
    step_s = [b - a for a, b in zip(marks[warmup - 1:], marks[warmup:], strict=False)]
    return {"step_s": statistics.median(step_s), "steps": len(step_s), "step_s_all": [round(s, 2) for s in step_s],
            "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss_before, "dtype": "fp32 (TrainingArguments default)",
            "lora_rank": 0, "loop": "transformers.Trainer"}


def time_optimizers(base: Path, reps: int = 3) -> dict:
    """Seconds per AdamW step over the model's own parameters (random gradients): torch's default (foreach)
    against fused, which rag_bench.training.schedule uses; the best of ``reps`` after one untimed step each."""
    lm = load_model(base, device="cpu")
    params = [p for p in lm.model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p)
    out = {}
    for name, fused in (("foreach", False), ("fused", True)):
        optimizer = torch.optim.AdamW(params, lr=1e-5, fused=fused)
        optimizer.step()
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            optimizer.step()
            times.append(time.perf_counter() - started)
        out[name] = {"best_s": round(min(times), 2), "all_s": [round(t, 2) for t in times]}
    out["foreach_over_fused"] = round(out["foreach"]["best_s"] / out["fused"]["best_s"], 2)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="registry name or model folder")
    parser.add_argument("--data-dir", default=str(REPO / "data"), help="where a registry model is converted once")
    parser.add_argument("--block", type=int, default=128, help="tokens per row")
    parser.add_argument("--batch-size", type=int, default=8, help="rows per optimizer step")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each part")
    parser.add_argument("--lora-rank", type=int, default=16, help="rank of the LoRA part (0 skips it)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "smol_train.json")
    parser.add_argument("--optimizers-only", action="store_true",
                        help="time only the AdamW step, foreach against fused, into the JSON's `optimizer` key")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = load_average()
    base = resolve_model(args.model, args.data_dir)
    if args.optimizers_only:
        report = read_json(args.out) if args.out.is_file() else {}
        report["optimizer"] = {**time_optimizers(base), "threads": args.threads, "load_start": load_start,
                               "load_end": load_average(), "command": "--optimizers-only"}
        write_json(args.out, report)
        print(json.dumps(report["optimizer"], indent=1))
        return report
    lm = load_model(base, device="cpu")
    params, tokenizer = lm.num_parameters, lm.tokenizer
    del lm
    texts, source = corpus_texts(TEXT_CHARS)
    heldout, texts = texts[:1], texts[1:]
    stream = corpus_stream(texts, tokenizer)  # the blocks train() packs, for the Trainer too
    blocks = [stream[i:i + args.block] for i in range(0, len(stream) - args.block + 1, args.block)]
    native = native_bf16()
    print(f"{params / 1e6:.1f}M parameters; {len(blocks)} blocks of {args.block} ({source}); {args.threads} threads; "
          f"native bf16: {native}; load {load_start}", flush=True)
    ceilings = {"fp32": matmul_ceiling(torch.float32), "bf16": matmul_ceiling(torch.bfloat16)}
    common = {"block": args.block, "batch": args.batch_size, "warmup": args.warmup, "steps": args.steps}
    parts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="smol_train_bench_") as tmp:
        parts["hf_trainer"] = time_hf_trainer(base, blocks, batch=args.batch_size, warmup=args.warmup,
                                              steps=args.steps, workdir=Path(tmp))
        print(f"hf_trainer: {parts['hf_trainer']['step_s']:.1f} s per step", flush=True)
        native_name = "bf16" if native else "fp32"
        runs = {"ours_fp32": (False, 0, None)}
        if native:
            runs["ours_bf16"] = (True, 0, None)
        # the loop's cap on logits per forward (at least the model's parameter count) lifted: one forward per step
        runs[f"ours_{native_name}_one_forward"] = (native, 0, 1 << 40)
        if args.lora_rank:
            runs[f"lora_{native_name}"] = (native, args.lora_rank, None)
        for name, (bf16, rank, cap) in runs.items():
            parts[name] = time_ours(base, texts, heldout, bf16=bf16, lora_rank=rank, workdir=Path(tmp),
                                    logits_cap=cap, **common)
            print(f"{name}: {parts[name]['step_s']:.1f} s per step", flush=True)
    ceilings = {"fp32": max(ceilings["fp32"], matmul_ceiling(torch.float32)),
                "bf16": max(ceilings["bf16"], matmul_ceiling(torch.bfloat16))}
    native_ceiling = ceilings["bf16" if native else "fp32"]
    tokens_per_step = args.batch_size * args.block
    for part in parts.values():
        part["tokens_per_s"] = round(tokens_per_step / part["step_s"], 1)
        flops_per_token = (4 if part["lora_rank"] else 6) * params
        gflops = flops_per_token * part["tokens_per_s"] / 1e9
        part["model_gflop_per_s"] = round(gflops, 1)
        part["mfu_of_own_dtype_ceiling"] = round(gflops / ceilings["bf16" if "bf16" in part["dtype"] else "fp32"], 3)
        part["mfu_of_native_ceiling"] = round(gflops / native_ceiling, 3)
        part["step_s"] = round(part["step_s"], 2)
    best_full = max((n for n in parts if n.startswith("ours")), key=lambda n: parts[n]["tokens_per_s"])
    lora = next((n for n in parts if n.startswith("lora")), None)
    same_dtype_full = "ours_bf16" if native else "ours_fp32"
    report = {
        "model": {"name": args.model, "folder": str(base), "parameters": params, "vocab": len(tokenizer)},
        "data": {"source": source, "blocks": len(blocks), "block": args.block},
        "batch_size": args.batch_size, "tokens_per_step": tokens_per_step, "warmup_steps": args.warmup,
        "timed_steps": args.steps, "threads": args.threads, "native_bf16": native,
        "matmul_ceiling_gflop_per_s": {k: round(v, 1) for k, v in ceilings.items()},
        "native_ceiling": "bf16" if native else "fp32", "parts": parts,
        "ratios": {"ours_best_over_hf_trainer": round(parts[best_full]["tokens_per_s"]
                                                      / parts["hf_trainer"]["tokens_per_s"], 2),
                   "ours_fp32_over_hf_trainer": round(parts["ours_fp32"]["tokens_per_s"]
                                                      / parts["hf_trainer"]["tokens_per_s"], 2),
                   **({"lora_over_full_same_dtype": round(parts[lora]["tokens_per_s"]
                                                          / parts[same_dtype_full]["tokens_per_s"], 2)}
                      if lora else {})},
        "best_full": best_full, "mfu_target": 0.40,
        "target_met": parts[best_full]["mfu_of_native_ceiling"] >= 0.40,
        "load_start": load_start, "load_end": load_average(), "machine": machine_info(),
    }
    write_json(args.out, report)
    print_table(report)
    print(f"wrote {args.out}")
    return report


def print_table(r: dict) -> None:
    c = r["matmul_ceiling_gflop_per_s"]
    print(f"\n== SmolLM2 fine-tuning: {r['model']['parameters'] / 1e6:.1f}M parameters, {r['batch_size']} x "
          f"{r['data']['block']} tokens per step, {r['timed_steps']} timed steps, {r['threads']} threads, "
          f"load {r['load_start']} -> {r['load_end']} ==")
    print(f"matmul ceiling (2048^3): fp32 {c['fp32']:.0f} GFLOP/s, bf16 {c['bf16']:.0f} GFLOP/s; "
          f"native: {r['native_ceiling']}")
    print(f"{'part':<24}{'loop':<24}{'dtype':<34}{'tokens/s':>9}{'MFU own':>9}{'MFU native':>11}{'peak RSS':>10}")
    for name, p in r["parts"].items():
        print(f"{name:<24}{p['loop']:<24}{p['dtype']:<34}{p['tokens_per_s']:>9}{p['mfu_of_own_dtype_ceiling']:>9.1%}"
              f"{p['mfu_of_native_ceiling']:>11.1%}{p['peak_rss_mb']:>10.0f}")
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in r["ratios"].items()))
    print(f"target 40% MFU of the native ceiling: {'met' if r['target_met'] else 'not met'} "
          f"({r['best_full']}: {r['parts'][r['best_full']]['mfu_of_native_ceiling']:.1%})")


if __name__ == "__main__":
    main()
