"""One index measured: per-probe rows of every retriever x k x defence x answering model, and the rank pairs.

    from rag_bench.contaminate.measure import measure_index
    rows, ranks, filters = measure_index(index_dir, share=0.5, arm="synthetic", probes=probes, ...)

Per sample: the answer and its scores, the origins of the retrieved passages (read from the index's metadata
after retrieval and answering: the retriever and the model never see them), the synthetic share of the top k
and of the top ``depth``, that share over its ceiling min(r, k)/k (r: rewrites of the probe's answer chunk in
this index), and whether a wrong answer copies a synthetic passage. Per probe and retriever, ``ranks`` holds
the rank of the answer chunk and of its own first rewrite among the top ``rank_depth`` (the pairwise test).

Answers are cached per (model, question, passages): a defence that retrieves what the bare retriever did, or a
share whose top k is the same, is not answered twice (greedy decoding makes the answers identical).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from rag_bench.answer import Answer, grounded
from rag_bench.config import DecodeConfig
from rag_bench.contaminate.defences import FilteredRetriever
from rag_bench.contaminate.metrics import wilson_interval
from rag_bench.eval.inputs import ContextRetriever
from rag_bench.eval.metrics import get_metric
from rag_bench.eval.splits import probe_split
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index
from rag_bench.lm import LM
from rag_bench.records import Probe

# Exact match for record values; contains (a golden answer inside the answer) for a chat model's sentences.
ANSWER_METRICS = ("exact_match", "contains")


def origin_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The origin labels of a chunk; a chunk without them is human (the human index has none)."""
    return {"origin": meta.get("origin", "human"), "origin_generation": meta.get("origin_generation"),
            "origin_watermarked": bool(meta.get("origin_watermarked", False))}


def answer_scores(prediction: str, golden: Sequence[str]) -> dict[str, float]:
    return {name: get_metric(name).fn(prediction, list(golden)) for name in ANSWER_METRICS}


def score_sample(answer: Answer, probe: Probe, docs: Sequence[Document], *, k: int,
                 rewrites: int = 0) -> dict[str, Any]:
    """Answer scores, synthetic shares of the top k (raw and over its ceiling) and of every passage given, and
    copying of a synthetic value. ``rewrites``: rewrites of the probe's answer chunk in the index."""
    golden = list(probe.golden_answers)
    origins = [origin_of(d.metadata) for d in docs]
    top = [o["origin"] for o in origins[:k]]
    synthetic_texts = [d.page_content for d, o in zip(docs[:k], origins[:k], strict=True) if o["origin"] == "synthetic"]
    human_texts = [d.page_content for d, o in zip(docs[:k], origins[:k], strict=True) if o["origin"] != "synthetic"]
    share = get_metric("synthetic_retrieved").fn(top)
    return {**answer_scores(answer.text, golden), "synthetic_retrieved": share,
            "synthetic_retrieved_depth": get_metric("synthetic_retrieved").fn([o["origin"] for o in origins]),
            "rewrites": rewrites, "exposure_ceiling": get_metric("exposure_ceiling").fn(rewrites, k),
            "normalised_exposure": get_metric("normalised_exposure").fn(share, rewrites, k),
            "copied_synthetic": get_metric("copied_synthetic").fn(answer.text, golden, synthetic_texts, human_texts),
            "retrieved": [{"chunk_id": d.id, "rank": i, **o} for i, (d, o) in enumerate(zip(docs, origins,
                                                                                              strict=True), 1)]}


class AnswerCache:
    """Grounded answers keyed by (model, question, passage ids), through the LCEL chain of rag_bench.answer."""

    def __init__(self, lms: dict[int, LM], decode: DecodeConfig) -> None:
        self.lms, self.decode = lms, decode
        self._answers: dict[tuple[int, str, tuple[str, ...]], Answer] = {}
        self.generated = 0

    def answers(self, generation: int, prompts: Sequence[str], contexts: Sequence[Sequence[Document]], *,
                k: int) -> list[Answer]:
        keys = [(generation, p, tuple(d.id for d in docs[:k])) for p, docs in zip(prompts, contexts, strict=True)]
        missing = list({key: i for i, key in enumerate(keys) if key not in self._answers}.values())
        if missing:
            questions = [prompts[i] for i in missing]
            served = ContextRetriever(questions, [list(contexts[i][:k]) for i in missing])
            for i, ans in zip(missing, grounded(self.lms[generation], served, questions, k=k, decode=self.decode),
                              strict=True):
                self._answers[keys[i]] = ans
            self.generated += len(missing)
        return [self._answers[key] for key in keys]


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


def rewrite_counts(chunks: Sequence[Document]) -> dict[str, int]:
    """Rewrites (distinct rewrite documents) of each answer chunk in an index."""
    docs: dict[str, set[Any]] = {}
    for c in chunks:
        if c.metadata.get("rewrite_of"):
            docs.setdefault(c.metadata["rewrite_of"], set()).add(c.metadata.get("rewrite_round"))
    return {cid: len(rounds) for cid, rounds in docs.items()}


def rank_pair(probe: Probe, docs: Sequence[Document]) -> dict[str, Any]:
    """Rank (1-based, None below the depth read) of the probe's answer chunk and of its first-round rewrite."""
    source = probe.metadata.get("source_chunk_id")
    original = next((i for i, d in enumerate(docs, 1) if d.id == source), None)
    rewrite = next((i for i, d in enumerate(docs, 1) if d.metadata.get("rewrite_of") == source
                    and d.metadata.get("rewrite_round") == 0), None)
    return {"original_rank": original, "rewrite_rank": rewrite,
            "rewrite_higher": get_metric("rewrite_ranks_higher").fn(original, rewrite)}


