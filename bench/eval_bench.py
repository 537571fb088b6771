"""Evaluation benchmark: probes per second in each mode, and the share of time in retrieval, generation, scoring.

    .venv/bin/python bench/eval_bench.py --model runs/r1/gen_0/model                 # 200 Factbook probes per mode
    .venv/bin/python bench/eval_bench.py --model M --limit 500 --modes closed,grounded,grounded_span
    .venv/bin/python bench/eval_bench.py --model M --name acme --probes data/probes/acme-cloze.jsonl

Each mode is timed on its own with an empty cache, so grounded modes pay for retrieval (query embedding
and FAISS search) as a first evaluation of a run does; later generations of a run read it from the cache.
A last run with the default diversity settings (64 human prompts continued in each free-text mode, scored
by the model itself) times held-out perplexity and diversity. From these it estimates a full evaluation of
every probe in the file in closed and grounded modes. Everything is timed at each ``--threads`` count in turn:
on 2 cores shared with other jobs, two torch threads have been measured several times slower than one
(threads spin-waiting for a core). Prints a table and writes bench/results/eval.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from rag_bench.cli import index_dir  # noqa: E402
from rag_bench.config import EvalConfig  # noqa: E402
from rag_bench.eval.inputs import human_texts, load_eval_probes  # noqa: E402
from rag_bench.eval.paths import corpus_jsonl_for  # noqa: E402
from rag_bench.eval.run import evaluate, provenance  # noqa: E402
from rag_bench.index.retrieve import make_retriever  # noqa: E402
from rag_bench.index.store import load_index  # noqa: E402
from rag_bench.lm import LM  # noqa: E402
from rag_bench.records import write_json  # noqa: E402


def time_mode(lm: LM, probes: Path, mode: str, *, retriever, cfg: EvalConfig, heldout: list[str],
              train: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="eval_bench_") as tmp:
        started = time.perf_counter()
        results = evaluate(lm, probes, retriever=retriever, cfg=cfg.replace(modes=(mode,), cache_dir=f"{tmp}/cache"),
                           heldout_texts=heldout, human_texts_for_rare=train, out_dir=f"{tmp}/eval", progress=False)
        wall = time.perf_counter() - started
    timings = results["timings"]
    per_mode = timings["modes"][mode]
    # one mode per call: the one-pass answering time (timings["answering_s"]) is this mode's generation
    generation = per_mode["generation_s"] + timings.get("answering_s", 0)
    parts = {"retrieval": timings["retrieval_s"], "generation": generation, "scoring": per_mode["scoring_s"]}
    busy = sum(parts.values())
    return {"probes": per_mode["probes"], "probes_per_s": per_mode["probes"] / busy, "seconds": parts,
            "share": {k: v / busy for k, v in parts.items()}, "wall_s": wall,
            "exact_match": results["metrics"][mode]["all"]["exact_match"]["value"],
            "truncated": results["metrics"][mode]["all"]["prompt_truncated"]["value"]}


def time_threads(lm: LM, probes: Path, modes: list[str], *, retriever, texts, args) -> dict:
    """Every mode, then fit and diversity, at the current torch thread count."""
    cfg = EvalConfig(limit=args.limit, batch_size=args.batch_size, diversity_prompts=0)
    run: dict = {"load_average_at_start": os.getloadavg()[0], "modes": {}}
    for mode in modes:
        run["modes"][mode] = time_mode(lm, probes, mode, retriever=retriever, cfg=cfg, heldout=[], train=[])
        print(f"threads {torch.get_num_threads()}, {mode}: {run['modes'][mode]['probes_per_s']:.1f} probes/s",
              flush=True)
    if args.diversity_prompts:
        with tempfile.TemporaryDirectory(prefix="eval_bench_") as tmp:
            results = evaluate(lm, probes, retriever=retriever, heldout_texts=texts.heldout,
                               human_texts_for_rare=texts.train, out_dir=f"{tmp}/eval", progress=False,
                               cfg=EvalConfig(limit=8, batch_size=args.batch_size, cache_dir=f"{tmp}/cache",
                                              diversity_prompts=args.diversity_prompts))
        run.update(fit_s=results["timings"]["fit_s"], diversity_s=results["timings"]["diversity_s"],
                   heldout_tokens=results["fit"]["heldout_perplexity"]["n"])
    return run


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model folder, e.g. the base generation-0 model")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--name", default="factbook", help="index name under DATA_DIR/indexes")
    parser.add_argument("--probes", type=Path, default=None, help="default DATA_DIR/probes/NAME-factbook.jsonl")
    parser.add_argument("--limit", type=int, default=200, help="probes timed per mode")
    parser.add_argument("--modes", default="closed,grounded,grounded_span")
    parser.add_argument("--retrieval", choices=["dense", "bm25", "hybrid"], default="dense")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to time, comma-separated")
    parser.add_argument("--diversity-prompts", type=int, default=64, help="for the fit + diversity timing (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval.json")
    args = parser.parse_args(argv)

    probes = args.probes or args.data_dir / "probes" / f"{args.name}-factbook.jsonl"
    index_path = index_dir(args.data_dir, args.name)
    loaded = load_index(index_path)
    retriever = make_retriever(loaded.store, mode=args.retrieval, k=3)
    texts = human_texts(loaded.chunks, corpus_jsonl=corpus_jsonl_for(index_path))
    lm = LM.load(args.model)
    all_probes, _ = load_eval_probes(probes)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    default_threads = torch.get_num_threads()
    runs = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        run = time_threads(lm, probes, modes, retriever=retriever, texts=texts, args=args)
        full = {m: len(all_probes) / run["modes"][m]["probes_per_s"] for m in ("closed", "grounded") if m in modes}
        run["full_eval_estimate_s"] = {"closed+grounded probes": sum(full.values()),
                                       "with fit and diversity": sum(full.values()) + run.get("fit_s", 0.0)
                                       + run.get("diversity_s", 0.0)}
        runs[str(threads)] = run
    torch.set_num_threads(default_threads)
    report = {
        "model": {"path": str(args.model), "parameters": lm.num_parameters, "max_positions": lm.max_positions},
        "probes": {"path": str(probes), "total": len(all_probes), "timed_per_mode": args.limit},
        "index": {"path": str(index_path), "chunks": len(loaded.chunks), "retrieval": args.retrieval, "k": 3},
        "batch_size": args.batch_size, "cpu_count": os.cpu_count(), "torch_default_threads": default_threads,
        "diversity_prompts": args.diversity_prompts, "heldout_texts": len(texts.heldout),
        "runs_by_torch_threads": runs, **provenance(),
    }
    write_json(args.out, report)

    print(f"\nmodel {args.model} ({lm.num_parameters / 1e6:.2f}M parameters), {args.limit} probes per mode, "
          f"batch {args.batch_size}, {args.retrieval} retrieval, {os.cpu_count()} cores")
    print(f"{'threads':<9}{'mode':<15}{'probes/s':>10}{'retrieval':>11}{'generation':>12}{'scoring':>9}{'EM':>7}"
          f"{'load':>6}")
    for threads, run in runs.items():
        for mode, row in run["modes"].items():
            share = row["share"]
            print(f"{threads:<9}{mode:<15}{row['probes_per_s']:>10.1f}{share['retrieval']:>11.1%}"
                  f"{share['generation']:>12.1%}{share['scoring']:>9.1%}{row['exact_match']:>7.3f}"
                  f"{run['load_average_at_start']:>6.1f}")
    for threads, run in runs.items():
        if "fit_s" in run:
            print(f"threads {threads}: held-out perplexity {run['fit_s']:.1f} s for {run['heldout_tokens']} tokens; "
                  f"diversity ({args.diversity_prompts} prompts per mode) {run['diversity_s']:.1f} s")
        estimate = run["full_eval_estimate_s"]["with fit and diversity"]
        print(f"threads {threads}: estimated full evaluation of {len(all_probes)} probes, closed + grounded, "
              f"with fit and diversity: {estimate / 60:.1f} min")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
