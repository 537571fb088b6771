"""The report of a collapse run: plots (PNG), CSV of every figure, report.md and a self-contained report.html.

    rag-bench report data/runs/quick                  # writes data/runs/quick/report/
    rag-bench report runs/a runs/b --out cmp --seeds  # two seeds of one experiment on one set of plots

    from rag_bench.report.write import write_report, compare_runs
    write_report(Path("data/runs/quick"))             # -> data/runs/quick/report

Every ``gen_<k>/eval/results.json`` (schema rag_bench.results/1) under the run folder is read, wherever it
sits: ``RUN/gen_<k>/`` for a single strategy, ``RUN/<strategy>/gen_<k>/`` for several (a ``gen_0`` at the
top beside strategy folders is their shared start and joins each series), and a ``seed_<s>`` folder in the
path marks a replicate. Generations not yet evaluated are left out and listed. The whole report folder is
built aside and swapped into place, so a reader sees the old report or the new one, never a mix.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import math
import os
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_bench.overlap import pool_overlap_lines
from rag_bench.records import RecordError, read_json, write_json
from rag_bench.report import plots
from rag_bench.report.ci import CI_COLUMNS, DIFF_COLUMNS, difference_lines, interval_rows
from rag_bench.report.summary import index_rows, seed_mean, summarize
from rag_bench.theory import TheoryConfig, theory_report
from rag_bench.theory_harness import harness_report

SCHEMA = "rag_bench.results/1"
GEN_DIR = re.compile(r"gen_(\d+)")
SEED_DIR = re.compile(r"seed[_-]?(\d+)")
COLUMNS = ("strategy", "generation", "mode", "bucket", "metric", "value", "n", "seed", "run")
REPORT_FILES = ("report.md", "report.html", "report.json")  # mark a folder as a report that may be replaced


class ReportError(RecordError):
    """A run folder or results file that cannot be reported; the message names the path."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Evaluated:
    """One results.json and where it belongs."""

    run: str  # run folder name
    strategy: str  # data strategy (folder, manifest or config), or "run" when none is recorded
    seed: int | None  # replicate id from a seed_<s> folder (or the run's seed when runs are pooled)
    generation: int  # k of gen_<k>
    path: Path  # the results.json
    results: dict[str, Any]  # its content, checked


# ---------------------------------------------------------------------------------------
# Discovery and checking


