"""The data strategies: which texts generation n+1 trains on, given the human data and what was written so far.

    from rag_bench.collapse.strategies import Strategy, build_pool
    strategy = Strategy.parse("mix:0.1")
    pool, stats = build_pool(strategy, generation=1, human=human_units, synthetic=[gen0_units], budget=T, seed=0)

A unit is a corpus record (``{"id", "contents", "metadata": {"source": "human"|"synthetic", "tokens": n, ...}}``).
Budgets are in tokens of the run's tokenizer. ``Strategy.keeps_human`` says whether a strategy's pool may hold
human text; ``build_pool`` refuses a pool that breaks it, and ``origin_tokens`` counts a pool's tokens by origin
(``human``, ``gen_<k>``) for the manifest. Every pool is a seeded function of (seed, generation), so a
resumed run builds the same pool.

* ``replace``: generation n's text only;
* ``mix:p``: a share p of the budget from human data (resampled each generation), the rest from generation n;
* ``accumulate``: all human data and every generation's text so far, and the training compute grows with it
  (``compute_scale``: generation n trains n+1 times the steps; Gerstgrasser et al. 2024);
* ``accumulate-fixed``: the same union at the fixed compute of the other strategies;
* ``accumulate-subsample``: the same union, sampled down to the fixed budget;
* ``filter[:perplexity|dedup]``: generation n's text without its worst records: the highest perplexity
  under generation 0 (keeping ``keep`` of them), or near-duplicates of a text already kept;
* ``watermark[:c]``: a web of human text and watermarked generation-n text (share c of the tokens); the
  detector removes what it flags; precision and recall of that removal are reported;
* ``grounded``: generation n's text, written with human passages in context (the writer differs, not the pool);
* ``fresh``: the control: a fresh sample of human text, disjoint from generation 0's and from every other
  generation's (``fresh_samples``; where the text comes from: rag_bench.collapse.fresh). It writes nothing.

With ``cut`` (``token_cutter``) every budget is met exactly: the unit that crosses it is cut at a token.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from rag_bench.collapse.budget import Cut, Unit, fresh_samples, sample_budget, tokens_of
from rag_bench.config import parse_strategy
from rag_bench.index.retrieve import bm25_tokens
from rag_bench.training.examples import text_segments

HUMAN_KEEPING = ("mix", "accumulate", "accumulate-fixed", "accumulate-subsample", "watermark", "fresh")
HUMAN_ONLY = ("fresh",)  # strategies whose pool must hold no model-written text


@dataclasses.dataclass(frozen=True, kw_only=True)
class Strategy:
    """A parsed strategy name."""

    name: str  # as configured, e.g. "mix:0.1"
    kind: str  # one of rag_bench.config.STRATEGY_KINDS
    param: str = ""  # the part after the colon

    @classmethod
    def parse(cls, name: str) -> Strategy:
        kind, param = parse_strategy(name)
        return cls(name=name, kind=kind, param=param)

    @property
    def folder(self) -> str:
        """The run subfolder of this strategy's generations (no colon in paths)."""
        return self.name.replace(":", "-")

    @property
    def keeps_human(self) -> bool:
        """Whether generations >= 1 may train on human text (and curriculum rows built from it)."""
        return self.kind in HUMAN_KEEPING

    def compute_scale(self, pool_tokens: int, budget: int) -> float:
        """Training steps relative to a fixed-compute generation: ``accumulate`` trains on the whole union, so
        its steps grow with the pool (pool tokens over the fixed budget); every other strategy 1."""
        return max(1.0, pool_tokens / budget) if self.kind == "accumulate" and budget > 0 else 1.0

    @property
    def human_only(self) -> bool:
        """Whether its pool must hold human text only (the ``fresh`` control)."""
        return self.kind in HUMAN_ONLY

    @property
    def writes(self) -> bool:
        """Whether its pools are built from what a generation wrote (every strategy but ``fresh``)."""
        return not self.human_only

    @property
    def writer(self) -> str:
        """Which corpus generation n writes for it: plain, watermark or grounded."""
        return self.kind if self.kind in ("watermark", "grounded") else "plain"


def human_units(texts: Sequence[str], *, segment_chars: int, count_tokens: Callable[[list[str]], list[int]],
                id_prefix: str = "human") -> list[Unit]:
    """Human texts cut at line ends into segments, the unit of sampling (ids ``<id_prefix>/<i>``)."""
    segments = text_segments(texts, segment_chars)
    tokens = count_tokens(segments)
    return [{"id": f"{id_prefix}/{i}", "contents": s, "metadata": {"source": "human", "tokens": n}}
            for i, (s, n) in enumerate(zip(segments, tokens, strict=True))]


def unit_origin(unit: Unit) -> str:
    """``human`` or ``gen_<k>``: who wrote a unit."""
    meta = unit["metadata"]
    return "human" if meta["source"] == "human" else f"gen_{meta.get('generation', '?')}"


