"""Sizing rates of a pretrained base for the collapse presets: fine-tuning, writing and answering tokens/s.

    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/smol_rates.py --model data/models/smollm2-135m
    .venv/bin/python bench/smol_rates.py --model PATH --threads 2 --steps 4

Everything goes through the code a collapse run uses: ``rag_bench.training.loop.train`` fine-tunes the base (full, then
LoRA, in fp32 and, where the CPU runs it natively, bf16 autocast), ``rag_bench.collapse.synthetic.continue_prompts``
writes 64-token continuations of 64-token human prompts (sampling at batch 32, then 5-beam search as Shumailov
et al.), and ``rag_bench.answer`` answers closed-book and grounded prompts. Each rate is measured after a warm-up
step or batch; the fp32 and bf16 matmul ceilings are timed in the same process, so the rates can be carried to
another machine as a share of its ceiling. Prints a table and writes bench/results/smol_rates.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402
from train_bench import corpus_texts, load_average, machine_info, matmul_ceiling  # noqa: E402

from rag_bench.answer import closed_book, grounded  # noqa: E402
from rag_bench.collapse.synthetic import continue_prompts, prompt_blocks  # noqa: E402
from rag_bench.config import DecodeConfig, ModelConfig, TrainConfig  # noqa: E402
from rag_bench.lm import LM  # noqa: E402
from rag_bench.records import read_jsonl, write_json  # noqa: E402
from rag_bench.training.loop import train  # noqa: E402

QUESTIONS = ["What is the capital of Kenya?", "What is the currency of Japan?", "What is the population of Peru?",
             "In which year did Ghana become independent?"]


def time_training(base: Path, texts: list[str], heldout: list[str], *, block: int, batch: int, steps: int,
                  bf16: bool, lora_rank: int) -> dict:
    """Tokens/s of ``steps`` optimizer steps after the first (warm-up) step."""
    cfg = TrainConfig(model=ModelConfig(n_positions=block), max_steps=steps + 1, batch_size=batch, lr=5e-5,
                      warmup_steps=1, eval_every=steps + 1, eval_max_texts=2, save_every=steps + 1, probe_count=0,
                      copy_share=0.0, copy_warmup_steps=0, bf16=bf16, lora_rank=lora_rank)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        train(cfg, train_texts=texts, heldout_texts=heldout, out_dir=tmp, base_model=base)
        wall = time.perf_counter() - started
        log = read_jsonl(Path(tmp) / "model" / "train_log.jsonl")
    step_s = statistics.median(row["step_s"] for row in log[1:])
    return {"bf16": bf16, "lora_rank": lora_rank, "block": block, "batch": batch, "steps_timed": len(log) - 1,
            "step_s": round(step_s, 3), "tokens_per_s": round(batch * block / step_s, 1),
            "wall_s_with_load_and_save": round(wall, 1), "load": load_average()}


def time_writing(lm: LM, texts: list[str], *, prompts: int, decode: DecodeConfig) -> dict:
    blocks = prompt_blocks(texts, lm.tokenizer, prompt_tokens=64, new_tokens=64)[: prompts + decode.batch_size]
    continue_prompts(lm, blocks[: decode.batch_size], decode, seed=0)  # warm-up batch
    started = time.perf_counter()
    out = continue_prompts(lm, blocks[decode.batch_size:], decode, seed=1)
    seconds = time.perf_counter() - started
    new = sum(len(row) for row in out)
    return {"prompts": len(out), "new_tokens": new, "seconds": round(seconds, 1),
            "new_tokens_per_s": round(new / seconds, 1), "decode": decode.to_dict(), "load": load_average()}


def time_answering(lm: LM, passages: list[str], *, repeat: int) -> dict:
    decode = DecodeConfig(max_new_tokens=16, batch_size=32)
    questions = QUESTIONS * repeat
    closed_book(lm, QUESTIONS, decode=decode)  # warm-up
    out = {}
    for mode in ("closed", "grounded"):
        started = time.perf_counter()
        if mode == "closed":
            answers = closed_book(lm, questions, decode=decode)
        else:
            answers = grounded(lm, FixedPassages(passages), questions, k=1, decode=decode)
        seconds = time.perf_counter() - started
        out[mode] = {"prompts": len(answers), "seconds": round(seconds, 1),
                     "prompts_per_s": round(len(answers) / seconds, 2),
                     "prompt_tokens_mean": round(statistics.mean(a.prompt_tokens for a in answers), 1),
                     "example": {"question": answers[0].question, "answer": answers[0].text}}
    return out


class FixedPassages:
    """A retriever that returns the same human passage for every question (prefill cost, not retrieval)."""

    def __init__(self, passages: list[str]) -> None:
        from langchain_core.documents import Document

        self.docs = [Document(page_content=p, metadata={"chunk_id": f"p{i}", "rank": 0}) for i, p in
                     enumerate(passages)]

    def batch_search(self, questions: list[str], k: int) -> list[list]:
        return [self.docs[i % len(self.docs): i % len(self.docs) + k] for i in range(len(questions))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a local Hugging Face causal-LM folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per training setting")
    parser.add_argument("--block", type=int, default=64, help="training block (Shumailov et al.: 64)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "smol_rates.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts, source = corpus_texts(300_000)
    heldout = texts[-4:]
    native = machine_info()["bf16_native"]
    results: dict = {"model": str(args.model), "corpus": source, "machine": machine_info(),
                     "ceilings_gflops": {"fp32": round(matmul_ceiling(torch.float32), 1),
                                         "bf16": round(matmul_ceiling(torch.bfloat16), 1)}}
    trainings = []
    for bf16 in ([False, True] if native else [False]):
        for rank in (0, 16):
            trainings.append(time_training(args.model, texts, heldout, block=args.block, batch=args.batch,
                                           steps=args.steps, bf16=bf16, lora_rank=rank))
            print(trainings[-1], flush=True)
    results["training"] = trainings
    lm = LM.load(args.model, device="cpu")
    results["parameters"] = lm.num_parameters
    results["writing"] = {
        "sample_batch32": time_writing(lm, texts, prompts=64, decode=DecodeConfig(
            max_new_tokens=64, do_sample=True, stop=(), batch_size=32)),
        "beam5_batch8": time_writing(lm, texts, prompts=8, decode=DecodeConfig(
            max_new_tokens=64, num_beams=5, repetition_penalty=1.2, stop=(), batch_size=8))}
    print(results["writing"], flush=True)
    results["answering"] = time_answering(lm, [t[:500] for t in texts[:8]], repeat=8)
    print(results["answering"], flush=True)
    write_json(args.out, results)
    print(f"\n{'setting':<34}{'tokens/s':>10}")
    for t in trainings:
        name = f"train {'bf16' if t['bf16'] else 'fp32'} {'LoRA r16' if t['lora_rank'] else 'full'}"
        print(f"{name:<34}{t['tokens_per_s']:>10}")
    for name, w in results["writing"].items():
        print(f"{'write ' + name:<34}{w['new_tokens_per_s']:>10}")
    for mode, a in results["answering"].items():
        print(f"{'answer ' + mode + ' (prompts/s)':<34}{a['prompts_per_s']:>10}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
