"""The published results (docs/results/*) for the Results tab's first screen: each with the commit that published
it, its figures with their interval bands, its tables with intervals rounded to 3 decimals, and its finding from
the docs/ page that publishes it (docs/quick-control.md, docs/smol-control.md, docs/smol.md, ...).

    from rag_bench.app.published import published_results
    for result in published_results(out_dir=Path("data/ui/published")):
        result.title, result.commit, result.finding, result.figures, result.tables

A collapse result (``intervals.csv``: quick, smol) is drawn here, a paper's way: generations on an integer axis,
one line per strategy and mode with its 95% band from the report's intervals, the split named (the test probes;
held-out texts for perplexity). A contamination result shows its own committed figure and table.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import subprocess
from pathlib import Path

from rag_bench.app.bands import band_figure, band_lines, read_intervals, save_figure

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "docs" / "results"
DOCS = REPO_ROOT / "docs"
# Which results lead, in order, and where a docs/ page states each one's finding: the first list item after the
# marker line. tests/test_app_published.py fails when a marker no longer finds a paragraph.
PUBLISHED = {
    "quick-control": ("Collapse of a model trained here, with the fresh-human control (`quick`, 5 seeds)",
                      DOCS / "quick-control.md", "What these seeds show, and what they do not:"),
    "smol-control": ("Collapse of the pretrained SmolLM2-135M, with the fresh-human control (`smol`, interim: "
                     "seeds 0-1 of 5, no verdict)", DOCS / "smol-control.md",
                     "What seeds 0 and 1 show, and what they do not"),
    # The collapse results predate the fresh-human control and the fixed dose (issue 20): their titles say so.
    "smol": ("Collapse of the pretrained SmolLM2-135M (`smol`, 2 seeds; history: no fresh-human control)",
             DOCS / "smol.md", "What the literature expects, and what this run shows:"),
    "quick": ("Collapse of a model trained here (`quick`, 2 seeds; history: no fresh-human control)",
              DOCS / "quick.md", "What these runs show, and what they do not:"),
    "contaminate-quick-t1": ("Contaminated index with the human-distractor control and the rank test, a model "
                             "trained here (`contaminate-quick-t1`, issue 23)", DOCS / "contamination-results.md",
                             "What it settles, and what it does not:"),
    "contaminate-quick-t0.3": ("The same, with the writer at temperature 0.3 (`contaminate-quick-t0.3`, issue 23)",
                               DOCS / "contamination-results.md",
                               "### The same run with a low-temperature writer"),
    "contaminate-smol": ("Contaminated index, SmolLM2 (`contaminate-smol`; first measurement, before issue 23)",
                         DOCS / "contamination-results.md", "![smol: grounded accuracy against contamination]"),
    "contaminate-quick": ("Contaminated index, a model trained here (`contaminate-quick`; first measurement)",
                          DOCS / "contamination-results.md", "What it shows, point by point:"),
}
# Each preset's published result and its run time as measured (docs/quick-control.md, docs/smol-control.md).
PRESET_RESULTS = {
    "quick": ("quick-control", "a seed took 70 min at one thread, two seeds side by side at load 2-3 on 2 cores of an "
                               "AMD EPYC with AVX2 only (generation 0 38 min); about 2 hours beside other jobs at "
                               "load 4-9"),
    "smol": ("smol-control", "seed 0 took 131 min on 2 cores of an AMD EPYC with AVX2 only, in fp32, its first hour "
                             "beside the test suite (evaluation 105 min); alone, one generation's evaluation took "
                             "400-485 s"),
}
FIGURE_FORMAT = 1  # bump when the drawing changes, so that figures drawn before are drawn again
_ITEM = re.compile(r"^(\s*)([-*]|\d+\.)\s+")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Published:
    """One published result as the page shows it."""

    name: str  # the folder under docs/results
    title: str  # a heading
    commit: str  # the last commit that changed the folder ("" outside a git checkout)
    date: str  # that commit's date
    finding: str  # the docs/ page's paragraph for it (Markdown)
    figures: list[Path]  # PNGs, drawn here or committed with the result
    tables: list[tuple[str, list[str], list[list[str]]]]  # (caption, headers, rows), intervals as "v [lo, hi]"
    markdown_tables: str  # a committed table.md (contamination results), as it is


def commit_of(folder: Path) -> tuple[str, str]:
    """(short hash, date) of the last commit that touched ``folder``; ("", "") when git cannot say."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%h %cs", "--", str(folder)], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=10, check=False).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "", ""
    return (out[0], out[1]) if len(out) == 2 else ("", "")


def finding(marker: str, readme: str) -> str:
    """The first list item after the line that starts with ``marker``, its continuation lines joined."""
    lines = readme.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(marker)), None)
    if start is None:
        return ""
    item: list[str] = []
    for line in lines[start + 1:]:
        if not item:
            if _ITEM.match(line):
                item.append(_ITEM.sub("", line))
            continue
        if not line.strip() or _ITEM.match(line):
            break
        item.append(line.strip())
    return " ".join(item)


