"""A checked GPU path: a tiny experiment end to end on CUDA against a CPU run of the same seed, and the tokens/s
that size the ``paper`` and ``full`` presets for one GPU.

    .venv/bin/python bench/gpu_check.py                  # on a CUDA machine (one line of error without CUDA)
    .venv/bin/python bench/gpu_check.py --device cpu     # the same path on CPU only: a smoke test (tests run it)

1. A 3-country Factbook (corpus, MiniLM index, probes) is built in a temporary DATA_DIR.
2. The ``tiny`` collapse preset (generation 0, one ``replace`` generation: training with bf16 autocast where the
   device has it, batched writing, evaluation in both modes) runs twice with the same seed, in two processes:
   once with CUDA hidden (the CPU reference) and once on ``--device``. Every generation's evaluation is compared:
   each rate of ``metrics[mode]["all"]`` within ``--rate-tol`` (absolute) and held-out perplexity within
   ``--ppl-tol`` (relative); bf16 on a GPU and fp32/bf16 on a CPU do not give the same floats, so the check is a
   tolerance, not equality.
3. Throughput on the device of the ``base`` model (random weights: speed does not depend on what it learnt):
   training tokens/s (``rag_bench.training.loop.train``, bf16 autocast) and generation new tokens/s (``LM.generate``,
   batched); with ``--pretrained NAME`` (default on CUDA: smollm2-135m, through ``rag_bench.models``) the same for
   that pretrained model (fine-tuning all weights, block 512).
4. From those rates, the training and writing hours of ``full`` and ``paper`` on one such device (evaluation not
   included; beam search counted as ``num_beams`` times the greedy cost).
Prints a table and writes bench/results/gpu_check.json (``--out``); exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNTRIES = ["ck", "kt", "pc"]
FACTBOOK_TOKENS = 2_200_000  # the whole Factbook under an 8k BPE (docs); the human training split is about 95%


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: smoke test without a GPU")
    parser.add_argument("--train-steps", type=int, default=30, help="timed training steps of the base model")
    parser.add_argument("--gen-prompts", type=int, default=256, help="prompts of the timed generation")
    parser.add_argument("--new-tokens", type=int, default=64, help="new tokens per prompt of the timed generation")
    parser.add_argument("--batch", type=int, default=64, help="rows per training step and prompts per generate batch")
    parser.add_argument("--rate-tol", type=float, default=0.25, help="largest difference of a rate (0..1)")
    parser.add_argument("--ppl-tol", type=float, default=0.10, help="largest relative difference of a perplexity")
    parser.add_argument("--pretrained", default=None,
                        help="also time this registry model or folder (default on cuda: smollm2-135m; on cpu: none)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_check.json")
    return parser.parse_args()


def build_data(data_dir: Path) -> None:
    from rag_bench.cli import ingest
    from rag_bench.index.store import load_index
    from rag_bench.probes.build import make_probe_file

    spec = importlib.util.spec_from_file_location("factbook_build", REPO / "corpora" / "factbook" / "build.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    builder.build(data_dir / "corpora" / "factbook", countries=COUNTRIES, heldout_fraction=0.2, progress=False)
    ingest(str(data_dir / "corpora" / "factbook" / "corpus.jsonl"), data_dir=data_dir, name="factbook",
           progress=False)
    make_probe_file("factbook", load_index(data_dir / "indexes" / "factbook").chunks,
                    data_dir / "probes" / "factbook-factbook.jsonl",
                    facts_path=data_dir / "corpora" / "factbook" / "facts.jsonl")


def run_tiny(config: Path, run_dir: Path, data_dir: Path, *, hide_cuda: bool) -> float:
    """One tiny collapse run in its own process (CUDA hidden for the reference); returns its seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if hide_cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "rag_bench", "collapse", "--config", str(config), "--run-dir",
                             str(run_dir), "--data-dir", str(data_dir)], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: the tiny run in {run_dir} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def within(cpu: float | None, device: float | None, rate_tol: float, rel_tol: float) -> bool:
    """Rates (both in [0, 1]) within ``rate_tol`` absolute, other figures within ``rel_tol`` relative; None = None."""
    if cpu is None or device is None:
        return cpu is None and device is None
    if rate_tol > 0 and 0 <= cpu <= 1 and 0 <= device <= 1:
        return abs(cpu - device) <= rate_tol
    return abs(cpu - device) <= rel_tol * max(abs(cpu), 1e-12)


