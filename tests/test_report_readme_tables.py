"""README and docs/ tables are regenerated from committed results, and every marked file agrees with them."""

from __future__ import annotations

import json

import pytest

from rag_bench.report.readme_tables import REPO, RESULTS, main, provenance, render

INTERVALS = """figure,strategy,generation,mode,bucket,split,value,low,high,probes,seeds,test
exact_match,replace,0,closed,all,test,0.1,0.05,0.15,100,2,t
exact_match,replace,1,closed,all,test,0.05,0.01,0.09,100,2,t
exact_match,replace,0,grounded,all,test,0.7,0.6,0.8,100,2,t
contains,replace,0,closed,all,test,0.3,0.2,0.4,100,2,t
heldout_perplexity,replace,0,,heldout,eval_texts,20.0,19.0,21.0,111,2,t
"""
DIFFS = """comparison,figure,strategy,against,generation,against_generation,mode,bucket,split,value,low,high,\
excludes_zero,probes,seeds,test
generation vs 0,exact_match,replace,replace,1,0,closed,all,test,-0.05,-0.09,-0.01,True,100,2,t
generation vs 0,contains,replace,replace,1,0,closed,all,test,-0.2,-0.3,-0.1,True,100,2,t
generation vs 0,exact_match,replace,replace,1,0,closed,torso,test,-0.5,-0.9,-0.1,True,4,1,t
"""
BUCKETS = """strategy,generation,axis,bucket,mode,metric,value,ci95_low,ci95_high,n
replace,0,known,known,closed,contains,1.0,0.88,1.0,27
replace,0,known,known,closed,forgetting,0.0,0.0,0.12,27
replace,2,known,known,closed,contains,0.5,0.3,0.7,27
replace,1,known,known,closed,forgetting,0.25,0.1,0.4,27
replace,2,known,known,closed,forgetting,0.5,0.3,0.7,27
replace,0,frequency,tail,closed,contains,0.1,0.05,0.2,50
"""
DIVERSITY = """strategy,generation,mode,bucket,metric,value,n,seed,run
replace,0,closed,,distinct_2,0.8,8,0,s0
replace,0,closed,,distinct_2,0.6,8,1,s1
replace,1,closed,,distinct_2,0.5,8,0,s0
"""


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "intervals.csv").write_text(INTERVALS)
    (folder / "differences.csv").write_text(DIFFS)
    (folder / "provenance.json").write_text(json.dumps({"generations": [
        {"run": "r", "strategy": "replace", "generation": 1, "trained_tokens": {"corpus": {"tokens": 10, "by_origin": {
            "gen_0": 10}}}, "pool": {"human_overlap": {"written": {"share": 0.012}}}}]}))
    (folder / "inputs.json").write_text(json.dumps({"run": "r", "rows": [["probes, dev / test", "3 / 4"]]}))
    (folder / "knowledge_buckets-seed0.csv").write_text(BUCKETS)
    (folder / "diversity.csv").write_text(DIVERSITY)
    return tmp_path


def test_the_inputs_and_harness_tables(results, tmp_path):
    from rag_bench.records import write_jsonl
    from rag_bench.report.readme_tables import run_inputs
    from rag_bench.theory.harness import harness_report
    from rag_bench.theory.recursions import TheoryConfig

    harness = harness_report(TheoryConfig(gaussian_chains=500, gaussian_generations=4))
    (results / "demo" / "harness.json").write_text(json.dumps(harness))
    out = render("<!-- table:demo:inputs -->\n<!-- /table -->\n<!-- table:demo:harness -->\n<!-- /table -->\n",
                 results)
    assert "| probes, dev / test | 3 / 4 |" in out and "| chains x generations, M samples per fit | 50 x 4, 50 |" in out
    assert f"| bound (pi^2/6) sigma0^2 / M | {harness['accumulate']['mean_shift_bound']:.4f} |" in out
    run = tmp_path / "run"
    write_jsonl(run / "data" / "human_train.jsonl", [{"id": "a", "contents": "x" * 45}])
    write_jsonl(run / "data" / "probes.jsonl", [
        {"id": "p1", "metadata": {"bucket": "tail", "bucket_index": "head"}},
        {"id": "p2", "metadata": {"bucket": "tail", "bucket_index": "tail"}}])
    rows = dict(run_inputs(run)["rows"])
    assert rows["human training texts"] == "1 texts, 45 characters (about 10 tokens)"
    assert rows["probes by bucket, counted over the whole index (tail / torso / head)"] == "1 / 0 / 1"
    assert rows["probes by bucket, counted over the run's training text (tail / torso / head)"] == "2 / 0 / 0"