def filter_stats(share: float, name: str, retriever: str, check: Any, labels: dict[str, dict[str, Any]],
                 judged: Sequence[str]) -> dict[str, Any]:
    """Precision and recall (95% Wilson) of one check over the test probes' candidates it judged."""
    ids = list(dict.fromkeys(judged))
    dropped = [check.dropped[c] for c in ids]
    synthetic = [labels[c]["origin"] == "synthetic" for c in ids]
    marked = [labels[c]["origin_watermarked"] for c in ids]
    recall = get_metric("filter_recall").fn
    caught = sum(d and s for d, s in zip(dropped, synthetic, strict=True))
    humans = [d for d, s in zip(dropped, synthetic, strict=True) if not s]
    return {"share": share, "defence": name, "retriever": retriever, "split": "test", "judged": len(ids),
            "dropped": sum(dropped), "synthetic_judged": sum(synthetic),
            "precision": get_metric("filter_precision").fn(dropped, synthetic),
            "precision_ci": list(wilson_interval(caught, sum(dropped))),
            "recall": recall(dropped, synthetic), "recall_ci": list(wilson_interval(caught, sum(synthetic))),
            "recall_watermarked": recall([d for d, m in zip(dropped, marked, strict=True) if m],
                                         [True] * sum(marked)),
            "recall_unmarked": recall([d for d, s, m in zip(dropped, synthetic, marked, strict=True) if s and not m],
                                      [True] * sum(s and not m for s, m in zip(synthetic, marked, strict=True))),
            "human_dropped": sum(humans) / len(humans) if humans else float("nan")}


def defended_contexts(plain: Any, check: Any, prompts: Sequence[str], splits: Sequence[str], *, k: int,
                      depth: int) -> tuple[list[list[Document]], list[str]]:
    """Contexts through ``check`` for every prompt, and the candidate ids the test prompts' filtering judged."""
    retriever = FilteredRetriever(base=plain, check=check, k=k, depth=depth)
    test = [p for p, s in zip(prompts, splits, strict=True) if s == "test"]
    judged = [d.id for docs in plain.batch_search(test, k=k * depth) for d in docs]
    found = dict(zip(test, retriever.batch_search(test, k=k), strict=True))
    rest = [p for p in prompts if p not in found]
    found.update(zip(rest, retriever.batch_search(rest, k=k), strict=True))
    return [found[p] for p in prompts], judged


def measure_index(index_dir: Path, *, share: float, arm: str, lms: dict[int, LM], probes: Sequence[Probe],
                  retrievers: Sequence[str], ks: Sequence[int], k: int, depth: int, rank_depth: int,
                  cache: AnswerCache, embeddings: Any, checks: dict[str, tuple[Any, int]]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Sample rows, rank pairs and filter statistics of one index. ``checks``: defence label -> (a factory of a
    fresh check, candidates read per passage); defences run at ``k`` on the synthetic arm only."""
    prompts = [p.prompt for p in probes]
    splits = [probe_split(p.id) for p in probes]
    loaded = load_index(index_dir, embeddings=embeddings)
    labels = {d.id: origin_of(d.metadata) for d in loaded.chunks}
    counts = rewrite_counts(loaded.chunks)
    r_of = [counts.get(p.metadata.get("source_chunk_id"), 0) for p in probes]
    widest = max([depth, rank_depth, *ks] + [k * d for _, d in checks.values()])
    base = make_retriever(loaded.store, mode="bm25", k=widest)
    base.batch_search(prompts[:1], k=1)  # builds BM25 once; the copies below share it
    rows: list[dict[str, Any]] = []
    ranks: list[dict[str, Any]] = []
    filters: list[dict[str, Any]] = []

    def add_rows(contexts: list[list[Document]], kk: int, defence: str, mode: str) -> None:
        for g in lms:
            answers = cache.answers(g, prompts, contexts, k=kk)
            rows.extend({"model_generation": g, "arm": arm, "share": share, "retriever": mode, "defence": defence,
                         "k": kk, "id": probe.id, "split": split, "prompt": probe.prompt, "prediction": ans.text,
                         "golden_answers": list(probe.golden_answers),
                         **score_sample(ans, probe, docs, k=kk, rewrites=r)}
                        for probe, split, ans, docs, r in zip(probes, splits, answers, contexts, r_of, strict=True))

    for mode in retrievers:
        plain = SearchCache(base.model_copy(update={"mode": mode}), widest)
        if arm == "synthetic" and share > 0:
            # a pair only where the answer chunk has a rewrite in this index: at a share below 0.5 most have none,
            # and an absent rewrite would count as one ranked below its original
            ranks += [{"share": share, "retriever": mode, "id": p.id, "split": s, "rewrites": r, **rank_pair(p, docs)}
                      for p, s, r, docs in zip(probes, splits, r_of, plain.batch_search(prompts, k=rank_depth),
                                               strict=True) if r > 0]
        for kk in ks:
            add_rows(plain.batch_search(prompts, k=max(depth, kk)), kk, "none", mode)
        if arm != "synthetic":
            continue
        for label, (make, read) in checks.items():
            check = make()
            contexts, judged = defended_contexts(plain, check, prompts, splits, k=k, depth=read)
            add_rows(contexts, k, label, mode)
            filters.append(filter_stats(share, label, mode, check, labels, judged))
    return rows, ranks, filters
