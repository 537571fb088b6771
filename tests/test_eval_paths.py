"""Paths an evaluation derives from a model folder, an out folder and an index folder."""

from __future__ import annotations

from rag_bench.eval.paths import (
    corpus_jsonl_for,
    default_cache_dir,
    default_out_dir,
    reference_model_path,
    run_generation,
)
from rag_bench.records import write_json


def test_a_runs_model_evaluates_into_its_generation_and_shares_the_runs_cache(tmp_path):
    model = tmp_path / "runs" / "r1" / "gen_3" / "model"
    assert run_generation(model) == ((tmp_path / "runs" / "r1").resolve(), 3)
    assert default_out_dir(model, "probes/factbook.jsonl", tmp_path / "data") == model.parent.resolve() / "eval"
    assert default_cache_dir(model.parent / "eval") == (tmp_path / "runs" / "r1" / "cache").resolve()
    assert reference_model_path(model) is None  # no generation 0 on disk
    (tmp_path / "runs" / "r1" / "gen_0" / "model").mkdir(parents=True)
    assert reference_model_path(model) == (tmp_path / "runs" / "r1" / "gen_0" / "model").resolve()


def test_a_model_outside_a_run_evaluates_under_data_evals(tmp_path):
    model = tmp_path / "models" / "m"
    assert run_generation(model) is None and reference_model_path(model) is None
    assert default_out_dir(model, "p/factbook.jsonl", tmp_path / "data") == tmp_path / "data" / "evals" / "m-factbook"
    assert default_cache_dir(tmp_path / "out" / "eval") == (tmp_path / "out" / "cache").resolve()


def test_an_index_finds_the_corpus_beside_it_or_the_file_it_ingested(tmp_path):
    index = tmp_path / "data" / "indexes" / "acme"
    index.mkdir(parents=True)
    assert corpus_jsonl_for(index) is None
    ingested = tmp_path / "acme.jsonl"
    ingested.write_text("{}\n")
    write_json(index / "ingest_report.json", {"path": str(ingested)})
    assert corpus_jsonl_for(index) == ingested
    beside = tmp_path / "data" / "corpora" / "acme" / "corpus.jsonl"
    beside.parent.mkdir(parents=True)
    beside.write_text("{}\n")
    assert corpus_jsonl_for(index) == beside.resolve()