def test_marked_tables_are_rendered_from_the_result_files(results):
    readme = ("text\n<!-- table:demo:exact-match -->\nstale\n<!-- /table -->\nmore\n"
              "<!-- table:demo:differences -->\n<!-- /table -->\n<!-- table:demo:tokens -->\n<!-- /table -->\n")
    out = render(readme, results)
    assert "| replace, closed-book | 0.100 [0.050, 0.150] | 0.050 [0.010, 0.090] |" in out
    assert "| replace, grounded | 0.700 [0.600, 0.800] |  |" in out and "stale" not in out
    assert "| replace: generation 1 minus 0 | closed | all | -0.050 [-0.090, -0.010] | yes |" in out
    # an old CSV stamped "excludes 0" on a 4-probe cell; the table makes no claim below 20 probes
    assert "| replace: generation 1 minus 0 | closed | torso | -0.500 [-0.900, -0.100] | no claim (n < 20) |" in out
    assert "| exploratory difference (generation 1) |" in out
    assert "| r | replace | 1 | gen_0 10 | none | 0.012 |" in out
    assert render(out, results) == out  # rendering is idempotent
    with pytest.raises(ValueError, match="unknown table kind 'nope'"):
        render("<!-- table:demo:nope -->\n<!-- /table -->", results)
    with pytest.raises(ValueError, match="has no results folder"):
        render("<!-- table:missing:exact-match -->\n<!-- /table -->", results)


def test_the_tables_of_a_run_that_answers_in_sentences(results, tmp_path):
    from rag_bench.report.readme_tables import publish

    out = render("".join(f"<!-- table:demo:{kind} -->\n<!-- /table -->\n" for kind in (
        "contains", "differences-contains", "buckets", "forgetting", "diversity")), results)
    assert "| replace, closed-book | 0.300 [0.200, 0.400] |" in out
    assert "| replace: generation 1 minus 0 | closed | all | -0.200 [-0.300, -0.100] | yes |" in out
    assert "-0.050" not in out  # the exact-match difference belongs to the other table
    assert "| strategy, bucket, mode | seed0: generation 0 | seed0: generation 2 |" in out
    assert "| replace, known, closed-book | 1.00 [0.88, 1.00] (n 27) | 0.50 [0.30, 0.70] (n 27) |" in out
    assert "tail" not in out  # frequency buckets are the report's, not this table's
    assert "| seed0, replace | 0.25 [0.10, 0.40] | 0.50 [0.30, 0.70] |" in out
    assert "| replace, distinct_2 | 0.700 (0.800, 0.600) | 0.500 (0.500) |" in out
    report, run = tmp_path / "report", tmp_path / "runs" / "smol-seed1"
    report.mkdir()
    run.mkdir(parents=True)
    (report / "intervals.csv").write_text(INTERVALS)
    (report / "diversity.csv").write_text(DIVERSITY)
    (run / "knowledge_buckets.csv").write_text(BUCKETS)
    folder = publish("pub", report, [run], results=tmp_path / "published")
    assert sorted(p.name for p in folder.iterdir()) == [
        "diversity.csv", "intervals.csv", "knowledge_buckets-smol-seed1.csv", "provenance.json"]


def test_the_readme_and_docs_agree_with_their_committed_results(capsys):
    from rag_bench.report.marked_files import TABLE_MARK, marked_files

    files = marked_files(None, None)
    assert files[0] == REPO / "README.md" and REPO / "docs" / "quick.md" in files and REPO / "docs" / "smol.md" in files
    texts = {path: path.read_text(encoding="utf-8") for path in files}
    assert sum(len(TABLE_MARK.findall(t)) for t in texts.values()) >= 16, "the tables are generated by the script"
    for path, text in texts.items():
        assert render(text, RESULTS) == text, f"{path}: a table disagrees with docs/results; run the script"
    assert main(["--check"]) == 0


def test_check_covers_every_marked_docs_file(results, tmp_path, capsys):
    readme, docs = tmp_path / "README.md", tmp_path / "docs"
    (docs / "deep").mkdir(parents=True)
    readme.write_text("# r\n<!-- table:demo:exact-match -->\n<!-- /table -->\n")
    (docs / "quick.md").write_text("# q\n<!-- table:demo:perplexity -->\n<!-- /table -->\n")
    (docs / "plain.md").write_text("# no tables here\n")
    args = ["--readme", str(readme), "--docs", str(docs), "--results", str(results)]
    assert main(args) == 0  # rewrites both marked files
    assert "| replace | 20.00 [19.00, 21.00] |" in (docs / "quick.md").read_text()
    assert main(["--check", *args]) == 0
    capsys.readouterr()
    page = docs / "quick.md"
    page.write_text(page.read_text().replace("20.00 [19.00", "21.00 [19.00"))  # a hand edit in a docs page
    assert main(["--check", *args]) == 1
    assert capsys.readouterr().err.strip() == f"{page}: a table differs from docs/results; run python -m " \
        "rag_bench.report.readme_tables"
    assert main(args) == 0 and main(["--check", *args]) == 0  # the rewrite puts the committed figure back
    (docs / "deep" / "x.md").write_text("<!-- table:gone:exact-match -->\n<!-- /table -->\n")
    capsys.readouterr()
    assert main(["--check", *args]) == 1  # a marker whose results folder is missing: one line naming the file
    assert capsys.readouterr().err.startswith(f"{docs / 'deep' / 'x.md'}: table gone:exact-match has no results")


