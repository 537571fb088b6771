"""Results of finished generations for the page: one long table over runs, plots and report downloads.

    from rag_bench.app.results import results_frame, plot_frame
    frame = results_frame(cfg, ["quick-factbook"])          # run, strategy, generation, mode, bucket, metric, value
    plot_frame(frame, metric="exact_match", bucket="all")    # generation x value, one series per run/strategy/mode

Each ``gen_<k>/eval/results.json`` (schema rag_bench.results/1) holds
``metrics[mode][bucket][metric] = {"value", "higher_is_better", "n"}``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rag_bench.app.state import AppConfig, check_name, read_json_or_none, results_files
from rag_bench.records import atomic_path, write_json

COLUMNS = ["run", "strategy", "generation", "mode", "bucket", "metric", "value", "higher_is_better", "n"]
REPORT_DOWNLOADS = (".csv", ".html", ".md", ".json")


def _run_strategy(run_dir: Path) -> str:
    for name in ("status.json", "config.json"):
        value = (read_json_or_none(run_dir / name) or {}).get("strategy")
        if isinstance(value, str):
            return value
    return ""


def results_frame(cfg: AppConfig, run_ids: list[str]) -> pd.DataFrame:
    """Every metric of every evaluated generation of ``run_ids``, one row per value.

    A generation 0 shared by the strategies of a run (kept at the run's top level) is repeated in each
    strategy's series, so that every line starts from it.
    """
    rows = []
    for run_id in run_ids or []:
        run_dir = cfg.runs_path / check_name(run_id, "run")
        files = results_files(run_dir)
        strategies = sorted({s for s, _, _ in files if s}) or [_run_strategy(run_dir)]
        for strategy, generation, path in files:
            data = read_json_or_none(path) or {}
            for series in [strategy] if strategy else strategies:
                for mode, buckets in (data.get("metrics") or {}).items():
                    for bucket, metrics in (buckets or {}).items():
                        for metric, cell in (metrics or {}).items():
                            value = cell.get("value") if isinstance(cell, dict) else cell
                            if isinstance(value, int | float) and not isinstance(value, bool):
                                rows.append([run_id, series, generation, mode, bucket, metric, float(value),
                                             cell.get("higher_is_better") if isinstance(cell, dict) else None,
                                             cell.get("n") if isinstance(cell, dict) else None])
    return pd.DataFrame(rows, columns=COLUMNS)


def choices(frame: pd.DataFrame, column: str, preferred: tuple[str, ...] = ()) -> list[str]:
    values = sorted(frame[column].dropna().unique().tolist()) if len(frame) else []
    return [v for v in preferred if v in values] + [v for v in values if v not in preferred]


def series_name(run: str, strategy: str, mode: str, runs: int) -> str:
    return " · ".join(part for part in ((run if runs > 1 else ""), strategy, mode) if part)


def plot_frame(frame: pd.DataFrame, *, metric: str, bucket: str, modes: list[str] | None = None) -> pd.DataFrame:
    """generation, value, series: one line per run, strategy and mode for one metric and bucket."""
    part = frame[(frame["metric"] == metric) & (frame["bucket"] == bucket)]
    if modes:
        part = part[part["mode"].isin(modes)]
    runs = part["run"].nunique()
    series = [series_name(r, s, m, runs) for r, s, m in zip(part["run"], part["strategy"], part["mode"], strict=True)]
    out = pd.DataFrame({"generation": part["generation"].astype(int), "value": part["value"], "series": series})
    out = out.sort_values(["series", "generation"]).reset_index(drop=True)
    # generations are whole numbers: as labels the axis shows 0, 1, 2 (a number axis ticks 0.1, 0.2, ...)
    out["generation"] = out["generation"].map(str)
    return out


def run_table(frame: pd.DataFrame, bucket: str) -> pd.DataFrame:
    """A wide table for one bucket: a row per strategy and generation, a column per mode and metric."""
    part = frame[frame["bucket"] == bucket]
    if not len(part):
        return pd.DataFrame(columns=["strategy", "generation"])
    wide = part.pivot_table(index=["run", "strategy", "generation"], columns=["mode", "metric"], values="value",
                            aggfunc="first")
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
