"""Results of finished generations for the page: one long table over runs, plots with bands and report downloads.

    from rag_bench.app.results import results_frame, plot_lines
    frame = results_frame(cfg, ["quick-factbook"])          # run, strategy, generation, mode, bucket, metric, value
    lines, note = plot_lines(frame, run_intervals(cfg, ["quick-factbook"]), metric="exact_match", bucket="all")
    band_figure(lines, title=..., ylabel=...)               # rag_bench.app.bands: one line per run/strategy/mode

Each ``gen_<k>/eval/results.json`` (schema rag_bench.results/1) holds
``metrics[mode][bucket][metric] = {"value", "higher_is_better", "n"}``; which strategy and seed a generation
belongs to is the report's reading of the run folder (``rag_bench.report.results.find_results``), so the tab
and the run's report name the same series. A line gets the 95% band of the run's report
(``RUN/report/intervals.csv``, the test split) where that report covers every generation it shows; a line
without one (no report yet, a metric the report gives no interval) shows results.json's value over all probes.
"""

from __future__ import annotations

import pandas as pd

from rag_bench.app.bands import Point, read_intervals
from rag_bench.app.state import AppConfig, check_name, read_json_or_none, results_files
from rag_bench.records import atomic_path, write_json
from rag_bench.report.results import find_results

COLUMNS = ["run", "strategy", "seed", "generation", "mode", "bucket", "metric", "value", "higher_is_better", "n"]
REPORT_DOWNLOADS = (".csv", ".html", ".md", ".json")


def results_frame(cfg: AppConfig, run_ids: list[str]) -> pd.DataFrame:
    """Every metric of every evaluated generation of ``run_ids``, one row per value.

    A generation 0 shared by the strategies of a run (kept at the run's top level) is repeated in each
    strategy's series, so that every line starts from it, as in the report.
    """
    rows = []
    for run_id in run_ids or []:
        run_dir = cfg.runs_path / check_name(run_id, "run")
        if not results_files(run_dir):
            continue
        for entry in find_results(run_dir)[0]:
            for mode, buckets in (entry.results.get("metrics") or {}).items():
                for bucket, metrics in (buckets or {}).items():
                    for metric, cell in (metrics or {}).items():
                        value = cell.get("value")
                        if isinstance(value, int | float) and not isinstance(value, bool):
                            rows.append([run_id, entry.strategy, entry.seed, entry.generation, mode, bucket, metric,
                                         float(value), cell.get("higher_is_better"), cell.get("n")])
    return pd.DataFrame(rows, columns=COLUMNS)


