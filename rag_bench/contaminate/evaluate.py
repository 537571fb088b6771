"""Measure contaminated indexes: arms x shares x retrievers x k x defences, answered by generation 0 and the last.

    from rag_bench.contaminate.evaluate import evaluate_contamination
    results = evaluate_contamination(models={0: gen0_dir, 4: gen4_dir}, probes=probes, indexes=indexes, ...)
    results["rows"][0]   # {"model_generation": 0, "arm": "synthetic", "share": 0.5, "retriever": "bm25",
                         #  "defence": "none", "k": 1, "exact_match": {"value", "low", "high", "n"}, ...}

Two arms: ``synthetic`` (the rewrites) and ``human`` (as many held-out human chunks, the control of
``rag_bench.contaminate.control``); share 0 is the human index, the baseline of both. Per sample
(``samples_grounded.jsonl``) see ``rag_bench.contaminate.measure``; the pairwise ranks go to
``samples_ranks.jsonl``. Means carry 95% Wilson intervals.

Defences are calibrated first: the candidates the *dev* probes retrieve at every share are scored, and the
thresholds that separate them best are chosen (``rag_bench.contaminate.calibrate``) and written to
``thresholds.json`` (or read from ``thresholds``, which must say split dev). Defence rows and filter statistics
are then reported on the test probes. Each index's measurement is stored in ``parts/`` as it finishes, so a
killed evaluation resumes at the first index not measured.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from rag_bench.answer import closed_book
from rag_bench.config import DecodeConfig
from rag_bench.contaminate.calibrate import calibrate
from rag_bench.contaminate.config import ContaminateConfig
from rag_bench.contaminate.defences import PerplexityCheck, ProvenanceCheck, TrustedSourceCheck
from rag_bench.contaminate.measure import (
    ANSWER_METRICS,
    AnswerCache,
    SearchCache,
    answer_scores,
    measure_index,
    origin_of,
)
from rag_bench.contaminate.metrics import wilson_interval
from rag_bench.eval.splits import probe_split
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index
from rag_bench.lm import LM
from rag_bench.records import Probe, read_json, sha256_text, write_json, write_jsonl

SCHEMA = "rag_bench.contaminate.results/2"
MEASURES = (*ANSWER_METRICS, "synthetic_retrieved", "synthetic_retrieved_depth", "normalised_exposure",
            "exposure_ceiling", "copied_synthetic")
SCORED = ("provenance", "perplexity")  # the defences whose threshold is chosen on dev


def mean_with_interval(values: Sequence[float]) -> dict[str, Any]:
    values = [v for v in values if v == v]  # nan (e.g. an exposure with no rewrite to read) is left out
    n = len(values)
    value = sum(values) / n if n else float("nan")
    low, high = wilson_interval(sum(values), n) if all(0 <= v <= 1 for v in values) else (float("nan"),) * 2
    return {"value": value, "low": low, "high": high, "n": n}


def with_answer_scores(row: dict[str, Any]) -> dict[str, Any]:
    """A stored sample with every answer metric (parts written before ``contains`` was scored lack it)."""
    missing = [name for name in ANSWER_METRICS if name not in row]
    return {**row, **answer_scores(row["prediction"], row["golden_answers"])} if missing else row


class Checks:
    """The defences' checks, with score caches shared across shares (a chunk id is scored once)."""

    def __init__(self, cfg: ContaminateConfig, *, gen0: LM, detector: LM, watermark: Any,
                 human_chunks: Sequence[Document]) -> None:
        self.cfg, self.gen0, self.detector, self.watermark = cfg, gen0, detector, watermark
        self.scores: dict[str, dict[str, float]] = {name: {} for name in SCORED}
        self.trusted = {str(c.metadata.get("source", "")) for c in human_chunks}

    def scoring(self, name: str) -> Any:
        """A check of ``name`` for scoring only (thresholds that drop nothing)."""
        return self.make(name, {})

    def make(self, name: str, thresholds: dict[str, Any]) -> Any:
        if name == "provenance":
            return ProvenanceCheck(self.detector, self.watermark, scores=self.scores[name],
                                   z_threshold=thresholds.get(name, {}).get("z", math.inf))
        if name == "perplexity":
            low, high = thresholds.get(name, {}).get("band", [-math.inf, math.inf])
            return PerplexityCheck(self.gen0, band=(low, high), batch_size=self.cfg.batch_size,
                                   scores=self.scores[name])
        return TrustedSourceCheck(self.trusted)

    def factories(self, thresholds: dict[str, Any]) -> dict[str, tuple[Callable[[], Any], int]]:
        """Defence label -> (fresh check, candidates read per passage): trusted source once per swept depth."""
        out: dict[str, tuple[Callable[[], Any], int]] = {}
        for name in self.cfg.defences:
            if name in SCORED:
                out[name] = ((lambda n=name: self.make(n, thresholds)), self.cfg.filter_depth)
            elif name == "trusted":
                for depth in self.cfg.trusted_depths:
                    out[f"trusted-{depth}"] = (lambda: self.make("trusted", thresholds), depth)
        return out


