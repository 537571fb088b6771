"""The scores of one answer, their averages by bucket, and the grounded-minus-closed gaps.

    from rag_bench.eval.scoring import aggregate, score_answer
    scores = [score_answer(a, p, gold_in_index=True) for a, p in zip(answers, probes, strict=True)]
    aggregate(probes, scores)["tail"]["exact_match"]   # {"value": 0.41, "higher_is_better": True, "n": 337}

Metrics per probe, averaged by mode and by the probes' own ``metadata.bucket`` (``tail``/``torso``/``head``;
``all`` holds every probe):

* accuracy: exact_match, token_f1, contains over every probe; numeric_match over ``answer_type == "number"``
  probes only (its ``n`` says how many), since a first-number match means nothing for a capital;
* grounding (grounded modes): retrieval_recall (the probe's ``source_chunk_id`` was retrieved; a probe without
  one, or whose chunk is not in the index, counts a retrieved chunk holding a golden answer), answer_recall
  (a retrieved chunk holds a golden answer: the ceiling for copying), supported (the answer occurs in a
  retrieved chunk), exact match when retrieval hit and when it missed;
* recall_at_k (grounded modes, probes whose gold chunk is in the index): the gold chunk was among the k retrieved;
* prompt_truncated: share of prompts cut from the left to fit the model's positions (lower is better).

The oracle modes (the gold chunk as the one passage) get answer_recall and supported but no retrieval metric.
``is_echo`` flags a probe whose golden answer occurs in its question; ``primary`` averages the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag_bench.answer import ORACLE_MODES, Answer
from rag_bench.eval.metrics import (
    accuracy_by_retrieval,
    answer_in_question,
    get_metric,
    recall_at_k,
    retrieval_recall,
    supported,
)
from rag_bench.records import Probe

BUCKETS = ("tail", "torso", "head", "all")
ACCURACY = ("exact_match", "token_f1", "contains")
LOCAL_METRICS = {"answer_recall": True, "prompt_truncated": False}  # name: higher_is_better, for unregistered ones


def score_answer(ans: Answer, probe: Probe, *, gold_in_index: bool, rel_tol: float = 0.01) -> dict[str, float]:
    """Per-probe scores of one answer (see the module docstring for which apply when)."""
    golden = list(probe.golden_answers)
    scores = {name: get_metric(name).fn(ans.text, golden) for name in ACCURACY}
    if probe.metadata.get("answer_type") == "number":
        scores["numeric_match"] = get_metric("numeric_match").fn(ans.text, golden, rel_tol=rel_tol)
    scores["prompt_truncated"] = float(ans.truncated_tokens > 0)
    if ans.mode != "closed":
        ids = [s.get("chunk_id", "") for s in ans.sources]
        texts = [s.get("text", "") for s in ans.sources]
        gold = probe.metadata.get("source_chunk_id")
        gold_ids = [gold] if gold and gold_in_index else None
        if ans.mode not in ORACLE_MODES:
            scores["retrieval_recall"] = retrieval_recall(ids, gold_ids, texts, golden)
            if gold_ids:
                scores["recall_at_k"] = recall_at_k(ids, gold)
        scores["answer_recall"] = retrieval_recall(ids, None, texts, golden)
        scores["supported"] = supported(ans.text, texts)
    return scores


def is_echo(probe: Probe) -> bool:
    """A golden answer occurs in the question: ``contains`` would credit an answer that repeats it."""
    return bool(answer_in_question(probe.prompt, list(probe.golden_answers)))


def primary(probes: Sequence[Probe], scores: Sequence[dict[str, float]]) -> dict[str, Any]:
    """The ``all`` averages over the probes that are not echoes (the primary metric's probes)."""
    kept = [(p, s) for p, s in zip(probes, scores, strict=True) if not is_echo(p)]
    return aggregate([p for p, _ in kept], [s for _, s in kept]).get("all", {}) if kept else {}


def retrieval_loss(scores_by_id: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Grounded minus oracle on the probes both answered, per accuracy metric: what retrieval costs the reader."""
    out: dict[str, Any] = {}
    for grounded_mode, oracle_mode in (("grounded", "oracle"), ("grounded_span", "oracle_span"),
                                       ("grounded_scored", "oracle_scored")):
        if grounded_mode not in scores_by_id or oracle_mode not in scores_by_id:
            continue
        ids = [i for i in scores_by_id[oracle_mode] if i in scores_by_id[grounded_mode]]
        if ids:
            out[f"{grounded_mode}-{oracle_mode}"] = {"n": len(ids), **{
                name: sum(scores_by_id[grounded_mode][i][name] - scores_by_id[oracle_mode][i][name] for i in ids)
                / len(ids) for name in ACCURACY}}
    return out


def aggregate(probes: Sequence[Probe], scores: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """``{bucket: {metric: {"value", "higher_is_better", "n"}}}`` for tail, torso, head (when present) and all."""
    out: dict[str, dict[str, Any]] = {}
    for bucket in BUCKETS:
        rows = [s for p, s in zip(probes, scores, strict=True) if bucket == "all" or p.metadata.get("bucket") == bucket]
        if not rows:
            continue
        metrics: dict[str, Any] = {}
        for name in sorted({k for row in rows for k in row}):
            values = [row[name] for row in rows if name in row]
            higher = LOCAL_METRICS[name] if name in LOCAL_METRICS else get_metric(name).higher_is_better
            metrics[name] = {"value": sum(values) / len(values), "higher_is_better": higher, "n": len(values)}
        if "retrieval_recall" in metrics:
            split = accuracy_by_retrieval([r["exact_match"] for r in rows], [r["retrieval_recall"] for r in rows])
            for side in ("hit", "miss"):
                metrics[f"exact_match_retrieval_{side}"] = {
                    "value": split[f"accuracy_retrieval_{side}"], "higher_is_better": True,
                    "n": split[f"n_retrieval_{side}"]}
        out[bucket] = metrics
    return out


def exact_match_gaps(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Exact match of each grounded mode minus closed-book, by bucket (Kandpal et al.: widest on the tail)."""
    if "closed" not in metrics:
        return {}
    return {f"{mode}-closed": {bucket: by_bucket[bucket]["exact_match"]["value"]
                               - metrics["closed"][bucket]["exact_match"]["value"]
                               for bucket in by_bucket if bucket in metrics["closed"]}
            for mode, by_bucket in metrics.items() if mode != "closed"}


def sample_row(probe: Probe, ans: Answer, scores: dict[str, float]) -> dict[str, Any]:
    """One line of ``samples_<mode>.jsonl``: the probe, the answer, its scores and the sources it was shown."""
    meta = probe.metadata
    return {"id": probe.id, "prompt": probe.prompt, "prediction": ans.text,
            "golden_answers": list(probe.golden_answers), "scores": scores, "bucket": meta.get("bucket"),
            "frequency": meta.get("frequency"), "field": meta.get("field"), "answer_type": meta.get("answer_type"),
            "mode": ans.mode, "template": ans.template, "hit_cap": ans.hit_cap, "echo": is_echo(probe),
            "prompt_tokens": ans.prompt_tokens, "truncated_tokens": ans.truncated_tokens,
            "sources": [{k: s[k] for k in ("chunk_id", "score", "rank", "source", "doc_id") if k in s}
                        for s in ans.sources]}
