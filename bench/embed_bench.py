"""Embedding backends and precisions against torch fp32, on this CPU and on an emulated AVX2-only CPU.

    flock /tmp/rag_bench_heavy.lock nice -n 5 .venv/bin/python bench/embed_bench.py   # ~30 min on 2 busy cores
    .venv/bin/python bench/embed_bench.py --quick                                     # tiny sizes: a smoke test
    .venv/bin/python bench/embed_bench.py --set sample=2000 --set rounds=6            # any EmbedBenchConfig field
    .venv/bin/python bench/embed_bench.py --tokens-only      # token counts and padding over the whole corpus

Each candidate of bench/embed_candidates.py embeds the same fixed sample of Factbook chunks through
``rag_bench.index.embedding.embed_texts`` (the path of an index build), candidates alternated round by round,
each timed in wall and CPU seconds; speed is the ratio to torch fp32 in the same round. An AVX2-only CPU is
emulated by a child process started with ``ONEDNN_MAX_CPU_ISA=AVX2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2`` and
``ATEN_CPU_CAPABILITY=avx2`` (oneDNN, under torch and OpenVINO alike, then has no AVX-512 or bf16 kernels; the
child's matmul speeds show it took hold). onnxruntime picks its kernels from CPUID alone, so it is not measured
under the limit. Fidelity: recall@10 of two query sets (the facts' record prefixes, and natural questions about
the same facts) against exact search over torch fp32 vectors of the sample, with a bootstrap 95% interval.

The idle full-Factbook estimate is 24,471 chunks over (chunks per CPU-second x threads): both cores ours, both
busy; it is optimistic where two threads scale less than twofold, so the single-core bound (CPU-seconds alone,
as if the second core added nothing) is given beside it. No AMX CPU is here: its figures are not measured.
Writes bench/results/embed.json.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.embed_candidates import cpu_flags, make_candidate, token_stats  # noqa: E402
from rag_bench.config import ConfigBase, CorpusConfig, IndexConfig  # noqa: E402
from rag_bench.records import write_json  # noqa: E402

AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
FACTBOOK_CHUNKS = 24_471  # chunks of the whole Factbook index (rag-bench prepare)
TARGET_MINUTES = 8  # issue 21: the first index in at most 8 minutes on an idle 2-core machine of any kind
BASELINE = "torch-float32"


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmbedBenchConfig(ConfigBase):
    """What the embedding benchmark measures, and on how much data."""

    corpus: str = str(REPO / "data/corpora/factbook/corpus.jsonl")  # corpus JSONL whose chunks are embedded
    facts: str = str(REPO / "data/corpora/factbook/facts.jsonl")  # queries come from its facts
    out: str = str(REPO / "bench/results/embed.json")  # where the results JSON goes
    sample: int = 1000  # chunks embedded per candidate (recall is computed over them)
    queries: int = 200  # queries of each kind (record prefixes, natural questions) for recall@10
    rounds: int = 4  # the sample is split into rounds; each runs every candidate, order rotated
    batch_size: int = 64  # embedding batch, as rag-bench ingest
    threads: int = 2  # torch and OpenVINO threads in every process
    native: tuple[str, ...] = ("torch-float32", "torch-bfloat16", "openvino-float32", "openvino-bfloat16",
                               "openvino-bfloat16@64", "onnxruntime-int8")  # candidates on this CPU as it is
    avx2: tuple[str, ...] = ("torch-float32", "openvino-float32", "openvino-float32@64")  # under the AVX2 limit
    seed: int = 0  # fixes the sample, the queries and the bootstrap


def sample_texts(cfg: EmbedBenchConfig) -> tuple[list[str], dict[str, list[str]]]:
    from rag_bench.corpus.load import load_corpus
    from rag_bench.probes.question_templates import QUESTIONS, ask

    chunks = load_corpus(cfg.corpus, CorpusConfig(), progress=False).chunks
    picked = np.sort(np.random.default_rng(cfg.seed).choice(len(chunks), size=min(cfg.sample, len(chunks)),
                                                            replace=False))
    with open(cfg.facts, encoding="utf-8") as fh:
        facts = [json.loads(line) for line in fh if line.strip()]
    prefixes = sorted({f["record_prefix"] for f in facts})
    questions = sorted({ask(f["field"], f["country"]) for f in facts if f["field"] in QUESTIONS})
    rng = np.random.default_rng(cfg.seed + 1)
    queries = {kind: [pool[i] for i in np.sort(rng.choice(len(pool), size=min(cfg.queries, len(pool)),
                                                           replace=False))]
               for kind, pool in (("record_prefix", prefixes), ("natural_question", questions))}
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


def measure(cfg: EmbedBenchConfig, names: list[str]) -> dict:
    """Per candidate and round: wall and CPU seconds; then its vectors and its query vectors."""
    import torch

    from rag_bench.index.embedding import embed_texts

    torch.set_num_threads(cfg.threads)
    texts, queries = sample_texts(cfg)
    made = {n: make_candidate(n, IndexConfig(batch_size=cfg.batch_size, device="cpu"), cfg.threads) for n in names}
    skipped = {n: e for n, e in made.items() if isinstance(e, str)}
    embedders = {n: e for n, e in made.items() if not isinstance(e, str)}
    names = [n for n in names if n in embedders]
    for emb in embedders.values():  # first calls pay for kernel set-up
        emb.embed_documents(texts[:8])
    rounds: list[dict] = []
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    bounds = np.linspace(0, len(texts), cfg.rounds + 1).astype(int)
    for r in range(cfg.rounds):
        part = texts[bounds[r]:bounds[r + 1]]
        timed: dict = {"chunks": len(part), "load": round(os.getloadavg()[0], 2), "wall_s": {}, "cpu_s": {}}
        for n in names[r % len(names):] + names[:r % len(names)]:
            w, c = time.perf_counter(), time.process_time()
            parts[n].append(embed_texts(embedders[n], part, batch_size=cfg.batch_size, progress=False))
            timed["wall_s"][n], timed["cpu_s"][n] = time.perf_counter() - w, time.process_time() - c
            print(f"  [{os.environ.get('ONEDNN_MAX_CPU_ISA', 'native')}] round {r + 1}/{cfg.rounds} {n:>20}: "
                  f"{len(part) / timed['wall_s'][n]:6.1f} chunks/s (load {os.getloadavg()[0]:.1f})",
                  file=sys.stderr, flush=True)
        rounds.append(timed)
    return {
        "capability": torch.backends.cpu.get_cpu_capability(), "cpu_flags": cpu_flags(),
        "matmul_gflops": {"float32": matmul_gflops(torch.float32), "bfloat16": matmul_gflops(torch.bfloat16)},
        "chunks": len(texts), "queries": {k: len(v) for k, v in queries.items()}, "threads": cfg.threads,
        "not_measured": skipped, "rounds": rounds,
        "_vectors": {n: np.concatenate(parts[n]) for n in names},
        "_queries": {kind: {n: np.asarray(embedders[n].embed_documents(q), dtype="float32") for n in names}
                     for kind, q in queries.items()},
    }


def recall(db: dict, queries: dict, *, k: int, seed: int) -> dict:
    """recall@k of each candidate's search against torch fp32's exact search, with a bootstrap 95% interval."""
    import faiss

    def top(vectors, q):
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return index.search(q, k)[1]

    truth = top(db[BASELINE], queries[BASELINE])
    rng = np.random.default_rng(seed)
    out = {}
    for n in db:
        hits = np.array([len(set(a) & set(b)) / k for a, b in zip(truth, top(db[n], queries[n]), strict=True)])
        boot = [hits[rng.integers(0, len(hits), len(hits))].mean() for _ in range(2000)]
        out[n] = {"recall_at_10": round(float(hits.mean()), 4),
                  "ci95": [round(float(x), 4) for x in np.percentile(boot, [2.5, 97.5])]}
    return out


def ratio_ci(values: list[float]) -> dict:
    """Mean of per-round ratios with a t-based 95% interval (rounds are alternated, so paired)."""
    from scipy import stats

    ratios = np.array(values)
    half = stats.t.ppf(0.975, len(ratios) - 1) * ratios.std(ddof=1) / np.sqrt(len(ratios)) if len(ratios) > 1 else 0
    return {"mean": round(float(ratios.mean()), 3),
            "ci95": [round(float(ratios.mean() - half), 3), round(float(ratios.mean() + half), 3)],
            "per_round": [round(float(x), 3) for x in ratios]}


def summarise(run: dict, cfg: EmbedBenchConfig) -> dict:
    vectors, queries = run.pop("_vectors"), run.pop("_queries")
    run["candidates"] = {}
    for n in vectors:
        wall = sum(r["wall_s"][n] for r in run["rounds"])
        cpu = sum(r["cpu_s"][n] for r in run["rounds"])
        fid = {kind: recall(vectors, q, k=10, seed=cfg.seed)[n] for kind, q in queries.items()}
        worst = min(f["recall_at_10"] for f in fid.values())
        run["candidates"][n] = {
            "chunks_per_s": round(run["chunks"] / wall, 2), "chunks_per_cpu_s": round(run["chunks"] / cpu, 2),
            "ratio_vs_fp32_wall": ratio_ci([r["wall_s"][BASELINE] / r["wall_s"][n] for r in run["rounds"]]),
            "ratio_vs_fp32_cpu": ratio_ci([r["cpu_s"][BASELINE] / r["cpu_s"][n] for r in run["rounds"]]),
            "recall_vs_fp32": fid, "meets_recall_0_98": worst >= 0.98,
            "cosine_min": round(float(np.sum(vectors[n] * vectors[BASELINE], axis=1).min()), 5),
            "factbook_minutes": {"at_measured_rate": round(FACTBOOK_CHUNKS / (run["chunks"] / wall) / 60, 1),
                                 "idle_estimate": round(FACTBOOK_CHUNKS * cpu / run["chunks"] / run["threads"] / 60, 1),
                                 "single_core_bound": round(FACTBOOK_CHUNKS * cpu / run["chunks"] / 60, 1)}}
    run["load"] = [round(x, 2) for x in os.getloadavg()]
    return run


def verdict(run: dict, default: str) -> dict:
    """The default build path under this ISA against the 8-minute target."""
    c = run["candidates"].get(default)
    if c is None:
        return {"default": default, "status": "not measured", "why": run["not_measured"].get(default)}
    idle = c["factbook_minutes"]["idle_estimate"]
    return {"default": default, "idle_minutes": idle, "single_core_bound_minutes": c["factbook_minutes"]
            ["single_core_bound"], "target_minutes": TARGET_MINUTES, "met": idle <= TARGET_MINUTES,
            "missed_by_minutes": round(max(0.0, idle - TARGET_MINUTES), 1), "recall_ok": c["meets_recall_0_98"]}


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override one field")
    parser.add_argument("--tokens-only", action="store_true",
                        help="add token counts over every chunk of the corpus to the existing results JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    fields = {"sample": 48, "queries": 16, "rounds": 2} if args.quick else {}
    for item in args.set:
        key, _, value = item.partition("=")
        fields[key] = json.loads(value)
    cfg = EmbedBenchConfig.from_dict(fields, source="embed_bench arguments")
    if args.child:
        print("RESULT " + json.dumps(summarise(measure(cfg, args.child.split(",")), cfg)), flush=True)
        return None
    if args.tokens_only:
        from rag_bench.corpus.load import load_corpus

        every = [c.page_content for c in load_corpus(cfg.corpus, CorpusConfig(), progress=False).chunks]
        res = json.loads(Path(cfg.out).read_text(encoding="utf-8"))
        res["tokens_whole_corpus"] = {f"batch_{b}": token_stats(every, b) for b in (cfg.batch_size, 8)}
        write_json(cfg.out, res)
        print(json.dumps(res["tokens_whole_corpus"], indent=1))
        return res
    started = time.perf_counter()
    texts, _ = sample_texts(cfg)
    res: dict = {"config": cfg.to_dict(), "cpu_flags": cpu_flags(),
                 "load_start": [round(x, 2) for x in os.getloadavg()],
                 "tokens": token_stats(texts, cfg.batch_size)}
    passthrough = [a for item in args.set for a in ("--set", item)] + (["--quick"] if args.quick else [])
    for name, env, names in (("native", {}, cfg.native), ("avx2", AVX2_ENV, cfg.avx2)):
        print(f"{name}: {', '.join(names)}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", ",".join(names), *passthrough], cwd=REPO,
                              text=True, env={**os.environ, **env}, capture_output=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            raise SystemExit(f"{name} child failed:\n{proc.stderr[-3000:]}")
        sys.stderr.write("".join(x + "\n" for x in proc.stderr.splitlines() if "round" in x))
        res[name] = json.loads(line[len("RESULT "):])
    res["avx2"]["not_measured"]["onnxruntime-*"] = ("onnxruntime picks its kernels from CPUID; no switch limits "
                                                    "it to AVX2 here")
    bf16 = "avx512_bf16" in res["cpu_flags"] or "amx_bf16" in res["cpu_flags"]
    res["target"] = {
        "native": verdict(res["native"], "openvino-bfloat16" if bf16 else "openvino-float32"),
        "avx2": verdict(res["avx2"], "openvino-float32"),
        "amx": {"status": "not measured", "why": "no AMX CPU on this machine"} if "amx_bf16" not in res["cpu_flags"]
        else "see native"}
    res["load_end"] = [round(x, 2) for x in os.getloadavg()]
    res["seconds"] = round(time.perf_counter() - started, 1)
    write_json(cfg.out, res)
    print_table(res)
    print(f"\nwrote {cfg.out}")
    return res


def print_table(res: dict) -> None:
    print(f"\n== embedding candidates (load {res['load_start']} -> {res['load_end']}; {res['cpu_flags']}) ==")
    print(f"{'ISA':<7} {'candidate':<20} {'chunks/s':>8} {'x fp32 wall (95% CI)':>24} {'x fp32 cpu':>10} "
          f"{'recall prefix':>13} {'recall question':>15} {'idle min':>8} {'1-core':>6}")
    for isa in ("native", "avx2"):
        for n, c in res[isa]["candidates"].items():
            w = c["ratio_vs_fp32_wall"]
            r = c["recall_vs_fp32"]
            print(f"{isa:<7} {n:<20} {c['chunks_per_s']:>8.1f} "
                  f"{w['mean']:>6.2f} [{w['ci95'][0]:.2f}, {w['ci95'][1]:.2f}]      "
                  f"{c['ratio_vs_fp32_cpu']['mean']:>10.2f} {r['record_prefix']['recall_at_10']:>13.3f} "
                  f"{r['natural_question']['recall_at_10']:>15.3f} {c['factbook_minutes']['idle_estimate']:>8} "
                  f"{c['factbook_minutes']['single_core_bound']:>6}")
        for n, why in res[isa]["not_measured"].items():
            print(f"{isa:<7} {n:<20} not measured: {why}")
        print(f"  matmul GFLOP/s under {isa}: {res[isa]['matmul_gflops']}")
    print(f"target: {json.dumps(res['target'])}")


if __name__ == "__main__":
    main()