def dev_candidates(indexes: Sequence[tuple[Path, dict[str, Any]]], probes: Sequence[Probe], checks: Checks, *,
                   k: int, embeddings: Any) -> dict[str, list[tuple[float, bool]]]:
    """(score, is synthetic) of every distinct candidate the dev probes retrieve, per scored defence."""
    dev = [p.prompt for p in probes if probe_split(p.id) == "dev"]
    names = [n for n in SCORED if n in checks.cfg.defences]
    seen: dict[str, dict[str, tuple[float, bool]]] = {n: {} for n in names}
    width = k * checks.cfg.filter_depth
    for index_dir, marker in indexes:
        if marker["share"] == 0 or not dev or not names:
            continue
        loaded = load_index(index_dir, embeddings=embeddings)
        base = make_retriever(loaded.store, mode="bm25", k=width)
        for mode in checks.cfg.retrievers:
            found = [d for docs in SearchCache(base.model_copy(update={"mode": mode}), width).batch_search(dev)
                     for d in docs]
            for name in names:
                scores = checks.scoring(name).score_docs(found)
                seen[name].update((d.id, (s, origin_of(d.metadata)["origin"] == "synthetic"))
                                  for d, s in zip(found, scores, strict=True))
    return {n: list(v.values()) for n, v in seen.items()}


def calibrated(path: Path, indexes: Sequence[tuple[Path, dict[str, Any]]], probes: Sequence[Probe], checks: Checks,
               *, k: int, embeddings: Any) -> dict[str, Any]:
    """Thresholds chosen on the dev candidates, stored at ``path`` with the key of what they were chosen on (the
    indexes, the probes, the defences and their candidate depth) and read back while the key holds."""
    key = sha256_text(json.dumps({"indexes": [m["synthetic"] for _, m in indexes], "probes": [p.id for p in probes],
                                  "defences": list(checks.cfg.defences), "retrievers": list(checks.cfg.retrievers),
                                  "width": k * checks.cfg.filter_depth}, sort_keys=True))
    stored = read_json(path) if path.is_file() else {}
    if stored.get("key") != key:
        stored = {**calibrate(dev_candidates(indexes, probes, checks, k=k, embeddings=embeddings)), "key": key}
        write_json(path, stored)
    return stored


