"""Index types: HNSW and IVF recall against flat, persistence without pickle, the manifest, and a bad type."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from rag_bench.cli import main
from rag_bench.config import IndexConfig
from rag_bench.corpus.load import load_corpus
from rag_bench.index.ann import build_index, choose_type, recall_at_k
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import current_version, load_index, update_index
from tests.conftest import PLANTED_FACT


def clustered_vectors(n: int = 4000, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres: the shape of embedded text, where IVF's coarse lists make sense."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    vectors = centres[rng.integers(0, 40, n)] + 0.3 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype("float32")


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_find_most_of_the_exact_top_10(kind: str):
    vectors = clustered_vectors()
    index, params = build_index(vectors, kind)
    assert params["type"] == kind and index.ntotal == len(vectors)
    assert recall_at_k(index, vectors, k=10, sample=300) >= 0.9
    flat, _ = build_index(vectors, "flat")
    assert recall_at_k(flat, vectors, k=10, sample=300) == 1.0


def test_a_crippled_ivf_loses_recall_and_the_measure_shows_it():
    vectors = clustered_vectors()
    index, _ = build_index(vectors, "ivf")
    index.nprobe = 1  # one list of about 250: neighbours in the next list are missed
    assert recall_at_k(index, vectors, k=10, sample=300) < recall_at_k(build_index(vectors, "ivf")[0], vectors,
                                                                         k=10, sample=300)


def test_auto_keeps_the_stored_type_and_is_flat_for_a_new_small_index():
    assert choose_type("auto", None, 24_000) == "flat" and choose_type("auto", None, 2_000_000) == "hnsw"
    assert choose_type("auto", {"index": {"type": "ivf"}}, 10) == "ivf" and choose_type("hnsw", None, 10) == "hnsw"


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_an_approximate_index_is_persisted_without_pickle_and_reloaded(kind, mixed_corpus: Path, tmp_path: Path,
                                                                        embeddings):
    folder = tmp_path / "idx"
    update_index(folder, load_corpus(mixed_corpus, progress=False), index_cfg=IndexConfig(index_type=kind),
                 embeddings=embeddings, progress=False)
    version = current_version(folder)
    assert not list(version.glob("*.pkl")) and not list(version.glob("*.pickle"))
    assert isinstance(faiss.read_index(str(version / "index.faiss")), faiss.IndexHNSW if kind == "hnsw" else
                      faiss.IndexIVF)
    loaded = load_index(folder, embeddings=embeddings)
    assert loaded.manifest["index"]["type"] == kind and 0.0 <= loaded.manifest["index"]["recall_at_10"] <= 1.0
    top = make_retriever(loaded.store, mode="dense", k=3).invoke("When was the Quillmark lighthouse first lit?")
    assert PLANTED_FACT in top[0].page_content
    # an update without --index keeps the type, and reuses the stored vectors (IVF needs its direct map for that)
    (mixed_corpus / "extra.txt").write_text("The Selmer ferry crosses the sound twice a day.")
    stats = update_index(folder, load_corpus(mixed_corpus, progress=False), embeddings=embeddings, progress=False)
    assert stats.embedded == 1 and load_index(folder, embeddings=embeddings).manifest["index"]["type"] == kind


def test_ingest_prints_recall_and_a_bad_type_is_one_clear_error(mixed_corpus: Path, tmp_path: Path, capsys):
    assert main(["ingest", str(mixed_corpus), "--name", "acme", "--data-dir", str(tmp_path), "--index", "hnsw"]) == 0
    out = capsys.readouterr().out
    assert "hnsw index: recall@10" in out and "against exact (flat) search" in out
    before = sorted(p.name for p in (tmp_path / "indexes" / "acme" / "versions").iterdir())
    assert main(["ingest", str(mixed_corpus), "--name", "acme", "--data-dir", str(tmp_path), "--index", "lsh"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: index_type: unknown index type 'lsh'; choose from ['auto', 'flat', 'hnsw', 'ivf']"]
    assert sorted(p.name for p in (tmp_path / "indexes" / "acme" / "versions").iterdir()) == before