def origin_tokens(units: Sequence[Unit]) -> dict[str, int]:
    """Tokens of ``units`` by origin, in a stable order (human first, then generations)."""
    counts = Counter()
    for unit in units:
        counts[unit_origin(unit)] += unit["metadata"]["tokens"]
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] != "human", len(kv[0]), kv[0])))


def filter_perplexity(units: Sequence[Unit], keep: float) -> list[Unit]:
    """The share ``keep`` of units with the lowest perplexity under generation 0 (``metadata.gen0_ppl``)."""
    missing = [u["id"] for u in units if u["metadata"].get("gen0_ppl") is None]
    if missing:
        raise ValueError(f"the perplexity filter needs metadata.gen0_ppl (score_synthetic); missing for {missing[0]}")
    ranked = sorted(units, key=lambda u: (_finite(u["metadata"]["gen0_ppl"]), u["id"]))
    return ranked[: max(1, math.ceil(keep * len(units)))] if units else []


def _finite(value: float) -> float:
    return value if value is not None and math.isfinite(value) else math.inf


def _shingles(text: str, n: int) -> set[int]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < n:
        return {hash(tuple(words))} if words else set()
    return {hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)}


def filter_near_duplicates(units: Sequence[Unit], *, n: int, threshold: float) -> list[Unit]:
    """Drop a unit when at least ``threshold`` of its word n-grams occur in one unit kept before it."""
    kept: list[Unit] = []
    owners: dict[int, list[int]] = {}
    for unit in units:
        grams = _shingles(unit["contents"], n)
        if not grams:
            continue
        overlap = Counter(k for g in grams for k in owners.get(g, ()))
        if overlap and max(overlap.values()) / len(grams) >= threshold:
            continue
        for g in grams:
            owners.setdefault(g, []).append(len(kept))
        kept.append(unit)
    return kept


def detection_scores(flagged: Sequence[bool], synthetic: Sequence[bool]) -> dict[str, Any]:
    """Precision and recall of flagging synthetic texts (None when undefined), with the counts."""
    tp = sum(f and s for f, s in zip(flagged, synthetic, strict=True))
    n_flagged, n_synthetic = sum(flagged), sum(synthetic)
    return {"precision": tp / n_flagged if n_flagged else None, "recall": tp / n_synthetic if n_synthetic else None,
            "flagged": n_flagged, "true_positives": tp, "synthetic": n_synthetic, "human": len(flagged) - n_synthetic}


def build_pool(strategy: Strategy, *, generation: int, human: Sequence[Unit], synthetic: Sequence[Sequence[Unit]],
               budget: int, seed: int, filter_by: str = "perplexity", keep: float = 0.8, dedup_ngram: int = 4,
               dedup_threshold: float = 0.5,
               contamination: float = 0.5, z_scores: Callable[[list[str]], list[float]] | None = None,
               z_threshold: float = 4.0, cut: Cut | None = None) -> tuple[list[Unit], dict[str, Any]]:
    """The training texts of generation ``generation`` and what went into them.

    ``synthetic[j]`` is what generation j wrote under this strategy (j < generation); the newest is last (``fresh``:
    empty lists; its ``human`` is the held-aside text, rag_bench.collapse.fresh). ``filter_by`` is what a plain
    ``filter`` does; ``z_scores`` is the watermark detector (watermark only); ``cut`` makes every budget exact.
    """
    if generation < 1 or len(synthetic) != generation:
        raise ValueError(f"generation {generation} needs the texts of generations 0..{generation - 1}, "
                         f"got {len(synthetic)}")
    rng = random.Random(f"pool:{seed}:{strategy.name}:{generation}")
    newest = list(synthetic[-1])
    stats: dict[str, Any] = {"strategy": strategy.name, "generation": generation, "budget_tokens": budget}
    if strategy.kind in ("replace", "grounded"):
        pool = newest
    elif strategy.kind == "mix":
        share = float(strategy.param)
        human_part = sample_budget(human, round(share * budget), rng, cut)
        pool = human_part + sample_budget(newest, budget - round(share * budget), rng, cut)
        stats["human_share_target"] = share
    elif strategy.kind in ("accumulate", "accumulate-fixed"):
        pool = list(human) + [u for gen in synthetic for u in gen]
    elif strategy.kind == "accumulate-subsample":
        pool = sample_budget(list(human) + [u for gen in synthetic for u in gen], budget, rng, cut)
    elif strategy.kind == "filter":
        by = strategy.param or filter_by
        pool = (filter_perplexity(newest, keep) if by == "perplexity"
                else filter_near_duplicates(newest, n=dedup_ngram, threshold=dedup_threshold))
        stats["filter"] = {"by": by, "kept_units": len(pool), "units": len(newest),
                           "kept_share_units": len(pool) / len(newest) if newest else None,
                           "kept_share_tokens": tokens_of(pool) / tokens_of(newest) if newest else None}
    elif strategy.kind == "watermark":
        share = float(strategy.param) if strategy.param else contamination
        web = sample_budget(human, budget - round(share * budget), rng, cut) + \
            sample_budget(newest, round(share * budget), rng, cut)
        if z_scores is None:
            raise ValueError("the watermark strategy needs the detector (z_scores)")
        z = z_scores([u["contents"] for u in web]) if web else []
        flagged = [score > z_threshold for score in z]
        pool = [u for u, f in zip(web, flagged, strict=True) if not f]
        is_synthetic = [u["metadata"]["source"] == "synthetic" for u in web]
        stats["watermark"] = {"contamination": share, "z_threshold": z_threshold, "web_units": len(web),
                              "web_tokens": tokens_of(web), **detection_scores(flagged, is_synthetic),
                              "synthetic_tokens_left": tokens_of([u for u in pool
                                                                  if u["metadata"]["source"] == "synthetic"])}
    elif strategy.kind == "fresh":
        pool = fresh_samples(human, samples=generation, budget=budget, seed=seed, cut=cut)[-1]
    else:  # parse_strategy admits no other kind
        raise ValueError(f"unknown strategy kind {strategy.kind!r}")
    pool = sorted(pool, key=lambda u: _order_key(u["id"]))
    by_source = Counter()
    for unit in pool:
        by_source[unit["metadata"]["source"]] += unit["metadata"]["tokens"]
    total = sum(by_source.values())
    if by_source["human"] and not strategy.keeps_human:
        raise ValueError(f"{strategy.name}: its pool must hold no human text, got {by_source['human']} tokens")
    if by_source["synthetic"] and strategy.human_only:
        raise ValueError(f"{strategy.name}: its pool must hold human text only, got {by_source['synthetic']} "
                         "model-written tokens")
    stats.update(units=len(pool), tokens=total, human_tokens=by_source["human"],
                 synthetic_tokens=by_source["synthetic"], human_share=by_source["human"] / total if total else None,
                 origin_tokens=origin_tokens(pool))
    return pool, stats


