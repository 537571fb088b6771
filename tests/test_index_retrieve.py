"""Retrievers and the CLI: k below 1 is one clear error in every mode (dense, bm25, hybrid; search, ask, eval)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_bench.cli import main
from rag_bench.corpus.load import load_corpus
from rag_bench.index.retrieve import MODES, IndexRetriever, RetrievalError, make_retriever
from rag_bench.index.store import load_index, update_index


@pytest.fixture
def store(mixed_corpus: Path, tmp_path: Path, embeddings):
    update_index(tmp_path / "data" / "indexes" / "docs", load_corpus(mixed_corpus, progress=False),
                 embeddings=embeddings, progress=False)
    return load_index(tmp_path / "data" / "indexes" / "docs", embeddings=embeddings).store


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_refused_by_every_retriever(store, mode: str, k: int):
    with pytest.raises(RetrievalError, match=f"-k must be a whole number of 1 or more .*got {k}"):
        make_retriever(store, mode=mode, k=k)
    with pytest.raises(RetrievalError, match="-k must be"):
        IndexRetriever(store=store, mode=mode, k=k)
    retriever = make_retriever(store, mode=mode, k=2)
    with pytest.raises(RetrievalError, match="-k must be"):
        retriever.search("barley", k=k)
    with pytest.raises(RetrievalError, match="-k must be"):
        retriever.batch_search(["barley"], k=k)
    assert len(retriever.search("barley", k=1)) == 1


def test_unknown_mode_is_one_clear_error(store):
    with pytest.raises(RetrievalError, match="unknown retrieval mode 'sparse'"):
        make_retriever(store, mode="sparse")


@pytest.mark.parametrize("argv", [
    ["search", "barley", "--name", "docs", "-k", "0"],
    ["search", "barley", "--name", "docs", "-k", "-1", "--mode", "bm25"],
    ["search", "barley", "--name", "docs", "-k", "0", "--mode", "hybrid"],
    ["ask", "Where is barley grown?", "--mode", "grounded", "--name", "docs", "--model", "nowhere", "-k", "0"],
    ["eval", "--model", "nowhere", "--probes", "nowhere.jsonl", "--name", "docs", "-k", "0"],
])
def test_cli_k_below_one_is_one_line_without_traceback(store, tmp_path: Path, capsys, argv: list[str]):
    code = main([*argv, "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "k" in err and ("1 or more" in err or ">= 1" in err), err
