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


def test_results_cover_every_share_retriever_defence_and_model(contaminated: Path):
    results = read_json(contaminated / "results.json")
    keys = {(r["model_generation"], r["share"], r["retriever"], r["defence"]) for r in results["rows"]}
    assert keys == {(g, s, m, d) for g in (0, 1) for s in (0.0, 0.5, 0.9) for m in ("dense", "bm25", "hybrid")
                    for d in ("none", "provenance", "perplexity", "trusted")}
    assert set(results["closed"]) == {"0", "1"} and results["writer_generation"] == 1
    shares = [m["pool_share"] for m in results["indexes"]]
    assert shares[0] == 0.0 and 0.4 < shares[1] < shares[2] and shares[2] >= 0.85
    for row in results["rows"]:
        assert row["exact_match"]["n"] == 6 and row["exact_match"]["low"] <= row["exact_match"]["value"]
        if row["share"] == 0.0 or row["defence"] == "trusted":
            assert row["synthetic_retrieved"]["value"] == 0.0 and row["copied_synthetic"]["value"] == 0.0
    bare = [r for r in results["rows"] if r["defence"] == "none" and r["share"] == 0.9]
    assert all(r["synthetic_retrieved_depth"]["value"] > 0.3 for r in bare)
    filters = {(f["share"], f["defence"]): f for f in results["filters"]}
    assert filters[(0.9, "trusted")]["recall"] == 1.0 and filters[(0.9, "trusted")]["precision"] == 1.0
    assert filters[(0.9, "provenance")]["recall_unmarked"] == 0.0
    samples = read_jsonl(contaminated / "samples_grounded.jsonl")
    assert len(samples) == 2 * 3 * 3 * 4 * 6 and {"retrieved", "copied_synthetic", "prediction"} <= set(samples[0])
    for name in ("results.csv", "filters.csv", "table.md", "contamination.png", "retrieved_share.png",
                 "samples_closed.jsonl"):
        assert (contaminated / name).stat().st_size > 0, name


def test_bad_inputs_are_one_clear_line(contaminate_data: Path, tmp_path: Path, capsys):
    run = contaminate_data / "runs" / "tiny"
    base = [str(run), "--data-dir", str(contaminate_data)]
    cases = [([*base, "--gen", "1", "--shares", "0,1.0"], "outside [0, 1)"),
             ([*base, "--gen", "7"], "--gen 7 is not a generation of this run"),
             ([str(tmp_path), "--gen", "0", "--data-dir", str(contaminate_data)], "not a run folder")]
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("synthetic*.jsonl", "contaminate", "model"))
    cases.append(([str(bare), "--gen", "0", "--data-dir", str(contaminate_data)], "has no synthetic text"))
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
        cfg = collapse_preset("tiny", strategies=("replace",), corpus="acme", generations=2)
        run_collapse(cfg.replace(eval=cfg.eval.replace(diversity_prompts=0)), run_dir=data / "runs" / "acme",
                     data_dir=data, echo=False)
    finally:
        torch.set_num_threads(threads)
    assert main(["contaminate", str(data / "runs" / "acme"), "--gen", "0", "--shares", "0,0.75", "--data-dir",
                 str(data), "--retrievers", "bm25,dense", "--publish", str(tmp_path / "published")]) == 0
    assert (tmp_path / "published" / "results.csv").is_file()
    assert not list((tmp_path / "published").glob("samples_*"))
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
    contaminate(Path("runs") / "tiny", generation=1, cfg=ContaminateConfig(shares=(0.0, 0.5, 0.9), limit=6),
                data_dir=".", echo=None)
    again = read_json(contaminated / "results.json")
    assert again["answers_generated"] == 0 and again["rows"] == first["rows"]
    assert all(m["embedded"] == n["embedded"] for m, n in zip(again["indexes"], first["indexes"], strict=True))
