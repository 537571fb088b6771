"""Embedding precision benchmark: fp32, bf16 and int8 MiniLM on this CPU and on an emulated AVX2-only CPU.

    flock /tmp/rag_bench_heavy.lock .venv/bin/python bench/embed_bench.py          # ~10 min on 2 busy cores
    .venv/bin/python bench/embed_bench.py --quick                                  # tiny sizes: a smoke test

Throughput is chunks/s of ``rag_bench.index.embedding.embed_texts`` (the path an index build takes) on a fixed
sample of Factbook chunks, methods alternated round by round; ratios against fp32 in the same process.
An AVX2-only CPU is emulated by a child process started with ``ONEDNN_MAX_CPU_ISA=AVX2``,
``MKL_ENABLE_INSTRUCTIONS=AVX2`` and ``ATEN_CPU_CAPABILITY=avx2``; the child reports torch's CPU capability
and the bf16/fp32 matmul speeds to show the limit took hold (native bf16 is ~10x fp32; emulated, far slower).
Fidelity is recall@10 of fact-prefix queries against fp32 exact search over the sample, with a bootstrap
95% interval over queries. Writes bench/results/embed.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from rag_bench.config import ConfigBase, CorpusConfig, IndexConfig
from rag_bench.records import write_json

REPO = Path(__file__).resolve().parents[1]
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
FACTBOOK_CHUNKS = 24_471  # chunks of the whole Factbook index (rag-bench prepare)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmbedBenchConfig(ConfigBase):
    """What the embedding benchmark measures, and on how much data."""

    corpus: str = str(REPO / "data/corpora/factbook/corpus.jsonl")  # corpus JSONL whose chunks are embedded
    facts: str = str(REPO / "data/corpora/factbook/facts.jsonl")  # queries are its record prefixes
    out: str = str(REPO / "bench/results/embed.json")  # where the results JSON goes
    sample: int = 800  # chunks embedded per method (recall is computed over them)
    queries: int = 200  # fact-prefix queries for recall@10
    rounds: int = 4  # the sample is split into rounds; each runs every method, order rotated
    batch_size: int = 64  # embedding batch, as rag-bench ingest
    threads: int = 2  # torch threads in every process
    k: int = 10  # neighbours compared
    seed: int = 0  # fixes the sample, the queries and the bootstrap


def sample_texts(cfg: EmbedBenchConfig) -> tuple[list[str], list[str]]:
    from rag_bench.corpus.load import load_corpus

    chunks = load_corpus(cfg.corpus, CorpusConfig(), progress=False).chunks
    picked = np.sort(np.random.default_rng(cfg.seed).choice(len(chunks), size=min(cfg.sample, len(chunks)),
                                                            replace=False))
    with open(cfg.facts, encoding="utf-8") as fh:
        pool = sorted({json.loads(line)["record_prefix"] for line in fh if line.strip()})
    rng = np.random.default_rng(cfg.seed + 1)
    queries = [pool[i] for i in rng.choice(len(pool), size=min(cfg.queries, len(pool)), replace=False)]
    return [chunks[i].page_content for i in picked], queries


def matmul_gflops(dtype) -> float:
    import torch

    a, b = torch.randn(512, 512).to(dtype), torch.randn(512, 512).to(dtype)
    a @ b
    reps, started = 0, time.perf_counter()
    while time.perf_counter() - started < 1.0:
        a @ b
        reps += 1
    return round(reps * 2 * 512**3 / (time.perf_counter() - started) / 1e9, 2)


def measure(cfg: EmbedBenchConfig, dtypes: list[str]) -> dict:
    """chunks/s (wall and per CPU-second) of each dtype, alternated by round, and its vectors."""
    import torch

    from rag_bench.index.embedding import embed_texts, load_embedder

    torch.set_num_threads(cfg.threads)
    texts, queries = sample_texts(cfg)
    embedders = {d: load_embedder(IndexConfig(dtype=d, batch_size=cfg.batch_size, device="cpu")) for d in dtypes}
    for emb in embedders.values():  # first calls pay for kernel set-up
        emb.embed_documents(texts[:8])
    wall = {d: 0.0 for d in dtypes}
    cpu = {d: 0.0 for d in dtypes}
    per_round: list[dict[str, float]] = []
    parts: dict[str, list[np.ndarray]] = {d: [] for d in dtypes}
    bounds = np.linspace(0, len(texts), cfg.rounds + 1).astype(int)
    for r in range(cfg.rounds):
        part = texts[bounds[r]:bounds[r + 1]]
        order = dtypes[r % len(dtypes):] + dtypes[:r % len(dtypes)]
        rates = {}
        for d in order:
            w, c = time.perf_counter(), time.process_time()
            parts[d].append(embed_texts(embedders[d], part, batch_size=cfg.batch_size, progress=False))
            w, c = time.perf_counter() - w, time.process_time() - c
            wall[d] += w
            cpu[d] += c
            rates[d] = len(part) / w
            print(f"  [{os.environ.get('ATEN_CPU_CAPABILITY', 'native')}] round {r + 1}/{cfg.rounds} {d:>8}: "
                  f"{rates[d]:6.1f} chunks/s (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        per_round.append(rates)
    vectors = {d: np.concatenate(parts[d]) for d in dtypes}
    query_vectors = {d: np.asarray(embedders[d].embed_documents(queries), dtype="float32") for d in dtypes}
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "matmul_gflops": {"float32": matmul_gflops(torch.float32), "bfloat16": matmul_gflops(torch.bfloat16)},
        "chunks": len(texts), "queries": len(queries), "threads": cfg.threads,
        "chunks_per_s": {d: round(len(texts) / wall[d], 2) for d in dtypes},
        "chunks_per_cpu_s": {d: round(len(texts) / cpu[d], 2) for d in dtypes},
        "per_round_chunks_per_s": [{d: round(v, 2) for d, v in rr.items()} for rr in per_round],
        "load": [round(x, 2) for x in os.getloadavg()],
        "_vectors": vectors, "_queries": query_vectors,
    }


def fidelity(vectors: dict, queries: dict, *, k: int, seed: int) -> dict:
    """Each dtype against fp32: cosine of chunk vectors, recall@k of query search with a bootstrap 95% CI."""
    import faiss

    def top(db, q):
        index = faiss.IndexFlatIP(db.shape[1])
        index.add(db)
        return index.search(q, k)[1]

    ref = top(vectors["float32"], queries["float32"])
    out = {}
    rng = np.random.default_rng(seed)
    for d in vectors:
        hits = np.array([len(set(a) & set(b)) / k for a, b in zip(ref, top(vectors[d], queries[d]), strict=True)])
        boot = [hits[rng.integers(0, len(hits), len(hits))].mean() for _ in range(2000)]
        cos = np.sum(vectors[d] * vectors["float32"], axis=1)
        out[d] = {"recall_at_10": round(float(hits.mean()), 4),
                  "recall_ci95": [round(float(x), 4) for x in np.percentile(boot, [2.5, 97.5])],
                  "cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 6),
                  "meets_gate_0_98": bool(hits.mean() >= 0.98)}
    return out


def ratio_ci(per_round: list[dict], a: str, b: str) -> dict:
    """Mean of the per-round ratios a/b with a t-based 95% interval (rounds are alternated, so paired)."""
    from scipy import stats

    ratios = np.array([rr[a] / rr[b] for rr in per_round])
    half = stats.t.ppf(0.975, len(ratios) - 1) * ratios.std(ddof=1) / np.sqrt(len(ratios)) if len(ratios) > 1 else 0
    return {"mean": round(float(ratios.mean()), 3), "ci95": [round(float(ratios.mean() - half), 3),
                                                             round(float(ratios.mean() + half), 3)],
            "per_round": [round(float(x), 3) for x in ratios]}


def summarise(run: dict, dtypes: list[str]) -> dict:
    fid = fidelity(run.pop("_vectors"), run.pop("_queries"), k=10, seed=0)
    run["fidelity_vs_fp32"] = fid
    run["ratio_vs_fp32"] = {d: ratio_ci(run["per_round_chunks_per_s"], d, "float32") for d in dtypes if d != "float32"}
    # On an idle machine both threads are ours: chunks per CPU-second x threads bounds the wall rate from above.
    run["factbook_minutes"] = {d: {"at_measured_rate": round(FACTBOOK_CHUNKS / run["chunks_per_s"][d] / 60, 1),
                                   "idle_estimate": round(FACTBOOK_CHUNKS / (run["chunks_per_cpu_s"][d]
                                                                             * run["threads"]) / 60, 1)}
                               for d in dtypes}
    return run


def child(cfg: EmbedBenchConfig, dtypes: list[str]) -> None:
    run = summarise(measure(cfg, dtypes), dtypes)
    print("RESULT " + json.dumps(run), flush=True)


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override one field")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    fields = {"sample": 48, "queries": 16, "rounds": 2} if args.quick else {}
    for item in args.set:
        key, _, value = item.partition("=")
        fields[key] = json.loads(value)
    cfg = EmbedBenchConfig.from_dict(fields, source="embed_bench arguments")
    if args.child:
        child(cfg, args.child.split(","))
        return None
    from rag_bench.index.embedding import native_bf16

    started = time.perf_counter()
    res: dict = {"config": cfg.to_dict(), "load_start": [round(x, 2) for x in os.getloadavg()],
                 "native_bf16": native_bf16()}
    passthrough = [a for item in args.set for a in ("--set", item)] + (["--quick"] if args.quick else [])
    for name, env, dtypes in (("native", {}, "float32,bfloat16,int8"), ("avx2", AVX2_ENV, "float32,int8")):
        print(f"{name}: {dtypes}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", dtypes, *passthrough], cwd=REPO, text=True,
                              env={**os.environ, **env, "PYTHONPATH": str(REPO)}, capture_output=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            raise SystemExit(f"{name} child failed:\n{proc.stderr[-3000:]}")
        sys.stderr.write("".join(x + "\n" for x in proc.stderr.splitlines() if "round" in x))
        res[name] = json.loads(line[len("RESULT "):])
    avx2 = res["avx2"]
    res["avx2_target"] = {
        "int8_over_fp32": avx2["ratio_vs_fp32"]["int8"], "target_ratio": 2.0,
        "ratio_met": avx2["ratio_vs_fp32"]["int8"]["mean"] >= 2.0,
        "int8_recall_meets_0_98": avx2["fidelity_vs_fp32"]["int8"]["meets_gate_0_98"],
        "factbook_minutes_idle_estimate": {d: avx2["factbook_minutes"][d]["idle_estimate"]
                                           for d in ("float32", "int8")},
        "target_minutes": 10}
    res["load_end"] = [round(x, 2) for x in os.getloadavg()]
    res["seconds"] = round(time.perf_counter() - started, 1)
    write_json(cfg.out, res)
    print_table(res)
    print(f"\nwrote {cfg.out}")
    return res


def print_table(res: dict) -> None:
    print(f"\n== embedding precision (load {res['load_start']} -> {res['load_end']}; native bf16: "
          f"{res['native_bf16']}) ==")
    print(f"{'cpu':<8} {'dtype':<9} {'chunks/s':>9} {'per cpu-s':>9} {'x fp32 (95% CI)':>22} "
          f"{'recall@10 (95% CI)':>24} {'cos min':>8} {'Factbook min (idle est.)':>25}")
    for name in ("native", "avx2"):
        run = res[name]
        for d, rate in run["chunks_per_s"].items():
            ratio = run["ratio_vs_fp32"].get(d)
            ratio_s = f"{ratio['mean']:.2f} [{ratio['ci95'][0]:.2f}, {ratio['ci95'][1]:.2f}]" if ratio else "1"
            fid = run["fidelity_vs_fp32"][d]
            print(f"{name + ' ' + run['capability']:<8} {d:<9} {rate:>9.1f} {run['chunks_per_cpu_s'][d]:>9.1f} "
                  f"{ratio_s:>22} {fid['recall_at_10']:>8.3f} "
                  f"[{fid['recall_ci95'][0]:.3f}, {fid['recall_ci95'][1]:.3f}]"
                  f" {fid['cosine_min']:>8.4f} {run['factbook_minutes'][d]['idle_estimate']:>25}")
        print(f"  matmul GFLOP/s under {name}: {run['matmul_gflops']}")


if __name__ == "__main__":
    main()
