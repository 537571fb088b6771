"""Index benchmark: build throughput, bf16 against fp32, query latency and peak memory.

    .venv/bin/python bench/index_bench.py            # 3,000-chunk sample of the Factbook (~15 min on 2 busy cores)
    .venv/bin/python bench/index_bench.py --full     # every Factbook chunk (about 24k; over an hour)
    .venv/bin/python bench/index_bench.py --quick    # 96 chunks, 24 queries, 10k-row index: a smoke test

Speeds are ratios against a baseline run in the same process, alternated round by round, because
the machine is shared; absolute numbers are printed with the load average they were taken under.
Writes bench/results/index.json (see bench/README.md for what each number means).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faiss  # before rag_bench.index.store, which sets one thread: read OpenMP's default first

FAISS_DEFAULT_THREADS = faiss.omp_get_max_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rag_bench.config import ConfigBase, CorpusConfig, IndexConfig  # noqa: E402
from rag_bench.corpus.load import LoadedCorpus, load_corpus  # noqa: E402
from rag_bench.index.embedding import embedder_path, load_embedder  # noqa: E402
from rag_bench.index.retrieve import make_retriever  # noqa: E402
from rag_bench.index.store import current_version, load_index, package_versions  # noqa: E402
from rag_bench.index.store import update_index as rag_update_index  # noqa: E402
from rag_bench.records import write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TORCH_DEFAULT_THREADS = torch.get_num_threads()


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchConfig(ConfigBase):
    """What the index benchmark measures and on how much data."""

    corpus: str = str(REPO / "data/corpora/factbook/corpus.jsonl")  # corpus JSONL whose chunks are embedded
    facts: str = str(REPO / "data/corpora/factbook/facts.jsonl")  # queries come from its record prefixes
    index: str = str(REPO / "data/indexes/factbook")  # the built Factbook index whose latency is measured
    prepare_log: str = "/tmp/prepare.log"  # log of the real `rag-bench prepare` run, for its first-build time
    prepare_peak_log: str = ""  # optional VmHWM poll of that prepare process ("<unix time> VmHWM: N kB" lines)
    out: str = str(REPO / "bench/results/index.json")  # where the results JSON goes
    sample: int = 3000  # chunks embedded per method (0 = every chunk)
    rounds: int = 12  # the sample is split into rounds; each runs every method, order rotated
    batch_size: int = 64  # embedding batch for every method
    queries: int = 200  # timed single queries (after warm-up)
    warmup: int = 20  # untimed queries first
    k: int = 10  # neighbours retrieved and compared
    big_rows: int = 100_000  # rows of the large index (the Factbook's vectors repeated)
    memory_sample: int = 1000  # chunks embedded in each memory-measuring child process
    seed: int = 0  # fixes the sample and the queries


# ---------------------------------------------------------------------------------------
# Helpers


def pct(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Wall-clock p50/p95/mean of (wall, cpu) seconds, and the p50 of the process CPU time."""
    wall, cpu = (np.asarray(x) * 1e3 for x in zip(*samples, strict=True))
    return {"p50_ms": round(float(np.percentile(wall, 50)), 3), "p95_ms": round(float(np.percentile(wall, 95)), 3),
            "mean_ms": round(float(wall.mean()), 3), "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
            "n": len(wall)}


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def clocked(fn, *args, **kwargs) -> tuple[tuple[float, float], object]:
    """((wall seconds, CPU seconds of the whole process), output): CPU time is what load does not inflate."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return (time.perf_counter() - wall, time.process_time() - cpu), out


def raw_encoder(dtype: torch.dtype):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedder_path(IndexConfig())), device="cpu", local_files_only=True,
                               model_kwargs={"dtype": dtype})


def plain_langchain_embeddings(batch_size: int):
    """HuggingFaceEmbeddings as a LangChain user would write it, with our dtype, batch and normalization."""
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(model_name=str(embedder_path(IndexConfig())),
                                 model_kwargs={"device": "cpu", "local_files_only": True,
                                               "model_kwargs": {"dtype": torch.bfloat16}},
                                 encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size})


def load_chunks(cfg: BenchConfig, size: int) -> tuple[int, list]:
    """All chunks of the corpus, and a fixed random sample of ``size`` of them (0 = all), in corpus order."""
    chunks = load_corpus(cfg.corpus, CorpusConfig(), progress=False).chunks
    if not size or size >= len(chunks):
        return len(chunks), chunks
    picked = np.sort(np.random.default_rng(cfg.seed).choice(len(chunks), size=size, replace=False))
    return len(chunks), [chunks[i] for i in picked]


def load_queries(cfg: BenchConfig, chunks: list, count: int) -> list[str]:
    """Fact record prefixes ("Aruba | Geography | Area - total:"), else chunk first lines."""
    if Path(cfg.facts).is_file():
        with open(cfg.facts, encoding="utf-8") as fh:
            pool = sorted({json.loads(line)["record_prefix"] for line in fh if line.strip()})
    else:
        pool = sorted({c.page_content.splitlines()[0][:120] for c in chunks})
    rng = np.random.default_rng(cfg.seed + 1)
    return [pool[i] for i in rng.choice(len(pool), size=min(count, len(pool)), replace=False)]


def topk(db: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    return index.search(queries, k)[1]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


# ---------------------------------------------------------------------------------------
# 1-3. Build throughput and bf16 against fp32


def bench_build(cfg: BenchConfig, chunks: list, queries: list[str], workdir: Path) -> tuple[dict, dict]:
    from langchain_community.vectorstores import FAISS

    raw16, raw32 = raw_encoder(torch.bfloat16), raw_encoder(torch.float32)
    # torch, as the raw encoder it is compared with: this measures our build's overhead, not the backend
    ours_emb = load_embedder(IndexConfig(dtype="bfloat16", batch_size=cfg.batch_size), backend="torch")
    lc_emb = plain_langchain_embeddings(cfg.batch_size)
    warm = [c.page_content for c in chunks[: 2 * cfg.batch_size]]
    for encode in (raw16.encode, raw32.encode):  # first calls pay for kernel set-up
        encode(warm, batch_size=cfg.batch_size)
    for emb in (ours_emb, lc_emb):
        emb.embed_documents(warm)

    def raw(model):
        return lambda part, r: model.encode([c.page_content for c in part], batch_size=cfg.batch_size,
                                            normalize_embeddings=True, convert_to_numpy=True)

    ours_stats = []

    def ours(part, r):
        folder = workdir / f"ours_{r}"
        ours_stats.append(rag_update_index(
            folder, LoadedCorpus(chunks=part, files=[]), embeddings=ours_emb, rebuild=True,
            index_cfg=IndexConfig(dtype="bfloat16", backend="torch", batch_size=cfg.batch_size), progress=False))
        stored = faiss.read_index(str(current_version(folder) / "index.faiss"))
        return stored.reconstruct_n(0, stored.ntotal)

    def langchain(part, r):
        return FAISS.from_documents(part, lc_emb)

    methods = {"raw_bf16": raw(raw16), "ours_bf16": ours, "langchain_bf16": langchain, "raw_fp32": raw(raw32)}
    seconds = {m: 0.0 for m in methods}
    per_round: list[dict[str, float]] = []
    vectors: dict[str, list[np.ndarray]] = {"raw_bf16": [], "ours_bf16": [], "raw_fp32": []}
    bounds = np.linspace(0, len(chunks), cfg.rounds + 1).astype(int)
    for r in range(cfg.rounds):
        part = chunks[bounds[r]:bounds[r + 1]]
        names = list(methods)
        names = names[r % len(names):] + names[: r % len(names)]  # rotate who runs first
        round_rates = {}
        for name in names:
            took, out = timed(methods[name], part, r)
            seconds[name] += took
            round_rates[name] = len(part) / took
            if name in vectors:
                vectors[name].append(np.asarray(out, dtype="float32"))
            print(f"  round {r + 1}/{cfg.rounds} {name:>15}: {len(part) / took:6.1f} chunks/s  (load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
        per_round.append(round_rates)
    rate = {m: round(len(chunks) / s, 2) for m, s in seconds.items()}
    ratio = {"ours_over_raw": rate["ours_bf16"] / rate["raw_bf16"],
             "ours_over_langchain": rate["ours_bf16"] / rate["langchain_bf16"],
             "langchain_over_raw": rate["langchain_bf16"] / rate["raw_bf16"],
             "bf16_over_fp32": rate["raw_bf16"] / rate["raw_fp32"]}
    spread = {key: [round(rr[a] / rr[b], 3) for rr in per_round]
              for key, a, b in [("ours_over_raw", "ours_bf16", "raw_bf16"),
                                ("ours_over_langchain", "ours_bf16", "langchain_bf16"),
                                ("bf16_over_fp32", "raw_bf16", "raw_fp32")]}
    v16, v32, vours = (np.concatenate(vectors[m]) for m in ("raw_bf16", "raw_fp32", "ours_bf16"))
    # update_index times its embedding apart: the rest (matrix, FAISS add, writing the version) is our overhead
    ours_embed_s = sum(st.embedded / st.embed_chunks_per_s for st in ours_stats)
    ours_total_s = sum(st.seconds for st in ours_stats)

    # torch threads: importing torch before rag_bench.index.store leaves torch on 1 thread (shared libgomp)
    subset = [c.page_content for c in chunks[: 4 * cfg.batch_size]]
    thread_rates: dict[int, list[float]] = {TORCH_DEFAULT_THREADS: [], 1: []}
    for threads in (TORCH_DEFAULT_THREADS, 1, 1, TORCH_DEFAULT_THREADS):
        torch.set_num_threads(threads)
        took, _ = timed(raw16.encode, subset, batch_size=cfg.batch_size)
        thread_rates[threads].append(len(subset) / took)
    torch.set_num_threads(TORCH_DEFAULT_THREADS)

    q16 = raw16.encode(queries, batch_size=cfg.batch_size, normalize_embeddings=True)
    q32 = raw32.encode(queries, batch_size=cfg.batch_size, normalize_embeddings=True)
    cos = np.sum(v16 * v32, axis=1) / np.linalg.norm(v16, axis=1) / np.linalg.norm(v32, axis=1)
    k = min(cfg.k, len(v16) - 1)
    probe_rows = np.arange(0, len(v16), max(1, len(v16) // 1000))  # up to ~1000 chunks as their own queries
    neigh16 = topk(v16, v16[probe_rows], k + 1)[:, 1:]  # drop the chunk itself
    neigh32 = topk(v32, v32[probe_rows], k + 1)[:, 1:]
    build = {
        "chunks": len(chunks), "rounds": cfg.rounds, "batch_size": cfg.batch_size,
        "chunks_per_s": rate, "seconds": {m: round(s, 2) for m, s in seconds.items()},
        "ratios": {key: round(v, 3) for key, v in ratio.items()}, "ratios_per_round": spread,
        "ours_embedding_only_chunks_per_s": round(len(chunks) / ours_embed_s, 2),
        "ours_non_embedding_seconds": round(ours_total_s - ours_embed_s, 2),
        "ours_non_embedding_share": round((ours_total_s - ours_embed_s) / ours_total_s, 4),
        "target_ours_over_raw": 0.9, "meets_target": ratio["ours_over_raw"] >= 0.9,
        "ours_vs_raw_min_cosine": round(float(np.min(np.sum(vours * v16, axis=1) / np.linalg.norm(vours, axis=1)
                                                   / np.linalg.norm(v16, axis=1))), 6),
        "bf16_vector_norm_range": [round(float(x), 5) for x in np.percentile(np.linalg.norm(v16, axis=1), [0, 100])],
        "langchain_path": "FAISS.from_documents(docs, HuggingFaceEmbeddings(bf16, same batch, normalized))",
        "torch_threads_chunks_per_s": {str(t): round(float(np.mean(r)), 2) for t, r in thread_rates.items()},
    }
    quality = {
        "chunks": len(v16), "queries": len(queries), "k": k,
        "cosine_bf16_fp32": {"min": round(float(cos.min()), 6), "p1": round(float(np.percentile(cos, 1)), 6),
                             "mean": round(float(cos.mean()), 6)},
        "chunk_neighbour_overlap_at_k": round(overlap(neigh16, neigh32), 4),
        "query_recall_at_k_bf16_vs_fp32": round(overlap(topk(v16, q16, k), topk(v32, q32, k)), 4),
        "query_top1_agreement": round(float(np.mean(topk(v16, q16, 1) == topk(v32, q32, 1))), 4),
        "throughput_bf16_over_fp32": round(ratio["bf16_over_fp32"], 3),
    }
    return build, quality


# ---------------------------------------------------------------------------------------
# 4. Query latency


def bench_latency(cfg: BenchConfig, index_dir: Path, queries: list[str]) -> tuple[dict, np.ndarray, list[str]]:
    """Single queries on the Factbook index: embedding and search timed apart, and end to end."""
    loaded = load_index(index_dir)
    store, emb = loaded.store, loaded.store.embedding_function
    retriever = make_retriever(store, mode="dense", k=cfg.k)
    warm, timed_q = queries[: cfg.warmup], queries[cfg.warmup:]
    for q in warm:
        retriever.search(q)
    raw = {"bfloat16": raw_encoder(torch.bfloat16), "float32": raw_encoder(torch.float32)}
    for model in raw.values():
        for q in warm:
            model.encode(q)
    embed_cfgs = [(d, t) for d in raw for t in sorted({1, TORCH_DEFAULT_THREADS})]
    faiss_cfgs = sorted({1, FAISS_DEFAULT_THREADS})
    embed_t: dict = {c: [] for c in embed_cfgs}
    search_t: dict = {t: [] for t in faiss_cfgs}
    torch_cfgs = sorted({1, TORCH_DEFAULT_THREADS})
    index_embed_t: list[tuple[float, float]] = []
    e2e_t: dict[int, list] = {t: [] for t in torch_cfgs}
    for i, q in enumerate(timed_q):
        order = embed_cfgs if i % 2 == 0 else embed_cfgs[::-1]  # alternate so drift hits all alike
        for dtype, threads in order:
            torch.set_num_threads(threads)
            embed_t[(dtype, threads)].append(clocked(raw[dtype].encode, q)[0])
        torch.set_num_threads(TORCH_DEFAULT_THREADS)
        took, vec = clocked(emb.embed_query, q)
        index_embed_t.append(took)
        vec = np.asarray([vec], dtype="float32")
        for threads in faiss_cfgs if i % 2 == 0 else faiss_cfgs[::-1]:
            faiss.omp_set_num_threads(threads)
            search_t[threads].append(clocked(store.index.search, vec, cfg.k)[0])
        faiss.omp_set_num_threads(1)
        for threads in torch_cfgs if i % 2 == 0 else torch_cfgs[::-1]:
            torch.set_num_threads(threads)
            e2e_t[threads].append(clocked(retriever.search, q)[0])
        torch.set_num_threads(TORCH_DEFAULT_THREADS)
    ids = store.index_to_docstore_id
    texts = [store.docstore.search(ids[i]).page_content for i in range(len(ids))]
    result = {
        "index": str(loaded.path), "rows": store.index.ntotal, "dtype": loaded.manifest.get("dtype"),
        "backend": loaded.manifest.get("backend", "torch"),
        "faiss_threads_in_rag_bench": faiss.omp_get_max_threads(),
        "embed_query_index_embedder": pct(index_embed_t),
        "embed_single_query": {f"{d}_torch{t}": pct(v) for (d, t), v in embed_t.items()},
        "search_flat": {f"faiss_threads_{t}": pct(v) for t, v in search_t.items()},
        "end_to_end_dense_retriever": {f"torch{t}": pct(v) for t, v in e2e_t.items()},
    }
    vectors = store.index.reconstruct_n(0, store.index.ntotal)
    return result, vectors, texts


def bench_big(cfg: BenchConfig, base: np.ndarray, texts: list[str], emb, queries: list[str]) -> dict:
    """An index of ``big_rows`` real vectors (the Factbook's, repeated): flat, HNSW and IVF."""
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy
    from langchain_core.documents import Document

    reps = -(-cfg.big_rows // len(base))
    db = np.ascontiguousarray(np.tile(base, (reps, 1))[: cfg.big_rows])
    qv = np.asarray(emb.embed_documents(queries), dtype="float32")
    warm, qv_t = qv[: cfg.warmup], qv[cfg.warmup:]
    d, k = db.shape[1], cfg.k
    flat = faiss.IndexFlatIP(d)
    flat.add(db)
    exact_scores, _ = flat.search(qv_t, k)

    def recall(ids: np.ndarray) -> float:
        # copies tie exactly, so a hit is any row scoring at least the exact k-th score
        true = np.einsum("qkd,qd->qk", db[np.maximum(ids, 0)], qv_t)
        return float(np.mean((true >= exact_scores[:, -1:] - 1e-5) & (ids >= 0)))

    def latency(index, threads_list=(1,)) -> dict:
        out = {}
        for q in warm:
            index.search(q[None], k)
        times: dict[int, list] = {t: [] for t in threads_list}
        ids = np.zeros((len(qv_t), k), dtype="int64")
        for i, q in enumerate(qv_t):
            for t in threads_list if i % 2 == 0 else threads_list[::-1]:
                faiss.omp_set_num_threads(t)
                took, (_, found) = clocked(index.search, q[None], k)
                times[t].append(took)
                ids[i] = found[0]
        faiss.omp_set_num_threads(1)
        for t, v in times.items():
            out[f"faiss_threads_{t}"] = pct(v)
        out["recall_at_k"] = round(recall(ids), 4)
        return out

    faiss.omp_set_num_threads(FAISS_DEFAULT_THREADS)  # builds use both cores
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 64
    hnsw_build, _ = timed(hnsw.add, db)
    nlist = max(16, int(4 * np.sqrt(len(db))) // 16 * 16)
    quantizer = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf_train, _ = timed(ivf.train, db)
    ivf_add, _ = timed(ivf.add, db)
    faiss.omp_set_num_threads(1)

    threads = tuple(sorted({1, FAISS_DEFAULT_THREADS}))
    result = {"rows": len(db), "distinct_vectors": len(base), "k": k, "queries": len(qv_t),
              "flat_exact": latency(flat, threads), "hnsw": {}, "ivf": {},
              "hnsw_build_s": round(hnsw_build, 2), "hnsw_M": 32, "hnsw_efConstruction": 64,
              "ivf_nlist": nlist, "ivf_train_s": round(ivf_train, 2), "ivf_add_s": round(ivf_add, 2)}
    for ef in (16, 32, 64, 128):
        hnsw.hnsw.efSearch = ef
        result["hnsw"][f"efSearch_{ef}"] = latency(hnsw)
    for nprobe in (4, 8, 16, 32):
        ivf.nprobe = nprobe
        result["ivf"][f"nprobe_{nprobe}"] = latency(ivf)

    # end to end through LangChain's store: query embedding + search + docstore lookup
    hnsw.hnsw.efSearch = 64
    ids = [f"row{i}" for i in range(len(db))]
    docstore = InMemoryDocstore({cid: Document(page_content=texts[i % len(texts)], id=cid)
                                 for i, cid in enumerate(ids)})
    for name, index in (("flat_exact", flat), ("hnsw_efSearch_64", hnsw)):
        store = FAISS(embedding_function=emb, index=index, docstore=docstore,
                      index_to_docstore_id=dict(enumerate(ids)), distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)
        for q in queries[: cfg.warmup]:
            store.similarity_search_with_score(q, k=k)
        times: dict[int, list] = {t: [] for t in sorted({1, TORCH_DEFAULT_THREADS})}
        for i, q in enumerate(queries[cfg.warmup:]):
            for t in list(times) if i % 2 == 0 else list(times)[::-1]:
                torch.set_num_threads(t)
                times[t].append(clocked(store.similarity_search_with_score, q, k=k)[0])
        torch.set_num_threads(TORCH_DEFAULT_THREADS)
        for t, v in times.items():
            result[f"end_to_end_{name}_torch{t}"] = pct(v)
    return result


# ---------------------------------------------------------------------------------------
# 5. Peak resident memory, one child process per phase so that peaks do not mix

MEMORY_PHASES = ("imports", "load_corpus", "raw_encode", "ours_build", "langchain_build", "serve_query")


def peak_rss_mb() -> float:
    # VmHWM belongs to this process image; ru_maxrss survives exec on Linux and would report the parent's peak
    status = Path("/proc/self/status")
    if status.is_file():
        found = re.search(r"VmHWM:\s*(\d+) kB", status.read_text())
        if found:
            return int(found.group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_phase(cfg: BenchConfig, phase: str) -> None:
    """Run one phase in this (child) process and print its peak RSS as JSON."""
    started = time.perf_counter()
    if phase != "imports" and phase != "serve_query":
        _, chunks = load_chunks(cfg, cfg.memory_sample)
    if phase == "raw_encode":
        raw_encoder(torch.bfloat16).encode([c.page_content for c in chunks], batch_size=cfg.batch_size)
    elif phase == "ours_build":
        with tempfile.TemporaryDirectory() as tmp:
            rag_update_index(tmp, LoadedCorpus(chunks=chunks, files=[]), rebuild=True, progress=False,
                             index_cfg=IndexConfig(dtype="bfloat16", backend="torch", batch_size=cfg.batch_size))
    elif phase == "langchain_build":
        from langchain_community.vectorstores import FAISS

        FAISS.from_documents(chunks, plain_langchain_embeddings(cfg.batch_size))
    elif phase == "serve_query":
        make_retriever(load_index(cfg.index).store, k=cfg.k).search("Aruba | Geography | Area - total:")
    peak_mb = peak_rss_mb()
    print("MEMORY " + json.dumps({"phase": phase, "peak_rss_mb": round(peak_mb, 1),
                                  "seconds": round(time.perf_counter() - started, 1)}), flush=True)


def bench_memory(cfg: BenchConfig, argv_cfg: list[str]) -> dict:
    out = {"chunks_embedded": cfg.memory_sample}
    for phase in MEMORY_PHASES:
        if phase == "serve_query" and current_version(cfg.index) is None:
            continue
        proc = subprocess.run([sys.executable, __file__, "--memory-phase", phase, *argv_cfg],
                              capture_output=True, text=True, cwd=REPO)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("MEMORY ")), None)
        if proc.returncode or line is None:
            raise RuntimeError(f"memory phase {phase} failed:\n{proc.stderr[-2000:]}")
        out[phase] = json.loads(line[len("MEMORY "):])
        print(f"  memory {phase:>16}: {out[phase]['peak_rss_mb']:.0f} MB peak RSS", flush=True)
    return out


# ---------------------------------------------------------------------------------------
# The real first build, from the `rag-bench prepare` log


def prepare_summary(cfg: BenchConfig) -> dict:
    log = Path(cfg.prepare_log)
    if not log.is_file():
        return {"available": False, "why": f"{log} not found"}
    text = log.read_text(encoding="utf-8", errors="replace")
    bars = re.findall(r"embedding: 100%\|[^|]*\| (\d+)/\d+ \[([\d:]+)<", text)
    out: dict = {"log": str(log), "finished": bool(re.search(r"^corpus: \w+, index: \w+ under", text, re.M))}
    if bars:
        done, elapsed = bars[-1]
        seconds = sum(int(x) * 60 ** i for i, x in enumerate(reversed(elapsed.split(":"))))
        out.update(embedded_chunks=int(done), embedding_seconds=seconds, embedding_chunks_per_s=round(int(done)
                                                                                                 / seconds, 1))
    real = re.search(r"^real\s+(\d+)m([\d.]+)s", text, re.M)  # when prepare ran under `time`
    birth = subprocess.run(["stat", "-c", "%W %Y", str(log)], capture_output=True, text=True).stdout.split()
    if out["finished"] and real:
        out["wall_seconds"] = round(int(real.group(1)) * 60 + float(real.group(2)), 1)
    elif out["finished"] and len(birth) == 2 and int(birth[0]) > 0:
        out["wall_seconds"] = int(birth[1]) - int(birth[0])  # first to last write of the log
    if "wall_seconds" in out:
        out["meets_6_minute_target"] = out["wall_seconds"] <= 360
    report = Path(cfg.index) / "ingest_report.json"
    if report.is_file():
        data = json.loads(report.read_text(encoding="utf-8"))
        out["ingest_report"] = {k: data.get(k) for k in ("seconds", "embed_chunks_per_s", "chunks", "index_config")}
    if cfg.prepare_peak_log and Path(cfg.prepare_peak_log).is_file():
        peaks = [int(m) for m in re.findall(r"VmHWM:\s*(\d+) kB", Path(cfg.prepare_peak_log).read_text())]
        if peaks:
            out["peak_rss_mb_polled"] = round(max(peaks) / 1024, 1)
    return out


# ---------------------------------------------------------------------------------------
# Report


def machine_info() -> dict:
    probe = "import torch, rag_bench.index.store; print(torch.get_num_threads())"
    check = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    return {
        "cpu_count": os.cpu_count(), "torch_threads": TORCH_DEFAULT_THREADS,
        "faiss_default_omp_threads": FAISS_DEFAULT_THREADS,
        "torch_threads_if_torch_imported_before_rag_bench_index": check.stdout.strip() or check.stderr[-300:],
        "bf16_native": bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "python": sys.version.split()[0],
        "versions": package_versions() | {"numpy": np.__version__},
    }


def print_table(res: dict) -> None:
    b, q, lat, big, mem = (res.get(k, {}) for k in ("build", "quality", "latency", "big_index", "memory"))
    print(f"\n== index benchmark ({res['mode']}; load {res['load_start']} -> {res['load_end']}) ==")
    if b:
        print(f"build, {b['chunks']} chunks, batch {b['batch_size']}:  " + ", ".join(
            f"{m} {v:.1f}/s" for m, v in b["chunks_per_s"].items()))
        print("  ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in b["ratios"].items())
              + f"  (target ours/raw >= 0.9: {'met' if b['meets_target'] else 'NOT met'})")
        print(f"  ours: embedding alone {b['ours_embedding_only_chunks_per_s']:.1f}/s; everything else "
              f"{b['ours_non_embedding_seconds']:.2f} s ({100 * b['ours_non_embedding_share']:.1f}% of the build)")
        print(f"  torch threads on encode: {b['torch_threads_chunks_per_s']} chunks/s")
    if q:
        print(f"bf16 vs fp32: cosine min {q['cosine_bf16_fp32']['min']:.4f} mean {q['cosine_bf16_fp32']['mean']:.5f}; "
              f"chunk top-{q['k']} overlap {q['chunk_neighbour_overlap_at_k']:.3f}; query recall@{q['k']} "
              f"{q['query_recall_at_k_bf16_vs_fp32']:.3f}; top-1 agree {q['query_top1_agreement']:.3f}")
    rows = []
    if lat:
        rows += [(f"factbook {lat['rows']} rows: embed_query ({lat['dtype']})", lat["embed_query_index_embedder"])]
        rows += [(f"  embed single query {k}", v) for k, v in lat["embed_single_query"].items()]
        rows += [(f"  flat search {k}", v) for k, v in lat["search_flat"].items()]
        rows += [(f"  end to end dense retriever {k}", v) for k, v in lat["end_to_end_dense_retriever"].items()]
    if big:
        rows += [(f"{big['rows']} rows flat search {k}", v) for k, v in big["flat_exact"].items() if k != "recall_at_k"]
        for family in ("hnsw", "ivf"):
            rows += [(f"  {family} {k} (recall@{big['k']} {v['recall_at_k']:.3f})", v["faiss_threads_1"])
                     for k, v in big[family].items()]
        rows += [(f"  end to end {k[11:]}", v) for k, v in big.items() if k.startswith("end_to_end_")]
    if rows:
        print(f"{'latency (single queries)':<58} {'p50 ms':>8} {'p95 ms':>8} {'cpu p50':>8}")
        for name, v in rows:
            print(f"{name:<58} {v['p50_ms']:>8.2f} {v['p95_ms']:>8.2f} {v['cpu_p50_ms']:>8.2f}")
    for phase, v in mem.items():
        if isinstance(v, dict):
            print(f"peak RSS {phase:<16} {v['peak_rss_mb']:>7.0f} MB")
    prep = res.get("prepare", {})
    if prep.get("wall_seconds"):
        print(f"real first build (rag-bench prepare): {prep['wall_seconds']} s wall, "
              f"{prep.get('embedding_chunks_per_s')} chunks/s, peak {prep.get('peak_rss_mb_polled', '?')} MB")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="embed every Factbook chunk instead of a sample")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    parser.add_argument("--config", help="JSON file of BenchConfig fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override one field")
    parser.add_argument("--latency-only", action="store_true",
                        help="time single queries on the built Factbook index only (index_latency.json)")
    parser.add_argument("--memory-phase", choices=MEMORY_PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    fields = json.loads(Path(args.config).read_text()) if args.config else {}
    if args.full:
        fields |= {"sample": 0, "memory_sample": 0}
    if args.quick:
        fields |= {"sample": 96, "rounds": 2, "queries": 16, "warmup": 8, "big_rows": 10_000, "memory_sample": 32}
    for item in args.set:
        key, _, value = item.partition("=")
        fields[key] = json.loads(value)
    cfg = BenchConfig.from_dict(fields, source="index_bench arguments")
    passthrough = ["--set", f"corpus={json.dumps(cfg.corpus)}", "--set", f"index={json.dumps(cfg.index)}",
                   "--set", f"memory_sample={cfg.memory_sample}", "--set", f"batch_size={cfg.batch_size}"]
    if args.memory_phase:
        memory_phase(cfg, args.memory_phase)
        return None

    mode = "full" if not cfg.sample else f"sample of {cfg.sample} chunks (seed {cfg.seed})"
    res: dict = {"mode": mode, "config": cfg.to_dict(), "load_start": [round(x, 2) for x in os.getloadavg()],
                 "machine": machine_info(), "prepare": prepare_summary(cfg)}
    total, chunks = load_chunks(cfg, cfg.sample)
    res["corpus_chunks"] = total
    queries = load_queries(cfg, chunks, cfg.queries + cfg.warmup)
    print(f"index benchmark: {mode} of {total} chunks, {len(queries)} queries, load {res['load_start']}", flush=True)
    if args.latency_only:
        res["latency"], _, _ = bench_latency(cfg, Path(cfg.index), queries)
        res["load_end"] = [round(x, 2) for x in os.getloadavg()]
        out = Path(cfg.out).with_name("index_latency.json")
        write_json(out, {k: res[k] for k in ("config", "machine", "load_start", "latency", "load_end")})
        print(json.dumps(res["latency"], indent=1))
        print(f"\nwrote {out}")
        return res
    with tempfile.TemporaryDirectory(prefix="index_bench_") as tmp:
        res["build"], res["quality"] = bench_build(cfg, chunks, queries, Path(tmp))
        index_dir = Path(cfg.index)
        if current_version(index_dir) is None:
            if not args.quick:
                raise SystemExit(f"{index_dir}: no index to time; run `rag-bench prepare` first")
            index_dir = Path(tmp) / "ours_0"  # the smoke test times the index it just built
        res["latency"], base, texts = bench_latency(cfg, index_dir, queries)
        emb = load_embedder(IndexConfig(dtype=res["latency"]["dtype"] or "auto"), backend=res["latency"]["backend"])
        res["big_index"] = bench_big(cfg, base, texts, emb, queries)
    res["memory"] = bench_memory(cfg, passthrough)
    res["load_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(cfg.out, res)
    print_table(res)
    print(f"\nwrote {cfg.out}")
    return res


if __name__ == "__main__":
    main()
