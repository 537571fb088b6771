"""Bootstrap intervals in a collapse report, from per-probe samples written as rag_bench.eval.run writes them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rag_bench.eval.splits import probe_split
from rag_bench.records import read_json, write_jsonl
from rag_bench.report.ci import interval_rows
from rag_bench.report.write import write_report
from rag_bench.theory.recursions import TheoryConfig

SMALL_THEORY = TheoryConfig(gaussian_chains=50, gaussian_generations=4, regression_chains=20,
                            regression_generations=3)
IDS = [f"factbook/c{i}/f" for i in range(200)]
TEST_IDS = [i for i in IDS if probe_split(i) == "test"]


def write_gen(gen_dir: Path, right: set[str], ppl_nll: float, contains: set[str] | None = None) -> None:
    """A results.json and samples files: closed-book right on ``right``; grounded right on every probe; with
    ``contains``, a `contains` score (the answer inside a sentence) that is 1 on those probes, closed-book."""
    (gen_dir / "eval").mkdir(parents=True)
    metrics = {m: {"all": {"exact_match": {"value": 0.0, "n": len(IDS)}}} for m in ("closed", "grounded")}
    fit = {"heldout_perplexity": {"value": 1.0, "n": 100, "per_text_nll": [[ppl_nll, 10], [ppl_nll, 10]]}}
    (gen_dir / "eval" / "results.json").write_text(json.dumps({"schema": "rag_bench.results/1",
                                                               "metrics": metrics, "fit": fit}))
    for mode in ("closed", "grounded"):
        write_jsonl(gen_dir / "eval" / f"samples_{mode}.jsonl", [
            {"id": i, "bucket": "tail" if n % 2 else "head",
             "scores": {"exact_match": 1.0 if mode == "grounded" or i in right else 0.0,
                        **({} if contains is None else {"contains": 1.0 if mode == "grounded" or i in contains
                                                        else 0.0})}} for n, i in enumerate(IDS)])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ci") / "run"
    write_gen(run / "gen_0", set(IDS[:100]), 10.0)
    write_gen(run / "replace" / "gen_1", set(IDS[:20]), 20.0)  # forgets most of what it knew
    write_gen(run / "accumulate" / "gen_1", set(IDS[:100]), 10.0)  # the same answers
    (run / "config.json").write_text(json.dumps({"strategies": ["replace", "accumulate"], "generations": 2}))
    return run


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_figure_has_an_interval_on_the_test_probes(run):
    out = write_report(run, theory_config=SMALL_THEORY)
    rows = rows_of(out / "intervals.csv")
    zero = next(r for r in rows if (r["figure"], r["strategy"], r["generation"], r["mode"], r["bucket"]) ==
                ("exact_match", "replace", "0", "closed", "all"))
    expected = sum(i in set(IDS[:100]) for i in TEST_IDS) / len(TEST_IDS)
    assert float(zero["value"]) == pytest.approx(expected, abs=1e-4) and int(zero["probes"]) == len(TEST_IDS)
    assert float(zero["low"]) < expected < float(zero["high"]) and zero["split"] == "test"
    assert "paired percentile bootstrap" in zero["test"]
    ppl = next(r for r in rows if r["figure"] == "heldout_perplexity" and r["strategy"] == "replace"
               and r["generation"] == "1")
    assert float(ppl["value"]) == pytest.approx(7.389, abs=1e-3)  # exp(40 / 20)


def test_differences_are_paired_and_the_summary_states_them(run):
    out = write_report(run, theory_config=SMALL_THEORY)
    diffs = rows_of(out / "differences.csv")
    fall = next(r for r in diffs if (r["comparison"], r["strategy"], r["mode"], r["bucket"], r["figure"]) ==
                ("generation vs 0", "replace", "closed", "all", "exact_match"))
    lost = sum(i in set(IDS[20:100]) for i in TEST_IDS) / len(TEST_IDS)
    assert float(fall["value"]) == pytest.approx(-lost, abs=1e-4) and fall["excludes_zero"] == "True"
    same = next(r for r in diffs if (r["comparison"], r["strategy"], r["mode"], r["bucket"], r["figure"]) ==
                ("generation vs 0", "accumulate", "closed", "all", "exact_match"))
    assert (float(same["low"]), float(same["high"])) == (0.0, 0.0)  # paired: identical answers, no spread
    assert {r["comparison"] for r in diffs} == {"generation vs 0", "grounded vs closed", "strategy vs strategy"}
    assert {r["bucket"] for r in diffs if r["comparison"] == "generation vs 0"} == {
        "all", "tail", "head", "heldout"}  # every bucket, none chosen after the fact
    summary = read_json(out / "report.json")["summary"]
    assert any(s.startswith("replace, exact match closed: generation 1 minus 0 = -") and "excludes 0" in s
               for s in summary)
    assert any(s.startswith("exact match closed at generation 1: replace minus accumulate = -") for s in summary)
    assert any("includes 0: no change shown" in s and s.startswith("accumulate, exact match closed") for s in summary)


def test_sentence_answers_get_contains_intervals_beside_exact_match(tmp_path):
    from rag_bench.report.results import find_results

    run = tmp_path / "run"
    write_gen(run / "gen_0", set(), 10.0, contains=set(IDS[:100]))  # never exact, often right inside a sentence
    write_gen(run / "replace" / "gen_1", set(), 20.0, contains=set(IDS[:20]))
    rows = interval_rows(find_results(run)[0])
    em = {(r["figure"], r["generation"], r["mode"]): r for r in rows["intervals"] if r["bucket"] == "all"}
    assert em[("exact_match", 0, "closed")]["value"] == 0.0
    expected = sum(i in set(IDS[:100]) for i in TEST_IDS) / len(TEST_IDS)
    assert em[("contains", 0, "closed")]["value"] == pytest.approx(expected, abs=1e-4)
    fall = next(r for r in rows["differences"] if (r["figure"], r["comparison"], r["mode"], r["bucket"]) ==
                ("contains", "generation vs 0", "closed", "all"))
    assert fall["value"] < 0 and fall["excludes_zero"]


def test_recall_at_k_gets_an_interval_per_generation_and_no_differences(tmp_path):
    from rag_bench.report.results import find_results

    run = tmp_path / "run"
    write_gen(run / "gen_0", set(), 10.0)
    write_gen(run / "replace" / "gen_1", set(), 20.0)
    found = set(IDS[::4])  # the gold chunk is among the top k for every fourth probe
    for gen_dir in (run / "gen_0", run / "replace" / "gen_1"):
        path = gen_dir / "eval" / "samples_grounded.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        write_jsonl(path, [{**r, "scores": {**r["scores"], "recall_at_k": float(r["id"] in found)}} for r in rows])
    rows = interval_rows(find_results(run)[0])
    recall = {(r["generation"], r["mode"]): r for r in rows["intervals"]
              if r["figure"] == "recall_at_k" and r["bucket"] == "all"}
    expected = sum(i in found for i in TEST_IDS) / len(TEST_IDS)
    assert set(recall) == {(0, "grounded"), (1, "grounded")}  # closed-book retrieves nothing
    assert recall[(1, "grounded")]["value"] == pytest.approx(expected, abs=1e-4)
    assert not any(r["figure"] == "recall_at_k" for r in rows["differences"])


def test_an_old_run_without_samples_gets_no_intervals(tmp_path):
    gen = tmp_path / "run" / "gen_0"
    (gen / "eval").mkdir(parents=True)
    (gen / "eval" / "results.json").write_text(json.dumps({"schema": "rag_bench.results/1", "metrics": {}}))
    from rag_bench.report.results import find_results

    assert interval_rows(find_results(tmp_path / "run")[0]) == {"intervals": [], "differences": []}
