"""Measure contaminated indexes: shares x retrievers x defences, answered by generation 0 and the last generation.

    from rag_bench.contaminate.evaluate import evaluate_contamination
    results = evaluate_contamination(models={0: gen0_dir, 4: gen4_dir}, probes=probes, index_dirs=dirs, ...)
    results["rows"][0]   # {"model_generation": 0, "share": 0.5, "retriever": "bm25", "defence": "none",
                         #  "exact_match": {"value", "low", "high", "n"}, "synthetic_retrieved": ..., ...}

Per sample (``samples_grounded.jsonl``, ``samples_closed.jsonl``): the answer, exact match, the origins of
the retrieved passages (read from the index's metadata here, after retrieval and answering: the retriever
and the model never see them), the share of the top k and of the top ``depth`` that is synthetic, and
whether a wrong answer copies a synthetic passage (``copied_synthetic``). Means carry 95% Wilson intervals.

Answers are cached per (model, question, passages): a defence that retrieves what the bare retriever did,
or a share whose top k is the same, is not answered twice (greedy decoding makes the answers identical).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from rag_bench.answer import Answer, closed_book, grounded
from rag_bench.config import DecodeConfig
from rag_bench.contaminate.config import ContaminateConfig
from rag_bench.contaminate.defences import (
    FilteredRetriever,
    PerplexityCheck,
    ProvenanceCheck,
    TrustedSourceCheck,
)
from rag_bench.contaminate.metrics import wilson_interval
from rag_bench.eval.inputs import ContextRetriever
from rag_bench.eval.metrics import get_metric
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index
from rag_bench.lm import LM
from rag_bench.records import Probe, read_json, sha256_text, write_json, write_jsonl

SCHEMA = "rag_bench.contaminate.results/1"
# Exact match for record values; contains (a golden answer inside the answer) for a chat model's sentences.
ANSWER_METRICS = ("exact_match", "contains")


def origin_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The origin labels of a chunk; a chunk without them is human (the human index has none)."""
    return {"origin": meta.get("origin", "human"), "origin_generation": meta.get("origin_generation"),
            "origin_watermarked": bool(meta.get("origin_watermarked", False))}


