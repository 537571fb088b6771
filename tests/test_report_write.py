"""The report of a run folder: files, self-contained HTML, CSV equal to the inputs, an honest summary, errors.

    .venv/bin/python -m pytest tests/test_report_write.py -q

The run folders are built here with results.json files in the rag_bench.results/1 schema (data, written the
way rag_bench.eval.run writes it), not a stand-in for the report code.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from rag_bench.cli import main
from rag_bench.records import read_json
from rag_bench.report.results import ReportError, collect_runs, find_results, tidy_rows
from rag_bench.report.summary import summarize
from rag_bench.report.write import compare_runs, write_report
from rag_bench.theory.recursions import TheoryConfig

SMALL_THEORY = TheoryConfig(gaussian_chains=200, gaussian_generations=8, regression_chains=100,
                            regression_generations=5)
EDGES = np.geomspace(1.0, 10_000.0, 41).tolist()
N_BUCKET = {"tail": 120, "torso": 140, "head": 140, "all": 400}
FIGURES = ("exact_match", "heldout_perplexity", "diversity", "perplexity_histograms", "gap", "theory")


def results(closed: dict[str, float], grounded: dict[str, float], perplexity: float, distinct_2: float,
            median: float) -> dict:
    """A results.json in the rag_bench.results/1 schema (rag_bench.eval.run) with the given values."""
    def cell(value, n, higher=True):
        return {"value": value, "higher_is_better": higher, "n": n}

    metrics = {mode: {b: {"exact_match": cell(v, N_BUCKET[b]), "token_f1": cell(min(1.0, v + 0.1), N_BUCKET[b]),
                          "prompt_truncated": cell(0.0, N_BUCKET[b], False)} for b, v in values.items()}
               for mode, values in (("closed", closed), ("grounded", grounded))}
    counts = np.histogram(np.random.default_rng(int(median)).lognormal(np.log(median), 0.5, 64), EDGES)[0].tolist()
    hist = {"edges": EDGES, "counts": counts, "n": 64, "n_nonfinite": 0, "mean": median * 1.1, "median": median,
            "scale": "log", "n_below": 0, "n_above": 0}
    diversity = {s: {"distinct_2": cell(d, 64), "self_bleu": cell(1 - d, 64, False)}
                 for s, d in (("closed", distinct_2), ("grounded", distinct_2 + 0.05), ("human", 0.9))}
    return {"schema": "rag_bench.results/1", "buckets": ["tail", "torso", "head", "all"], "metrics": metrics,
            "gap": {}, "fit": {"heldout_perplexity": {"value": perplexity, "higher_is_better": False, "n": 5000,
                                                      "texts": 20}},
            "diversity": diversity,
            "distribution": {s: {"reference": "reference model", "histogram": hist, "perplexities": [], "empty": 0}
                             for s in ("closed", "grounded", "human")},
            "notes": []}


# replace collapses (closed-book falls most on the tail); accumulate stays flat within noise
SERIES = {
    "replace": [({"tail": 0.40, "torso": 0.50, "head": 0.60, "all": 0.50}, 30.0, 0.80, 40.0),
                ({"tail": 0.15, "torso": 0.40, "head": 0.55, "all": 0.37}, 42.0, 0.70, 80.0),
                ({"tail": 0.05, "torso": 0.25, "head": 0.45, "all": 0.25}, 60.0, 0.55, 200.0)],
    "accumulate": [({"tail": 0.40, "torso": 0.50, "head": 0.60, "all": 0.50}, 30.0, 0.80, 40.0),
                   ({"tail": 0.41, "torso": 0.49, "head": 0.61, "all": 0.505}, 30.2, 0.80, 41.0),
                   ({"tail": 0.39, "torso": 0.51, "head": 0.59, "all": 0.495}, 30.1, 0.79, 40.0)],
}


def write_gen(gen_dir: Path, strategy: str, generation: int, *, full: bool = True) -> dict:
    """``full=False`` keeps only schema and metrics, as the oldest and smallest results files have."""
    closed, perplexity, distinct_2, median = SERIES[strategy][generation]
    grounded = {b: 0.5 * v + 0.45 for b, v in closed.items()}  # falls less than closed-book: the gap widens
    data = results(closed, grounded, perplexity, distinct_2, median)
    if not full:
        data = {"schema": data["schema"], "metrics": data["metrics"]}
    (gen_dir / "eval").mkdir(parents=True)
    (gen_dir / "eval" / "results.json").write_text(json.dumps(data))
    (gen_dir / "manifest.json").write_text(json.dumps({"generation": generation, "strategy": strategy}))
    return data


def make_run(root: Path, *, full: bool = True) -> Path:
    """2 strategies x 3 generations: a shared gen_0 at the top, then RUN/<strategy>/gen_<k>."""
    run = root / "run"
    write_gen(run / "gen_0", "replace", 0, full=full)
    for strategy in SERIES:
        for generation in (1, 2):
            write_gen(run / strategy / f"gen_{generation}", strategy, generation, full=full)
    (run / "config.json").write_text(json.dumps({"strategies": list(SERIES), "generations": 3}))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path]:
    """The full run's report; replace/gen_3 is trained but not yet evaluated (a run still going)."""
    run = make_run(tmp_path_factory.mktemp("report"))
    (run / "replace" / "gen_3" / "model").mkdir(parents=True)
    return run, write_report(run, theory_config=SMALL_THEORY)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_file_is_written_and_the_html_is_self_contained(report):
    run, out = report
    assert out == run / "report"
    for stem in FIGURES:
        png = (out / f"{stem}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000, stem
        assert read_csv(out / f"{stem}.csv"), stem
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", page, re.I)
    assert not re.search(r"""src\s*=\s*["'](?!data:image/png;base64,)""", page)  # every source is embedded
    assert page.count("data:image/png;base64,") == len(FIGURES)
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert all(f"({stem}.png)" in markdown for stem in FIGURES)
    assert "| replace | 2 | 0.250 |" in markdown  # the table: closed-book EM over all probes at generation 2
    assert not list(run.glob(".report*"))  # the staging folder is gone


def test_csv_values_equal_the_inputs(report):
    run, out = report
    by_key = {(r["strategy"], int(r["generation"]), r["mode"], r["bucket"]): r
              for r in read_csv(out / "exact_match.csv")}
    for strategy in SERIES:
        for generation in range(3):
            gen_dir = run / ("gen_0" if generation == 0 else f"{strategy}/gen_{generation}")
            data = read_json(gen_dir / "eval" / "results.json")
            for mode, buckets in data["metrics"].items():
                for bucket, cells in buckets.items():
                    row = by_key[(strategy, generation, mode, bucket)]
                    assert float(row["value"]) == cells["exact_match"]["value"]
                    assert int(row["n"]) == cells["exact_match"]["n"]
            ppl = [r for r in read_csv(out / "heldout_perplexity.csv")
                   if r["strategy"] == strategy and int(r["generation"]) == generation]
            assert [float(r["value"]) for r in ppl] == [data["fit"]["heldout_perplexity"]["value"]]
            counts = [float(r["value"]) for r in read_csv(out / "perplexity_histograms.csv")
                      if (r["strategy"], int(r["generation"]), r["mode"]) == (strategy, generation, "closed")]
            assert counts == data["distribution"]["closed"]["histogram"]["counts"]
    gaps = {(r["strategy"], int(r["generation"]), r["bucket"]): float(r["value"]) for r in read_csv(out / "gap.csv")}
    assert gaps[("replace", 2, "tail")] == pytest.approx(0.425)
    assert len(by_key) == 2 * 3 * 2 * 4  # strategies x generations x modes x buckets, the shared gen 0 in each


def test_the_summary_states_the_drop_and_not_the_flat_series(report):
    _, out = report
    summary = read_json(out / "report.json")["summary"]
    replace_closed = next(s for s in summary if s.startswith("replace, closed exact match"))
    accumulate_closed = next(s for s in summary if s.startswith("accumulate, closed exact match"))
    assert "0.500 at generation 0 -> 0.250 at generation 2, n=400 per seed: fell" in replace_closed
    assert "did not change beyond noise" in accumulate_closed and "fell" not in accumulate_closed
    # every bucket is stated, none picked after the fact as "the one that fell most"
    tail = next(s for s in summary if s.startswith("replace, closed exact match (tail bucket)"))
    assert "0.400 at generation 0 -> 0.050 at generation 2, n=120 per seed: fell" in tail
    assert sum(s.startswith("accumulate, closed exact match (") and "bucket)" in s for s in summary) == 3
    assert not any("fell most" in s for s in summary)
    assert any(s.startswith("replace: grounded exact match was above closed-book at every one of the 3 evaluated "
                            "generations (smallest gap +0.200 at generation 0; above by more than 2 SE at 3 of 3)")
               for s in summary)
    replace_ppl = next(s for s in summary if s.startswith("replace, held-out human perplexity"))
    assert "30.00 at generation 0 -> 60.00 at generation 2" in replace_ppl
    assert "it rose 2 and fell 0 of 2 times" in replace_ppl
    assert "no seed spread" in replace_ppl  # one seed: no verdict on perplexity
    assert any("accumulate is above replace" in s for s in summary)
    assert any(s.startswith("Theory anchors: the simulations agree") for s in summary)


def test_malformed_or_missing_results_are_clear_errors_naming_the_file(tmp_path, capsys):
    run = make_run(tmp_path)
    bad = run / "replace" / "gen_1" / "eval" / "results.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match=re.escape(str(bad)) + ": not valid JSON"):
        write_report(run, theory_config=SMALL_THEORY)
    bad.write_text(json.dumps({"schema": "rag_bench.results/1", "metrics": {"closed": {"all": {
        "exact_match": {"value": "high"}}}}}))
    with pytest.raises(ReportError, match=re.escape(str(bad)) + r": metrics.closed.all.exact_match.value"):
        find_results(run)
    bad.write_text(json.dumps({"metrics": {}}))
    assert main(["report", str(run)]) == 2
    assert f"{bad}: not a rag_bench.results/1 results file" in capsys.readouterr().err
    assert not (run / "report").exists()
    with pytest.raises(ReportError, match=r"no gen_<k>/eval/results\.json found"):
        find_results(tmp_path / "run" / "accumulate" / "gen_1" / "eval")
    with pytest.raises(ReportError, match="run folder not found"):
        write_report(tmp_path / "nowhere")


def test_a_partial_run_is_reported_as_far_as_it_goes(report, tmp_path):
    run, out = report
    rows = read_csv(out / "exact_match.csv")
    assert max(int(r["generation"]) for r in rows if r["strategy"] == "replace") == 2
    summary = read_json(out / "report.json")["summary"]
    assert "Not yet evaluated: replace/gen_3 has no eval/results.json yet." in summary
    assert "replace/gen_3 has no eval/results.json yet" in (out / "report.html").read_text()
    # a generation at which only one strategy has results: the report still covers both
    run = make_run(tmp_path)
    (run / "accumulate" / "gen_2" / "eval" / "results.json").unlink()
    summary = summarize(tidy_rows(find_results(run)[0]))
    assert "accumulate: generations 0 to 1 evaluated." in summary
    assert any(s.startswith("Closed-book exact match at generation 1, by strategy") for s in summary)


def test_seeds_pooled_from_two_single_strategy_runs(tmp_path):
    runs = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        run = tmp_path / f"seed{seed}"
        for generation in range(3):
            data = write_gen(run / f"gen_{generation}", "replace", generation)
            data["metrics"]["closed"]["all"]["exact_match"]["value"] += shift
            (run / f"gen_{generation}" / "eval" / "results.json").write_text(json.dumps(data))
        (run / "config.json").write_text(json.dumps({"strategy": "replace", "seed": seed}))
        runs.append(run)
    assert {e.strategy for e in find_results(runs[0])[0]} == {"replace"}
    out = compare_runs(runs, tmp_path / "pooled", seeds=True, theory_config=SMALL_THEORY)
    rows = [r for r in read_csv(out / "exact_match.csv") if r["mode"] == "closed" and r["bucket"] == "all"]
    assert sorted((int(r["generation"]), r["seed"]) for r in rows) == [(g, s) for g in range(3) for s in "01"]
    summary = read_json(out / "report.json")["summary"]
    assert any("0.510 at generation 0 -> 0.260 at generation 2, n=400 per seed; 2 seeds, 0.250 to 0.270: fell" in s
               for s in summary)
    assert {e.strategy for e in collect_runs(runs)[0]} == {"seed0/replace", "seed1/replace"}


def test_rewriting_replaces_the_report_and_never_a_foreign_folder(tmp_path):
    run = make_run(tmp_path, full=False)
    out = write_report(run, theory_config=SMALL_THEORY)
    assert sorted(p.name for p in out.glob("*.png")) == ["exact_match.png", "gap.png", "theory.png"]
    assert "No diversity data in the results" in (out / "report.md").read_text()
    (out / "stale.png").write_bytes(b"old")
    write_report(run, theory_config=SMALL_THEORY)
    assert not (out / "stale.png").exists() and (out / "report.html").is_file()
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(ReportError, match="refusing to replace it"):
        write_report(run, foreign, theory_config=SMALL_THEORY)
    assert (foreign / "mine.txt").read_text() == "keep me"


def test_cli_report_prints_the_summary(tmp_path, capsys):
    run = make_run(tmp_path, full=False)
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "- replace, closed exact match (all probes)" in printed and "wrote" in printed
    assert (tmp_path / "out" / "report.html").is_file()
    assert main(["report", str(run), str(run)]) == 2
    assert "--out" in capsys.readouterr().err


def test_a_run_with_contamination_results_gets_their_figure(tmp_path):
    run = make_run(tmp_path)
    cell = {"value": 0.5, "low": 0.3, "high": 0.7, "n": 20}
    rows = [{"model_generation": 0, "share": s, "pool_share": s, "index_share": s / 50, "retriever": "bm25",
             "defence": d, "exact_match": cell, "synthetic_retrieved": cell, "synthetic_retrieved_depth": cell,
             "copied_synthetic": cell} for s in (0.0, 0.5) for d in ("none", "trusted")]
    found = run / "contaminate" / "gen_1" / "results.json"
    found.parent.mkdir(parents=True)
    found.write_text(json.dumps({"rows": rows, "closed": {"0": {"exact_match": cell}}, "writer_generation": 1}))
    out = write_report(run, theory_config=SMALL_THEORY)
    assert (out / "contamination_gen_1.png").read_bytes().startswith(b"\x89PNG")
    assert "(contamination_gen_1.png)" in (out / "report.md").read_text(encoding="utf-8")
    assert len(read_csv(out / "contamination_gen_1.csv")) == 4
