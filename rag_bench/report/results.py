"""A run's results for the report: every ``gen_<k>/eval/results.json`` found, checked and turned into tidy rows.

    from rag_bench.report.results import find_results, collect_runs, tidy_rows
    entries, pending = find_results("data/runs/quick")          # Evaluated per strategy, seed and generation
    entries, pending = collect_runs(["runs/a", "runs/b"], seeds=True)
    rows = tidy_rows(entries)["exact_match"]                      # one dict per (strategy, seed, gen, mode, bucket)

Every ``gen_<k>/eval/results.json`` (schema rag_bench.results/1) under the run folder is read, wherever it
sits: ``RUN/gen_<k>/`` for a single strategy, ``RUN/<strategy>/gen_<k>/`` for several (a ``gen_0`` at the
top beside strategy folders is their shared start and joins each series), and a ``seed_<s>`` folder in the
path marks a replicate. Generations not yet evaluated are left out and listed. A malformed file is a
``ReportError`` naming it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_bench.records import RecordError, read_json

SCHEMA = "rag_bench.results/1"
GEN_DIR = re.compile(r"gen_(\d+)")
SEED_DIR = re.compile(r"seed[_-]?(\d+)")


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


def read_optional(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = _load(path)
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def _run_strategy(run_dir: Path) -> str | None:
    """The strategy a single-strategy run records in config.json or status.json, if any."""
    for name in ("config.json", "status.json"):
        data = read_optional(run_dir / name)
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
        manifest = read_optional(gen_dir / "manifest.json")
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
# Several runs: replicates pooled by strategy, or separate series


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
        seed = read_optional(run_dir / "config.json").get("seed")
        for e in found:
            if seeds:
                e = dataclasses.replace(e, seed=e.seed if e.seed is not None else seed if isinstance(seed, int) else i)
            elif len(run_dirs) > 1:
                e = dataclasses.replace(e, strategy=f"{label}/{e.strategy}")
            entries.append(dataclasses.replace(e, run=label))
        pending += [f"{label}: {note}" for note in notes]
    return entries, pending