def run_intervals(cfg: AppConfig, run_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """Each run's report intervals (``RUN/report/intervals.csv`` rows; none before its report is written)."""
    out = {}
    for run_id in run_ids or []:
        path = cfg.runs_path / check_name(run_id, "run") / "report" / "intervals.csv"
        out[run_id] = read_intervals(path) if path.is_file() else []
    return out


def choices(frame: pd.DataFrame, column: str, preferred: tuple[str, ...] = ()) -> list[str]:
    values = sorted(frame[column].dropna().unique().tolist()) if len(frame) else []
    return [v for v in preferred if v in values] + [v for v in values if v not in preferred]


def series_name(run: str, strategy: str, mode: str, runs: int, seed: int | None = None) -> str:
    strategy = strategy if seed is None or pd.isna(seed) else f"{strategy} seed {int(seed)}"
    return " · ".join(part for part in ((run if runs > 1 else ""), strategy, mode) if part)


def _series_rows(frame: pd.DataFrame, metric: str, bucket: str, modes: list[str] | None) -> pd.DataFrame:
    """run, strategy, mode, series, generation (an int), value: the points of one metric and bucket."""
    part = frame[(frame["metric"] == metric) & (frame["bucket"] == bucket)]
    if modes:
        part = part[part["mode"].isin(modes)]
    runs = part["run"].nunique()
    series = [series_name(r, s, m, runs, seed) for r, s, m, seed in
              zip(part["run"], part["strategy"], part["mode"], part["seed"], strict=True)]
    out = pd.DataFrame({"run": part["run"], "strategy": part["strategy"], "mode": part["mode"], "series": series,
                        "generation": part["generation"].astype(int), "value": part["value"]})
    return out.sort_values(["series", "generation"]).reset_index(drop=True)


def plot_frame(frame: pd.DataFrame, *, metric: str, bucket: str, modes: list[str] | None = None) -> pd.DataFrame:
    """generation, value, series: one line per run, strategy (and seed) and mode for one metric and bucket."""
    out = _series_rows(frame, metric, bucket, modes)[["generation", "value", "series"]]
    # generations are whole numbers: as labels the axis shows 0, 1, 2 (a number axis ticks 0.1, 0.2, ...)
    return out.assign(generation=out["generation"].map(str))


def plot_lines(frame: pd.DataFrame, intervals: dict[str, list[dict[str, str]]], *, metric: str, bucket: str,
               modes: list[str] | None = None) -> tuple[dict[str, list[Point]], str]:
    """Series -> points for ``rag_bench.app.bands.band_figure``, and a note saying what the bands are.

    A run's strategy and mode take the report's test-split values and 95% intervals where its intervals.csv has
    every generation the results show (all seeds pooled, as the report pools them); the rest keep results.json's
    value over all probes, drawn bare.
    """
    points = _series_rows(frame, metric, bucket, modes)
    runs = points["run"].nunique()
    lines: dict[str, list[Point]] = {}
    bare: set[str] = set()
    for (run, strategy, mode), shown in points.groupby(["run", "strategy", "mode"], sort=True):
        band = {int(r["generation"]): r for r in intervals.get(run, [])
                if (r["figure"], r["bucket"], r["strategy"], r["mode"]) == (metric, bucket, strategy, mode)}
        if band and set(shown["generation"]) <= set(band):
            lines[series_name(run, strategy, mode, runs)] = [
                {"generation": g, "value": float(r["value"]), "low": float(r["low"]), "high": float(r["high"])}
                for g, r in sorted(band.items())]
            continue
        for name, line in shown.groupby("series", sort=True):
            lines[name] = [{"generation": int(g), "value": float(v)} for g, v in zip(line["generation"],
                                                                                   line["value"], strict=True)]
            bare.add(name)
    banded = len(lines) - len(bare)
    if not lines:
        note = ""
    elif not bare:
        note = "test split, with the 95% intervals of each run's report"
    elif not banded:
        note = "all probes; no intervals (a run's report, written at its end, has them)"
    else:
        note = "banded lines: test split with the report's 95% intervals; lines without a band: all probes"
    return dict(sorted(lines.items())), note


def run_table(frame: pd.DataFrame, bucket: str) -> pd.DataFrame:
    """A wide table for one bucket: a row per strategy (and seed) and generation, a column per mode and metric."""
    part = frame[frame["bucket"] == bucket]
    if not len(part):
        return pd.DataFrame(columns=["strategy", "generation"])
    seeded = part["seed"].notna().any()
    if seeded:  # a run without seeds beside one with them: its rows must not drop out of the pivot (NaN keys do)
        part = part.assign(seed=[int(v) if pd.notna(v) else "" for v in part["seed"]])
    index = ["run", "strategy", *(["seed"] if seeded else []), "generation"]
    wide = part.pivot_table(index=index, columns=["mode", "metric"], values="value", aggfunc="first")
    wide.columns = [f"{mode} {metric}" for mode, metric in wide.columns]
    wide = wide.reset_index().round(3)
    return wide.drop(columns=["run"]) if wide["run"].nunique() == 1 else wide


def report_images(cfg: AppConfig, run_id: str) -> list[str]:
    folder = cfg.runs_path / check_name(run_id, "run") / "report"
    return [str(p) for p in sorted(folder.glob("*.png"))] if folder.is_dir() else []


def downloads(cfg: AppConfig, run_ids: list[str]) -> list[str]:
    """Each run's report files, plus one JSON of all its results.json and one CSV of the compared runs."""
    files = []
    for run_id in run_ids or []:
        run_dir = cfg.runs_path / check_name(run_id, "run")
        report = run_dir / "report"
        if report.is_dir():
            files += [str(p) for p in sorted(report.iterdir()) if p.suffix in REPORT_DOWNLOADS and p.is_file()]
        results = {f"{s + '/' if s else ''}gen_{g}": read_json_or_none(p) for s, g, p in results_files(run_dir)}
        if results:
            out = cfg.ui_path / "exports" / f"{run_id}-results.json"
            write_json(out, results)
            files.append(str(out))
    frame = results_frame(cfg, run_ids)
    if len(frame):
        out = cfg.ui_path / "exports" / ("compare-" + "-".join(sorted(run_ids))[:120] + ".csv")
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False)
        files.append(str(out))
    return files
