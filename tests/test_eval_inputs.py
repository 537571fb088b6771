"""Inputs of an evaluation: probe sampling, the held-out split, and the retrieved-context cache.

    .venv/bin/pytest tests/test_eval_inputs.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.documents import Document

from rag_bench.corpus.load import load_corpus
from rag_bench.eval.inputs import ContextRetriever, human_texts, is_heldout_chunk, load_eval_probes, retrieve_contexts
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index, update_index
from rag_bench.records import Probe, RecordError, sha256_file, write_json, write_jsonl
from tests.conftest import PLANTED_FACT


def make_probes(n: int) -> list[Probe]:
    return [Probe(id=f"p{i}", prompt=f"Question {i}:", golden_answers=(str(i),),
                  metadata={"bucket": "tail", "bucket_thresholds": {"tail_max": 1, "torso_max": 3}})
            for i in range(n)]


def test_limit_is_a_seeded_sample_in_file_order(tmp_path: Path):
    path = tmp_path / "probes.jsonl"
    write_jsonl(path, make_probes(50))
    write_json(tmp_path / "probes.meta.json", {"kind": "user"})
    picked, info = load_eval_probes(path, limit=10, seed=3)
    again, _ = load_eval_probes(path, limit=10, seed=3)
    other, _ = load_eval_probes(path, limit=10, seed=4)
    numbers = [int(p.id[1:]) for p in picked]
    assert len(picked) == 10 and numbers == sorted(numbers) and picked == again and picked != other
    assert info["sha256"] == sha256_file(path) and info["total"] == 50 and info["evaluated"] == 10
    assert info["meta"] == {"kind": "user"} and info["bucket_thresholds"] == {"tail_max": 1, "torso_max": 3}
    everything, info = load_eval_probes(make_probes(5), limit=10)
    assert len(everything) == 5 and info["path"] is None and len(info["sha256"]) == 64


def test_split_keeps_one_side_before_the_sample(tmp_path: Path):
    from rag_bench.eval.splits import probe_split

    probes = make_probes(80)
    test_side = [p for p in probes if probe_split(p.id) == "test"]
    assert 0 < len(test_side) < 80  # both sides are present, so the filter has something to drop
    picked, info = load_eval_probes(probes, split="test", limit=10, seed=3)
    assert len(picked) == 10 and all(probe_split(p.id) == "test" for p in picked)
    assert info["total"] == 80 and info["on_split"] == len(test_side) and info["split"] == "test"
    whole, _ = load_eval_probes(probes, split="test")
    assert whole == test_side
    dev_only = [p for p in probes if probe_split(p.id) == "dev"]
    with pytest.raises(RecordError, match="no probes on the test side"):
        load_eval_probes(dev_only, split="test")


def test_duplicate_probe_ids_are_refused_with_the_line(tmp_path: Path):
    path = tmp_path / "dup.jsonl"
    write_jsonl(path, [*make_probes(2), make_probes(1)[0]])
    with pytest.raises(RecordError, match=r"dup\.jsonl:3: probe id 'p0' already used on line 1"):
        load_eval_probes(path)


def test_heldout_split_from_the_corpus_or_hashed_chunks(tmp_path: Path):
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, [{"id": "a", "contents": "kept", "metadata": {"split": "train"}},
                         {"id": "b", "contents": "held", "metadata": {"split": "heldout"}}])
    texts = human_texts(corpus_jsonl=corpus)
    assert texts.heldout == ["held"] and texts.train == ["kept"] and not texts.note
    chunks = [Document(page_content=f"chunk {i}", metadata={"chunk_id": f"c{i}"}) for i in range(200)]
    texts = human_texts(chunks, corpus_jsonl=tmp_path / "missing.jsonl")
    expected = [f"chunk {i}" for i in range(200) if is_heldout_chunk(f"c{i}")]
    assert texts.heldout == expected and 3 <= len(expected) <= 20 and len(texts.train) == 200 - len(expected)
    assert "no held-out split" in texts.note
    tiny = human_texts(chunks[:2])
    assert len(tiny.heldout) == 1 and len(tiny.train) == 1  # never an empty held-out set


def test_contexts_are_cached_and_a_source_chunk_can_be_excluded(mixed_corpus: Path, tmp_path: Path, embeddings):
    update_index(tmp_path / "idx", load_corpus(mixed_corpus, progress=False), embeddings=embeddings, progress=False)
    retriever = make_retriever(load_index(tmp_path / "idx", embeddings=embeddings).store, k=3)
    queries = ["Quillmark lighthouse", "timber exports"]
    first, status = retrieve_contexts(retriever, queries, k=2, cache_dir=tmp_path / "cache")
    again, second = retrieve_contexts(retriever, queries, k=2, cache_dir=tmp_path / "cache")
    assert (status, second) == ("miss", "hit")
    assert [[(d.metadata["chunk_id"], d.metadata["rank"]) for d in docs] for docs in first] == \
           [[(d.metadata["chunk_id"], d.metadata["rank"]) for d in docs] for docs in again]
    assert PLANTED_FACT in again[0][0].page_content and again[0][0].metadata["source"] == "sub/guide.md"
    cached = json.loads(next((tmp_path / "cache").glob("contexts-*.json")).read_text())
    assert cached["k"] == 2 and len(cached["results"]) == 2
    _, status = retrieve_contexts(retriever, queries, k=3, cache_dir=tmp_path / "cache")
    assert status == "miss"  # another k is another key

    prompt = PLANTED_FACT[:40]
    (docs,), _ = retrieve_contexts(retriever, [prompt], k=2, exclude_containing=True)
    assert len(docs) == 2 and all(PLANTED_FACT not in d.page_content for d in docs)
    assert [d.metadata["rank"] for d in docs] == [1, 2]
    served = ContextRetriever(queries, first).batch_search(queries[::-1], k=1)
    assert served == [first[1][:1], first[0][:1]]
