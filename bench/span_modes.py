"""Exploratory: do span-constrained answers resist the drift that free answers show? (issue 20)

    .venv/bin/python bench/span_modes.py data/runs/quick-control-s2 data/runs/quick-control-s3
    .venv/bin/python bench/span_modes.py RUN... --generations 0,1,2,3,4 --out bench/results/span_modes.json

For each finished collapse run (one seed each) and each strategy, the asked generations (``--generations``) answer the
run's own probes again in ``grounded_span`` and ``oracle_span`` (the answer must be a span of the passage:
``rag_bench.models.decoding.span_constraint``), with the run's own evaluation config otherwise (retriever, k,
template, decoding). The free answers are the run's own samples (``eval/samples_grounded.jsonl``,
``samples_oracle.jsonl``), so free and span answers come from the same model on the same probes. Scores are the
primary comparisons' answer metric on the test probes without echo probes.

This is a defence measured beside the pre-registered free-answer comparisons, not one of them: the span modes
were found to read better on the dev split (``bench/results/reader_quick.json``) after the primary comparisons
were fixed. Prints per seed and the mean over seeds; with as few seeds as a session's run folders hold (the
runs' folders do not outlive a checkout), no interval is claimed. Writes ``bench/results/span_modes.json`` with
the ISA, the load and the runs' provenance, and the per-probe scores to ``bench/results/span_modes_samples.jsonl.gz``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rag_bench.collapse.strategies import Strategy  # noqa: E402
from rag_bench.config import CollapseConfig  # noqa: E402
from rag_bench.eval.run import evaluate, provenance  # noqa: E402
from rag_bench.eval.splits import probe_split  # noqa: E402
from rag_bench.lm import LM, compute_record  # noqa: E402
from rag_bench.records import read_jsonl, write_json  # noqa: E402

SPAN_OF = {"grounded": "grounded_span", "oracle": "oracle_span"}


def scores(path: Path, metric: str) -> dict[str, float]:
    """Probe id -> metric on the test probes, echo probes left out (as the primary comparisons count them)."""
    return {r["id"]: float(r["scores"][metric]) for r in read_jsonl(path)
            if probe_split(r["id"]) == "test" and not r.get("echo")}


def generation_dirs(run: Path, cfg: CollapseConfig, generations: list[int]) -> list[tuple[str, int, Path]]:
    """(strategy folder, generation, folder) of every strategy at the asked generations; generation 0 once."""
    out = [("gen_0", 0, run / "gen_0")] if 0 in generations else []
    for folder in (Strategy.parse(name).folder for name in cfg.strategies):
        out += [(folder, g, run / folder / f"gen_{g}") for g in generations if g > 0]
    return out


def span_scores(run: Path, gen_dir: Path, cfg: CollapseConfig, retriever, scratch: Path,
                metric: str) -> dict[str, dict[str, float]]:
    """Mode -> probe id -> metric, for the run's free answers and the span answers made here."""
    out_dir = scratch / run.name / gen_dir.relative_to(run)
    evaluate(LM.load(gen_dir / "model"), run / "data" / "probes.jsonl", retriever=retriever,
             cfg=cfg.eval.replace(modes=tuple(SPAN_OF.values()), diversity_prompts=0, heldout_max_texts=0,
                                  cache_dir=str(scratch / run.name / "cache")),
             out_dir=out_dir, progress=False)
    row = {}
    for free, span in SPAN_OF.items():
        row[free] = scores(gen_dir / "eval" / f"samples_{free}.jsonl", metric)
        row[span] = scores(out_dir / f"samples_{span}.jsonl", metric)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished collapse runs, one seed each")
    parser.add_argument("--generations", default="0,4", help="generations to answer again (0 = the shared one)")
    parser.add_argument("--metric", default="exact_match")
    parser.add_argument("--index", type=Path, default=REPO / "data" / "indexes" / "factbook")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "span_modes.json")
    parser.add_argument("--samples-out", type=Path, default=REPO / "bench" / "results" / "span_modes_samples.jsonl.gz",
                        help="per-probe scores behind every figure (gzipped JSONL)")
    args = parser.parse_args()
    from rag_bench.index.retrieve import make_retriever
    from rag_bench.index.store import load_index

    torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()
    generations = [int(g) for g in args.generations.split(",")]
    index, scratch = load_index(args.index), REPO / "data" / "scratch" / "span_modes"
    cells: dict[str, dict[str, dict[str, float]]] = {}  # "strategy gen g" -> mode -> seed -> mean
    samples: list[dict] = []  # one row per seed, strategy, generation, mode and probe
    for run in args.runs:
        cfg = CollapseConfig.from_file(run / "config.json")
        retriever = make_retriever(index.store, mode=cfg.eval.retrieval, k=cfg.eval.k)
        for folder, g, gen_dir in generation_dirs(run, cfg, generations):
            row = span_scores(run, gen_dir, cfg, retriever, scratch, args.metric)
            probes = sorted(set.intersection(*(set(v) for v in row.values())))
            key = f"{folder} gen {g}"
            samples += [{"run": run.name, "seed": cfg.seed, "strategy": folder, "generation": g, "mode": mode,
                         "probe": p, args.metric: values[p]} for mode, values in row.items() for p in probes]
            for mode, values in row.items():
                cells.setdefault(key, {}).setdefault(mode, {})[str(cfg.seed)] = round(
                    float(np.mean([values[p] for p in probes])), 4)
            print(key, run.name, {m: cells[key][m][str(cfg.seed)] for m in row}, f"({len(probes)} probes)",
                  flush=True)
    print(f"\n{args.metric} on the test probes, mean over seeds (per seed in the JSON)")
    print(f"{'':<22}" + "".join(f"{m:>15}" for m in ("grounded", "grounded_span", "oracle", "oracle_span")))
    for key, modes in cells.items():
        print(f"{key:<22}" + "".join(f"{np.mean(list(modes[m].values())):>15.3f}" for m in
                                      ("grounded", "grounded_span", "oracle", "oracle_span")))
    write_json(args.out, {
        "command": " ".join(["bench/span_modes.py", *sys.argv[1:]]), "metric": args.metric, "split": "test",
        "echo_excluded": True, "runs": [str(r) for r in args.runs], "cells": cells,
        "samples": str(args.samples_out.relative_to(REPO)) if args.samples_out.is_relative_to(REPO) else
        str(args.samples_out),
        "seeds": sorted({s for modes in cells.values() for seeds in modes.values() for s in seeds}),
        "compute": compute_record(), "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
        "seconds": round(time.perf_counter() - started, 1), **provenance()})
    args.samples_out.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in samples).encode(), mtime=0))
    print(f"wrote {args.out} and {args.samples_out}")


if __name__ == "__main__":
    main()
