"""The README's contamination tables, recomputed from the gzipped per-probe files of ``docs/results/contaminate-*``.

    python -m rag_bench.report.readme_tables            # rewrites them with every other marked table
    python -m rag_bench.report.readme_tables --check    # exit 1 when one differs from its per-probe files

A table sits between ``<!-- table:<name>:contaminate-<kind> -->`` and ``<!-- /table -->``; the kinds are those of
``TABLES``. Each reads ``samples_grounded.jsonl.gz`` and ``samples_ranks.jsonl.gz`` (what ``rag-bench contaminate
--publish`` writes) and ``results.json`` for the writer, the fluency figures and the defences' filter counts, then
calls the functions of ``rag_bench.contaminate.tables``, so a README figure is never copied by hand.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag_bench.contaminate.differences import differences
from rag_bench.contaminate.report import answer_metric
from rag_bench.contaminate.tables import control_table, defence_table, exposure_table, fluency_table
from rag_bench.records import read_json


def per_probe(folder: Path, name: str) -> list[dict[str, Any]]:
    """Rows of ``folder/<name>.jsonl.gz``; one clear error when the file is missing."""
    path = folder / f"{name}.jsonl.gz"
    if not path.is_file():
        raise ValueError(f"{path}: missing; publish the run with `rag-bench contaminate ... --publish {folder}`")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _gaps(folder: Path) -> list[dict[str, Any]]:
    return differences(per_probe(folder, "samples_grounded"), answer_metric(read_json(folder / "results.json")))


def _defences(folder: Path) -> list[str]:
    return defence_table(read_json(folder / "results.json")["filters"], _gaps(folder))


TABLES: dict[str, Callable[[Path], list[str]]] = {
    "contaminate-fluency": lambda folder: fluency_table(read_json(folder / "results.json")),
    "contaminate-exposure": lambda folder: exposure_table(per_probe(folder, "samples_grounded"),
                                                          per_probe(folder, "samples_ranks")),
    "contaminate-control": lambda folder: control_table(_gaps(folder)),
    "contaminate-defences": _defences,
}
