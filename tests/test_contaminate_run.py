"""`rag-bench contaminate` end to end (a tiny Factbook run and a folder corpus), and its bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from rag_bench.cli import ingest, main
from rag_bench.collapse.run import run_collapse
from rag_bench.config import collapse_preset
from rag_bench.index.store import load_index
from rag_bench.probes.build import make_probe_file
from rag_bench.records import read_json, read_jsonl


def test_results_cover_every_arm_share_retriever_k_defence_and_model(contaminated: Path):
    results = read_json(contaminated / "results.json")
    k = results["k"]
    keys = {(r["model_generation"], r["arm"], r["share"], r["retriever"], r["defence"], r["k"])
            for r in results["rows"]}
    modes = ("dense", "bm25", "hybrid")
    bare = {(g, "synthetic", s, m, "none", kk) for g in (0, 1) for s in (0.0, 0.5, 0.75) for m in modes
            for kk in (1, 3)}
    control = {(g, "human", s, m, "none", kk) for g in (0, 1) for s in (0.5, 0.75) for m in modes for kk in (1, 3)}
    defended = {(g, "synthetic", s, m, d, k) for g in (0, 1) for s in (0.0, 0.5, 0.75) for m in modes
                for d in ("provenance", "perplexity", "trusted-1", "trusted-4")}
    assert keys == bare | control | defended
    assert set(results["closed"]) == {"0", "1"} and results["writer_generation"] == 1
    assert results["writer"]["name"] == "generation 1, sampling at temperature 1"
    assert results["fluency"]["scorer"] == "gen0" and results["fluency"]["rewrites"]["n"] > 0
    shares = [m["pool_share"] for m in results["indexes"]]
    assert shares[0] == 0.0 and 0.4 < shares[1] < shares[2] and shares[2] >= 0.7
    assert [m["synthetic_chunks"] for m in results["controls"]] == [5, 15]  # as many as the rewrites added
    for row in results["rows"]:
        assert row["exact_match"]["n"] == (6 if row["defence"] == "none" else
                                           sum(p["split"] == "test" for p in read_jsonl(contaminated /
                                                                                         "samples_closed.jsonl")) // 2)
        if row["share"] == 0.0 or row["defence"].startswith("trusted") or row["arm"] == "human":
            assert row["synthetic_retrieved"]["value"] == 0.0 and row["copied_synthetic"]["value"] == 0.0
    deep = [r for r in results["rows"] if r["defence"] == "none" and r["share"] == 0.75 and r["arm"] == "synthetic"]
    assert all(r["synthetic_retrieved_depth"]["value"] > 0.3 for r in deep)
    filters = {(f["share"], f["defence"], f["retriever"]): f for f in results["filters"]}
    trusted = filters[(0.75, "trusted-4", "bm25")]
    assert trusted["recall"] == 1.0 and trusted["precision"] == 1.0
    assert all(f["split"] == "test" for f in results["filters"])
    thresholds = read_json(contaminated / "thresholds.json")
    assert thresholds["split"] == "dev" and results["thresholds"]["provenance"] == thresholds["provenance"]
    ranks = read_jsonl(contaminated / "samples_ranks.jsonl")
    assert {(r["share"], r["retriever"]) for r in ranks} == {(s, m) for s in (0.5, 0.75) for m in modes}
    samples = read_jsonl(contaminated / "samples_grounded.jsonl")
    assert {"retrieved", "copied_synthetic", "prediction", "split", "normalised_exposure"} <= set(samples[0])
    for name in ("results.csv", "filters.csv", "table.md", "contamination.png", "retrieved_share.png",
                 "samples_closed.jsonl", "fluency.json"):
        assert (contaminated / name).stat().st_size > 0, name
    table = (contaminated / "table.md").read_text()
    assert "synthetic - human" in table and "rewrite ranks above its original" in table


def test_the_threshold_is_chosen_on_dev_candidates_only(contaminated: Path, contaminate_data: Path):
    """Calibrating with the test probes left out gives the same thresholds: they never took part."""
    from rag_bench.collapse.synthetic import watermarking_config
    from rag_bench.contaminate.calibrate import calibrate
    from rag_bench.contaminate.config import ContaminateConfig
    from rag_bench.contaminate.evaluate import Checks, dev_candidates
    from rag_bench.eval.inputs import load_eval_probes
    from rag_bench.eval.splits import probe_split
    from rag_bench.lm import LM

    results = read_json(contaminated / "results.json")
    probes, _ = load_eval_probes(Path(results["run"]) / "data" / "probes.jsonl", limit=6, seed=0)
    run_cfg = read_json(Path(results["run"]) / "config.json")
    mark = watermarking_config(bias=run_cfg["watermark_bias"], greenlist=run_cfg["watermark_greenlist"],
                               key=run_cfg["watermark_key"])
    gen0 = LM.load(Path(results["models"]["0"]))
    indexes = [(Path(m["human_index"]).parent / name, m) for name, m in zip(results["index_names"],
                                                                            results["indexes"], strict=True)]
    checks = Checks(ContaminateConfig(), gen0=gen0, detector=gen0, watermark=mark, human_chunks=[])
    dev_only = [p for p in probes if probe_split(p.id) == "dev"]
    assert 0 < len(dev_only) < len(probes)
    both = calibrate(dev_candidates(indexes, probes, checks, k=results["k"], embeddings=None))
    alone = calibrate(dev_candidates(indexes, dev_only, checks, k=results["k"], embeddings=None))
    assert both == alone
    stored = read_json(contaminated / "thresholds.json")
    assert {n: stored[n] for n in ("provenance", "perplexity")} == {n: both[n] for n in ("provenance", "perplexity")}


def test_bad_inputs_are_one_clear_line(contaminate_data: Path, tmp_path: Path, capsys):
    run = contaminate_data / "runs" / "tiny"
    base = [str(run), "--data-dir", str(contaminate_data)]
    cases = [([*base, "--gen", "1", "--shares", "0,1.0"], "outside [0, 1)"),
             ([*base, "--gen", "7"], "--gen 7 is not a generation of this run"),
             ([str(tmp_path), "--gen", "0", "--data-dir", str(contaminate_data)], "not a run folder")]
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("synthetic*.jsonl", "contaminate", "model"))
    cases.append(([str(bare), "--gen", "0", "--data-dir", str(contaminate_data)], "has no synthetic text"))
    test_split = tmp_path / "thresholds.json"
    test_split.write_text('{"format": "rag_bench.contaminate.thresholds/1", "split": "test"}')
    cases += [([*base, "--gen", "1", "--thresholds", str(test_split)], "chosen on split 'test'"),
              ([*base, "--gen", "1", "--shares", "0,0.9", "--limit", "6"],
               "needs 45 held-out human chunks but only 15 exist (5 answer chunks)"),
              ([*base, "--gen", "1", "--shares", "0,0.75", "--limit", "6", "--writer-temperature", "0"],
               "a greedy writer writes the same one every round")]
    for argv, message in cases:
        assert main(["contaminate", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_the_command_on_a_folder_corpus(tmp_path: Path):
    folder = tmp_path / "docs"
    folder.mkdir()
    towns = ["Askel", "Dorvik", "Brellin", "Tarsil", "Orrin", "Varnholt", "Quillmark", "Senna"]
    for i, town in enumerate(towns):
        (folder / f"{town.lower()}.txt").write_text(
            f"The town of {town} lies on the river Almer. Its harbour opened in {1850 + 7 * i} for the timber "
            f"trade. The mayor of {town} is elected every {3 + i % 3} years by the guild of Weavers. "
            f"Most people of {town} work in the {['copper', 'barley', 'salt'][i % 3]} trade near Kellmoor.\n")
    data = tmp_path / "data"
    ingest(str(folder), data_dir=data, name="acme", progress=False)
    make_probe_file("cloze", load_index(data / "indexes" / "acme").chunks, data / "probes" / "acme-cloze.jsonl")
    threads = torch.get_num_threads()
    try:
        cfg = collapse_preset("tiny", strategies=("replace",), corpus="acme", generations=2, report=False)
        run_collapse(cfg.replace(eval=cfg.eval.replace(diversity_prompts=0)), run_dir=data / "runs" / "acme",
                     data_dir=data, echo=False)
    finally:
        torch.set_num_threads(threads)
    assert main(["contaminate", str(data / "runs" / "acme"), "--gen", "0", "--shares", "0,0.75", "--data-dir",
                 str(data), "--retrievers", "bm25,dense", "--ks", "1", "--trusted-depths", "4", "--no-human-control",
                 "--fluency-scorer", "gen0", "--publish", str(tmp_path / "published")]) == 0
    assert (tmp_path / "published" / "results.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "published").glob("samples_*")) == [
        "samples_closed.jsonl.gz", "samples_grounded.jsonl.gz", "samples_ranks.jsonl.gz"]  # gzipped per-probe files
    out = data / "runs" / "acme" / "contaminate" / "gen_0"
    results = read_json(out / "results.json")
    assert {r["retriever"] for r in results["rows"]} == {"bm25", "dense"}
    rewrites = read_jsonl(out / "rewrites" / "round_000.jsonl")
    assert rewrites and all(r["metadata"]["rewrite_kind"] == "prose" for r in rewrites)
    index = load_index(data / "indexes" / results["index_names"][-1])
    assert sum(c.metadata["origin"] == "synthetic" for c in index.chunks) == results["indexes"][-1]["synthetic_chunks"]


@pytest.mark.parametrize("strategy", ["accumulate"])
def test_a_strategy_the_run_does_not_have_is_refused(contaminate_data: Path, strategy: str, capsys):
    assert main(["contaminate", str(contaminate_data / "runs" / "tiny"), "--gen", "1", "--strategy", strategy,
                 "--data-dir", str(contaminate_data)]) == 2
    assert "is not one of the run's" in capsys.readouterr().err


def test_the_same_command_again_reuses_rewrites_indexes_and_answers(contaminate_data: Path, contaminated: Path,
                                                                    monkeypatch):
    from rag_bench.contaminate.config import ContaminateConfig
    from rag_bench.contaminate.run import contaminate

    first = read_json(contaminated / "results.json")
    monkeypatch.chdir(contaminate_data)  # the same run, typed as a relative path this time
    cfg = ContaminateConfig(shares=(0.0, 0.5, 0.75), limit=6, ks=(1, 3), trusted_depths=(1, 4), fluency_scorer="gen0")
    contaminate(Path("runs") / "tiny", generation=1, cfg=cfg, data_dir=".", echo=None)
    again = read_json(contaminated / "results.json")
    assert again["answers_generated"] == 0 and again["rows"] == first["rows"]
    assert all(m["embedded"] == n["embedded"] for m, n in zip(again["indexes"], first["indexes"], strict=True))
