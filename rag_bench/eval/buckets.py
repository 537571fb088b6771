"""Knowledge buckets for a pretrained generation 0: what it knows, by its own confidence and by corpus frequency.

    from rag_bench.eval.buckets import probe_axes, bucket_metrics
    axes = probe_axes(gen0_lm, probes, gen0_closed_samples, train_texts)   # once per run, after gen 0's evaluation
    table = bucket_metrics(axes, {"closed": rows, "grounded": rows})       # per generation, from its samples

Nobody can count a pretrained model's pretraining data, so Kandpal et al.'s frequency buckets cannot say what
SmolLM2 saw. Each probe is placed on three axes instead:

* ``confidence``: the gold answer's log-probability (nats, summed over its tokens) under generation 0, closed-book,
  after the prompt the answer chain gives it (for a question, followed by the start of a one-sentence answer,
  "The capital of Kenya is", since an instruct model answers in a sentence), in terciles ``low`` / ``mid`` /
  ``high``;
* ``known``: whether generation 0 answered it right closed-book: ``known`` / ``unknown``, by exact match for a
  record prefix, by ``contains`` for a question (a chat model answers in a sentence, "The capital of Kenya is
  Nairobi.", which exact match never accepts); the forgetting rate of a later generation is the share of known
  probes it gets wrong by the same metric;
* ``frequency``: Kandpal et al.'s co-occurrence count (``rag_bench.probes.frequency``), counted over the human text this
  run trains generation 0 on (in 500-character segments, as the index's chunks), in tail / torso / head.

Metrics by bucket are the registered per-probe scores of ``rag_bench.eval.scoring`` averaged over the probes of the
bucket, each with a 95% Wilson interval (the scores are 0/1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.documents import Document

from rag_bench.eval.metrics import get_metric
from rag_bench.probes.frequency import ChunkCooccurrence, bucket_of, frequency_thresholds
from rag_bench.records import Probe
from rag_bench.training.examples import text_segments

KNOWN_METRIC = {"prefix": "exact_match", "question": "contains"}  # by metadata.prompt_format: what "known" means
CONFIDENCE_BUCKETS = ("low", "mid", "high")
KNOWN_BUCKETS = ("known", "unknown")
FREQUENCY_BUCKETS = ("tail", "torso", "head")
AXES = {"confidence": CONFIDENCE_BUCKETS, "known": KNOWN_BUCKETS, "frequency": FREQUENCY_BUCKETS}
SEGMENT_CHARS = 500  # the index's chunk size: frequency counts segments of the training text holding both
Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); None when n is 0."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def known_metric_of(probes: Sequence[Probe]) -> str:
    """``contains`` when the probes are questions (``metadata.prompt_format``), else ``exact_match``."""
    questions = any(p.metadata.get("prompt_format") == "question" for p in probes)
    return KNOWN_METRIC["question" if questions else "prefix"]


def answer_continuation(prompt: str, answer: str) -> str:
    """The answer as the model would write it after ``prompt``: after a record prefix a space comes first."""
    return answer if not prompt or prompt[-1].isspace() else " " + answer


def confidence_terciles(logprobs: Sequence[float]) -> tuple[list[str], dict[str, float]]:
    """``low`` / ``mid`` / ``high`` by rank (ties broken by position), and the log-probabilities at the cuts."""
    order = sorted(range(len(logprobs)), key=lambda i: (logprobs[i], i))
    labels = [""] * len(logprobs)
    for rank, i in enumerate(order):
        labels[i] = CONFIDENCE_BUCKETS[min(2, rank * 3 // max(1, len(order)))]
    cuts = {}
    for name in ("low", "mid"):
        members = [logprobs[i] for i in order if labels[i] == name]
        if members:
            cuts[f"{name}_max"] = max(members)
    return labels, cuts


def run_frequencies(probes: Sequence[Probe], train_texts: Sequence[str]) -> tuple[list[int], dict[str, int]]:
    """Co-occurrence counts of each probe's subject and answer over the run's training text, and their buckets' cuts."""
    segments = [Document(page_content=s) for s in text_segments(list(train_texts), SEGMENT_CHARS)]
    counter = ChunkCooccurrence(segments)
    subjects = {str(p.metadata.get("subject", "")) for p in probes}
    counts = []
    for probe in probes:
        name = str(probe.metadata.get("subject", ""))
        answer = str(probe.metadata.get("frequency_answer") or probe.golden_answers[0])
        longer = sorted(s for s in subjects if s != name and name.casefold() in s.casefold())
        counts.append(counter.count(name, answer, exclude=longer) if name else 0)
    return counts, frequency_thresholds(counts)