def page_text(page: Path) -> str:
    """The Markdown of the page that states a finding ("" when it is missing: the result shows without one)."""
    return page.read_text(encoding="utf-8") if page.is_file() else ""


def cell(row: dict[str, str]) -> str:
    """A value with its interval, 3 decimals: "0.109 [0.052, 0.172]"."""
    return f"{float(row['value']):.3f} [{float(row['low']):.3f}, {float(row['high']):.3f}]"


def accuracy_metric(rows: list[dict[str, str]]) -> str:
    """contains where exact match is 0 everywhere (a chat model answers in sentences), else exact match."""
    exact = [float(r["value"]) for r in rows if r["figure"] == "exact_match" and r["bucket"] == "all"]
    has_contains = any(r["figure"] == "contains" for r in rows)
    return "contains" if has_contains and not any(exact) else "exact_match"


def table(rows: list[dict[str, str]], figure: str, bucket: str) -> tuple[list[str], list[list[str]]]:
    """A row per strategy and mode, a column per generation; each cell a value with its interval."""
    lines = band_lines(rows, figure, bucket)
    generations = sorted({p["generation"] for v in lines.values() for p in v})
    headers = ["", *[f"generation {g}" for g in generations]]
    body = []
    for label, points in lines.items():
        by_gen = {p["generation"]: cell(p["row"]) for p in points}
        body.append([label, *[by_gen.get(g, "") for g in generations]])
    return headers, body


def figure_png(rows: list[dict[str, str]], figure: str, bucket: str, *, title: str, ylabel: str, out_dir: Path,
               stem: str) -> Path:
    """The figure's PNG, drawn once: its name holds a hash of what it shows, so a later start finds it drawn."""
    lines = band_lines(rows, figure, bucket)
    shown = json.dumps([FIGURE_FORMAT, title, ylabel, {k: [p["row"] for p in v] for k, v in lines.items()}])
    out = out_dir / f"{stem}-{hashlib.sha256(shown.encode()).hexdigest()[:12]}-{figure}.png"
    return out if out.is_file() else save_figure(band_figure(lines, title=title, ylabel=ylabel), out)


def collapse_result(name: str, folder: Path, out_dir: Path) -> tuple[list[Path], list]:
    rows = read_intervals(folder / "intervals.csv")
    probes = next((r["probes"] for r in rows if r["split"] == "test"), "?")
    seeds = next((r["seeds"] for r in rows if r["split"] == "test"), "?")
    metric = accuracy_metric(rows)
    texts = next((r["probes"] for r in rows if r["figure"] == "heldout_perplexity"), "?")
    accuracy = (f"{metric}, test split ({probes} probes × {seeds} seeds), all buckets, 95% bootstrap band",
                metric, "all", metric.replace("_", " "))
    perplexity = (f"held-out perplexity ({texts} held-out human texts), 95% bootstrap band",
                  "heldout_perplexity", "heldout", "perplexity")
    figures, tables = [], []
    for caption, figure, bucket, ylabel in (accuracy, perplexity):
        if not band_lines(rows, figure, bucket):
            continue
        figures.append(figure_png(rows, figure, bucket, title=f"{name}: {ylabel} by generation\n{caption}",
                                  ylabel=ylabel, out_dir=out_dir, stem=name))
        tables.append((caption, *table(rows, figure, bucket)))
    return figures, tables


@functools.lru_cache(maxsize=4)
def _published(out_dir: str, stamp: tuple) -> tuple[Published, ...]:
    found = []
    for name, (title, page, marker) in PUBLISHED.items():
        folder = RESULTS_DIR / name
        if not folder.is_dir():
            continue
        commit, date = commit_of(folder)
        figures, tables, markdown = [], [], ""
        if (folder / "intervals.csv").is_file():
            figures, tables = collapse_result(name, folder, Path(out_dir))
        else:
            figures = sorted(folder.glob("contamination.png"))
            markdown = (folder / "table.md").read_text(encoding="utf-8") if (folder / "table.md").is_file() else ""
        found.append(Published(name=name, title=title, commit=commit, date=date,
                               finding=finding(marker, page_text(page)), figures=figures, tables=tables,
                               markdown_tables=markdown))
    return tuple(found)


def preset_note(preset: str) -> str:
    """The Experiment tab's line for a preset: its published result and its measured run time, or that it has none."""
    if preset not in PRESET_RESULTS:
        return f"`{preset}`: no published result and no measured run time yet."
    name, took = PRESET_RESULTS[preset]
    commit, _ = commit_of(RESULTS_DIR / name)
    at = f" at `{commit}`" if commit else ""
    return (f"`{preset}`: published result `docs/results/{name}/`{at} (first in the Results tab); measured run "
            f"time: {took}.")


def published_results(out_dir: Path) -> list[Published]:
    """Every published result present in docs/results; a figure is drawn once into out_dir and found there after."""
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(RESULTS_DIR.glob("*/*")) if p.is_file()) \
        if RESULTS_DIR.is_dir() else ()
    return list(_published(str(out_dir), stamp))
