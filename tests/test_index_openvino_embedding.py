"""The OpenVINO embedder: sentence-transformers' vectors, recall@10 >= 0.98 against fp32 on real Factbook chunks,
its backend in the manifest, and no index extended by another backend."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import faiss
import numpy as np
import pytest

from rag_bench.config import IndexConfig
from rag_bench.corpus.load import LoadedCorpus, load_corpus
from rag_bench.index.embedding import embed_texts, load_embedder, native_bf16, resolve_backend, resolve_dtype
from rag_bench.index.integrity import IndexStoreError
from rag_bench.index.openvino_embedding import SHARED_CACHE_ENV, export_dir
from rag_bench.index.store import load_index, update_index
from tests.test_probes_build import factbook_builder


@pytest.fixture(scope="module")
def factbook(tmp_path_factory) -> Path:
    """A real two-country Factbook corpus (record lines and prose), built from the installed package."""
    out = tmp_path_factory.mktemp("factbook")
    factbook_builder().build(out, countries=["ke", "fr"], heldout_fraction=0.2, progress=False)
    return out


def top10(db: np.ndarray, queries: np.ndarray) -> np.ndarray:
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(np.ascontiguousarray(db, dtype="float32"))
    return index.search(np.ascontiguousarray(queries, dtype="float32"), 10)[1]


def test_float32_vectors_are_sentence_transformers_vectors():
    texts = ["Kenya | Government | Capital: Nairobi", "x", "harbour " * 400]  # the last is cut at 256 tokens
    fp32 = np.asarray(load_embedder(IndexConfig(dtype="float32"), backend="torch").embed_documents(texts))
    ours = np.asarray(load_embedder(IndexConfig(dtype="float32"), backend="openvino").embed_documents(texts))
    assert np.abs(ours - fp32).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)


def test_default_build_path_keeps_recall_at_10_against_fp32_on_real_chunks(factbook: Path):
    corpus = load_corpus(factbook / "corpus.jsonl", progress=False)
    chunks = [c.page_content for c in corpus.chunks][:240]
    facts = (factbook / "facts.jsonl").read_text().splitlines()[::7][:60]
    queries = [json.loads(f)["record_prefix"] for f in facts]
    cfg = IndexConfig()
    default = load_embedder(cfg)  # what an index build uses by default on this machine
    assert default.backend == resolve_backend(cfg, resolve_dtype(cfg)) == "openvino"
    reference = load_embedder(IndexConfig(dtype="float32"), backend="torch")
    truth = top10(embed_texts(reference, chunks, batch_size=64, progress=False),
                  np.asarray(reference.embed_documents(queries)))
    found = top10(embed_texts(default, chunks, batch_size=64, progress=False),
                  np.asarray(default.embed_documents(queries)))
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found, strict=True)])
    assert len(chunks) == 240 and recall >= 0.98, recall


def test_the_manifest_records_the_backend_and_no_index_is_extended_by_another(factbook: Path, tmp_path: Path):
    corpus = load_corpus(factbook / "corpus.jsonl", progress=False)
    small = LoadedCorpus(chunks=corpus.chunks[:12], files=corpus.files)
    cfg = IndexConfig(dtype="float32")
    update_index(tmp_path / "ov", small, index_cfg=cfg, progress=False)
    loaded = load_index(tmp_path / "ov", cfg)
    assert (loaded.manifest["backend"], loaded.manifest["dtype"]) == ("openvino", "float32")
    assert loaded.store.embedding_function.backend == "openvino"  # queries are embedded as the chunks were
    with pytest.raises(IndexStoreError, match=r"built with the openvino embedder.*--rebuild"):
        update_index(tmp_path / "ov", corpus, index_cfg=IndexConfig(dtype="float32", backend="torch"), progress=False)
    bigger = LoadedCorpus(chunks=corpus.chunks[:14], files=corpus.files)
    stats = update_index(tmp_path / "ov", bigger, index_cfg=IndexConfig(dtype="float32"), progress=False)
    assert stats.embedded == 2 and load_index(tmp_path / "ov", cfg).manifest["backend"] == "openvino"


def test_export_is_cached_and_reused(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(SHARED_CACHE_ENV, raising=False)  # the session's shared export (tests/conftest.py) aside
    cfg = IndexConfig(dtype="float32", embedder_cache=str(tmp_path / "cache"))
    from rag_bench.index.embedding import embedder_path

    load_embedder(cfg, backend="openvino")
    folder = export_dir(cfg, embedder_path(cfg))
    stamp = os.stat(folder / "model.xml").st_mtime_ns
    load_embedder(cfg, backend="openvino")
    assert os.stat(folder / "model.xml").st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [folder.name]  # no staging folder left


def test_bf16_where_not_native_falls_back_to_fp32_with_one_line(monkeypatch, caplog):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # how bench/embed_bench.py emulates an AVX2-only CPU
    assert not native_bf16()
    with caplog.at_level(logging.WARNING, logger="rag_bench.index.embedding"):
        assert resolve_dtype(IndexConfig(dtype="bfloat16", device="cpu")) == "float32"
        assert resolve_dtype(IndexConfig(device="cpu")) == "float32"
    assert [r.getMessage() for r in caplog.records] == ["bfloat16 is not native on this CPU: embedding in float32 "
                                                        "instead"]