def _mapping(value: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportError(f"{path}: {where} must be an object, got {value!r}")
    return value


def _load(path: Path) -> Any:
    try:
        return read_json(path)
    except RecordError as exc:
        raise ReportError(str(exc)) from None


def _check_results(path: Path) -> dict[str, Any]:
    data = _load(path)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ReportError(f"{path}: not a {SCHEMA} results file (schema {got!r})")
    for mode, buckets in _mapping(data.get("metrics"), path, "'metrics'").items():
        for bucket, cells in _mapping(buckets, path, f"metrics.{mode}").items():
            for metric, cell in _mapping(cells, path, f"metrics.{mode}.{bucket}").items():
                value = _mapping(cell, path, f"metrics.{mode}.{bucket}.{metric}").get("value")
                if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                    raise ReportError(f"{path}: metrics.{mode}.{bucket}.{metric}.value must be a number, got {value!r}")
    for key in ("fit", "diversity", "distribution", "gap"):
        _mapping(data.get(key) or {}, path, repr(key))
    return data


def _read_optional(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = _load(path)
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def _run_strategy(run_dir: Path) -> str | None:
    """The strategy a single-strategy run records in config.json or status.json, if any."""
    for name in ("config.json", "status.json"):
        data = _read_optional(run_dir / name)
        listed = data.get("strategies")
        if isinstance(data.get("strategy"), str):
            return data["strategy"]
        if isinstance(listed, list) and len(listed) == 1 and isinstance(listed[0], str):
            return listed[0]
    return None


def find_results(run_dir: str | Path) -> tuple[list[Evaluated], list[str]]:
    """Every evaluated generation under ``run_dir``, and notes on generations that have no results yet."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: run folder not found")
    found, pending = [], []
    for gen_dir in sorted(run_dir.rglob("gen_*")):
        rel = gen_dir.relative_to(run_dir).parts
        if not gen_dir.is_dir() or not GEN_DIR.fullmatch(gen_dir.name) or any(
                p.startswith(".") or p in ("report", "model", "eval", "cache") or GEN_DIR.fullmatch(p)
                for p in rel[:-1]):
            continue
        seeds = [int(m[1]) for p in rel[:-1] if (m := SEED_DIR.fullmatch(p))]
        folder = "/".join(p for p in rel[:-1] if not SEED_DIR.fullmatch(p))
        results = gen_dir / "eval" / "results.json"
        if not results.is_file():
            pending.append(f"{gen_dir.relative_to(run_dir)} has no eval/results.json yet")
            continue
        manifest = _read_optional(gen_dir / "manifest.json")
        found.append((folder, seeds[0] if seeds else None, int(GEN_DIR.fullmatch(gen_dir.name)[1]), results,
                      manifest))
    if not found:
        raise ReportError(f"{run_dir}: no gen_<k>/eval/results.json found under this run folder")
    folders = sorted({f for f, *_ in found if f})
    own_start = {f for f, _, generation, *_ in found if f and generation == 0}
    named = _run_strategy(run_dir)
    entries = []
    for folder, seed, generation, path, manifest in found:
        if folder:
            strategies = [folder]
        elif folders and generation == 0:  # the shared generation 0 starts every strategy's series
            strategies = [f for f in folders if f not in own_start]
        else:
            own = manifest.get("strategy")
            strategies = [own if isinstance(own, str) else named or "run"]
        results = _check_results(path)
        entries += [Evaluated(run=run_dir.name, strategy=s, seed=seed, generation=generation, path=path,
                              results=results) for s in strategies]
    return sorted(entries, key=lambda e: (e.strategy, e.seed or 0, e.generation)), pending


# ---------------------------------------------------------------------------------------
# Tidy rows: one per (strategy, seed, generation, mode, bucket, metric)


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def tidy_rows(entries: Sequence[Evaluated]) -> dict[str, list[dict[str, Any]]]:
    """Rows by figure: metrics, exact_match, gap, heldout_perplexity, diversity, perplexity_histograms."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        base = {"strategy": e.strategy, "generation": e.generation, "seed": e.seed, "run": e.run}

        def add(figure: str, mode: str, bucket: str, metric: str, value: Any, n: Any, base=base) -> None:
            out[figure].append({**base, "mode": mode, "bucket": bucket, "metric": metric, "value": _num(value),
                                "n": n if isinstance(n, int) else None})

        metrics = e.results["metrics"]
        for mode, buckets in metrics.items():
            for bucket, cells in buckets.items():
                for metric, cell in cells.items():
                    add("metrics", mode, bucket, metric, cell.get("value"), cell.get("n"))
                    if metric == "exact_match":
                        add("exact_match", mode, bucket, metric, cell.get("value"), cell.get("n"))
        for mode, buckets in metrics.items():  # recomputed from the cells, so old results without "gap" work too
            for bucket, cells in buckets.items() if mode != "closed" else ():
                closed = metrics.get("closed", {}).get(bucket, {}).get("exact_match", {})
                grounded = cells.get("exact_match", {})
                if _num(closed.get("value")) is not None and _num(grounded.get("value")) is not None:
                    add("gap", f"{mode}-closed", bucket, "exact_match_gap", grounded["value"] - closed["value"],
                        min(closed.get("n") or 0, grounded.get("n") or 0) or None)
        fit = (e.results.get("fit") or {}).get("heldout_perplexity")
        if isinstance(fit, dict):
            add("heldout_perplexity", "", "heldout", "heldout_perplexity", fit.get("value"), fit.get("n"))
        for series, cells in (e.results.get("diversity") or {}).items():
            for metric, cell in _mapping(cells, e.path, f"diversity.{series}").items():
                add("diversity", series, "", metric, _mapping(cell, e.path, f"diversity.{series}.{metric}")
                    .get("value"), cell.get("n"))
        for series, block in (e.results.get("distribution") or {}).items():
            hist = _mapping(_mapping(block, e.path, f"distribution.{series}").get("histogram"), e.path,
                            f"distribution.{series}.histogram")
            edges, counts = hist.get("edges") or [], hist.get("counts") or []
            if len(edges) != len(counts) + 1:
                raise ReportError(f"{e.path}: distribution.{series}.histogram needs len(edges) == len(counts) + 1")
            total = int(sum(counts))
            for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True):
                add("perplexity_histograms", series, f"[{low:.4g}, {high:.4g})", "count", count, total)
                out["perplexity_histograms"][-1].update(low=low, high=high)  # exact edges for the plot
            add("continuation_perplexity", series, "", "median_reference_perplexity", hist.get("median"),
                hist.get("n"))
    return dict(out)


# ---------------------------------------------------------------------------------------
# Writing the report folder

FIGURES = (  # file stem, caption; the rows of tidy_rows()[stem] feed both the PNG and the CSV
    ("exact_match", "Exact match against generation, per mode (rows), frequency bucket (columns) and strategy. "
                    "With several seeds a line is their mean and its band spans their min to max."),
    ("heldout_perplexity", "Perplexity of held-out human text against generation, per strategy."),
    ("diversity", "Each diversity metric of the continuations against generation; human text in black."),
    ("perplexity_histograms", "Per-sequence perplexity of each generation's continuations under generation 0 "
                              "(Shumailov et al. 2024, Fig. 1): one panel per strategy and mode; values outside "
                              "the fixed bins are counted in the end bins."),
    ("gap", "Grounded minus closed-book exact match against generation, per bucket."),
)
DRAW = {"exact_match": plots.exact_match_figure, "heldout_perplexity": plots.perplexity_figure,
        "diversity": plots.diversity_figure, "gap": plots.gap_figure,
        "perplexity_histograms": plots.histogram_figure}


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _table(figure_rows, columns: list[tuple[str, str, str, str, str]]) -> tuple[list[str], list[list[str]]]:
    """Seed means, a row per (strategy, generation) and a column per (label, figure, mode, bucket, metric)."""
    index = {figure: index_rows(figure_rows.get(figure, [])) for figure in {c[1] for c in columns}}
    columns = [c for c in columns if (c[2], c[3], c[4]) in {k[1:] for k in index[c[1]]}]
    keys = sorted({(k[0], g) for figure in index.values() for k, by in figure.items() for g in by})
    body = []
    for strategy, generation in keys:
        cells = [index[figure].get((strategy, mode, bucket, metric), {}).get(generation)
                 for _, figure, mode, bucket, metric in columns]
        body.append([strategy, str(generation)] + [f"{seed_mean(c):.3f}" if c else "" for c in cells])
    return ["strategy", "generation"] + [c[0] for c in columns], body


def _tables(figure_rows) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    modes = plots.ordered({r["mode"] for r in figure_rows.get("exact_match", [])}, plots.MODE_ORDER)
    em = [(f"{m} {b}", "exact_match", m, b, "exact_match") for m in modes for b in ("all", "tail", "torso", "head")]
    em += [(f"{m} all", "gap", m, "all", "exact_match_gap") for m in sorted({r["mode"] for r in
                                                                            figure_rows.get("gap", [])})]
    fit = [("held-out perplexity", "heldout_perplexity", "", "heldout", "heldout_perplexity")]
    fit += [(f"{m} median continuation perplexity", "continuation_perplexity", m, "", "median_reference_perplexity")
            for m in ("closed", "grounded", "human")]
    fit += [(f"{m} {metric}", "diversity", m, "", metric) for m in ("closed", "grounded")
            for metric in ("distinct_2", "self_bleu", "vendi_score")]
    return [("Exact match (seed means; the gap column is grounded minus closed)", _table(figure_rows, em)),
            ("Perplexity and diversity (seed means)", _table(figure_rows, fit))]


def _markdown(title: str, summary: list[str], tables, figures: list[tuple[str, str]], notes: list[str]) -> str:
    out = [f"# {title}", "", "## Summary", "", *[f"- {line}" for line in summary], ""]
    for caption, (header, body) in tables:
        out += [f"## {caption}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(row) + " |" for row in body] + [""]
    out += ["## Figures", ""]
    for stem, caption in figures:
        out += [f"### {stem}", "", caption, "", f"![{stem}]({stem}.png)", "", f"Data: [{stem}.csv]({stem}.csv)", ""]
    return "\n".join([*out, "## Notes", "", *[f"- {note}" for note in notes], ""])


def _html(title: str, summary: list[str], tables, figures: list[tuple[str, str]], folder: Path,
          notes: list[str]) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
             "body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;"
             "text-align:right}img{max-width:100%}</style></head><body>",
             f"<h1>{esc(title)}</h1><h2>Summary</h2><ul>", *[f"<li>{esc(line)}</li>" for line in summary], "</ul>"]
    for caption, (header, body) in tables:
        parts.append(f"<h2>{esc(caption)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in body]
        parts.append("</table>")
    parts.append("<h2>Figures</h2>")
    for stem, caption in figures:
        data = base64.b64encode((folder / f"{stem}.png").read_bytes()).decode("ascii")
        parts.append(f"<h3>{esc(stem)}</h3><p>{esc(caption)} (data: {esc(stem)}.csv)</p>"
                     f"<img alt='{esc(stem)}' src='data:image/png;base64,{data}'>")
    parts += ["<h2>Notes</h2><ul>", *[f"<li>{esc(note)}</li>" for note in notes], "</ul>"]
    return "\n".join([*parts, "</body></html>\n"])


def _publish(out_dir: Path, build) -> Path:
    """Build the folder aside with ``build(tmp)`` and swap it in; refuse to replace a folder that is no report."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not any((out_dir / f).is_file() for f in REPORT_FILES):
        raise ReportError(f"{out_dir}: exists and holds no {REPORT_FILES[0]}; refusing to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    old = tmp.with_suffix(".old")
    try:
        build(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a report is for everyone who can read the run
        if out_dir.exists():
            os.replace(out_dir, old)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if old.exists():  # put the previous report back rather than leave none
                os.replace(old, out_dir)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out_dir


def _write(entries: list[Evaluated], pending: list[str], out_dir: Path, title: str,
           theory_config: TheoryConfig | None, contamination: Sequence[Path] = ()) -> Path:
    from rag_bench.contaminate.report import contamination_figure, flat_rows, write_csv

    figure_rows = tidy_rows(entries)
    theory = theory_report(config=theory_config or TheoryConfig())
    theory["harness"] = harness_report(theory_config or TheoryConfig())  # the anchor through build_pool
    ci = interval_rows(entries)
    overlap = pool_overlap_lines((e.strategy, e.generation, _read_optional(e.path.parent.parent / "manifest.json"))
                                 for e in entries if e.generation > 0)
    summary = [*summarize(figure_rows, theory, pending, difference_lines(ci["differences"])), *overlap]
    figures = [(stem, caption) for stem, caption in FIGURES if figure_rows.get(stem)]
    notes = [f"No {stem} data in the results, so no {stem} figure." for stem, _ in FIGURES if not figure_rows.get(stem)]
    notes.append(f"{len({e.path for e in entries})} results files read; their paths are in report.json.")

    def build(folder: Path) -> None:
        for stem, _ in figures:
            plots.save_png(DRAW[stem](figure_rows[stem]), folder / f"{stem}.png")
            _write_csv(folder / f"{stem}.csv", figure_rows[stem])
        for path in contamination:  # `rag-bench contaminate` results of this run: one figure each
            found = read_json(path)
            stem = f"contamination_{path.parent.name}"
            plots.save_png(contamination_figure(found), folder / f"{stem}.png")
            write_csv(folder / f"{stem}.csv", flat_rows(found))
            figures.append((stem, f"Grounded exact match against the synthetic share of the answer pool, one line per "
                                  f"defence; rewrites by generation {found.get('writer_generation')} "
                                  f"(rag-bench contaminate, {path.parent}/results.json)."))
        _write_csv(folder / "intervals.csv", ci["intervals"], CI_COLUMNS)
        _write_csv(folder / "differences.csv", ci["differences"], DIFF_COLUMNS)
        plots.save_png(plots.theory_figure(theory), folder / "theory.png")
        _write_csv(folder / "theory.csv", plots.theory_rows(theory))
        every = ("metrics", "gap", "heldout_perplexity", "diversity", "continuation_perplexity")
        _write_csv(folder / "results_long.csv", [r for key in every for r in figure_rows.get(key, [])])
        shown = [*figures, ("theory", "Theory anchors: simulated against closed form (Shumailov et al. 2024 Thm 3.1; "
                                      "Gerstgrasser et al. 2024). The summary's harness line runs the Gaussian "
                                      "through build_pool and the generation loop (rag_bench.theory_harness).")]
        tables = _tables(figure_rows)
        (folder / "report.md").write_text(_markdown(title, summary, tables, shown, notes), encoding="utf-8")
        (folder / "report.html").write_text(_html(title, summary, tables, shown, folder, notes), encoding="utf-8")
        write_json(folder / "report.json", {"title": title, "summary": summary, "figures": [f for f, _ in shown],
                                            "pending": list(pending),
                                            "sources": sorted({str(e.path) for e in entries})})

    return _publish(Path(out_dir), build)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *,
                 theory_config: TheoryConfig | None = None) -> Path:
    """Write the report of one run into ``out_dir`` (default ``RUN/report``) and return that folder."""
    run_dir = Path(run_dir)
    entries, pending = find_results(run_dir)
    return _write(entries, pending, Path(out_dir) if out_dir else run_dir / "report",
                  f"Collapse report: {run_dir.name}", theory_config,
                  sorted(run_dir.glob("contaminate/*/results.json")))


def collect_runs(run_dirs: Sequence[str | Path], *, seeds: bool = False) -> tuple[list[Evaluated], list[str]]:
    """The results of several runs. ``seeds``: the runs are replicates of one experiment, pooled by strategy
    (seed from a seed_<s> folder, else the run's config.json "seed", else its position); otherwise each run's
    strategies are separate series named ``<run>/<strategy>``."""
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ReportError("no run folder given")
    names = [d.name for d in run_dirs]
    labels = names if len(set(names)) == len(names) else [str(d) for d in run_dirs]
    entries, pending = [], []
    for i, (run_dir, label) in enumerate(zip(run_dirs, labels, strict=True)):
        found, notes = find_results(run_dir)
        seed = _read_optional(run_dir / "config.json").get("seed")
        for e in found:
            if seeds:
                e = dataclasses.replace(e, seed=e.seed if e.seed is not None else seed if isinstance(seed, int) else i)
            elif len(run_dirs) > 1:
                e = dataclasses.replace(e, strategy=f"{label}/{e.strategy}")
            entries.append(dataclasses.replace(e, run=label))
        pending += [f"{label}: {note}" for note in notes]
    return entries, pending


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, *, seeds: bool = False,
                 theory_config: TheoryConfig | None = None) -> Path:
    """One report over several runs on one set of plots (see ``collect_runs`` for ``seeds``); returns ``out_dir``."""
    entries, pending = collect_runs(run_dirs, seeds=seeds)
    title = "Collapse report: " + ", ".join(sorted({e.run for e in entries})) + (" (seeds pooled)" if seeds else "")
    return _write(entries, pending, Path(out_dir), title, theory_config)
