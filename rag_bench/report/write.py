"""The report of a collapse run: plots (PNG), CSV of every figure, report.md and a self-contained report.html.

    rag-bench report data/runs/quick                  # writes data/runs/quick/report/
    rag-bench report runs/a runs/b --out cmp --seeds  # two seeds of one experiment on one set of plots
    rag-bench report runs/s0 runs/s1 --seeds --out cmp --control replace   # a stand-in control arm

    from rag_bench.report.write import write_report, compare_runs
    write_report(Path("data/runs/quick"))             # -> data/runs/quick/report

Every ``gen_<k>/eval/results.json`` under the run folder is found, checked and turned into tidy rows by
``rag_bench.report.results``; generations not yet evaluated are listed in the summary. The summary opens with the
primary comparisons that docs/primary_comparisons.json fixes for the run's preset (rag_bench.report.primary; also
primary.csv), and gives every other row after them, as exploratory. The whole report folder is built aside and
swapped into place, so a reader sees the old report or the new one, never a mix.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_bench.collapse.overlap import pool_overlap_lines
from rag_bench.records import read_json, write_json
from rag_bench.report import plots
from rag_bench.report.ci import CI_COLUMNS, DIFF_COLUMNS, difference_lines, interval_rows
from rag_bench.report.per_probe import gather
from rag_bench.report.primary import PRIMARY_COLUMNS, SPEC_PATH, load_spec, primary_lines, primary_rows
from rag_bench.report.results import Evaluated, ReportError, collect_runs, find_results, read_optional, tidy_rows
from rag_bench.report.summary import index_rows, seed_mean, summarize
from rag_bench.theory.harness import harness_report
from rag_bench.theory.recursions import TheoryConfig, theory_report

COLUMNS = ("strategy", "generation", "mode", "bucket", "metric", "value", "n", "seed", "run")
REPORT_FILES = ("report.md", "report.html", "report.json")  # mark a folder as a report that may be replaced


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


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrimaryChoice:
    """Which primary comparisons a report leads with."""

    path: Path | None = None  # primary-comparisons file; None: docs/primary_comparisons.json, if it lists the preset
    preset: str | None = None  # its entry; None: the "name" in the runs' config.json
    control: str | None = None  # a stand-in control arm in place of the file's (e.g. replace while fresh is missing)


def _primary(entries: list[Evaluated], run_dirs: Sequence[Path], choice: PrimaryChoice) -> tuple[list, list, dict]:
    """(summary lines, primary.csv rows, what was used). A file given explicitly must fit the run (else a
    ReportError); the default file only notes why it does not."""
    names = {read_optional(Path(d) / "config.json").get("name") for d in run_dirs}
    preset = choice.preset or (names.pop() if len(names) == 1 else None)
    path = choice.path or SPEC_PATH
    if not isinstance(preset, str) or (choice.path is None and not path.is_file()):
        return [f"No primary comparisons (no preset recorded in config.json, or no {path.name}): every row below is "
                "exploratory."], [], {}
    overrides = {"control": choice.control} if choice.control else {}
    try:
        spec = load_spec(path, preset, **overrides)
        rows = primary_rows(spec, gather(entries))
    except ReportError as exc:
        if choice.path is not None:
            raise
        return [f"Primary comparisons not computed ({exc}); every row below is exploratory."], [], {}
    return primary_lines(spec, rows), rows, {"preset": preset, "control": spec.control, "spec": str(path)}


def _write(entries: list[Evaluated], pending: list[str], out_dir: Path, title: str,
           theory_config: TheoryConfig | None, contamination: Sequence[Path] = (), *,
           run_dirs: Sequence[Path] = (), choice: PrimaryChoice | None = PrimaryChoice(),
           pooled_seeds: bool = False) -> Path:
    from rag_bench.contaminate.report import contamination_figure, flat_rows, write_csv

    # runs compared side by side (not seeds of one experiment) have no primary comparisons
    lead, primary, used = _primary(entries, run_dirs, choice) if choice else ([], [], {})
    figure_rows = tidy_rows(entries)
    theory = theory_report(config=theory_config or TheoryConfig())
    theory["harness"] = harness_report(theory_config or TheoryConfig())  # the anchor through build_pool
    ci = interval_rows(entries)
    overlap = pool_overlap_lines((e.strategy, e.generation, read_optional(e.path.parent.parent / "manifest.json"))
                                 for e in entries if e.generation > 0)
    summary = [*lead, *summarize(figure_rows, theory, pending, difference_lines(ci["differences"])), *overlap]
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
        if primary:
            _write_csv(folder / "primary.csv", primary, PRIMARY_COLUMNS)
        plots.save_png(plots.theory_figure(theory), folder / "theory.png")
        _write_csv(folder / "theory.csv", plots.theory_rows(theory))
        every = ("metrics", "gap", "heldout_perplexity", "diversity", "continuation_perplexity")
        _write_csv(folder / "results_long.csv", [r for key in every for r in figure_rows.get(key, [])])
        shown = [*figures, ("theory", "Theory anchors: simulated against closed form (Shumailov et al. 2024 Thm 3.1; "
                                      "Gerstgrasser et al. 2024). The summary's harness line runs the Gaussian "
                                      "through build_pool and the generation loop (rag_bench.theory.harness).")]
        tables = _tables(figure_rows)
        (folder / "report.md").write_text(_markdown(title, summary, tables, shown, notes), encoding="utf-8")
        (folder / "report.html").write_text(_html(title, summary, tables, shown, folder, notes), encoding="utf-8")
        write_json(folder / "report.json", {"title": title, "summary": summary, "figures": [f for f, _ in shown],
                                            "pending": list(pending), "primary": used,
                                            "pooled_seeds": pooled_seeds,
                                            "sources": sorted({str(e.path) for e in entries})})

    return _publish(Path(out_dir), build)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *,
                 theory_config: TheoryConfig | None = None, primary: PrimaryChoice = PrimaryChoice()) -> Path:
    """Write the report of one run into ``out_dir`` (default ``RUN/report``) and return that folder."""
    run_dir = Path(run_dir)
    entries, pending = find_results(run_dir)
    return _write(entries, pending, Path(out_dir) if out_dir else run_dir / "report",
                  f"Collapse report: {run_dir.name}", theory_config,
                  sorted(run_dir.glob("contaminate/*/results.json")), run_dirs=[run_dir], choice=primary)


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, *, seeds: bool = False,
                 theory_config: TheoryConfig | None = None, primary: PrimaryChoice = PrimaryChoice()) -> Path:
    """One report over several runs on one set of plots (see ``collect_runs`` for ``seeds``); returns ``out_dir``."""
    entries, pending = collect_runs(run_dirs, seeds=seeds)
    title = "Collapse report: " + ", ".join(sorted({e.run for e in entries})) + (" (seeds pooled)" if seeds else "")
    return _write(entries, pending, Path(out_dir), title, theory_config, run_dirs=[Path(d) for d in run_dirs],
                  choice=primary if seeds else None, pooled_seeds=seeds)
