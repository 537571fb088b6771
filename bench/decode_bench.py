"""Decoding benchmark: rag_bench's decode loop against transformers' generate loop, as a share of the machine's
matmul ceiling measured in the same run, on the real SmolLM2-135M-Instruct.

    flock /tmp/rag_bench_heavy.lock nice -n 5 .venv/bin/python bench/decode_bench.py        # batches 1,16,32
    .venv/bin/python bench/decode_bench.py --batches 16,64 --new-tokens 32 --threads 2

Both paths run ``LM.generate_detailed`` on natural questions through the chat template (the answering prompts):
``reference=True`` is transformers' ``generate`` as before, the default is ``rag_bench.models.decode_loop``. Both
run in bf16 autocast where the CPU runs bf16 natively, else fp32 (the JSON says which). Two settings:

- **forced**: greedy, no stop string, ``min_new_tokens = max_new_tokens``, so both paths write exactly
  ``--new-tokens`` per prompt; tokens/s here is set against the ceiling. Ratio to ceiling = forward FLOPs per
  new token x new tokens/s / the matmul ceiling, for the whole call (prefill included), for the decode steps
  alone (the call less a 1-token call on the same prompts), and for all forward tokens (prompt + new) of the call;
  the matmul ceiling is a 1024^3 ``torch.matmul`` in the decode dtype, best of 5, timed
  at the start and the end of the run; the higher counts. Forward FLOPs per token = 2 x the parameters of every
  linear layer (the 49k-token head included) + 4 x layers x attention width x the mean context.
- **answering**: greedy, stop at a newline or EOS, as the evaluator answers: rows that stop early leave the batch.
  Reported as prompts/s and whether both paths gave the same answers.

Each figure is measured twice on this shared machine: in wall time and in the process's CPU time (which other
jobs' load does not inflate; with one thread, CPU time is the time the thread had a core). Ratios use the same
clock on both sides. Prints a table and writes bench/results/decode.json, with the ISA and the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from smol_generate_bench import questions
from train_bench import REPO, load_average, machine_info

from rag_bench.config import DecodeConfig
from rag_bench.lm import LM
from rag_bench.models import load_model
from rag_bench.prompt import render_prompt
from rag_bench.records import write_json

CEILING_N = 1024


def isa() -> list[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return sorted({flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {flag}" in text})


def ceiling(dtype: torch.dtype, n: int = CEILING_N, reps: int = 5) -> dict:
    """GFLOP/s of the best of ``reps`` n^3 matmuls, by wall clock and by process CPU time."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    wall, cpu = float("inf"), float("inf")
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        torch.matmul(a, b)
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return {"wall": round(2 * n ** 3 / wall / 1e9, 1), "cpu": round(2 * n ** 3 / max(cpu, 1e-9) / 1e9, 1)}