def _order_key(unit_id: str) -> list[tuple[int, int, str]]:
    """Natural order of ids (gen0/plain/12/0 before gen0/plain/100/0), so a pool file reads in corpus order."""
    return [(1, int(p), "") if p.isdigit() else (0, 0, p) for p in unit_id.split("/")]


class PoolNeighbours:
    """BM25 over passages of the pool itself: the neighbours of retrieval-augmented rows, from the pool only.

    Generation n+1 must see no text outside its pool, so its context-prefixed training rows cannot use
    the human index; this ranks the pool's own passages (line-end segments of ``passage_chars``).
    """

    def __init__(self, texts: Sequence[str], *, k: int = 2, passage_chars: int = 500, k1: float = 1.5,
                 b: float = 0.75) -> None:
        self.k = k
        self.passages = text_segments(texts, passage_chars)
        self.vocab: dict[str, int] = {}
        rows, cols, counts = [], [], []
        lengths = []
        for r, passage in enumerate(self.passages):
            tf = Counter(bm25_tokens(passage))
            lengths.append(sum(tf.values()))
            for word, n in tf.items():
                rows.append(r)
                cols.append(self.vocab.setdefault(word, len(self.vocab)))
                counts.append(n)
        shape = (len(self.passages), max(1, len(self.vocab)))
        tf_matrix = sparse.csr_matrix((np.asarray(counts, dtype=np.float32), (rows, cols)), shape=shape)
        doc_freq = np.bincount(np.asarray(cols, dtype=np.int64), minlength=shape[1])
        idf = np.log(1 + (len(self.passages) - doc_freq + 0.5) / (doc_freq + 0.5)).astype(np.float32)
        lengths = np.asarray(lengths, dtype=np.float32)
        norm = k1 * (1 - b + b * lengths / max(float(lengths.mean()) if len(lengths) else 1.0, 1e-9))
        weighted = tf_matrix.tocoo()
        values = weighted.data * (k1 + 1) / (weighted.data + norm[weighted.row]) * idf[weighted.col]
        self.weights = sparse.csr_matrix((values, (weighted.row, weighted.col)), shape=shape).T.tocsr()

    def __call__(self, queries: list[str]) -> list[list[str]]:
        if not self.passages:
            return [[] for _ in queries]
        out = []
        for start in range(0, len(queries), 256):
            batch = queries[start:start + 256]
            rows, cols = [], []
            for r, query in enumerate(batch):
                for word in set(bm25_tokens(query)):
                    if word in self.vocab:
                        rows.append(r)
                        cols.append(self.vocab[word])
            q = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                                  shape=(len(batch), self.weights.shape[0]))
            scores = (q @ self.weights).toarray()
            k = min(self.k, scores.shape[1])
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            out += [[self.passages[j] for j in row if scores[r, j] > 0] for r, row in enumerate(top)]
        return out
