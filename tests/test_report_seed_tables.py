"""Tables by generation recomputed from published per-probe files (rag_bench.report.seed_tables), and seeds published
in different sessions pooled by ``readme_tables publish --add``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from rag_bench.eval.seed_intervals import cluster_bootstrap, perplexity_cluster_interval, seed_t_interval
from rag_bench.eval.splits import probe_split
from rag_bench.records import read_json, read_jsonl
from rag_bench.report.per_probe import FILES, read_per_probe
from rag_bench.report.readme_tables import main, publish, render
from rag_bench.report.results import ReportError
from rag_bench.report.write import PrimaryChoice, compare_runs
from rag_bench.theory.recursions import TheoryConfig

SMALL_THEORY = TheoryConfig(gaussian_chains=50, gaussian_generations=4, regression_chains=20,
                            regression_generations=3)
MARKED = "# r\n<!-- table:tiny:trajectory -->\n<!-- /table -->\n<!-- table:tiny:trajectory-perplexity -->\n" \
         "<!-- /table -->\n"


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def report_of(runs: list[Path], out: Path) -> Path:
    return compare_runs(runs, out, seeds=True, primary=PrimaryChoice(control="replace"), theory_config=SMALL_THEORY)


@pytest.fixture(scope="module")
def published(tiny_seed_runs, tmp_path_factory) -> Path:
    """Seed 0 published alone, then seed 1 added, as two sessions would."""
    tmp = tmp_path_factory.mktemp("seed_tables")
    first, second = ([run] for run in tiny_seed_runs)
    publish("tiny", report_of(first, tmp / "r0"), first, results=tmp / "results")
    return publish("tiny", report_of(second, tmp / "r1"), second, results=tmp / "results", add=True)


def test_added_seeds_pool_with_those_published_before(tiny_seed_runs, published, tmp_path):
    both = publish("tiny", report_of(tiny_seed_runs, tmp_path / "r"), tiny_seed_runs, results=tmp_path / "results")
    added, at_once = read_per_probe(published), read_per_probe(both)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    for kind in ("samples", "nll", "diversity"):
        assert sorted(map(key, getattr(added, kind))) == sorted(map(key, getattr(at_once, kind)))
    assert {r["seed"] for r in added.samples} == {0, 1}
    meta = read_json(published / "published.json")
    assert [Path(r).name for r in meta["runs"]] == [r.name for r in tiny_seed_runs]
    assert meta["aggregates_from"] == [str(tiny_seed_runs[0])]  # the aggregates are still seed 0's alone
    assert {r["run"] for r in read_json(published / "provenance.json")["generations"]} == {
        r.name for r in tiny_seed_runs}
    # adding the same seed again replaces its rows instead of doubling them
    again = publish("tiny", report_of([tiny_seed_runs[1]], tmp_path / "r1"), [tiny_seed_runs[1]],
                    results=published.parent, add=True)
    assert len(read_per_probe(again).samples) == len(added.samples)


def test_add_needs_something_published(tiny_seed_runs, tmp_path):
    with pytest.raises(ReportError, match="nothing published there to add to"):
        publish("tiny", report_of(tiny_seed_runs[:1], tmp_path / "r"), tiny_seed_runs[:1],
                results=tmp_path / "results", add=True)


def test_trajectory_cells_are_the_seed_mean_with_the_cluster_bootstrap(tiny_seed_runs, published):
    text = render(MARKED, published.parent)
    # replace, grounded, generation 1: contains on the test probes without echo probes, from the run files
    scores = []
    for run in tiny_seed_runs:
        rows = read_jsonl(run / "replace" / "gen_1" / "eval" / "samples_grounded.jsonl")
        scores.append({r["id"]: r["scores"]["contains"] for r in rows if probe_split(r["id"]) == "test"
                       and not r["echo"]})
    probes = sorted(set(scores[0]) & set(scores[1]))
    want = cluster_bootstrap(np.asarray([[s[p] for p in probes] for s in scores]))
    line = next(x for x in text.splitlines() if x.startswith("| replace, grounded |"))
    assert cells(line)[2] == f"{want.value:.3f} [{want.low:.3f}, {want.high:.3f}]"  # generation 1
    assert f"2 seeds x {len(probes)} probes" in text and "cluster bootstrap over seeds then probes" in text
    nll = [read_json(run / "accumulate" / "gen_1" / "eval" / "results.json")["fit"]["heldout_perplexity"]
           ["per_text_nll"] for run in tiny_seed_runs]
    ppl = perplexity_cluster_interval(np.asarray(nll))
    line = next(x for x in text.splitlines() if x.startswith("| accumulate | "))
    assert cells(line)[2] == f"{ppl.value:.2f} [{ppl.low:.2f}, {ppl.high:.2f}]"
    assert [x for x in text.splitlines() if x.startswith("| replace")][-1].startswith("| replace |")  # control last


def test_change_is_the_last_generation_minus_generation_0_paired_within_each_seed(tiny_seed_runs, published):
    text = render("<!-- table:tiny:change -->\n<!-- /table -->\n", published.parent)

    def scores(run: Path, gen_dir: str) -> dict[str, float]:
        rows = read_jsonl(run / gen_dir / "eval" / "samples_grounded.jsonl")
        return {r["id"]: r["scores"]["contains"] for r in rows if probe_split(r["id"]) == "test" and not r["echo"]}

    before = [scores(run, "gen_0") for run in tiny_seed_runs]
    after = [scores(run, "replace/gen_1") for run in tiny_seed_runs]
    probes = sorted(set.intersection(*map(set, before + after)))
    diff = np.asarray([[a[p] - b[p] for p in probes] for a, b in zip(after, before, strict=True)])
    boot, t = cluster_bootstrap(diff), seed_t_interval(diff.mean(axis=1))
    line = cells(next(x for x in text.splitlines() if x.startswith("| replace, grounded |")))
    assert line[1] == f"{np.mean([[b[p] for p in probes] for b in before]):.3f}"
    assert line[3] == f"{boot.value:+.3f} [{boot.low:+.3f}, {boot.high:+.3f}]"
    # seeds that tie have no t-interval (seed_t_interval), and the cell says so
    assert line[4] == (f"[{t.low:+.3f}, {t.high:+.3f}]" if t.sd > 0 else "n/a: no seed spread")
    assert "generation 1 minus generation 0" in text and f"2 seeds x {len(probes)} probes" in text


def test_check_fails_when_a_committed_sample_changes(published, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(render(MARKED, published.parent))
    check = ["--check", "--readme", str(readme), "--results", str(published.parent)]
    assert main(check) == 0
    path = published / FILES["samples"]
    rows = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    hit = next(r for r in rows if (r["strategy"], r["generation"], r["mode"], r["seed"]) == ("replace", 1, "closed", 1)
               and probe_split(r["probe"]) == "test" and not r["echo"])
    hit["scores"]["contains"] = 1.0 - hit["scores"]["contains"]
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert main(check) == 1
    assert "differs" in capsys.readouterr().err
