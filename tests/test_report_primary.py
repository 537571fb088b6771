"""Primary comparisons on two real seeds of the tiny preset: recomputed by hand from the run's own files, Holm and the
minimum detectable effect, the report that leads with them, and the one-line errors of a file that names what the
run lacks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from rag_bench.eval.seed_intervals import CLUSTER, CLUSTER_TEXTS, SEED_T
from rag_bench.eval.splits import probe_split
from rag_bench.records import read_json, read_jsonl
from rag_bench.report.per_probe import gather
from rag_bench.report.primary import SPEC_PATH, load_spec, primary_rows
from rag_bench.report.results import ReportError, collect_runs
from rag_bench.report.write import PrimaryChoice, compare_runs
from rag_bench.theory.recursions import TheoryConfig

SMALL_THEORY = TheoryConfig(gaussian_chains=50, gaussian_generations=4, regression_chains=20,
                            regression_generations=3)


@pytest.fixture(scope="module")
def data(tiny_seed_runs):
    return gather(collect_runs(tiny_seed_runs, seeds=True)[0])


def t_interval(d: list[float]) -> tuple[float, float, float]:
    n, mean, sd = len(d), float(np.mean(d)), float(np.std(d, ddof=1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def test_the_primary_rows_agree_with_the_run_files_by_hand(tiny_seed_runs, data):
    spec = load_spec(SPEC_PATH, "tiny", control="replace")  # the committed entry, with a stand-in control
    assert spec.comparisons() == [("accumulate", "contains", "closed"), ("accumulate", "contains", "grounded"),
                                  ("accumulate", "heldout_perplexity", ""),
                                  ("accumulate", "diversity:distinct_2", "closed")]
    rows = {(r["figure"], r["mode"]): r for r in primary_rows(spec, data)}
    # held-out perplexity, seed by seed from results.json: exp(sum NLL / sum tokens), accumulate minus replace
    ppl = []
    for run in tiny_seed_runs:
        per = {s: np.asarray(read_json(run / s / "gen_1" / "eval" / "results.json")["fit"]["heldout_perplexity"]
                             ["per_text_nll"]) for s in ("replace", "accumulate")}
        ppl.append(float(np.diff([np.exp(p[:, 0].sum() / p[:, 1].sum()) for p in per.values()])[0]))
    row = rows[("heldout_perplexity", "")]
    assert (row["value"], row["low"], row["high"]) == pytest.approx(t_interval(ppl), abs=1e-3)
    assert (row["method"], row["other_method"], row["seeds"]) == (SEED_T, CLUSTER_TEXTS, 2)
    assert ppl[0] != ppl[1] and row["low"] < row["value"] < row["high"]
    # contains, closed-book, on the test probes, from samples_closed.jsonl
    diffs = []
    for run in tiny_seed_runs:
        scores = {s: {r["id"]: r["scores"]["contains"] for r in read_jsonl(run / s / "gen_1" / "eval" /
                                                                            "samples_closed.jsonl")
                      if probe_split(r["id"]) == "test" and not r["echo"]} for s in ("replace", "accumulate")}
        diffs.append(np.mean([scores["accumulate"][i] - scores["replace"][i] for i in scores["replace"]]))
        units = len(scores["replace"])
    row = rows[("contains", "closed")]
    if np.std(diffs):
        assert (row["value"], row["low"], row["high"]) == pytest.approx(t_interval(diffs), abs=1e-3)
    else:  # the two seeds tied: no interval and no test (seed_t_interval), never a zero-width one
        assert row["value"] == pytest.approx(np.mean(diffs), abs=1e-3)
        assert math.isnan(row["low"]) and math.isnan(row["high"]) and math.isnan(row["p_value"])
    assert row["units"] == units < 20 and row["verdict"] == "fewer than 20 per seed: no claim"
    echoes = {r["id"] for r in read_jsonl(tiny_seed_runs[0] / "replace" / "gen_1" / "eval" / "samples_closed.jsonl")
              if r["echo"] and probe_split(r["id"]) == "test"}
    assert row["echo_excluded"] == len(echoes) and rows[("heldout_perplexity", "")]["echo_excluded"] == 0
    assert row["other_method"] == CLUSTER
    # Holm over the 4 comparisons; the MDE at alpha / 4 from the seed-level SD, 2 seeds (df 1)
    ps = sorted(1.0 if math.isnan(r["p_value"]) else r["p_value"] for r in rows.values())  # no test: p 1 in Holm
    # the rows hold p to 4 decimals, so 4 x a rounded p is off by up to 2e-4, and the rounded Holm p by 5e-5 more
    assert min(r["p_holm"] for r in rows.values()) == pytest.approx(min(1.0, 4 * ps[0]), abs=2.5e-4)
    row = rows[("heldout_perplexity", "")]
    sd = float(np.std(ppl, ddof=1))
    mde = (stats.t.ppf(1 - 0.05 / 8, 1) + stats.t.ppf(0.8, 1)) * sd / math.sqrt(2)
    assert row["mde"] == pytest.approx(mde, rel=1e-3) and row["mde_alpha"] == 0.0125
    assert rows[("diversity:distinct_2", "closed")]["units"] == 0  # one value per seed: the t-interval only


def test_the_report_leads_with_the_primary_comparisons(tiny_seed_runs, tmp_path):
    out = compare_runs(tiny_seed_runs, tmp_path / "report", seeds=True, theory_config=SMALL_THEORY,
                       primary=PrimaryChoice(control="replace"))
    summary = read_json(out / "report.json")["summary"]
    assert summary[0].startswith("Primary comparisons (primary_comparisons.json, preset tiny")
    assert [s.split(",")[0] for s in summary[1:5]] == ["PRIMARY accumulate minus replace"] * 4
    assert not any(s.startswith("PRIMARY") for s in summary[5:])
    assert any(s.startswith("Exploratory (every row below") for s in summary[5:])
    assert (out / "primary.csv").read_text().count("\n") == 5
    assert read_json(out / "report.json")["primary"]["control"] == "replace"
    # the committed file's control, fresh, is not in this run: the default file notes why; a file given fails
    out = compare_runs(tiny_seed_runs, tmp_path / "plain", seeds=True, theory_config=SMALL_THEORY)
    first = read_json(out / "report.json")["summary"][0]
    assert first.startswith("Primary comparisons not computed (") and "'fresh'" in first
    with pytest.raises(ReportError, match="names the control 'fresh', which the run lacks"):
        compare_runs(tiny_seed_runs, tmp_path / "strict", seeds=True, theory_config=SMALL_THEORY,
                     primary=PrimaryChoice(path=SPEC_PATH))


@pytest.mark.parametrize(("change", "message"), [
    ({"strategies": ["fresh"]}, "names strategy 'fresh', which the run lacks (it has: accumulate, replace)"),
    ({"generation": 5}, "names generation 5 of 'replace', which the run lacks (it has: 0, 1)"),  # the control first
    ({"modes": ["oracle"]}, "names mode 'oracle', which the run lacks"),
    ({"answer_metric": "recall_at_1"}, "names the answer metric 'recall_at_1', which the run lacks"),
    ({"diversity": {"series": "closed", "metric": "nope"}}, "names diversity closed/nope, which the run lacks"),
])
def test_a_file_naming_what_the_run_lacks_is_one_line(data, tmp_path, change, message):
    spec = read_json(SPEC_PATH)
    spec["presets"]["tiny"].update({"control": "replace", "strategies": ["accumulate"], **change})
    path = tmp_path / "primary.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ReportError) as caught:
        primary_rows(load_spec(path, "tiny"), data)
    assert str(caught.value).startswith(f"{path}: preset 'tiny' {message}") and "\n" not in str(caught.value)


def test_the_file_itself_is_checked(tmp_path):
    with pytest.raises(ReportError, match="no primary comparisons for preset 'paper'"):
        load_spec(SPEC_PATH, "paper")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "rag_bench.primary_comparisons/1", "method": "vibes",
                               "presets": {"p": {"control": "fresh", "strategies": [], "generation": 1,
                                                 "answer_metric": "contains", "modes": []}}}))
    with pytest.raises(ReportError, match="method 'vibes' is not one of"):
        load_spec(bad, "p")
    bad.write_text(json.dumps({"schema": "rag_bench.primary_comparisons/1", "presets": {"p": {"control": "x"}}}))
    with pytest.raises(ReportError, match=f"{bad}: preset 'p': missing or malformed field"):
        load_spec(bad, "p")
    committed = read_json(SPEC_PATH)["presets"]
    assert {p: committed[p]["control"] for p in ("quick", "smol")} == {"quick": "fresh", "smol": "fresh"}
    assert all(set(committed[p]["modes"]) == {"closed", "grounded", "oracle"} for p in ("quick", "smol"))
    smol = load_spec(SPEC_PATH, "smol")
    assert Path(smol.path) == SPEC_PATH and smol.strategies == ("replace", "mix-0.1")  # the run's folder names


def test_the_report_command_passes_the_file_preset_and_control(tiny_seed_runs, tmp_path, capsys):
    from rag_bench.cli import main

    out = tmp_path / "report"
    argv = ["report", *map(str, tiny_seed_runs), "--seeds", "--out", str(out), "--primary", str(SPEC_PATH),
            "--primary-preset", "quick", "--control", "replace"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (f"error: {SPEC_PATH}: preset 'quick' names generation 4 of 'replace', which "
                                       "the run lacks (it has: 0, 1)\n")
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("preset", ["quick", "smol"])
def test_every_published_preset_runs_what_its_primary_comparisons_name(preset: str):
    # the comparisons are fixed before the runs: a preset that does not evaluate a named mode (the oracle) or train
    # a named strategy would only fail at report time, after hours of running (tiny's tests add the control)
    from rag_bench.config import collapse_preset

    spec, cfg = load_spec(preset=preset), collapse_preset(preset)
    folders = {s.replace(":", "-") for s in cfg.strategies}
    assert set(spec.strategies) | {spec.control} <= folders
    assert set(spec.modes) <= set(cfg.eval.modes)
    assert 0 < spec.generation < cfg.generations
