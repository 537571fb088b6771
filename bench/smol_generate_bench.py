"""SmolLM2 generation benchmark: LM.generate (batched, KV cache) against pipeline("text-generation") one prompt
at a time, on the real SmolLM2-135M-Instruct and natural questions through its chat template.

    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/smol_generate_bench.py     # batches 1, 8, 32; 2 rounds
    .venv/bin/python bench/smol_generate_bench.py --batches 1,16 --rounds 3 --new-tokens 32

The model comes from ``rag_bench.models`` (``smollm2-135m``, converted into DATA_DIR/models/pretrained once).
Prompts are "What is the capital of X?"-style questions rendered by ``rag_bench.prompt.render_prompt`` through
the chat template, as the chat and the evaluator send them. Decoding is greedy with ``min_new_tokens =
max_new_tokens`` and no stop string, so both sides write exactly ``--new-tokens`` tokens per prompt. Ours runs in
bf16 autocast where the CPU runs bf16 natively (``rag_bench.lm.autocast``), else fp32; the pipeline in fp32, its
default. Rounds alternate ours and the pipeline; the median round counts. Prints a table and writes
bench/results/smol_generate.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads starve on shared cores

import torch
from generate_bench import time_ours, time_pipeline
from train_bench import REPO, corpus_texts, load_average, machine_info, peak_rss_mb, reset_peak_rss

from rag_bench.models import load_model
from rag_bench.prompt import render_prompt
from rag_bench.records import write_json
from rag_bench.training.examples import record_lines

FIELDS = {"Capital": "What is the capital of {}?", "Currency": "What is the currency of {}?",
          "Population - total": "What is the population of {}?", "Languages": "What languages are spoken in {}?"}


def questions(count: int) -> list[str]:
    """Natural questions about the corpus's entities (Factbook countries, or the generated fallback's)."""
    texts, _ = corpus_texts(400_000)
    entities = list(record_lines(texts)) or [f"country {i}" for i in range(count)]
    out = [template.format(e) for template in FIELDS.values() for e in entities]
    return (out * (1 + count // max(1, len(out))))[:count]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="registry name or model folder")
    parser.add_argument("--data-dir", default=str(REPO / "data"), help="where a registry model is converted once")
    parser.add_argument("--batches", default="1,8,32", help="batch sizes of ours, comma-separated")
    parser.add_argument("--new-tokens", type=int, default=24, help="new tokens per prompt (forced, greedy)")
    parser.add_argument("--pipeline-prompts", type=int, default=8, help="prompts through the pipeline per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds; the median counts")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "smol_generate.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_start = load_average()
    batches = [int(b) for b in args.batches.split(",")]
    lm = load_model(args.model, args.data_dir, device="cpu")
    lm.model.generation_config.min_new_tokens = args.new_tokens  # no early EOS on either side
    sizes = {b: args.pipeline_prompts if b == 1 else 2 * b for b in batches}
    prompts = [render_prompt(q, tokenizer=lm.tokenizer) for q in questions(max(sizes.values()))]
    from transformers import pipeline

    pipe = pipeline("text-generation", model=lm.model, tokenizer=lm.tokenizer, device="cpu")
    time_ours(lm, prompts[:2], 2, 4)  # warm-up: first-call allocations and kernel choices
    time_pipeline(pipe, prompts[:1], 4)
    samples: dict[str, list[dict]] = {f"ours_batch_{b}": [] for b in batches} | {"pipeline": []}
    peaks: dict[str, float] = {}
    rss_before = reset_peak_rss()
    for round_no in range(args.rounds):
        for b in batches:
            reset_peak_rss()
            samples[f"ours_batch_{b}"].append(time_ours(lm, prompts[:sizes[b]], b, args.new_tokens))
            peaks[f"ours_batch_{b}"] = max(peaks.get(f"ours_batch_{b}", 0.0), peak_rss_mb())
        reset_peak_rss()
        samples["pipeline"].append(time_pipeline(pipe, prompts[:args.pipeline_prompts], args.new_tokens))
        peaks["pipeline"] = max(peaks.get("pipeline", 0.0), peak_rss_mb())
        print(f"round {round_no + 1}/{args.rounds}: " + ", ".join(
            f"{name} {s[-1]['new_tokens'] / s[-1]['seconds']:.1f} tok/s" for name, s in samples.items()), flush=True)
    parts = {}
    for name, runs in samples.items():
        rates = [r["new_tokens"] / r["seconds"] for r in runs]
        parts[name] = {"new_tokens_per_s": round(statistics.median(rates), 1), "rounds": [round(x, 1) for x in rates],
                       "prompts": sizes[int(name.rsplit("_", 1)[1])] if name != "pipeline" else args.pipeline_prompts,
                       "new_tokens_per_round": runs[-1]["new_tokens"], "peak_rss_mb": peaks[name]}
    pipeline_rate = parts["pipeline"]["new_tokens_per_s"]
    report = {
        "model": {"name": args.model, "parameters": lm.num_parameters, "max_positions": lm.max_positions},
        "prompts": {"kind": "natural questions through the chat template (closed-book prompts)",
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
    print(f"\n== SmolLM2 generation: {r['model']['parameters'] / 1e6:.1f}M parameters, {r['new_tokens']} new tokens "
          f"per prompt, prompts of {r['prompts']['mean_tokens']} tokens, {r['threads']} threads, "
          f"load {r['load_start']} -> {r['load_end']} ==")
    print(f"{'part':<16}{'dtype':<16}{'prompts':>8}{'new tok/s':>11}{'x pipeline':>12}{'rounds':>22}")
    for name, p in r["parts"].items():
        dtype = r["pipeline_dtype"].split(" ")[0] if name == "pipeline" else r["ours_dtype"].split(" ")[0]
        ratio = r["ours_over_pipeline"].get(name, 1.0)
        print(f"{name:<16}{dtype:<16}{p['prompts']:>8}{p['new_tokens_per_s']:>11}{ratio:>12.2f}"
              f"{p['rounds']!s:>22}")


if __name__ == "__main__":
    main()