def probe_axes(score: Callable[[list[str], list[str]], list[float]], prompts: Sequence[str],
               probes: Sequence[Probe], gen0_closed: dict[str, dict[str, Any]],
               train_texts: Sequence[str]) -> dict[str, Any]:
    """Each probe's buckets on every axis.

    ``score(prompts, continuations)`` is generation 0's log-probability of each continuation (``LM.score``);
    ``prompts`` are the closed-book prompts of ``probes`` as the answer chain renders them; ``gen0_closed`` maps
    probe id to generation 0's closed-book sample row (``samples_closed.jsonl``).
    """
    known_metric = known_metric_of(probes)
    missing = [p.id for p in probes if p.id not in gen0_closed]
    if missing:
        raise ValueError(f"generation 0's closed-book samples lack probe {missing[0]!r} ({len(missing)} in all)")
    golds = [answer_continuation(prompt, p.golden_answers[0]) for prompt, p in zip(prompts, probes, strict=True)]
    logprobs = score(list(prompts), golds)
    confidence, confidence_cuts = confidence_terciles(logprobs)
    counts, thresholds = run_frequencies(probes, train_texts)
    rows = {}
    for i, probe in enumerate(probes):
        known = gen0_closed[probe.id]["scores"][known_metric] >= 1.0
        rows[probe.id] = {"gold_logprob": round(logprobs[i], 4), "confidence": confidence[i],
                          "known": "known" if known else "unknown", "run_frequency": counts[i],
                          "frequency": bucket_of(counts[i], thresholds)}
    return {"probes": rows, "confidence_cuts": confidence_cuts, "frequency_thresholds": thresholds,
            "known_metric": known_metric, "segment_chars": SEGMENT_CHARS,
            "counts": {axis: {b: sum(r[axis] == b for r in rows.values()) for b in buckets}
                       for axis, buckets in AXES.items()}}


def _mean_with_interval(values: list[float], higher_is_better: bool) -> dict[str, Any]:
    value = sum(values) / len(values)
    binary = all(v in (0.0, 1.0) for v in values)
    interval = wilson_interval(sum(values), len(values)) if binary else None
    return {"value": value, "higher_is_better": higher_is_better, "n": len(values),
            "ci95": list(interval) if interval else None}


def bucket_metrics(axes: dict[str, Any], samples: dict[str, list[dict[str, Any]]],
                   metrics: Sequence[str] = ("exact_match", "contains")) -> dict[str, Any]:
    """``{axis: {mode: {bucket: {metric: {value, higher_is_better, n, ci95}}}}}`` and the forgetting rate.

    ``samples[mode]`` are one generation's sample rows (``samples_<mode>.jsonl``: ``id`` and ``scores``).
    ``forgetting`` is, among the probes known at generation 0, the share this generation answers wrong
    closed-book (by ``axes["known_metric"]``); it is 0 at generation 0 by definition.
    """
    by_probe = axes["probes"]
    out: dict[str, Any] = {"known_metric": axes["known_metric"]}
    for axis, buckets in AXES.items():
        out[axis] = {}
        for mode, rows in samples.items():
            table = {}
            for bucket in buckets:
                chosen = [r for r in rows if by_probe.get(r["id"], {}).get(axis) == bucket]
                if chosen:
                    table[bucket] = {m: _mean_with_interval([r["scores"][m] for r in chosen],
                                                            get_metric(m).higher_is_better)
                                     for m in metrics if all(m in r["scores"] for r in chosen)}
            out[axis][mode] = table
    closed = samples.get("closed", [])
    known = [r for r in closed if by_probe.get(r["id"], {}).get("known") == "known"]
    if known:
        forgotten = sum(r["scores"][axes["known_metric"]] < 1.0 for r in known)
        interval = wilson_interval(forgotten, len(known))
        out["forgetting"] = {"value": forgotten / len(known), "higher_is_better": False, "n": len(known),
                             "forgotten": forgotten, "ci95": list(interval) if interval else None}
    return out