def evaluate_contamination(*, models: dict[int, Path], probes: Sequence[Probe],
                           indexes: Sequence[tuple[Path, dict[str, Any]]],
                           controls: Sequence[tuple[Path, dict[str, Any]]], human_chunks: Sequence[Document],
                           cfg: ContaminateConfig, k: int, watermark: Any, decode: DecodeConfig, out_dir: Path,
                           detector: Path | None = None, thresholds: dict[str, Any] | None = None,
                           embeddings: Any = None, echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every index (synthetic shares, then the control's) measured; writes the samples files, returns results."""
    say = echo or (lambda _line: None)
    started = time.perf_counter()
    lms = {g: LM.load(path) for g, path in models.items()}
    gen0 = lms[min(lms)]
    decode = decode.replace(batch_size=cfg.batch_size)
    closed_rows, closed = [], {}
    for g, lm in lms.items():
        answers = closed_book(lm, [p.prompt for p in probes], decode=decode)
        scores = [answer_scores(a.text, p.golden_answers) for a, p in zip(answers, probes, strict=True)]
        closed[str(g)] = {name: mean_with_interval([s[name] for s in scores]) for name in ANSWER_METRICS}
        closed_rows += [{"model_generation": g, "id": p.id, "split": probe_split(p.id), "prompt": p.prompt,
                         "prediction": a.text, "golden_answers": list(p.golden_answers), **s}
                        for p, a, s in zip(probes, answers, scores, strict=True)]
    write_jsonl(out_dir / "samples_closed.jsonl", closed_rows)

    checks = Checks(cfg, gen0=gen0, detector=LM.load(detector) if detector else gen0, watermark=watermark,
                    human_chunks=human_chunks)
    if thresholds is None:
        thresholds = calibrated(out_dir / "thresholds.json", indexes, probes, checks, k=k, embeddings=embeddings)
        say(f"thresholds chosen on the dev probes: {json.dumps({n: thresholds.get(n) for n in SCORED})}")
    factories = checks.factories(thresholds)
    cache = AnswerCache(lms, decode)
    depth = max(k, cfg.depth)
    ks = sorted({*cfg.ks, k})  # the run's k is always measured: the figures and the defences' baseline use it
    setup = {"retrievers": list(cfg.retrievers), "defences": list(factories), "k": k, "ks": ks,
             "depth": depth, "rank_depth": cfg.rank_depth, "models": {str(g): str(p) for g, p in models.items()},
             "probes": [p.id for p in probes], "thresholds": thresholds}
    grounded_rows: list[dict[str, Any]] = []
    ranks: list[dict[str, Any]] = []
    filters: list[dict[str, Any]] = []
    measured = [("synthetic", i) for i in indexes] + [("human", c) for c in controls if c[1]["share"] > 0]
    for arm, (index_dir, marker) in measured:
        part = out_dir / "parts" / f"{arm}_share_{marker['share']:.4f}.json"
        key = sha256_text(json.dumps({**setup, "arm": arm, "index": marker["synthetic"]}, sort_keys=True))
        stored = read_json(part) if part.is_file() else {}
        if stored.get("key") != key:
            rows, rank_rows, stats = measure_index(
                index_dir, share=marker["share"], arm=arm, lms=lms, probes=probes, retrievers=cfg.retrievers,
                ks=ks, k=k, depth=depth, rank_depth=cfg.rank_depth, cache=cache, embeddings=embeddings,
                checks=factories if arm == "synthetic" else {})
            stored = {"key": key, "rows": rows, "ranks": rank_rows, "filters": stats}
            write_json(part, stored)
        grounded_rows += [with_answer_scores(row) for row in stored["rows"]]
        ranks += stored["ranks"]
        filters += stored["filters"]
        say(f"{arm} share {marker['share']:.2f}: measured ({cache.generated} grounded answers generated so far)")
    write_jsonl(out_dir / "samples_grounded.jsonl", grounded_rows)
    write_jsonl(out_dir / "samples_ranks.jsonl", ranks)
    return {"schema": SCHEMA, "k": k, "ks": ks, "depth": depth, "rank_depth": cfg.rank_depth,
            "models": {str(g): str(p) for g, p in models.items()}, "closed": closed,
            "rows": aggregate_rows(grounded_rows, [m for _, m in indexes] + [m for _, m in controls]),
            "filters": filters, "indexes": [m for _, m in indexes], "controls": [m for _, m in controls],
            "thresholds": thresholds, "answers_generated": cache.generated,
            "evaluate_seconds": round(time.perf_counter() - started, 1)}


def aggregate_rows(rows: Sequence[dict[str, Any]], markers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means per (model generation, arm, share, retriever, defence, k) with the measured pool and index shares;
    a defence's means are over the test probes (its thresholds were chosen on dev), the bare retriever's over all."""
    by_share = {(m.get("arm", "synthetic"), m["share"]): m for m in markers}
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["defence"] != "none" and row.get("split", "test") != "test":
            continue
        groups[(row["model_generation"], row.get("arm", "synthetic"), row["share"], row["retriever"],
                row["defence"], row.get("k"))].append(row)
    out = []
    for (g, arm, share, mode, defence, k), members in groups.items():
        marker = by_share.get((arm, share)) or by_share[("synthetic", share)]
        out.append({"model_generation": g, "arm": arm, "share": share, "pool_share": marker["pool_share"],
                    "index_share": marker["index_share"], "retriever": mode, "defence": defence, "k": k,
                    "split": "all" if defence == "none" else "test",
                    **{name: mean_with_interval([r[name] for r in members])
                       for name in MEASURES if name in members[0]}})
    return out
