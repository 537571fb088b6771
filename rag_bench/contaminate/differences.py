"""Paired differences of a contamination measurement: what each share costs, and what each defence wins back.

    from rag_bench.contaminate.differences import differences
    rows = differences("data/runs/quick-factbook/contaminate/gen_4-limit100/samples_grounded.jsonl")

Every cell (answering model x share x retriever x defence) answers the same probes, so each difference is taken
probe by probe with the paired bootstrap of ``rag_bench.eval.bootstrap`` (``TEST`` names it):

* ``cost``: grounded accuracy (exact match, or ``contains`` for sentence answers) at a share minus at share 0
  (same model, retriever, defence and k; the synthetic arm);
* ``control_cost``: accuracy with the rewrites minus with as many held-out human chunks (the control), at the
  same share, model, retriever and k: the cost of the text being model-written, crowding taken out;
* ``defence_gain``: accuracy with a defence minus without one (same model, retriever and share), over the test
  probes only (the defences' thresholds were chosen on dev);
* ``defence_vs_clean``: accuracy with a defence minus the clean index's without one (test probes): what is
  left to restore.

``rag-bench contaminate`` writes them to ``differences.csv`` and the end of ``table.md``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_bench.eval.bootstrap import TEST, difference
from rag_bench.records import read_jsonl

Cell = tuple[int, str, str, float, str, int]  # (model generation, retriever, defence, share, arm, k)


def cell_scores(samples: Sequence[dict[str, Any]], metric: str = "exact_match",
                split: str = "all") -> dict[Cell, dict[str, float]]:
    """Per-probe ``metric`` of every cell of ``samples_grounded.jsonl`` rows (``split``: dev, test or all);
    rows written before the control have arm ``synthetic`` and k 0."""
    cells: dict[Cell, dict[str, float]] = defaultdict(dict)
    for row in samples:
        if split != "all" and row.get("split") != split:
            continue
        key = (int(row["model_generation"]), row["retriever"], row["defence"], float(row["share"]),
               row.get("arm", "synthetic"), int(row.get("k") or 0))
        cells[key][row["id"]] = float(row[metric])
    return dict(cells)


def _row(kind: str, cell: Cell, baseline: Cell, a: dict[str, float], b: dict[str, float],
         metric: str) -> dict[str, Any]:
    gap = difference([a], [b])
    gen, retriever, defence, share, arm, k = cell
    return {"kind": kind, "metric": metric, "model_generation": gen, "retriever": retriever, "defence": defence,
            "share": share, "arm": arm, "k": k, "baseline_defence": baseline[2], "baseline_share": baseline[3],
            "baseline_arm": baseline[4], "difference": round(gap.value, 4), "low": round(gap.low, 4),
            "high": round(gap.high, 4), "probes": gap.probes, "excludes_zero": gap.excludes_zero}


def differences(samples: str | Path | Sequence[dict[str, Any]], metric: str = "exact_match") -> list[dict[str, Any]]:
    """``cost``, ``control_cost``, ``defence_gain`` and ``defence_vs_clean`` rows of ``metric``, each with its
    paired bootstrap interval."""
    rows = read_jsonl(samples) if isinstance(samples, (str, Path)) else samples
    cells, test = cell_scores(rows, metric), cell_scores(rows, metric, "test")
    out = []
    for cell in sorted(cells):
        gen, retriever, defence, share, arm, k = cell
        clean = (gen, retriever, defence, 0.0, "synthetic", k)
        if arm == "synthetic" and share != 0.0 and clean in cells:
            out.append(_row("cost", cell, clean, cells[clean], cells[cell], metric))
        control = (gen, retriever, defence, share, "human", k)
        if arm == "synthetic" and share != 0.0 and control in cells:
            out.append(_row("control_cost", cell, control, cells[control], cells[cell], metric))
        bare, clean_bare = (gen, retriever, "none", share, arm, k), (gen, retriever, "none", 0.0, arm, k)
        if defence != "none" and bare in test and cell in test:
            out.append(_row("defence_gain", cell, bare, test[bare], test[cell], metric))
        if defence != "none" and clean_bare in test and cell in test:
            out.append(_row("defence_vs_clean", cell, clean_bare, test[clean_bare], test[cell], metric))
    return out


def markdown(rows: Sequence[dict[str, Any]], k: int | None = None) -> str:
    """One compact table: the cost of each share without a defence (at ``k`` passages, when the rows have several),
    and each defence's gain at each share."""
    rows = [r for r in rows if r["kind"] in ("cost", "defence_gain") and (k is None or r.get("k") in (0, None, k))]
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

    for gen, retriever, share in sorted({(r["model_generation"], r["retriever"], r["share"]) for r in rows
                                         if r["kind"] in ("cost", "defence_gain")}):
        lines.append(f"| gen {gen} | {retriever} | {share:.2f} | "
                     + fmt(index.get(("cost", gen, retriever, "none", share))) + " | "
                     + " | ".join(fmt(index.get(("defence_gain", gen, retriever, d, share))) for d in defences)
                     + " |")
    return "\n".join(lines) + "\n"