def mean_with_interval(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    value = sum(values) / n if n else float("nan")
    low, high = wilson_interval(sum(values), n)
    return {"value": value, "low": low, "high": high, "n": n}


def answer_scores(prediction: str, golden: Sequence[str]) -> dict[str, float]:
    return {name: get_metric(name).fn(prediction, list(golden)) for name in ANSWER_METRICS}


def with_answer_scores(row: dict[str, Any]) -> dict[str, Any]:
    """A stored sample with every answer metric (parts written before ``contains`` was scored lack it)."""
    missing = [name for name in ANSWER_METRICS if name not in row]
    return {**row, **answer_scores(row["prediction"], row["golden_answers"])} if missing else row


def score_sample(answer: Answer, probe: Probe, docs: Sequence[Document], *, k: int) -> dict[str, Any]:
    """Exact match, synthetic shares of the top k and of every passage given, and copying of a synthetic value."""
    golden = list(probe.golden_answers)
    origins = [origin_of(d.metadata) for d in docs]
    top = [o["origin"] for o in origins[:k]]
    synthetic_texts = [d.page_content for d, o in zip(docs[:k], origins[:k], strict=True) if o["origin"] == "synthetic"]
    human_texts = [d.page_content for d, o in zip(docs[:k], origins[:k], strict=True) if o["origin"] != "synthetic"]
    return {**answer_scores(answer.text, golden),
            "synthetic_retrieved": get_metric("synthetic_retrieved").fn(top),
            "synthetic_retrieved_depth": get_metric("synthetic_retrieved").fn([o["origin"] for o in origins]),
            "copied_synthetic": get_metric("copied_synthetic").fn(answer.text, golden, synthetic_texts, human_texts),
            "retrieved": [{"chunk_id": d.id, "rank": i, **o} for i, (d, o) in enumerate(zip(docs, origins,
                                                                                              strict=True), 1)]}


class AnswerCache:
    """Grounded answers keyed by (model, question, passage ids), through the LCEL chain of rag_bench.answer."""

    def __init__(self, lms: dict[int, LM], decode: DecodeConfig, k: int) -> None:
        self.lms, self.decode, self.k = lms, decode, k
        self._answers: dict[tuple[int, str, tuple[str, ...]], Answer] = {}
        self.generated = 0

    def answers(self, generation: int, prompts: Sequence[str], contexts: Sequence[Sequence[Document]]) -> list[Answer]:
        keys = [(generation, p, tuple(d.id for d in docs[:self.k])) for p, docs in zip(prompts, contexts, strict=True)]
        missing = [i for i, key in enumerate(keys) if key not in self._answers]
        if missing:
            questions = [prompts[i] for i in missing]
            served = ContextRetriever(questions, [list(contexts[i][:self.k]) for i in missing])
            for i, ans in zip(missing, grounded(self.lms[generation], served, questions, k=self.k,
                                                decode=self.decode), strict=True):
                self._answers[keys[i]] = ans
            self.generated += len(missing)
        return [self._answers[key] for key in keys]


def make_checks(cfg: ContaminateConfig, *, gen0: LM, watermark: Any, z_threshold: float, ppl_threshold: float | None,
                trusted: set[str]) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    if "provenance" in cfg.defences:
        checks["provenance"] = ProvenanceCheck(gen0, watermark, z_threshold=z_threshold)
    if "perplexity" in cfg.defences:
        checks["perplexity"] = PerplexityCheck(gen0, threshold=ppl_threshold or 0.0, batch_size=cfg.batch_size)
    if "trusted" in cfg.defences:
        checks["trusted"] = TrustedSourceCheck(trusted)
    return checks


def filter_stats(share: float, name: str, check: Any, labels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Precision and recall of one check over every candidate chunk it judged at this share."""
    ids = list(check.dropped)
    dropped = [check.dropped[c] for c in ids]
    synthetic = [labels[c]["origin"] == "synthetic" for c in ids]
    marked = [labels[c]["origin_watermarked"] for c in ids]
    precision, recall = get_metric("filter_precision").fn, get_metric("filter_recall").fn
    humans = [d for d, s in zip(dropped, synthetic, strict=True) if not s]
    return {"share": share, "defence": name, "judged": len(ids), "dropped": sum(dropped),
            "synthetic_judged": sum(synthetic), "precision": precision(dropped, synthetic),
            "recall": recall(dropped, synthetic),
            "recall_watermarked": recall([d for d, m in zip(dropped, marked, strict=True) if m],
                                         [True] * sum(marked)),
            "recall_unmarked": recall([d for d, s, m in zip(dropped, synthetic, marked, strict=True) if s and not m],
                                      [True] * sum(s and not m for s, m in zip(synthetic, marked, strict=True))),
            "human_dropped": sum(humans) / len(humans) if humans else float("nan")}


def evaluate_contamination(*, models: dict[int, Path], probes: Sequence[Probe], index_dirs: Sequence[Path],
                           markers: Sequence[dict[str, Any]], human_chunks: Sequence[Document],
                           cfg: ContaminateConfig, k: int, watermark: Any, z_threshold: float, decode: DecodeConfig,
                           out_dir: Path, embeddings: Any = None,
                           echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every share x retriever x defence x model; writes the samples files and returns the results dict."""
    say = echo or (lambda _line: None)
    started = time.perf_counter()
    lms = {g: LM.load(path) for g, path in models.items()}
    gen0 = lms[min(lms)]
    decode = decode.replace(batch_size=cfg.batch_size)
    prompts = [p.prompt for p in probes]
    depth = max(k, cfg.depth)

    closed_rows, closed = [], {}
    for g, lm in lms.items():
        answers = closed_book(lm, prompts, decode=decode)
        scores = [answer_scores(a.text, p.golden_answers) for a, p in zip(answers, probes, strict=True)]
        closed[str(g)] = {name: mean_with_interval([s[name] for s in scores]) for name in ANSWER_METRICS}
        closed_rows += [{"model_generation": g, "id": p.id, "prompt": p.prompt, "prediction": a.text,
                         "golden_answers": list(p.golden_answers), **s}
                        for p, a, s in zip(probes, answers, scores, strict=True)]
    write_jsonl(out_dir / "samples_closed.jsonl", closed_rows)

    ppl_threshold = None
    if "perplexity" in cfg.defences:
        ppl_threshold = PerplexityCheck.calibrated(gen0, [c.page_content for c in human_chunks],
                                                   quantile=cfg.perplexity_quantile, sample=cfg.perplexity_sample,
                                                   seed=cfg.seed, batch_size=cfg.batch_size).threshold
    trusted = {str(c.metadata.get("source", "")) for c in human_chunks}
    cache = AnswerCache(lms, decode, k)
    setup = {"retrievers": list(cfg.retrievers), "defences": list(cfg.defences), "k": k, "depth": depth,
             "filter_depth": cfg.filter_depth, "models": {str(g): str(p) for g, p in models.items()},
             "probes": [p.id for p in probes], "z_threshold": z_threshold, "perplexity_threshold": ppl_threshold}
    grounded_rows: list[dict[str, Any]] = []
    filters: list[dict[str, Any]] = []
    for index_dir, marker in zip(index_dirs, markers, strict=True):
        part = out_dir / "parts" / f"share_{marker['share']:.4f}.json"
        key = sha256_text(json.dumps({**setup, "index": marker["synthetic"]}, sort_keys=True))
        stored = read_json(part) if part.is_file() else {}
        if stored.get("key") != key:
            rows, stats = measure_share(index_dir, marker["share"], lms=lms, probes=probes, cfg=cfg, k=k, depth=depth,
                                        cache=cache, embeddings=embeddings, checks=make_checks(
                                            cfg, gen0=gen0, watermark=watermark, z_threshold=z_threshold,
                                            ppl_threshold=ppl_threshold, trusted=trusted))
            stored = {"key": key, "rows": rows, "filters": stats}
            write_json(part, stored)  # a killed evaluation resumes at the first share not measured
        grounded_rows += [with_answer_scores(row) for row in stored["rows"]]
        filters += stored["filters"]
        say(f"share {marker['share']:.2f}: measured ({cache.generated} grounded answers generated in this session)")
    write_jsonl(out_dir / "samples_grounded.jsonl", grounded_rows)
    return {"schema": SCHEMA, "k": k, "depth": depth, "models": {str(g): str(p) for g, p in models.items()},
            "closed": closed, "rows": aggregate_rows(grounded_rows, markers), "filters": filters,
            "indexes": list(markers), "z_threshold": z_threshold, "perplexity_threshold": ppl_threshold,
            "answers_generated": cache.generated, "evaluate_seconds": round(time.perf_counter() - started, 1)}


class SearchCache:
    """One retrieval per query at ``width``, sliced for every narrower request (the defences and the bare
    retriever of one share and mode ask the same queries); copies are returned, so callers may re-rank."""

    def __init__(self, base: Any, width: int) -> None:
        self.base, self.width = base, width
        self._found: dict[str, list[Document]] = {}

    @property
    def mode(self) -> str:
        return self.base.mode

    def batch_search(self, queries: list[str], *, k: int | None = None) -> list[list[Document]]:
        missing = [q for q in dict.fromkeys(queries) if q not in self._found]
        if missing:
            self._found.update(zip(missing, self.base.batch_search(missing, k=self.width), strict=True))
        return [[Document(page_content=d.page_content, metadata=dict(d.metadata), id=d.id)
                 for d in self._found[q][:k or self.width]] for q in queries]


def measure_share(index_dir: Path, share: float, *, lms: dict[int, LM], probes: Sequence[Probe],
                  cfg: ContaminateConfig, k: int, depth: int, cache: AnswerCache, embeddings: Any,
                  checks: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sample rows of every retriever x defence x model on one share's index, and the checks' precision/recall."""
    prompts = [p.prompt for p in probes]
    loaded = load_index(index_dir, embeddings=embeddings)
    labels = {d.id: origin_of(d.metadata) for d in loaded.chunks}
    base = make_retriever(loaded.store, mode="bm25", k=depth)
    base.batch_search(prompts[:1], k=1)  # builds BM25 once; the copies below share it
    rows: list[dict[str, Any]] = []
    for mode in cfg.retrievers:
        plain = SearchCache(base.model_copy(update={"mode": mode}), max(depth, k * cfg.filter_depth))
        for defence in cfg.defences:
            # A defence hands the reader k passages; only the bare retriever is read further, to `depth`
            # (Yu et al.'s curve), which spares the checks scoring 5x as many candidates.
            retriever = plain if defence == "none" else FilteredRetriever(
                base=plain, check=checks[defence], k=k, depth=cfg.filter_depth)
            contexts = retriever.batch_search(prompts, k=depth if defence == "none" else k)
            for g in lms:
                answers = cache.answers(g, prompts, contexts)
                rows += [{"model_generation": g, "share": share, "retriever": mode, "defence": defence,
                          "id": probe.id, "prompt": probe.prompt, "prediction": ans.text,
                          "golden_answers": list(probe.golden_answers), **score_sample(ans, probe, docs, k=k)}
                         for probe, ans, docs in zip(probes, answers, contexts, strict=True)]
    return rows, [filter_stats(share, name, check, labels) for name, check in checks.items()]


def aggregate_rows(rows: Sequence[dict[str, Any]], markers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means per (model generation, share, retriever, defence), with the share's measured pool and index shares."""
    by_share = {m["share"]: m for m in markers}
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["model_generation"], row["share"], row["retriever"], row["defence"])].append(row)
    out = []
    for (g, share, mode, defence), members in groups.items():
        out.append({"model_generation": g, "share": share, "pool_share": by_share[share]["pool_share"],
                    "index_share": by_share[share]["index_share"], "retriever": mode, "defence": defence,
                    **{name: mean_with_interval([r[name] for r in members])
                       for name in (*ANSWER_METRICS, "synthetic_retrieved", "synthetic_retrieved_depth",
                                    "copied_synthetic")}})
    return out
