"""Tests of rag_bench.probes.frequency: chunk co-occurrence counts and the tail / torso / head buckets.

    .venv/bin/pytest tests/test_probes_frequency.py -q

Expected counts and cut points were worked out by hand on the small inputs below.
"""

from __future__ import annotations

from langchain_core.documents import Document

from rag_bench.probes.frequency import (
    ChunkCooccurrence,
    assign_buckets,
    bucket_of,
    frequency_thresholds,
    normalize_text,
    phrase_pattern,
)
from rag_bench.records import Probe


def test_frequency_on_hand_made_chunks():
    texts = [
        "Algeria | Government | Capital: Algiers",  # 0: subject and answer
        "The French captured ALGIERS in 1830;\n  algeria   became independent in 1962.",  # 1: case, whitespace
        "Algiers is a port.",  # 2: no subject
        "Algeria exports gas.",  # 3: no answer
        "Algeria is not Algiersville.",  # 4: the answer only inside a longer word
        "Equatorial Guinea borders Gabon.",  # 5: "Guinea" only inside "Equatorial Guinea"
        "Guinea and Gabon, and Kuwait\nCity.",  # 6
    ]
    counter = ChunkCooccurrence([Document(page_content=t) for t in texts])
    assert counter.count("Algeria", "Algiers") == 2  # chunks 0 and 1
    assert counter.count("algeria", "1962") == 1  # chunk 1
    assert counter.count("Algeria", "1830") == 1
    assert counter.count("Guinea", "Gabon") == 2  # chunks 5 and 6 without exclusion
    assert counter.count("Guinea", "Gabon", exclude=["Equatorial Guinea"]) == 1  # chunk 6 only
    assert counter.count("Guinea", "Kuwait City") == 1  # the line break counts as a space
    assert counter.count(["Algeria", "French"], "1962") == 1
    assert counter.count("Algeria", "Oran") == 0
    assert counter.chunks_with("Algiers") == frozenset({0, 1, 2})
    assert counter.count("Algeria", "...") == 0  # a phrase without a word matches nothing


def test_normalize_text_and_whole_word_phrases():
    assert normalize_text("  Kuwait\n\tCITY ") == "kuwait city"
    pattern = phrase_pattern("st. helena")
    assert pattern.search("the isle of st. helena.") and not pattern.search("st. helenas")
    assert not phrase_pattern("1962").search("19620") and phrase_pattern("1962").search("(1962)")


def test_thresholds_balance_tied_frequencies():
    # 12 probes, six seen once: tail <= 1 (6 probes), torso 2..4 (3), head 5..7 (3) is the most even split.
    assert frequency_thresholds([1] * 6 + [2, 3, 4, 5, 6, 7]) == {"tail_max": 1, "torso_max": 4}
    assert frequency_thresholds(list(range(1, 10))) == {"tail_max": 3, "torso_max": 6}  # no ties: tertiles
    assert frequency_thresholds([5, 5, 5]) == {"tail_max": 5, "torso_max": 5}
    assert frequency_thresholds([]) == {"tail_max": 0, "torso_max": 0}
    fixed = {"tail_max": 2, "torso_max": 10}
    assert [bucket_of(f, fixed) for f in (0, 2, 3, 10, 11)] == ["tail", "tail", "torso", "torso", "head"]
    probes = [Probe(id=str(f), prompt="p", golden_answers=("a",), metadata={"frequency": f}) for f in (1, 3, 30)]
    assert [p.metadata["bucket"] for p in assign_buckets(probes, fixed)] == ["tail", "torso", "head"]
    assert probes[0].metadata["bucket_thresholds"] == fixed
    chosen = assign_buckets([Probe(id=str(f), prompt="p", golden_answers=("a",), metadata={"frequency": f})
                             for f in range(1, 10)])
    assert [p.metadata["bucket"] for p in chosen] == ["tail"] * 3 + ["torso"] * 3 + ["head"] * 3


def test_a_run_recounts_its_probes_over_the_text_it_trains_on():
    from rag_bench.probes.frequency import recount_over_texts

    rows = [{"id": f"p{i}", "golden_answers": [answer], "metadata": {
        "subject": subject, "frequency_answer": answer, "frequency": 99, "bucket": "head"}}
        for i, (subject, answer) in enumerate([("Niger", "Niamey"), ("Nigeria", "Abuja"), ("Chad", "N'Djamena")])]
    texts = ["Niger | Government | Capital: Niamey\nNigeria | Government | Capital: Abuja",
             "Nigeria | People | Largest city: Lagos, not Abuja"]
    out, thresholds = recount_over_texts(rows, texts, chunk_chars=40)  # one record line per chunk
    assert [r["metadata"]["frequency"] for r in out] == [1, 2, 0]  # "Niger" is not counted inside "Nigeria"
    assert [r["metadata"]["bucket"] for r in out] == ["torso", "head", "tail"] and thresholds == {
        "tail_max": 0, "torso_max": 1}
    assert out[0]["metadata"]["frequency_index"] == 99 and out[0]["metadata"]["bucket_index"] == "head"
    assert rows[0]["metadata"]["frequency"] == 99  # the input rows are left as they were
