"""Files of a contamination measurement: results JSON, CSV tables, Markdown table and the two figures.

    from rag_bench.contaminate.report import write_outputs
    write_outputs(results, "data/runs/quick-factbook/contaminate/gen_4-limit100")

* ``contamination.png``: grounded exact match against the synthetic share of the answer pool, one line per
  defence (closed-book dotted for reference); one panel per answering model and retriever; 95% Wilson bars.
* ``differences.csv``: paired differences with bootstrap intervals (``rag_bench.contaminate.differences``).
* ``retrieved_share.png``: the share of retrieved passages that is synthetic against the share in the pool
  (Yu et al.'s curve), per retriever, with the diagonal a share-blind retriever would follow.
* ``table.md``: the grounded tables per retriever, then the tables of ``rag_bench.contaminate.tables`` (writer
  and fluency, exposure and the pairwise rank test, cost against the human control, defences on test).

``publish`` copies the small files and gzips the per-probe files (``samples_*.jsonl.gz``), from which
``python -m rag_bench.report.readme_tables`` recomputes the README's tables.
"""

from __future__ import annotations

import csv
import gzip
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_bench.contaminate.differences import differences, markdown
from rag_bench.contaminate.tables import all_tables
from rag_bench.records import atomic_path, read_jsonl, write_json, write_text_atomic
from rag_bench.report.plots import STYLE, save_png

DEFENCE_STYLE = {"none": ("black", "-"), "provenance": ("tab:blue", "--"), "perplexity": ("tab:orange", "-."),
                 "trusted": ("tab:green", ":")}
RETRIEVER_COLOURS = {"dense": "tab:purple", "bm25": "tab:red", "hybrid": "tab:cyan"}


def answer_metric(results: dict[str, Any]) -> str:
    """The accuracy the tables and the figure show: ``contains`` for natural questions, which a chat model
    answers in a sentence (exact match is then 0 by construction), else exact match."""
    kind = ((results.get("probes") or {}).get("meta") or {}).get("kind")
    return "contains" if kind == "natural" and "contains" in results["rows"][0] else "exact_match"


def main_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows the figures and grounded tables show: the synthetic arm at the run's k (older results have one
    arm and one k)."""
    return [r for r in results["rows"] if r.get("arm", "synthetic") == "synthetic"
            and r.get("k") in (None, results.get("k"))]


def flat_rows(results: dict[str, Any], rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One CSV row per (model generation, arm, share, retriever, defence, k): value, low, high of each measure."""
    out = []
    for row in results["rows"] if rows is None else rows:
        flat = {key: row.get(key, default) for key, default in (
            ("model_generation", None), ("arm", "synthetic"), ("share", None), ("pool_share", None),
            ("index_share", None), ("retriever", None), ("defence", None), ("k", results.get("k")),
            ("split", "all"))}
        flat["n"] = row["exact_match"]["n"]
        names = [n for n in ("exact_match", "contains", "synthetic_retrieved", "synthetic_retrieved_depth",
                             "normalised_exposure", "copied_synthetic") if n in row]  # older results lack some
        for name in names:
            for part in ("value", "low", "high"):
                flat[f"{name}_{part}" if part != "value" else name] = round(row[name][part], 4)
        closed = results["closed"][str(row["model_generation"])]
        for name in ("exact_match", "contains"):
            if name in closed:
                flat[f"closed_book_{name}"] = round(closed[name]["value"], 4)
        out.append(flat)
    return sorted(out, key=lambda r: (r["model_generation"], r["arm"], r["retriever"], r["defence"], r["k"],
                                      r["share"]))


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def markdown_table(results: dict[str, Any], retriever: str = "bm25", metric: str = "exact_match") -> str:
    """Grounded ``metric`` [95% CI] per share (rows) and defence (columns), per answering model."""
    rows = [r for r in flat_rows(results, main_rows(results)) if r["retriever"] == retriever]
    label = "EM" if metric == "exact_match" else metric
    lines = []
    for g in sorted({r["model_generation"] for r in rows}):
        mine = [r for r in rows if r["model_generation"] == g]
        defences = list(dict.fromkeys(r["defence"] for r in mine))
        lines += [f"Generation {g} answers ({retriever}, closed-book {_fmt(mine[0][f'closed_book_{metric}'])}):", "",
                  "| pool share | index share | retrieved synthetic (top k) | copied synthetic | "
                  + " | ".join(f"{label} {d}" for d in defences) + " |",
                  "|" + "---|" * (4 + len(defences))]
        for share in sorted({r["share"] for r in mine}):
            cells = {r["defence"]: r for r in mine if r["share"] == share}
            none = cells.get("none", next(iter(cells.values())))
            lines.append(f"| {none['pool_share']:.2f} | {none['index_share']:.4f} "
                         f"| {_fmt(none['synthetic_retrieved'])} | {_fmt(none['copied_synthetic'])} | "
                         + " | ".join(f"{_fmt(cells[d][metric])} [{_fmt(cells[d][f'{metric}_low'])}, "
                                      f"{_fmt(cells[d][f'{metric}_high'])}]" if d in cells else "n/a"
                                      for d in defences) + " |")
        lines.append("")
    return "\n".join(lines)


