"""Each defence on a tiny index of human and model-written chunks: what it drops, through the LCEL chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document

from rag_bench.answer import grounded
from rag_bench.collapse.synthetic import PromptBlock, continue_prompts, watermark_z_scores, watermarking_config
from rag_bench.config import DecodeConfig
from rag_bench.contaminate.defences import (
    FilteredRetriever,
    PerplexityCheck,
    ProvenanceCheck,
    TrustedSourceCheck,
    generated_spans,
    watermark_z,
)
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


def test_perplexity_band_drops_both_tails(tiny_index: Path, gen0: LM):
    docs = chunks(tiny_index)
    scored = PerplexityCheck(gen0)
    logs = scored.score_docs(docs)
    assert all(scored.keep(docs))  # the default band (-inf, inf) drops nothing
    ordered = sorted(logs)
    band = (ordered[2], ordered[-3])  # two chunks below it and two above
    check = PerplexityCheck(gen0, band=band, scores=scored.scores)
    kept = check.keep(docs)
    assert sum(not k for k in kept) == 4
    assert all((not band[0] <= check.scores[d.id] <= band[1]) == (not k) for d, k in zip(docs, kept, strict=True))


def test_generated_spans_are_values_of_record_lines_and_other_lines_whole():
    text = "Chad | Government | Capital: N'Djamena\nFree text here\n  Chad | Economy | GDP: 10 billion"
    spans = [text[a:b] for a, b in generated_spans(text)]
    assert spans == [" N'Djamena", "Free text here", " 10 billion"]


def test_watermark_z_ignores_the_copied_field_names(gen0: LM):
    """Marked values behind copied prefixes: the z-score over generated tokens does not move when the field
    names change, and it is higher than the whole-chunk z-score the field names dilute."""
    prefixes = [f"Pitcairn Islands | Geography | {field}:" for field in ("Area - total", "Coastline", "Climate",
                                                                        "Terrain", "Natural resources")]
    blocks = [PromptBlock(index=i, ids=gen0.tokenizer(p)["input_ids"]) for i, p in enumerate(prefixes)]
    values = continue_prompts(gen0, blocks, DecodeConfig(max_new_tokens=12, do_sample=True, stop=()), seed=1,
                              watermark=MARK)
    lines = [(p, gen0.tokenizer.decode(ids, skip_special_tokens=True).split("\n")[0].strip())
             for p, ids in zip(prefixes, values, strict=True)]
    chunk = "\n".join(f"{p} {v}" for p, v in lines if v)
    renamed = "\n".join(f"{p.replace('Geography', 'Environment and Geography')} {v}" for p, v in lines if v)
    [generated, whole] = [watermark_z(gen0, [chunk], MARK, generated_only=flag)[0] for flag in (True, False)]
    assert generated > whole and generated > 2.0
    assert watermark_z(gen0, [renamed], MARK)[0] == pytest.approx(generated)  # copied tokens are not counted
    assert watermark_z(gen0, [renamed], MARK, generated_only=False)[0] != pytest.approx(whole)
    # over every token it is the detector of the collapse package
    assert whole == pytest.approx(watermark_z_scores(gen0, [chunk], MARK)[0])


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
