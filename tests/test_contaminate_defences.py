"""Each defence on a tiny index of human and model-written chunks: what it drops, through the LCEL chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document

from rag_bench.answer import grounded
from rag_bench.collapse.synthetic import PromptBlock, continue_prompts, watermarking_config
from rag_bench.config import DecodeConfig
from rag_bench.contaminate.defences import FilteredRetriever, PerplexityCheck, ProvenanceCheck, TrustedSourceCheck
from rag_bench.corpus.load import FileOutcome, LoadedCorpus
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index, update_index
from rag_bench.lm import LM

MARK = watermarking_config(bias=4.0, greenlist=0.25, key=15485863)


@pytest.fixture(scope="module")
def gen0(contaminate_data: Path) -> LM:
    return LM.load(contaminate_data / "runs" / "tiny" / "gen_0" / "model")


@pytest.fixture(scope="module")
def tiny_index(contaminate_data: Path, gen0: LM, embeddings, tmp_path_factory) -> Path:
    """Eight human record chunks and eight watermarked continuations of the same prefixes."""
    human = [c for c in load_index(contaminate_data / "indexes" / "factbook").chunks
             if c.page_content.count(" | ") > 4][:8]
    prefixes = [c.page_content.splitlines()[0].split(":")[0] + ":" for c in human]
    blocks = [PromptBlock(index=i, ids=gen0.tokenizer(p)["input_ids"]) for i, p in enumerate(prefixes)]
    written = continue_prompts(gen0, blocks, DecodeConfig(max_new_tokens=64, do_sample=True, stop=()), seed=0,
                               watermark=MARK)
    synthetic = [Document(page_content=p + " " + gen0.tokenizer.decode(ids, skip_special_tokens=True),
                          metadata={"chunk_id": f"syn{i}", "source": "uncurated/web", "origin": "synthetic"})
                 for i, (p, ids) in enumerate(zip(prefixes, written, strict=True))]
    folder = tmp_path_factory.mktemp("defences") / "index"
    update_index(folder, LoadedCorpus(chunks=human + synthetic, files=[FileOutcome(path="x", status="ingested")]),
                 embeddings=embeddings, progress=False)
    return folder


def chunks(folder: Path) -> list[Document]:
    return load_index(folder).chunks


def test_provenance_drops_watermarked_chunks_and_keeps_human_ones(tiny_index: Path, gen0: LM):
    check = ProvenanceCheck(gen0, MARK, z_threshold=4.0)
    docs = chunks(tiny_index)
    kept = check.keep(docs)
    synthetic = [d.metadata.get("origin") == "synthetic" for d in docs]
    assert all(k for k, s in zip(kept, synthetic, strict=True) if not s)  # no human chunk is dropped
    assert sum(not k for k, s in zip(kept, synthetic, strict=True) if s) >= 6  # most marked chunks are caught
    assert all(check.scores[d.id] > 4.0 for d, k in zip(docs, kept, strict=True) if not k)


def test_perplexity_threshold_is_a_quantile_of_human_chunks(tiny_index: Path, gen0: LM):
    docs = chunks(tiny_index)
    human = [d.page_content for d in docs if d.metadata.get("origin") != "synthetic"]
    check = PerplexityCheck.calibrated(gen0, human, quantile=0.25, sample=100)
    kept = check.keep(docs)
    human_dropped = [not k for d, k in zip(docs, kept, strict=True) if d.metadata.get("origin") != "synthetic"]
    assert sum(human_dropped) == 2  # a quarter of the 8 human chunks lie below their own 25% quantile
    assert all((check.scores[d.id] < check.threshold) == (not k) for d, k in zip(docs, kept, strict=True))


def test_trusted_source_keeps_only_curated_folders(tiny_index: Path):
    docs = chunks(tiny_index)
    check = TrustedSourceCheck({d.metadata["source"] for d in docs if not d.metadata["source"].startswith("uncur")})
    assert check.keep(docs) == [d.metadata.get("origin") != "synthetic" for d in docs]


def test_a_filtered_retriever_answers_through_the_same_chain(tiny_index: Path, gen0: LM):
    store = load_index(tiny_index).store
    docs = chunks(tiny_index)
    trusted = TrustedSourceCheck({d.metadata["source"] for d in docs if d.metadata.get("origin") != "synthetic"})
    retriever = FilteredRetriever(base=make_retriever(store, mode="bm25", k=3), check=trusted, k=2, depth=8)
    query = next(d for d in docs if d.metadata.get("origin") == "synthetic").page_content
    bare = make_retriever(store, mode="bm25", k=2).invoke(query)
    assert bare[0].metadata.get("origin") == "synthetic"  # without the defence the model text comes first
    found = retriever.invoke(query)
    assert len(found) == 2 and [d.metadata["rank"] for d in found] == [1, 2]
    assert all(d.metadata.get("origin") != "synthetic" for d in found)
    answer = grounded(gen0, retriever, [query], k=2)[0]
    assert [s["chunk_id"] for s in answer.sources] == [d.id for d in found]
