"""Paths an evaluation derives: runs/<id>/gen_<k>/model, its eval folder and cache, data/indexes/<name>'s corpus.

    from rag_bench.eval.paths import default_out_dir, run_generation
    run_generation("runs/r1/gen_3/model")              # (runs/r1, 3); None for a model outside a run
    default_out_dir(model, probes, "data")             # runs/r1/gen_3/eval, or data/evals/<model>-<probes>
"""

from __future__ import annotations

import json
import re
from pathlib import Path


def default_cache_dir(out_dir: Path) -> Path:
    """``<run>/cache`` for ``<run>/gen_<k>/eval`` (every generation shares it), else ``<out_dir>/../cache``."""
    parent = out_dir.resolve().parent
    return parent.parent / "cache" if re.fullmatch(r"gen_\d+", parent.name) else parent / "cache"


def run_generation(model_path: str | Path) -> tuple[Path, int] | None:
    """``runs/r1/gen_3/model`` -> ``(runs/r1, 3)``; None for a model outside a run."""
    path = Path(model_path).resolve()
    match = re.fullmatch(r"gen_(\d+)", path.parent.name)
    return (path.parent.parent, int(match[1])) if match else None


def default_out_dir(model_path: str | Path, probes_path: str | Path, data_dir: str | Path) -> Path:
    """``<run>/gen_<k>/eval`` for a run's model, else ``DATA_DIR/evals/<model>-<probes>``."""
    located = run_generation(model_path)
    if located is not None:
        return located[0] / f"gen_{located[1]}" / "eval"
    return Path(data_dir) / "evals" / f"{Path(model_path).resolve().name}-{Path(probes_path).stem}"


def reference_model_path(model_path: str | Path) -> Path | None:
    """Generation 0 of the model's run, when the model belongs to a run that has one."""
    located = run_generation(model_path)
    if located is None:
        return None
    gen0 = located[0] / "gen_0" / "model"
    return gen0 if gen0.is_dir() else None


def corpus_jsonl_for(index_path: str | Path) -> Path | None:
    """The corpus JSONL an index was built from: ``DATA_DIR/corpora/<name>/corpus.jsonl``, or the ingested file."""
    index_path = Path(index_path).resolve()
    beside = index_path.parent.parent / "corpora" / index_path.name / "corpus.jsonl"
    if beside.is_file():
        return beside
    report = index_path / "ingest_report.json"
    if report.is_file():
        ingested = Path(json.loads(report.read_text(encoding="utf-8")).get("path", ""))
        if ingested.suffix == ".jsonl" and ingested.is_file():
            return ingested
    return None