def flops_per_token(lm: LM, context: float) -> float:
    """Forward FLOPs for one new token: every linear layer's weights twice, plus attention over ``context``."""
    linear = sum(m.weight.numel() for m in lm.model.modules() if isinstance(m, torch.nn.Linear))
    cfg = lm.model.config
    heads = cfg.num_attention_heads
    width = heads * getattr(cfg, "head_dim", cfg.hidden_size // heads)
    return 2 * linear + 4 * cfg.num_hidden_layers * width * context


def timed(lm: LM, prompts: list[str], decode: DecodeConfig, reference: bool) -> tuple[dict, list]:
    w, c = time.perf_counter(), time.process_time()
    gens = lm.generate_detailed(prompts, decode, reference=reference)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    new = sum(g.new_tokens for g in gens)
    return {"prompts": len(prompts), "prompt_tokens": sum(g.prompt_tokens for g in gens), "new_tokens": new,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "new_tokens_per_s_wall": round(new / wall, 1), "new_tokens_per_s_cpu": round(new / cpu, 1),
            "load": load_average()}, [g.text for g in gens]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="registry name or model folder")
    parser.add_argument("--data-dir", default=str(REPO / "data"), help="where a registry model is converted once")
    parser.add_argument("--batches", default="1,16,32", help="batch sizes, comma-separated")
    parser.add_argument("--new-tokens", type=int, default=24, help="new tokens per prompt in the forced setting")
    parser.add_argument("--batch-1-prompts", type=int, default=2, help="prompts at batch 1")
    parser.add_argument("--rounds", type=int, default=1, help="full batches per batch size above 1")
    parser.add_argument("--answer-prompts", type=int, default=32, help="prompts of the answering setting (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is a core's time)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "decode.json")
    parser.add_argument("--profile", type=int, default=0, metavar="BATCH",
                        help="only print torch.profiler's top operators of one forced batch of each path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = load_average()
    lm = load_model(args.model, args.data_dir, device="cpu")
    if args.profile:
        return profile(lm, args)
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    dtype = torch.bfloat16 if native else torch.float32
    ceilings = [ceiling(dtype)]
    batches = [int(b) for b in args.batches.split(",")]
    pool = [render_prompt(q, tokenizer=lm.tokenizer) for q in questions(max(64, args.rounds * max(batches)))]
    mean_prompt = statistics.mean(len(lm.tokenizer(p)["input_ids"]) for p in pool)
    forced = DecodeConfig(max_new_tokens=args.new_tokens, stop=())
    lm.model.generation_config.min_new_tokens = args.new_tokens
    lm.generate_detailed(pool[:2], forced.replace(max_new_tokens=2))  # warm-up: allocations, the weight copies
    lm.generate_detailed(pool[:2], forced.replace(max_new_tokens=2), reference=True)
    parts: dict[str, dict] = {}
    for b in batches:
        prompts = pool[:args.batch_1_prompts if b == 1 else args.rounds * b]
        for name, reference in (("transformers_generate", True), ("decode_loop", False)):
            part, _ = timed(lm, prompts, forced.replace(batch_size=b), reference)
            prefill, _ = timed(lm, prompts, forced.replace(batch_size=b, max_new_tokens=1), reference)
            steps = part["new_tokens"] - prefill["new_tokens"]
            for clock in ("wall", "cpu"):  # the decode steps alone: the whole call less prefill and first token
                part[f"decode_steps_tokens_per_s_{clock}"] = round(
                    steps / max(part[f"{clock}_s"] - prefill[f"{clock}_s"], 1e-9), 1)
            parts[f"{name}_batch_{b}"] = part
            print(f"forced {name} batch {b}: {part}", flush=True)
    lm.model.generation_config.min_new_tokens = None
    answering: dict[str, dict] = {}
    if args.answer_prompts:
        decode = DecodeConfig(max_new_tokens=args.new_tokens, batch_size=32)
        texts = {}
        for name, reference in (("transformers_generate", True), ("decode_loop", False)):
            answering[name], texts[name] = timed(lm, pool[:args.answer_prompts], decode, reference)
            print(f"answering {name}: {answering[name]}", flush=True)
        answering["same_answers"] = sum(a == b for a, b in zip(texts["transformers_generate"], texts["decode_loop"],
                                                                strict=True))
        answering["speedup_wall"] = round(answering["transformers_generate"]["wall_s"]
                                          / answering["decode_loop"]["wall_s"], 2)
        answering["speedup_cpu"] = round(answering["transformers_generate"]["cpu_s"]
                                         / answering["decode_loop"]["cpu_s"], 2)
    ceilings.append(ceiling(dtype))
    best = {clock: max(c[clock] for c in ceilings) for clock in ("wall", "cpu")}
    per_token = flops_per_token(lm, mean_prompt + args.new_tokens / 2)
    for part in parts.values():
        for clock in ("wall", "cpu"):
            part[f"ratio_to_ceiling_{clock}"] = round(per_token * part[f"new_tokens_per_s_{clock}"] / 1e9
                                                      / best[clock], 3)
            part[f"decode_steps_ratio_to_ceiling_{clock}"] = round(
                per_token * part[f"decode_steps_tokens_per_s_{clock}"] / 1e9 / best[clock], 3)
            part[f"all_forward_ratio_to_ceiling_{clock}"] = round(
                per_token * (part["new_tokens"] + part["prompt_tokens"]) / part[f"{clock}_s"] / 1e9 / best[clock], 3)
    report = {
        "model": {"name": args.model, "parameters": lm.num_parameters},
        "prompts": {"kind": "natural questions through the chat template", "mean_tokens": round(mean_prompt, 1)},
        "dtype": "bf16 autocast" if native else "fp32 (bf16 not native here)", "threads": args.threads,
        "new_tokens": args.new_tokens, "forward_gflop_per_token": round(per_token / 1e9, 4),
        "ceiling_gflop_per_s": {"dtype": str(dtype).removeprefix("torch."), "n": CEILING_N, "runs": ceilings,
                                "best": best},
        "forced": parts, "answering": answering,
        "decode_loop_over_generate": {f"batch_{b}": {clock: round(
            parts[f"decode_loop_batch_{b}"][f"new_tokens_per_s_{clock}"]
            / parts[f"transformers_generate_batch_{b}"][f"new_tokens_per_s_{clock}"], 2) for clock in ("wall", "cpu")}
            for b in batches},
        "isa": isa(), "load_start": load_start, "load_end": load_average(), "machine": machine_info(),
    }
    write_json(args.out, report)
    print_table(report)
    print(f"wrote {args.out}")
    return report


def profile(lm: LM, args: argparse.Namespace) -> dict:
    """Self CPU time per operator, top 8, of one forced batch through each path (after a warm-up call)."""
    from torch.profiler import profile as torch_profile

    prompts = [render_prompt(q, tokenizer=lm.tokenizer) for q in questions(args.profile)]
    decode = DecodeConfig(max_new_tokens=args.new_tokens, stop=(), batch_size=args.profile)
    lm.model.generation_config.min_new_tokens = args.new_tokens
    shares = {}
    for name, reference in (("transformers_generate", True), ("decode_loop", False)):
        lm.generate_detailed(prompts[:2], decode.replace(max_new_tokens=2), reference=reference)
        with torch_profile() as prof:
            lm.generate_detailed(prompts, decode, reference=reference)
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows)
        shares[name] = {e.key: round(e.self_cpu_time_total / total, 3) for e in rows[:8]}
        print(f"{name}, batch {args.profile}: " + ", ".join(f"{k} {v:.1%}" for k, v in shares[name].items()))
    return shares


def print_table(r: dict) -> None:
    print(f"\n== decoding {r['model']['name']}, {r['dtype']}, {r['threads']} thread(s), {r['new_tokens']} new tokens, "
          f"ceiling {r['ceiling_gflop_per_s']['best']} GFLOP/s, ISA {' '.join(r['isa'])}, "
          f"load {r['load_start']} -> {r['load_end']} ==")
    print(f"{'part':<32}{'tok/s wall':>11}{'tok/s cpu':>10}{'ceil wall':>10}{'ceil cpu':>9}"
          f"{'steps cpu':>10}{'all fwd cpu':>12}")
    for name, p in r["forced"].items():
        print(f"{name:<32}{p['new_tokens_per_s_wall']:>11}{p['new_tokens_per_s_cpu']:>10}"
              f"{p['ratio_to_ceiling_wall']:>10.1%}{p['ratio_to_ceiling_cpu']:>9.1%}"
              f"{p['decode_steps_ratio_to_ceiling_cpu']:>10.1%}{p['all_forward_ratio_to_ceiling_cpu']:>12.1%}")
    if r["answering"]:
        a = r["answering"]
        print(f"answering {a['decode_loop']['prompts']} prompts: {a['speedup_wall']}x wall, {a['speedup_cpu']}x cpu, "
              f"same answers {a['same_answers']}/{a['decode_loop']['prompts']}")


if __name__ == "__main__":
    main()
