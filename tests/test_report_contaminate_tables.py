"""README contamination tables: recomputed from gzipped per-probe files, and a hand edit is caught."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from rag_bench.records import write_json
from rag_bench.report.readme_tables import render


def write_gz(path: Path, rows: list[dict]) -> None:
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "contaminate-x"
    folder.mkdir()
    samples = []
    for i in range(12):
        for arm, share in (("synthetic", 0.0), ("synthetic", 0.5), ("human", 0.5)):
            right = share == 0.0 or (arm == "human") or i % 3 == 0
            samples.append({"id": f"p{i}", "model_generation": 0, "retriever": "dense", "defence": "none",
                            "share": share, "arm": arm, "k": 1, "split": "test", "exact_match": float(right),
                            "synthetic_retrieved": float(arm == "synthetic" and share > 0 and i % 3 != 0),
                            "exposure_ceiling": 1.0 if share else 0.0, "normalised_exposure": 1.0})
    write_gz(folder / "samples_grounded.jsonl.gz", samples)
    write_gz(folder / "samples_ranks.jsonl.gz", [{"retriever": "dense", "share": 0.5, "id": f"p{i}",
                                                  "rewrite_higher": float(i < 9)} for i in range(12)])
    write_json(folder / "results.json", {"rows": [{"exact_match": {}}], "filters": [], "fluency": {}})
    return tmp_path


def test_tables_are_recomputed_from_per_probe_files_and_checked(results: Path):
    readme = ("x\n<!-- table:contaminate-x:contaminate-exposure -->\nold\n<!-- /table -->\n"
              "<!-- table:contaminate-x:contaminate-control -->\n<!-- /table -->\n")
    text = render(readme, results)
    assert "| dense | 0.50 | 0.67 / 1.00 = 1.00 | 0.75 [0.43, 0.95] | 12 (0) |" in text and "old" not in text
    assert "| gen 0 | dense | 0.50 | -0.67 [" in text  # a third right with the rewrites, all right without
    assert render(text, results) == text  # what --check compares: unchanged when nothing was edited
    edited = text.replace("0.75 [0.43, 0.95]", "0.80 [0.43, 0.95]")
    assert render(edited, results) != edited


def test_a_missing_per_probe_file_is_one_clear_error(results: Path):
    (results / "contaminate-x" / "samples_ranks.jsonl.gz").unlink()
    with pytest.raises(ValueError, match=r"samples_ranks\.jsonl\.gz: missing"):
        render("<!-- table:contaminate-x:contaminate-exposure -->\n<!-- /table -->\n", results)
