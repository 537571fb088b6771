"""Lines by generation with their 95% interval bands: the Results tab's figures, published results and your runs.

    from rag_bench.app.bands import band_figure, band_lines, read_intervals
    rows = read_intervals(Path("docs/results/quick/intervals.csv"))   # a report's intervals.csv (rag_bench.report.ci)
    fig = band_figure(band_lines(rows, "exact_match", "all"), title="quick: exact match", ylabel="exact match")

A point is a dict with ``generation`` and ``value``, and ``low`` and ``high`` where it has an interval: a line
whose points all have one gets its band; one without is drawn bare (a run whose report is not written yet).
Generations sit on an integer axis, as in the report's own figures.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODE_NAMES = {"closed": "closed-book", "grounded": "grounded", "grounded_span": "grounded (span)",
              "oracle": "oracle"}
Point = dict[str, Any]


def read_intervals(path: Path) -> list[dict[str, str]]:
    """The rows of a report's ``intervals.csv`` (figure, strategy, generation, mode, bucket, value, low, high, ...)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def strategy_and_mode(row: dict[str, str]) -> str:
    return ", ".join(p for p in (row["strategy"], MODE_NAMES.get(row["mode"], row["mode"])) if p)


def band_lines(rows: list[dict[str, str]], figure: str, bucket: str, *,
               label: Callable[[dict[str, str]], str] = strategy_and_mode) -> dict[str, list[Point]]:
    """label -> points by generation, for one figure and bucket of intervals.csv rows."""
    out: dict[str, list[Point]] = {}
    for row in rows:
        if row["figure"] == figure and row["bucket"] == bucket:
            out.setdefault(label(row), []).append(
                {"generation": int(row["generation"]), "value": float(row["value"]), "low": float(row["low"]),
                 "high": float(row["high"]), "row": row})
    return {k: sorted(v, key=lambda p: p["generation"]) for k, v in sorted(out.items())}


def band_figure(lines: dict[str, list[Point]], *, title: str, ylabel: str):
    """One line per label, with its interval band where every point has one; a matplotlib Figure."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    # not through pyplot: a page draws one per change of its controls, and pyplot would keep every one open
    fig = Figure(figsize=(6.4, 3.6), dpi=110)
    ax = fig.subplots()
    for label, points in lines.items():
        x = [p["generation"] for p in points]
        line, = ax.plot(x, [p["value"] for p in points], marker="o", label=label)
        if points and all(p.get("low") is not None and p.get("high") is not None for p in points):
            ax.fill_between(x, [p["low"] for p in points], [p["high"] for p in points], color=line.get_color(),
                            alpha=0.15, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def save_figure(fig, out: Path) -> Path:
    """Write ``fig`` as a PNG at ``out``, atomically."""
    from rag_bench.records import atomic_path

    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