def test_provenance_collects_tokens_and_overlap_from_manifests(tmp_path):
    gen = tmp_path / "run" / "replace" / "gen_1"
    gen.mkdir(parents=True)
    (gen / "manifest.json").write_text(json.dumps({"trained_tokens": {"corpus": {"tokens": 5}}, "pool": {
        "tokens": 5, "origin_tokens": {"gen_0": 5}, "human_overlap": {"written": {"share": 0.1}}, "units": 3},
        "config": {"curriculum": "off"}, "train": {"compute": [{"device": "cpu", "precision": "fp32"}]},
        "compute": {"train": {"device": "cpu", "precision": "fp32"}}}))
    (rows,) = provenance([tmp_path / "run"])["generations"]
    assert rows == {"run": "run", "strategy": "replace", "generation": 1, "trained_tokens": {"corpus": {"tokens": 5}},
                    "curriculum": "off", "pool": {"tokens": 5, "origin_tokens": {"gen_0": 5},
                                                  "human_overlap": {"written": {"share": 0.1}}},
                    "trained_on": [{"device": "cpu", "precision": "fp32"}],
                    "steps_ran_on": {"train": {"device": "cpu", "precision": "fp32"}}}


def test_the_primary_table_is_recomputed_from_published_per_probe_files(tiny_seed_runs, tmp_path, capsys):
    import gzip

    from rag_bench.eval.splits import probe_split
    from rag_bench.report.per_probe import FILES
    from rag_bench.report.primary import SPEC_PATH
    from rag_bench.report.readme_tables import publish
    from rag_bench.report.write import PrimaryChoice, compare_runs
    from rag_bench.theory.recursions import TheoryConfig

    report = compare_runs(tiny_seed_runs, tmp_path / "report", seeds=True, primary=PrimaryChoice(control="replace"),
                          theory_config=TheoryConfig(gaussian_chains=50, gaussian_generations=4,
                                                     regression_chains=20, regression_generations=3))
    folder = publish("tiny", report, tiny_seed_runs, results=tmp_path / "results")
    assert read_json_file(folder / "published.json")["control"] == "replace"
    sizes = read_json_file(folder / "published.json")["per_probe_bytes"]
    assert set(sizes) == set(FILES.values()) and sum(sizes.values()) < 20_000  # small: ids, not prompts
    readme = tmp_path / "README.md"
    readme.write_text(render("# r\n<!-- table:tiny:primary -->\n<!-- /table -->\n", tmp_path / "results"))
    text = readme.read_text()
    assert "| accumulate minus replace | held-out perplexity | " in text and "t-interval over seed-level" in text
    published = [line for line in (report / "primary.csv").read_text().splitlines() if "heldout_perplexity" in line]
    value = float(published[0].split(",")[5])
    assert f"| {value:+.2f} [" in text  # the README figure is the report's, recomputed from the per-probe files
    check = ["--check", "--readme", str(readme), "--results", str(tmp_path / "results"), "--spec", str(SPEC_PATH)]
    assert main(check) == 0
    # change one answer's score (a test probe of accumulate, generation 1, closed-book, seed 0): --check fails
    path = folder / FILES["samples"]
    rows = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    hit = next(r for r in rows if (r["strategy"], r["generation"], r["mode"], r["seed"]) == ("accumulate", 1, "closed",
                                                                                             0)
               and probe_split(r["probe"]) == "test")
    hit["scores"]["contains"] = 1.0 - hit["scores"]["contains"]
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert main(check) == 1
    assert "a table differs from docs/results" in capsys.readouterr().err
    # a published folder whose preset the primary file lacks: one line naming the file
    (folder / "published.json").write_text(json.dumps({"preset": "paper", "control": None}))
    assert main(check) == 1
    assert capsys.readouterr().err.strip() == f"{SPEC_PATH}: no primary comparisons for preset 'paper' (it lists " \
        "quick, smol, tiny)"


def read_json_file(path):
    return json.loads(path.read_text())
