"""The cleaners that turn a Factbook record value into a probe's accepted answers.

    .venv/bin/pytest tests/test_probes_factbook_answers.py -q
"""

from __future__ import annotations

import pytest

from rag_bench.probes.factbook_answers import DEFAULT_FIELDS, FIELD_ANSWERS, factbook_answers


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("Capital", "Gitega (political capital), Bujumbura (commercial capital)", ["Gitega", "Bujumbura"]),
    ("Capital", "Brasília", ["Brasília", "Brasilia"]),
    ("Capital", "Washington, D.C.", ["Washington, D.C.", "Washington"]),
    ("Capital", "Santiago; note - Valparaiso is the seat of the national legislature", ["Santiago"]),
    ("Capital", "no official capital; government offices in the Yaren District", []),
    ("Exchange rates - Currency", "euros (EUR) per US dollar", ["euros", "EUR", "euro"]),
    ("Independence", "none (territory of the US)", []),
    ("Independence", "28 November 1912 (from the Ottoman Empire)", ["1912", "28 November 1912"]),
    ("Elevation - highest point", "Mont Blanc (Monte Bianco) de Courmayeur (a secondary peak of Mont Blanc) 4,748 m",
     []),
    ("Elevation - highest point", "Mount Obama 402 m", ["Mount Obama", "Mt. Obama"]),
    ("Population - total", "uninhabited", []),
    ("Population - total", "47,735,685 (2025 est.)", ["47,735,685"]),
    ("National anthem(s) - title", '"Gaumee Salaam" (National Salute)', ["Gaumee Salaam", "National Salute"]),
    ("Civil aircraft registration country code prefix", "HJ, HK", ["HJ", "HK"]),
])
def test_factbook_answers_of_hand_picked_values(field, value, expected):
    assert factbook_answers(field, value)[1] == expected


def test_answer_types_and_the_fields_probed_by_default():
    assert factbook_answers("Median age - total", "31.9 years (2024 est.)") == ("number", ["31.9", "31.9 years"])
    assert factbook_answers("Unlisted field", "Some short value; more text") == ("text", ["Some short value"])
    assert factbook_answers("Unlisted field", "1,234") == ("number", ["1,234"])  # a bare figure is a number
    assert set(DEFAULT_FIELDS) == set(FIELD_ANSWERS) - {"Capital - time difference", "Airports"}
