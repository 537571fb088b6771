"""Paired differences of a contamination measurement: what each share costs, and what each defence wins back.

    from rag_bench.contaminate.differences import differences
    rows = differences("data/runs/quick-factbook/contaminate/gen_4-limit100/samples_grounded.jsonl")

Every cell (answering model x share x retriever x defence) answers the same probes, so each difference is taken
probe by probe with the paired bootstrap of ``rag_bench.eval.bootstrap`` (``TEST`` names it):

* ``cost``: grounded accuracy (exact match, or ``contains`` for sentence answers) at a share minus at share 0
  (same model, retriever and defence);
* ``defence_gain``: exact match with a defence minus without one (same model, retriever and share).

``rag-bench contaminate`` writes them to ``differences.csv`` and the end of ``table.md``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_bench.eval.bootstrap import TEST, difference
from rag_bench.records import read_jsonl

Cell = tuple[int, str, str, float]  # (model generation, retriever, defence, share)


def cell_scores(samples: Sequence[dict[str, Any]], metric: str = "exact_match") -> dict[Cell, dict[str, float]]:
    """Per-probe ``metric`` of every cell of ``samples_grounded.jsonl`` rows."""
    cells: dict[Cell, dict[str, float]] = defaultdict(dict)
    for row in samples:
        key = (int(row["model_generation"]), row["retriever"], row["defence"], float(row["share"]))
        cells[key][row["id"]] = float(row[metric])
    return dict(cells)


def _row(kind: str, cell: Cell, baseline: Cell, a: dict[str, float], b: dict[str, float],
         metric: str) -> dict[str, Any]:
    gap = difference([a], [b])
    gen, retriever, defence, share = cell
    return {"kind": kind, "metric": metric, "model_generation": gen, "retriever": retriever, "defence": defence,
            "share": share,
            "baseline_defence": baseline[2], "baseline_share": baseline[3], "difference": round(gap.value, 4),
            "low": round(gap.low, 4), "high": round(gap.high, 4), "probes": gap.probes,
            "excludes_zero": gap.excludes_zero}


def differences(samples: str | Path | Sequence[dict[str, Any]], metric: str = "exact_match") -> list[dict[str, Any]]:
    """``cost`` and ``defence_gain`` rows of ``metric``, each with its paired bootstrap interval."""
    rows = read_jsonl(samples) if isinstance(samples, (str, Path)) else samples
    cells = cell_scores(rows, metric)
    out = []
    for cell in sorted(cells):
        gen, retriever, defence, share = cell
        clean = (gen, retriever, defence, 0.0)
        if share != 0.0 and clean in cells:
            out.append(_row("cost", cell, clean, cells[clean], cells[cell], metric))
        bare = (gen, retriever, "none", share)
        if defence != "none" and bare in cells:
            out.append(_row("defence_gain", cell, bare, cells[bare], cells[cell], metric))
    return out


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Two compact tables: the cost of each share without a defence, and each defence's gain at each share."""
    if not rows:
        return ""
    lines = [f"Differences in grounded {rows[0]['metric'].replace('_', ' ')} ({TEST}; * marks an interval that "
             "excludes 0):", "",
             "| answers | retriever | share | cost of the share, no defence | "
             + " | ".join(f"gain of {d}" for d in sorted({r['defence'] for r in rows if r['kind'] == 'defence_gain'}))
             + " |"]
    defences = sorted({r["defence"] for r in rows if r["kind"] == "defence_gain"})
    lines.append("|" + "---|" * (4 + len(defences)))
    index = {(r["kind"], r["model_generation"], r["retriever"], r["defence"], r["share"]): r for r in rows}

    def fmt(r: dict[str, Any] | None) -> str:
        if r is None:
            return "n/a"
        star = "*" if r["excludes_zero"] else ""
        return f"{r['difference']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]{star}"

    for gen, retriever, share in sorted({(r["model_generation"], r["retriever"], r["share"]) for r in rows}):
        lines.append(f"| gen {gen} | {retriever} | {share:.2f} | "
                     + fmt(index.get(("cost", gen, retriever, "none", share))) + " | "
                     + " | ".join(fmt(index.get(("defence_gain", gen, retriever, d, share))) for d in defences)
                     + " |")
    return "\n".join(lines) + "\n"
