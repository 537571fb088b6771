"""Breakdowns of an evaluation beside the per-mode metrics: a trivial baseline, exact match by field, tables.

    from rag_bench.eval.tables import most_frequent_answers, exact_match_by_field, format_table, format_field_table
    predictions = most_frequent_answers(probes)      # per field, the commonest answer among the *other* probes
    print(format_table(results)); print(format_field_table(results))

The baseline is the floor a model must clear to show it knows or reads anything: it answers every probe
with the most frequent golden answer of the other probes of the same field (leave-one-out, so a probe's
own answer never counts for it). Buckets in the Factbook are confounded with field (capitals are head
facts, coastline lengths tail ones), so exact match by field x bucket says which one a gap follows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from rag_bench.records import Probe

BUCKETS = ("tail", "torso", "head", "all")


def most_frequent_answers(probes: Sequence[Probe]) -> list[str]:
    """For each probe, the commonest first golden answer among the other probes of its field ("" if none)."""
    by_field: dict[str, Counter] = defaultdict(Counter)
    for probe in probes:
        by_field[probe.metadata.get("field", "")][probe.golden_answers[0]] += 1
    predictions = []
    for probe in probes:
        counts = by_field[probe.metadata.get("field", "")].copy()
        counts[probe.golden_answers[0]] -= 1
        best = max(counts.items(), key=lambda item: (item[1], item[0]), default=("", 0))
        predictions.append(best[0] if best[1] > 0 else "")
    return predictions


def exact_match_by_field(probes: Sequence[Probe], scores: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """``{field: {bucket: {"exact_match": mean, "n": count}}}``, with ``all`` over the field's probes."""
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for probe, score in zip(probes, scores, strict=True):
        field = probe.metadata.get("field") or "(none)"
        for bucket in (probe.metadata.get("bucket"), "all"):
            if bucket:
                rows[field][bucket].append(score["exact_match"])
    return {field: {b: {"exact_match": sum(v) / len(v), "n": len(v)} for b, v in buckets.items()}
            for field, buckets in sorted(rows.items())}


def format_table(results: dict[str, Any], metric: str = "exact_match") -> str:
    """A plain-text table of one metric by mode and baseline (rows) and bucket (columns), with n per bucket."""
    buckets = results["buckets"]
    rows = {**results["metrics"], **results.get("baselines", {})}
    lines = [f"{metric:<22}" + "".join(f"{b:>10}" for b in buckets)]
    for mode, by_bucket in rows.items():
        cells = [by_bucket.get(b, {}).get(metric, {}).get("value") for b in buckets]
        lines.append(f"{mode:<22}" + "".join(f"{v:>10.3f}" if v is not None else f"{'-':>10}" for v in cells))
    first = next(iter(results["metrics"].values()))
    lines.append(f"{'n':<22}" + "".join(f"{first.get(b, {}).get(metric, {}).get('n', 0):>10}" for b in buckets))
    return "\n".join(lines)


def format_field_table(results: dict[str, Any]) -> str:
    """Exact match by field (rows) and mode (columns, all buckets), with each field's n and bucket mix."""
    by_field = results.get("by_field", {})
    modes = list(by_field)
    if not modes:
        return ""
    fields = sorted({f for mode in modes for f in by_field[mode]})
    lines = [f"{'field':<40}{'n':>5}  {'tail/torso/head':<16}" + "".join(f"{m:>22}" for m in modes)]
    for field in fields:
        first = by_field[modes[0]].get(field, {})
        mix = "/".join(str(first.get(b, {}).get("n", 0)) for b in BUCKETS[:3])
        cells = [by_field[m].get(field, {}).get("all", {}).get("exact_match") for m in modes]
        lines.append(f"{field[:39]:<40}{first.get('all', {}).get('n', 0):>5}  {mix:<16}"
                     + "".join(f"{v:>22.3f}" if v is not None else f"{'-':>22}" for v in cells))
    return "\n".join(lines)
