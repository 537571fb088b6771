"""The embedder: precision from the CPU, and embedding that saves finished batches and survives a SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from rag_bench.config import IndexConfig
from rag_bench.corpus.load import load_corpus
from rag_bench.index.embedding import (
    embed_texts,
    embedder_backend,
    load_embedder,
    native_bf16,
    progress_folder,
    resolve_backend,
    resolve_dtype,
)
from rag_bench.index.store import current_version, load_index, update_index

REPO = Path(__file__).resolve().parents[1]


class CountingEmbeddings(Embeddings):
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner, self.texts = inner, 0
        self.backend = embedder_backend(inner)  # what the manifest records and the progress folder is keyed by

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def test_auto_precision_is_bf16_only_where_native():
    assert resolve_dtype(IndexConfig(device="cpu")) == ("bfloat16" if native_bf16() else "float32")
    assert resolve_dtype(IndexConfig(dtype="int8")) == "int8"


def test_int8_quantizes_the_linear_layers_and_stays_close_to_fp32():
    texts = ["The Orrin valley grows barley and rye.", "Brellin harbour handles timber exports."]
    int8 = load_embedder(IndexConfig(dtype="int8"))  # int8 runs on torch: auto never picks OpenVINO for it
    kinds = {m._get_name() for m in int8._client.modules()}
    assert "DynamicQuantizedLinear" in kinds and "Linear" not in kinds
    fp32 = np.asarray(load_embedder(IndexConfig(dtype="float32"), backend="torch").embed_documents(texts))
    vectors = np.asarray(int8.embed_documents(texts))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    assert np.min(np.sum(vectors * fp32, axis=1)) > 0.9


def test_finished_batches_are_read_back_instead_of_embedded(tmp_path: Path, embeddings):
    texts = [f"Harbour {i} ships {'timber ' * (i % 7)}and grain." for i in range(20)]
    ids = [f"c{i}" for i in range(20)]
    counting = CountingEmbeddings(embeddings)
    first = embed_texts(counting, texts, ids=ids, batch_size=2, progress=False, progress_dir=tmp_path / "p")
    assert counting.texts == 20 and len(list((tmp_path / "p").glob("batch-*.npz"))) == 3  # batches of 8, 8, 4
    next(iter(sorted((tmp_path / "p").glob("batch-*.npz")))).write_bytes(b"torn write")  # one is re-embedded
    again = embed_texts(counting, texts, ids=ids, batch_size=2, progress=False, progress_dir=tmp_path / "p")
    assert counting.texts in {20 + 8, 20 + 4}
    assert np.array_equal(first, again)


def test_killed_build_resumes_where_it_stopped_and_equals_an_uninterrupted_one(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    # 300 chunks, ten batches of 32: killed after three, seven are left for the resume
    (docs / "big.txt").write_text("\n\n".join(f"Paragraph {i} describes harbour number {i} in some detail. " * 6
                                              for i in range(300)))
    # fp32 on both sides: bf16 kernels may round differently in another process with other threads (1e-3 seen)
    data, cfg = tmp_path / "data", IndexConfig(batch_size=8, dtype="float32")
    index = data / "indexes" / "docs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_bench", "ingest", str(docs), "--name", "docs", "--data-dir", str(data),
         "--batch-size", "8", "--dtype", "float32"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved_dir = progress_folder(index, cfg, resolve_dtype(cfg), resolve_backend(cfg, resolve_dtype(cfg)))
    deadline = time.monotonic() + 180
    while len(list(saved_dir.glob("batch-*.npz"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, "the build ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = len(list(saved_dir.glob("batch-*.npz")))
    assert saved >= 3 and current_version(index) is None  # killed mid-embedding: nothing live yet

    corpus = load_corpus(docs, progress=False)
    embedder = load_embedder(cfg)
    resumed = CountingEmbeddings(embedder)
    stats = update_index(index, corpus, index_cfg=cfg, embeddings=resumed, progress=False)
    assert resumed.texts <= stats.total - saved * 32
    # what was read back is reported apart from what was computed, and the rate counts the computed only
    assert stats.embedded == resumed.texts and stats.resumed >= saved * 32 - 31
    assert stats.embedded + stats.resumed == stats.total
    assert not (index / "embedding-progress").exists()  # cleaned up once the version is written

    whole = tmp_path / "whole"
    update_index(whole, corpus, index_cfg=cfg, embeddings=embedder, progress=False)
    got, want = load_index(index, cfg, embeddings=embedder), load_index(whole, cfg, embeddings=embedder)
    assert got.store.index_to_docstore_id == want.store.index_to_docstore_id
    assert [d.page_content for d in got.chunks] == [d.page_content for d in want.chunks]
    a, b = (x.store.index.reconstruct_n(0, x.store.index.ntotal) for x in (got, want))
    assert np.abs(a - b).max() < 1e-5


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_progress_is_keyed_by_precision(tmp_path: Path, dtype: str):
    folder = progress_folder(tmp_path, IndexConfig(batch_size=8), dtype)
    assert dtype in folder.name and folder.parent == tmp_path / "embedding-progress"