def compare_runs(reference: Path, device_run: Path, rate_tol: float, ppl_tol: float) -> list[dict]:
    """One row per compared figure: generation, name, CPU value, device value, within tolerance."""
    from rag_bench.records import read_json

    rows = []
    for results in sorted(reference.rglob("eval/results.json")):
        rel = results.relative_to(reference)
        cpu, dev = read_json(results), read_json(device_run / rel)
        for mode, buckets in cpu["metrics"].items():
            for name, cell in buckets["all"].items():
                other = dev["metrics"][mode]["all"][name]["value"]
                rows.append({"eval": str(rel.parent.parent), "figure": f"{mode}/{name}", "cpu": cell["value"],
                             "device": other, "ok": within(cell["value"], other, rate_tol, ppl_tol)})
        for name, value in (cpu.get("fit") or {}).items():
            if "perplexity" in name and isinstance(value, (int, float)):
                other = dev["fit"][name]
                rows.append({"eval": str(rel.parent.parent), "figure": f"fit/{name}", "cpu": value, "device": other,
                             "ok": within(value, other, 0.0, ppl_tol)})
    return rows


def throughput(args: argparse.Namespace, workdir: Path) -> dict:
    import torch
    from generate_bench import record_prompts
    from generate_bench import time_ours as time_generate
    from train_bench import corpus_texts
    from train_bench import time_ours as time_train

    from rag_bench.config import ModelConfig, TrainConfig
    from rag_bench.lm import LM, pick_device
    from rag_bench.models.scratch import train_tokenizer

    texts, source = corpus_texts(400_000)
    model = ModelConfig.preset("base")
    warmup = 3
    cfg = TrainConfig(model=model, max_steps=warmup + args.train_steps, batch_size=args.batch, warmup_steps=2,
                      eval_every=10_000, save_every=10_000, eval_max_texts=4, probe_count=0, bf16=True)
    part = time_train(cfg, texts, texts[:4], warmup, workdir)
    train_tps = part["steps"] * args.batch * model.n_positions / part["seconds"]
    lm = LM.build(model, train_tokenizer(texts, model.vocab_size), seed=0, device=pick_device())
    prompts = record_prompts(texts, args.gen_prompts)
    time_generate(lm, prompts[: args.batch], args.batch, 8)  # warm-up (kernels, allocator)
    generated = time_generate(lm, prompts, args.batch, args.new_tokens)
    out = {"device": str(pick_device()), "device_name": torch.cuda.get_device_name() if torch.cuda.is_available()
           else "cpu", "text": source, "base_parameters": part["parameters"],
           "train_tokens_per_s": round(train_tps), "train_batch": args.batch, "train_block": model.n_positions,
           "generate_new_tokens_per_s": round(generated["new_tokens"] / generated["seconds"]),
           "generate_batch": args.batch, "pretrained": None}
    pretrained = args.pretrained if args.pretrained is not None else ("smollm2-135m" if args.device == "cuda" else "")
    if pretrained:
        out["pretrained"] = time_pretrained(pretrained, args, texts, prompts, workdir)
    return out


def time_pretrained(spec: str, args: argparse.Namespace, texts: list[str], prompts: list[str], workdir: Path) -> dict:
    """Fine-tuning tokens/s (all weights, bf16 autocast) and generation new tokens/s of a pretrained model."""
    from generate_bench import time_ours as time_generate

    from rag_bench.config import TrainConfig
    from rag_bench.lm import pick_device
    from rag_bench.models import load_model, resolve_model
    from rag_bench.records import read_jsonl
    from rag_bench.training.loop import train

    folder = resolve_model(spec, REPO / "data")  # a registry name is converted once into data/models/pretrained
    lm = load_model(folder, device=pick_device())
    warmup, block = 2, min(512, lm.max_positions)
    cfg = TrainConfig(max_steps=warmup + args.train_steps, batch_size=args.batch, lr=2e-5, warmup_steps=1,
                      eval_every=10_000, save_every=10_000, eval_max_texts=4, probe_count=0, bf16=True)
    cfg = cfg.replace(model=cfg.model.replace(n_positions=block))
    train(cfg, train_texts=texts, heldout_texts=texts[:4], out_dir=workdir / "pretrained", base_model=folder)
    log = read_jsonl(workdir / "pretrained" / "last" / "train_log.jsonl")[warmup:]
    time_generate(lm, prompts[: args.batch], args.batch, 8)
    generated = time_generate(lm, prompts, args.batch, args.new_tokens)
    return {"model": spec, "parameters": lm.num_parameters,
            "train_tokens_per_s": round(len(log) * args.batch * block / sum(r["step_s"] for r in log)),
            "generate_new_tokens_per_s": round(generated["new_tokens"] / generated["seconds"])}


