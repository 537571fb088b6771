"""The Results tab's first screen: the published smol and quick results, with commit, figures, intervals and finding."""

from __future__ import annotations

import re
from pathlib import Path

from rag_bench.app import published
from rag_bench.app.bands import read_intervals
from rag_bench.app.published import PUBLISHED, finding, page_text, preset_note, published_results

INTERVAL = re.compile(r"^-?\d+\.\d{3} \[-?\d+\.\d{3}, -?\d+\.\d{3}\]$")


def test_smol_and_quick_are_published_with_commit_figures_tables_and_finding(tmp_path: Path):
    results = {r.name: r for r in published_results(tmp_path)}
    # the controlled result leads; the history results without the control follow, titled as history
    assert list(results)[:4] == ["quick-control", "smol-control", "smol", "quick"]
    assert "fresh-human control" in results["quick-control"].title and "history" in results["quick"].title
    assert "fresh-human control" in results["smol-control"].title and "interim" in results["smol-control"].title
    for name in ("quick-control", "smol-control", "smol", "quick"):
        result = results[name]
        assert re.fullmatch(r"[0-9a-f]{7,}", result.commit) and re.fullmatch(r"\d{4}-\d\d-\d\d", result.date)
        assert len(result.figures) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in result.figures)
        assert all(p.parent == tmp_path for p in result.figures)
        (accuracy, headers, rows), (perplexity, _, _) = result.tables
        assert "test split" in accuracy and "held-out" in perplexity and headers[1] == "generation 0"
        assert rows and all(INTERVAL.match(c) for row in rows for c in row[1:] if c), rows
        assert len(result.finding) > 100 and "\n" not in result.finding
    for name in ("smol", "smol-control"):  # a chat model's sentences: exact match is 0 throughout
        assert "contains" in results[name].tables[0][0]
    assert "exact_match" in results["quick"].tables[0][0]
    assert results["contaminate-smol"].figures and "| pool share |" in results["contaminate-smol"].markdown_tables


def test_a_figure_is_drawn_once_and_a_later_start_finds_it(tmp_path: Path):
    drawn = {p: p.stat().st_mtime_ns for r in published_results(tmp_path) for p in r.figures if p.parent == tmp_path}
    assert len(drawn) == 8  # two figures of each collapse result
    published._published.cache_clear()  # what a new process starts with
    again = {p: p.stat().st_mtime_ns for r in published_results(tmp_path) for p in r.figures if p.parent == tmp_path}
    assert again == drawn  # the same files, not drawn again
    rows = read_intervals(published.RESULTS_DIR / "quick" / "intervals.csv")
    shown = {"title": "quick", "ylabel": "exact match", "out_dir": tmp_path, "stem": "quick"}
    same = published.figure_png(rows, "exact_match", "all", **shown)
    rows[0] = {**rows[0], "value": "0.5"}  # another value is another figure, whatever the commit
    assert published.figure_png(rows, "exact_match", "all", **shown) != same


def test_every_published_marker_finds_its_finding_in_its_docs_page():
    for name, (_, page, marker) in PUBLISHED.items():
        assert page.is_file(), page  # the page the README links for this result
        assert finding(marker, page_text(page)).startswith("**"), name  # each finding opens with its bold claim


def test_finding_takes_the_first_list_item_after_the_marker():
    text = "intro\nWhat it shows:\n\n1. **First.** one\n   two\n2. **Second.**\n"
    assert finding("What it shows:", text) == "**First.** one two"
    assert finding("absent", text) == ""


def test_each_published_preset_links_its_result_and_measured_time():
    for preset, result in (("quick", "quick-control"), ("smol", "smol-control")):
        note = preset_note(preset)
        assert f"docs/results/{result}/" in note and " min" in note and "measured run time" in note
    assert "no published result" in preset_note("paper")
