"""Markdown tables of a contamination measurement, computed from its per-probe rows (never from aggregates).

    from rag_bench.contaminate.tables import exposure_table, control_table, defence_table, fluency_table
    lines = exposure_table(samples, ranks)          # samples_grounded.jsonl rows, samples_ranks.jsonl rows

* ``fluency_table``: the writer, its decoding and the perplexity of its text under the neutral scorer;
* ``exposure_table``: per retriever and share, the top-k synthetic share raw and over its ceiling min(r, k)/k,
  and the pairwise rank test (original chunk against its own first rewrite: the share of untied pairs where the
  rewrite ranks higher, exact 95% Clopper-Pearson interval, two-sided sign-test p);
* ``control_table``: per retriever, share and k, the accuracy cost of the share (against the clean index) and
  the cost of the rewrites against as many held-out human chunks (synthetic minus control), paired bootstrap;
* ``defence_table``: per defence, on the test probes: filter precision and recall (Wilson), recall on the
  watermarked rewrites, human chunks dropped, and the accuracy gained over no defence and left against the clean
  index (paired bootstrap).

``rag-bench contaminate`` writes them into ``table.md``; ``python -m rag_bench.report.readme_tables`` puts them in
the README from the gzipped per-probe files of ``docs/results/contaminate-*``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rag_bench.contaminate.differences import differences
from rag_bench.contaminate.metrics import sign_test


def _f(value: Any, fmt: str = ".2f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:{fmt}}"


def _gap(r: dict[str, Any] | None) -> str:
    if r is None:
        return "n/a"
    return f"{r['difference']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]" + ("*" if r["excludes_zero"] else "")


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    return sum(kept) / len(kept) if kept else math.nan


def fluency_table(results: dict[str, Any]) -> list[str]:
    f = results.get("fluency") or {}
    if not f:
        return []
    r, h = f["rewrites"], f["human"]
    return ["| writer | scorer | rewrites' perplexity, median [IQR] | human originals' | ratio | rewrites identical "
            "to their original |", "|---|---|---:|---:|---:|---:|",
            f"| {f['writer']} | {f['scorer']}{' (the writer itself)' if f['scorer_is_writer'] else ''} | "
            f"{_f(r['median'], '.1f')} [{_f(r['q25'], '.1f')}, {_f(r['q75'], '.1f')}] (n {r['n']}) | "
            f"{_f(h['median'], '.1f')} (n {h['n']}) | {_f(f['ratio'])} | {f['unchanged']} of {f['total_rewrites']} |"]


def exposure_table(samples: Sequence[dict[str, Any]], ranks: Sequence[dict[str, Any]],
                   generation: int | None = None) -> list[str]:
    """Generation ``generation`` answering (default the first), bare retriever, synthetic arm."""
    rows = [r for r in samples if r["defence"] == "none" and r.get("arm", "synthetic") == "synthetic"
            and r["share"] > 0]
    if not rows:
        return []
    gen = min(r["model_generation"] for r in rows) if generation is None else generation
    ks = sorted({int(r.get("k") or 0) for r in rows})
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["model_generation"] == gen:
            cells[(r["retriever"], r["share"], int(r.get("k") or 0))].append(r)
    pairs: dict[tuple, list[float]] = defaultdict(list)
    for r in (r for r in ranks if r.get("rewrites", 1) > 0):  # files written before pairs needed a rewrite
        pairs[(r["retriever"], r["share"])].append(r["rewrite_higher"] if r["rewrite_higher"] is not None
                                                   else math.nan)
    out = ["| retriever | share | " + " | ".join(f"top-{k} synthetic / ceiling = normalised" for k in ks)
           + " | rewrite ranks above its original [95% exact] | untied pairs (ties) | sign-test p |",
           "|---|---:|" + "---:|" * (len(ks) + 3)]
    for mode, share in sorted({(m, s) for m, s, _ in cells}):
        parts = []
        for k in ks:
            members = cells.get((mode, share, k), [])
            parts.append(f"{_f(_mean([m['synthetic_retrieved'] for m in members]))} / "
                         f"{_f(_mean([m.get('exposure_ceiling', math.nan) for m in members]))} = "
                         f"{_f(_mean([m.get('normalised_exposure', math.nan) for m in members]))}")
        test = sign_test(pairs.get((mode, share), []))
        out.append(f"| {mode} | {share:.2f} | " + " | ".join(parts)
                   + f" | {_f(test['rewrite_higher'])} [{_f(test['low'])}, {_f(test['high'])}] | {test['pairs']} "
                   f"({test['ties']}) | {_f(test['p_value'], '.3f')} |")
    return out


def control_table(gaps: Sequence[dict[str, Any]]) -> list[str]:
    """From ``differences`` rows: cost against the clean index and against the human control, per k."""
    index = {(r["kind"], r["model_generation"], r["retriever"], r["share"], r["k"]): r for r in gaps
             if r["defence"] == "none" and r["kind"] in ("cost", "control_cost")}
    keys = sorted({(g, m, s) for _, g, m, s, _ in index})
    ks = sorted({k for *_, k in index})
    if not keys:
        return []
    out = ["| answers | retriever | share | " + " | ".join(f"k={k}: cost vs clean | k={k}: synthetic - human"
                                                           for k in ks) + " |",
           "|---|---|---:|" + "---:|" * (2 * len(ks))]
    for g, mode, share in keys:
        out.append(f"| gen {g} | {mode} | {share:.2f} | " + " | ".join(
            f"{_gap(index.get(('cost', g, mode, share, k)))} | {_gap(index.get(('control_cost', g, mode, share, k)))}"
            for k in ks) + " |")
    return out


def defence_table(filters: Sequence[dict[str, Any]], gaps: Sequence[dict[str, Any]],
                  generation: int | None = None) -> list[str]:
    """Test probes: each defence's filter precision/recall (pooled over retrievers per share is not done: one
    row per retriever) and the accuracy it gains, for generation ``generation`` answering (default the first)."""
    if not filters:
        return []
    gains = [r for r in gaps if r["kind"] in ("defence_gain", "defence_vs_clean")]
    gen = min((r["model_generation"] for r in gains), default=0) if generation is None else generation
    index = {(r["kind"], r["retriever"], r["defence"], r["share"]): r for r in gains if r["model_generation"] == gen}
    out = [f"| retriever | share | defence | precision [95%] | recall [95%] | recall, watermarked | human dropped | "
           f"gain over none (gen {gen}) | against the clean index |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]

    def ci(value: float, bounds: Sequence[float] | None) -> str:
        return f"{_f(value)} [{_f(bounds[0])}, {_f(bounds[1])}]" if bounds else _f(value)

    for f in sorted(filters, key=lambda f: (f.get("retriever", ""), f["share"])):  # stable: trusted depths ascend
        mode = f.get("retriever", "")
        out.append(f"| {mode} | {f['share']:.2f} | {f['defence']} | {ci(f['precision'], f.get('precision_ci'))} | "
                   f"{ci(f['recall'], f.get('recall_ci'))} | {_f(f.get('recall_watermarked'))} | "
                   f"{_f(f.get('human_dropped'))} | {_gap(index.get(('defence_gain', mode, f['defence'], f['share'])))}"
                   f" | {_gap(index.get(('defence_vs_clean', mode, f['defence'], f['share'])))} |")
    return out


def all_tables(results: dict[str, Any], samples: Sequence[dict[str, Any]], ranks: Sequence[dict[str, Any]],
               metric: str) -> str:
    """Every table above, with a heading each, as one Markdown text."""
    gaps = differences(samples, metric)
    parts = [("Writer and fluency", fluency_table(results)),
             ("Exposure: the synthetic share of the top k, over its ceiling, and the pairwise rank test",
              exposure_table(samples, ranks)),
             (f"Cost of contamination in grounded {metric.replace('_', ' ')}, against the clean index and against "
              "the human-distractor control (paired bootstrap; * excludes 0)", control_table(gaps)),
             ("Defences on the test probes (thresholds chosen on dev)", defence_table(results.get("filters", []),
                                                                                       gaps))]
    return "\n".join(f"### {title}\n\n" + "\n".join(lines) + "\n" for title, lines in parts if lines)