def estimate_hours(rates: dict) -> dict:
    """Training and writing hours of ``full`` (base-model rates) and ``paper`` (the pretrained model's, when timed)."""
    from rag_bench.config import collapse_preset

    human = FACTBOOK_TOKENS * 0.95
    out = {}
    for name in ("full", "paper"):
        cfg = collapse_preset(name)
        used = rates["pretrained"] if name == "paper" and rates.get("pretrained") else rates
        block = cfg.train.model.n_positions
        later = (cfg.generations - 1) * len(cfg.strategies)
        per_later = (cfg.next_epochs * human if cfg.next_epochs > 0
                     else cfg.next_train.max_steps * cfg.next_train.batch_size * block)
        train_tokens = cfg.train.max_steps * cfg.train.batch_size * block + later * per_later
        write_tokens = later * human * cfg.decode.num_beams  # generations 0..n-2 write; beams cost num_beams x
        out[name] = {"train_tokens": round(train_tokens), "write_tokens_beam_weighted": round(write_tokens),
                     "train_hours": round(train_tokens / used["train_tokens_per_s"] / 3600, 2),
                     "write_hours": round(write_tokens / used["generate_new_tokens_per_s"] / 3600, 2),
                     "rates_of": used.get("model", "base (5.3M, random weights)")}
    return out


def main() -> None:
    args = parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: this process never sees a GPU
    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO))
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: bench/gpu_check.py needs CUDA (torch.cuda.is_available() is False on this machine); "
              "run it with --device cpu for the CPU smoke test", file=sys.stderr)
        raise SystemExit(2)
    from rag_bench.config import collapse_preset
    from rag_bench.records import write_json

    cfg = collapse_preset("tiny", generations=2, strategies=("replace",), threads=1, report=False)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        build_data(work / "data")
        (work / "tiny.json").write_text(json.dumps(cfg.to_dict()))
        cpu_s = run_tiny(work / "tiny.json", work / "cpu", work / "data", hide_cuda=True)
        device_s = run_tiny(work / "tiny.json", work / "device", work / "data", hide_cuda=args.device == "cpu")
        rows = compare_runs(work / "cpu", work / "device", args.rate_tol, args.ppl_tol)
        rates = throughput(args, work)
    result = {"bench": "gpu_check", "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "device": args.device, "ran_on_gpu": args.device == "cuda", "tiny_run_s": {"cpu": round(cpu_s, 1),
              args.device: round(device_s, 1)}, "tolerances": {"rate": args.rate_tol, "perplexity": args.ppl_tol},
              "comparison": rows, "passed": all(r["ok"] for r in rows) and bool(rows), "throughput": rates,
              "estimates": estimate_hours(rates)}
    write_json(args.out, result)
    print(f"tiny run: cpu {cpu_s:.0f} s, {args.device} {device_s:.0f} s; "
          f"{sum(r['ok'] for r in rows)} of {len(rows)} figures within tolerance")
    for row in rows:
        if not row["ok"]:
            print(f"  OUT OF TOLERANCE {row['eval']} {row['figure']}: cpu {row['cpu']}, device {row['device']}")
    print(f"base model on {rates['device_name']}: train {rates['train_tokens_per_s']} tokens/s, "
          f"generate {rates['generate_new_tokens_per_s']} new tokens/s (batch {args.batch})")
    if rates["pretrained"]:
        print(f"{rates['pretrained']['model']}: train {rates['pretrained']['train_tokens_per_s']} tokens/s, "
              f"generate {rates['pretrained']['generate_new_tokens_per_s']} new tokens/s")
    for name, est in result["estimates"].items():
        print(f"  {name}: training {est['train_hours']} h + writing {est['write_hours']} h on this device")
    print(f"wrote {args.out}")
    if not result["passed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
