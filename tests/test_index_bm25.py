"""bm25 statistics sealed with the index: the same scores as rank_bm25, stored without pickle, checked like the rest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from rag_bench.corpus.load import load_corpus
from rag_bench.index.bm25 import BM25_FILE, Bm25Stats, bm25_tokens
from rag_bench.index.integrity import IndexStoreError
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import current_version, load_index, update_index
from tests.conftest import PLANTED_FACT

TEXTS = ["Tuvalu | Government | Capital: Funafuti", "Kenya | Government | Capital: Nairobi",
         "The capital of a country is its seat of government.", "the the the the capital", "",
         "Funafuti atoll: the lagoon of Tuvalu, capital of Tuvalu"]
QUERIES = ["What is the capital of Tuvalu?", "the", "Nairobi Kenya capital capital", "zzz unknown", ""]


def test_scores_equal_rank_bm25_to_the_last_bit():
    okapi, stats = BM25Okapi([bm25_tokens(t) for t in TEXTS]), Bm25Stats.from_texts(TEXTS)
    for query in QUERIES:
        assert np.array_equal(stats.get_scores(bm25_tokens(query)), okapi.get_scores(bm25_tokens(query))), query


def test_saved_statistics_load_without_pickle_and_score_the_same(tmp_path: Path):
    stats = Bm25Stats.from_texts(TEXTS)
    stats.save(tmp_path / BM25_FILE)
    with np.load(tmp_path / BM25_FILE, allow_pickle=False) as data:  # every array is plain: no object dtype
        assert all(data[name].dtype != object for name in data.files)
    again = Bm25Stats.load(tmp_path / BM25_FILE)
    for query in QUERIES:
        assert np.array_equal(again.get_scores(bm25_tokens(query)), stats.get_scores(bm25_tokens(query)))
    with open(tmp_path / "pickled.npz", "wb") as fh:  # an object array needs pickle: refused, never loaded
        np.savez(fh, format=np.asarray("rag_bench.bm25/1"), vocab=np.asarray([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"pickled\.npz: not a readable bm25 statistics file"):
        Bm25Stats.load(tmp_path / "pickled.npz")


def test_an_index_keeps_its_bm25_statistics_sealed_and_uses_them(mixed_corpus: Path, tmp_path: Path, embeddings):
    update_index(tmp_path / "idx", load_corpus(mixed_corpus, progress=False), embeddings=embeddings, progress=False)
    version = current_version(tmp_path / "idx")
    manifest = json.loads((version / "manifest.json").read_text())
    assert BM25_FILE in manifest["sha256"] and (version / BM25_FILE).is_file()
    loaded = load_index(tmp_path / "idx", embeddings=embeddings)
    retriever = make_retriever(loaded.store, mode="bm25", k=2)
    top = retriever.invoke("When was the Quillmark lighthouse first lit?")
    assert PLANTED_FACT in top[0].page_content
    assert retriever._bm25 is loaded.store.bm25  # read from the index, not counted again
    counted = Bm25Stats.from_texts([d.page_content for d in loaded.chunks])
    query = bm25_tokens("Quillmark lighthouse")
    assert np.array_equal(loaded.store.bm25.get_scores(query), counted.get_scores(query))

    stored = version / BM25_FILE  # altered after the build: its sha256 no longer matches the manifest
    data = dict(np.load(stored, allow_pickle=False))
    data["idf"] = data["idf"] * 2
    with open(stored, "wb") as fh:
        np.savez(fh, **data)
    with pytest.raises(IndexStoreError, match=r"bm25\.npz: missing or altered since the build"):
        load_index(tmp_path / "idx", embeddings=embeddings)
