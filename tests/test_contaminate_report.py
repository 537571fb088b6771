"""The contamination report: CSV, Markdown table and both figures from a results dict."""

from __future__ import annotations

import gzip
from pathlib import Path

from rag_bench.contaminate.report import PUBLISHED, flat_rows, markdown_table, publish, write_outputs


def results() -> dict:
    rows = []
    for g in (0, 4):
        for share, pool in ((0.0, 0.0), (0.5, 0.52)):
            for defence in ("none", "trusted"):
                value = 0.8 - share * (defence == "none") - 0.1 * g / 4
                cell = {"value": value, "low": value - 0.1, "high": value + 0.1, "n": 50}
                rows.append({"model_generation": g, "share": share, "pool_share": pool, "index_share": pool / 50,
                             "retriever": "bm25", "defence": defence, "exact_match": cell,
                             "synthetic_retrieved": cell, "synthetic_retrieved_depth": cell, "copied_synthetic": cell})
    return {"rows": rows, "closed": {"0": {"exact_match": {"value": 0.1}}, "4": {"exact_match": {"value": 0.03}}},
            "filters": [{"share": 0.5, "defence": "trusted", "precision": 1.0, "recall": float("nan")}],
            "k": 1, "depth": 5, "writer_generation": 4}


def test_flat_rows_and_table():
    flat = flat_rows(results())
    assert len(flat) == 8 and flat[0]["closed_book_exact_match"] == 0.1 and "exact_match_low" in flat[0]
    table = markdown_table(results())
    assert "Generation 4 answers (bm25, closed-book 0.03)" in table
    assert "| 0.52 | 0.0104 |" in table and "EM trusted" in table


def test_write_outputs(tmp_path: Path):
    out = write_outputs(results(), tmp_path / "out")
    for name in ("results.json", "results.csv", "filters.csv", "table.md", "contamination.png", "retrieved_share.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "contamination.png").read_bytes()[:4] == b"\x89PNG"
    (out / "config.json").write_text("{}")
    (out / "samples_grounded.jsonl").write_text("{}\n")
    published = publish(out, tmp_path / "docs" / "results")
    assert sorted(p.name for p in published.iterdir()) == sorted([*PUBLISHED, "samples_grounded.jsonl.gz"])
    assert gzip.decompress((published / "samples_grounded.jsonl.gz").read_bytes()) == b"{}\n"
    first = (published / "samples_grounded.jsonl.gz").read_bytes()
    publish(out, tmp_path / "docs" / "results")
    assert (published / "samples_grounded.jsonl.gz").read_bytes() == first  # no timestamp: the same bytes


def test_natural_questions_are_scored_by_contains():
    from rag_bench.contaminate.report import answer_metric

    data = results()
    assert answer_metric(data) == "exact_match"  # record prefixes
    for row in data["rows"]:
        row["contains"] = {"value": 0.4, "low": 0.3, "high": 0.5, "n": 50}
    data["closed"] = {g: {"exact_match": {"value": 0.0}, "contains": {"value": 0.2}} for g in ("0", "4")}
    data["probes"] = {"meta": {"kind": "natural"}}
    assert answer_metric(data) == "contains"
    table = markdown_table(data, metric="contains")
    assert "Generation 4 answers (bm25, closed-book 0.20)" in table and "| contains trusted |" in table
    assert "0.40 [0.30, 0.50]" in table and flat_rows(data)[0]["contains_low"] == 0.3
