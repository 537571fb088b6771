"""Generation benchmark: new tokens/s of LM.generate (batched, KV cache) against a transformers pipeline.

    .venv/bin/python bench/generate_bench.py                    # base size, batches 1, 32, 128, 32 new tokens
    .venv/bin/python bench/generate_bench.py --size small --threads 1 --batches 1,16

The model is the ``base`` preset with random weights (throughput does not depend on what it learnt)
and a tokenizer trained on the Factbook text; prompts are Factbook record prefixes (``Country |
Section | Field:``). Decoding is greedy with ``min_new_tokens = max_new_tokens`` and no stop string,
so every prompt gets exactly ``--new-tokens`` tokens on both sides. Ours is ``rag_bench.lm.LM.generate``
(left-padded batches, KV cache, bf16 autocast where the CPU has it); the baseline is
``pipeline("text-generation")`` over the same model and tokenizer, called one prompt at a time, as its
defaults are (fp32). Rounds alternate ours and the baseline; the median round counts. Peak memory is
the VmHWM of each part (reset before it). Prints a table and writes bench/results/generate.json.
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
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads starve on shared cores

import torch
from train_bench import REPO, corpus_texts, load_average, machine_info, peak_rss_mb, reset_peak_rss

from rag_bench.config import DecodeConfig, ModelConfig
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer
from rag_bench.records import write_json
from rag_bench.training.examples import record_lines


def record_prompts(texts: list[str], count: int) -> list[str]:
    """``count`` distinct record prefixes, one field per entity in turn, so prompts are short and alike."""
    by_entity = record_lines(texts)
    prompts, depth = [], 0
    while len(prompts) < count and depth < 50:
        prompts += [lines[depth].prefix for lines in by_entity.values() if depth < len(lines)]
        depth += 1
    if len(prompts) < count:
        prompts += [" ".join(t.split()[:12]) for t in texts[: count - len(prompts)]]
    return prompts[:count]


def time_ours(lm: LM, prompts: list[str], batch: int, new_tokens: int) -> dict:
    decode = DecodeConfig(max_new_tokens=new_tokens, stop=(), batch_size=batch)
    started = time.perf_counter()
    out = lm.generate_detailed(prompts, decode)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "new_tokens": sum(g.new_tokens for g in out)}


def time_pipeline(pipe, prompts: list[str], new_tokens: int) -> dict:
    started = time.perf_counter()
    produced = 0
    for prompt in prompts:
        # BOS first, as LM.generate encodes prompts; the ids returned are the prompt's and the new ones
        out = pipe(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, return_tensors=True,
                   add_special_tokens=True)
        produced += len(out[0]["generated_token_ids"]) - len(pipe.tokenizer(prompt)["input_ids"])
    return {"seconds": time.perf_counter() - started, "new_tokens": produced}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="base", help="ModelConfig preset: tiny | small | base | large")
    parser.add_argument("--arch", choices=["lfm2", "llama", "gpt2"], default=None, help="default: the preset's (lfm2)")
    parser.add_argument("--batches", default="1,32,128", help="batch sizes of ours, comma-separated")
    parser.add_argument("--new-tokens", type=int, default=32, help="new tokens per prompt (forced, greedy)")
    parser.add_argument("--pipeline-prompts", type=int, default=16, help="prompts through the pipeline per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds; the median counts")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "generate.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = load_average()
    batches = [int(b) for b in args.batches.split(",")]
    model_cfg = ModelConfig.preset(args.size, **({"arch": args.arch} if args.arch else {}))
    texts, source = corpus_texts()
    lm = LM.build(model_cfg, train_tokenizer(texts, model_cfg.vocab_size), seed=0, device="cpu")
    # EOS can be the greedy choice of a random model: forbid it until the last token, on both sides
    lm.model.generation_config.min_new_tokens = args.new_tokens
    # ours: one prompt per row at batch 1 (as many as the pipeline), two full batches otherwise
    sizes = {b: args.pipeline_prompts if b == 1 else 2 * b for b in batches}
    prompts = record_prompts(texts, max(sizes.values()))
    from transformers import pipeline

    pipe = pipeline("text-generation", model=lm.model, tokenizer=lm.tokenizer, device="cpu")
    time_ours(lm, prompts[:4], 4, args.new_tokens)  # warm-up: first-call allocations and kernel choices
    time_pipeline(pipe, prompts[:2], args.new_tokens)
    samples: dict[str, list[dict]] = {f"ours_batch_{b}": [] for b in batches} | {"pipeline": []}
    peaks: dict[str, float] = {}
    rss_before = reset_peak_rss()  # model, tokenizer and texts loaded
    for round_no in range(args.rounds):
        for b in batches:
            reset_peak_rss()
            samples[f"ours_batch_{b}"].append(time_ours(lm, prompts[:sizes[b]], b, args.new_tokens))
            peaks[f"ours_batch_{b}"] = max(peaks.get(f"ours_batch_{b}", 0.0), peak_rss_mb())
        reset_peak_rss()
        samples["pipeline"].append(time_pipeline(pipe, prompts[:args.pipeline_prompts], args.new_tokens))
        peaks["pipeline"] = max(peaks.get("pipeline", 0.0), peak_rss_mb())
        print(f"round {round_no + 1}/{args.rounds}: " + ", ".join(
            f"{name} {s[-1]['new_tokens'] / s[-1]['seconds']:.0f} tok/s" for name, s in samples.items()), flush=True)
    parts = {}
    for name, runs in samples.items():
        rates = [r["new_tokens"] / r["seconds"] for r in runs]
        parts[name] = {"new_tokens_per_s": round(statistics.median(rates)), "rounds": [round(x) for x in rates],
                       "prompts": sizes[int(name.rsplit("_", 1)[1])] if name != "pipeline" else args.pipeline_prompts,
                       "new_tokens_per_round": runs[-1]["new_tokens"], "peak_rss_mb": peaks[name]}
    pipeline_rate = parts["pipeline"]["new_tokens_per_s"]
    report = {
        "model": {"size": args.size, "arch": model_cfg.arch, "parameters": lm.num_parameters,
                  "weights": "random init (throughput only)", "max_positions": lm.max_positions},
        "prompts": {"source": source, "kind": "record prefixes 'Country | Section | Field:'",
                    "mean_tokens": round(statistics.mean(len(lm.tokenizer(p)["input_ids"]) for p in prompts), 1)},
        "new_tokens": args.new_tokens, "decoding": "greedy, min_new_tokens = max_new_tokens, no stop strings",
        "ours_dtype": "bf16 autocast" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32",
        "pipeline_dtype": "fp32 (pipeline default)", "threads": args.threads, "rounds": args.rounds,
        "rss_before_mb": rss_before, "parts": parts,
        "ours_over_pipeline": {name: round(p["new_tokens_per_s"] / pipeline_rate, 2)
                               for name, p in parts.items() if name != "pipeline"},
        "load_start": load_start, "load_end": load_average(), "machine": machine_info(),
    }
    write_json(args.out, report)
    print_table(report)
    print(f"wrote {args.out}")
    return report


def print_table(r: dict) -> None:
    m = r["model"]
    print(f"\n== generation benchmark: {m['size']} {m['arch']}, {m['parameters'] / 1e6:.2f}M parameters (random init), "
          f"{r['new_tokens']} new tokens per prompt, {r['threads']} threads, load {r['load_start']} -> "
          f"{r['load_end']} ==")
    print(f"{'generator':<24}{'prompts':>8}{'new tok/s':>11}{'vs pipeline':>13}{'peak RSS':>10}")
    for name, p in r["parts"].items():
        ratio = r["ours_over_pipeline"].get(name, 1.0)
        label = "pipeline, one at a time" if name == "pipeline" else name.replace("_", " ")
        print(f"{label:<24}{p['prompts']:>8}{p['new_tokens_per_s']:>11}{ratio:>12.2f}x{p['peak_rss_mb']:>8.0f}MB")


if __name__ == "__main__":
    main()