def contamination_figure(results: dict[str, Any], metric: str = "exact_match"):
    import matplotlib.pyplot as plt

    rows = main_rows(results)
    gens = sorted({r["model_generation"] for r in rows})
    modes = list(dict.fromkeys(r["retriever"] for r in rows))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(gens), len(modes), figsize=(max(5.0, 3.6 * len(modes)), 3.0 * len(gens)),
                                 squeeze=False, sharey=True)
        for i, g in enumerate(gens):
            for j, mode in enumerate(modes):
                ax = axes[i][j]
                for defence in dict.fromkeys(r["defence"] for r in rows):
                    pts = sorted((r["pool_share"], r[metric]) for r in rows
                                 if r["model_generation"] == g and r["retriever"] == mode and r["defence"] == defence)
                    colour, style = DEFENCE_STYLE.get(defence, ("grey", "-"))
                    xs = [p[0] for p in pts]
                    ys = [p[1]["value"] for p in pts]
                    err = [[y - p[1]["low"] for y, p in zip(ys, pts, strict=True)],
                           [p[1]["high"] - y for y, p in zip(ys, pts, strict=True)]]
                    ax.errorbar(xs, ys, yerr=err, color=colour, linestyle=style, marker="o", markersize=3,
                                capsize=2, label=defence)
                ax.axhline(results["closed"][str(g)][metric]["value"], color="grey", linestyle=":",
                           label="closed-book")
                ax.set_title(f"gen {g} answers, {mode}")
                ax.set_xlabel("synthetic share of the answer pool")
                if j == 0:
                    ax.set_ylabel(f"grounded {metric.replace('_', ' ')}")
                ax.set_ylim(-0.02, 1.02)
        axes[0][-1].legend(loc="best")
        fig.suptitle(f"Contaminated index: rewrites by generation {results.get('writer_generation', '?')}")
        fig.tight_layout()
    return fig


def retrieved_share_figure(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    rows = [r for r in main_rows(results) if r["defence"] == "none" and r["model_generation"] == min(
        x["model_generation"] for x in results["rows"])]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.6, 3.8))
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="retrieved = pool share")
        for mode in dict.fromkeys(r["retriever"] for r in rows):
            pts = sorted((r["pool_share"], r["synthetic_retrieved_depth"]["value"], r["synthetic_retrieved"]["value"])
                         for r in rows if r["retriever"] == mode)
            colour = RETRIEVER_COLOURS.get(mode, "grey")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour, marker="o",
                    label=f"{mode}, top {results['depth']}")
            ax.plot([p[0] for p in pts], [p[2] for p in pts], color=colour, marker="x", linestyle="--",
                    label=f"{mode}, top {results['k']} (read)")
        ax.set_xlabel("synthetic share of the answer pool")
        ax.set_ylabel("synthetic share of what is retrieved")
        ax.set_xlim(-0.02, 1.0)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="upper left")
        fig.tight_layout()
    return fig


def write_outputs(results: dict[str, Any], out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    write_json(out_dir / "results.json", results)
    write_csv(out_dir / "results.csv", flat_rows(results))
    write_csv(out_dir / "filters.csv", [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.items()}
                                        for f in results["filters"]])
    metric = answer_metric(results)
    tables = [markdown_table(results, mode, metric) for mode in dict.fromkeys(r["retriever"] for r in results["rows"])]
    samples_path = out_dir / "samples_grounded.jsonl"  # per-probe answers: the paired differences need them
    samples = read_jsonl(samples_path) if samples_path.is_file() else []
    ranks = read_jsonl(out_dir / "samples_ranks.jsonl") if (out_dir / "samples_ranks.jsonl").is_file() else []
    gaps = differences(samples, metric)
    write_csv(out_dir / "differences.csv", gaps)
    write_text_atomic(out_dir / "table.md", "\n".join([*tables, markdown(gaps, results.get("k")),
                                                       all_tables(results, samples, ranks, metric)]))
    save_png(contamination_figure(results, metric), out_dir / "contamination.png")
    save_png(retrieved_share_figure(results), out_dir / "retrieved_share.png")
    return out_dir


PUBLISHED = ("config.json", "results.json", "results.csv", "filters.csv", "differences.csv", "table.md",
             "contamination.png", "retrieved_share.png")  # copied as they are
OPTIONAL = ("thresholds.json", "fluency.json")  # copied when the measurement wrote them
PER_PROBE = ("samples_grounded.jsonl", "samples_closed.jsonl", "samples_ranks.jsonl")  # gzipped: the tables' source


def publish(out_dir: str | Path, target: str | Path) -> Path:
    """Copy the small result files of ``out_dir`` to ``target`` (e.g. docs/results/contaminate-quick) and gzip
    its per-probe files there (without the timestamp, so the same samples give the same bytes)."""
    out_dir, target = Path(out_dir), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED + tuple(n for n in OPTIONAL if (out_dir / n).is_file()):
        shutil.copyfile(out_dir / name, target / name)
    for name in PER_PROBE:
        if (out_dir / name).is_file():
            with (atomic_path(target / f"{name}.gz") as tmp, open(tmp, "wb") as raw,
                  gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz):
                gz.write((out_dir / name).read_bytes())
    return target
