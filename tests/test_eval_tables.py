"""Tests of rag_bench.eval.tables: the most-frequent-answer baseline, exact match by field, the tables.

    .venv/bin/pytest tests/test_eval_tables.py -q
"""

from __future__ import annotations

from rag_bench.eval.tables import exact_match_by_field, format_field_table, format_table, most_frequent_answers
from rag_bench.records import Probe


def _probe(i: int, field: str, answer: str, bucket: str) -> Probe:
    return Probe(id=str(i), prompt=f"X{i} | S | {field}:", golden_answers=(answer,),
                 metadata={"field": field, "bucket": bucket})


PROBES = [_probe(0, "Government type", "republic", "head"), _probe(1, "Government type", "republic", "head"),
          _probe(2, "Government type", "monarchy", "tail"), _probe(3, "Capital", "Paris", "head"),
          _probe(4, "Capital", "Rome", "tail")]


def test_most_frequent_answer_leaves_the_probe_itself_out():
    # 0 and 1 each see one other "republic" (and one "monarchy": the tie goes to the larger string);
    # 2 sees two republics; each capital sees only the other capital
    assert most_frequent_answers(PROBES) == ["republic", "republic", "republic", "Rome", "Paris"]
    assert most_frequent_answers([_probe(0, "Capital", "Paris", "head")]) == [""]  # nothing else to copy


def test_exact_match_by_field_and_bucket():
    scores = [{"exact_match": v} for v in (1.0, 0.0, 1.0, 1.0, 0.0)]
    table = exact_match_by_field(PROBES, scores)
    assert table["Government type"]["all"] == {"exact_match": 2 / 3, "n": 3}
    assert table["Government type"]["head"] == {"exact_match": 0.5, "n": 2}
    assert table["Capital"]["tail"] == {"exact_match": 0.0, "n": 1}
    assert list(table) == ["Capital", "Government type"]


def test_tables_show_modes_baselines_and_fields():
    cell = {"exact_match": {"value": 0.25, "n": 4}}
    results = {"buckets": ["head", "all"], "metrics": {"closed": {"head": cell, "all": cell}},
               "baselines": {"most_frequent_answer": {"head": {"exact_match": {"value": 0.5, "n": 4}}, "all": cell}},
               "by_field": {"closed": exact_match_by_field(PROBES, [{"exact_match": 1.0}] * 5)}}
    table = format_table(results).splitlines()
    assert table[1].split() == ["closed", "0.250", "0.250"]
    assert table[2].split() == ["most_frequent_answer", "0.500", "0.250"]
    fields = format_field_table(results).splitlines()
    assert fields[1].split() == ["Capital", "2", "1/0/1", "1.000"]
