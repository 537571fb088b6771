"""The contamination tables are computed from per-probe rows: exposure, rank test, control cost, defences."""

from __future__ import annotations

import math

from rag_bench.contaminate.differences import differences
from rag_bench.contaminate.tables import all_tables, control_table, defence_table, exposure_table, fluency_table


def samples() -> list[dict]:
    rows = []
    for i in range(20):
        split = "dev" if i < 10 else "test"
        for arm, share in (("synthetic", 0.0), ("synthetic", 0.5), ("human", 0.5)):
            for k in (1, 3):
                right = share == 0.0 or (arm == "human" and i % 4 != 0) or (arm == "synthetic" and i % 2 == 0)
                synthetic = 1.0 if arm == "synthetic" and share and i % 2 else 0.0
                rows.append({"id": f"p{i}", "model_generation": 0, "retriever": "bm25", "defence": "none",
                             "share": share, "arm": arm, "k": k, "split": split, "exact_match": float(right),
                             "synthetic_retrieved": synthetic / k, "exposure_ceiling": 1 / k if share else 0.0,
                             "normalised_exposure": synthetic if share and arm == "synthetic" else math.nan})
        rows.append({"id": f"p{i}", "model_generation": 0, "retriever": "bm25", "defence": "trusted-4", "share": 0.5,
                     "arm": "synthetic", "k": 1, "split": split, "exact_match": 1.0, "synthetic_retrieved": 0.0})
    return rows


RANKS = [{"retriever": "bm25", "share": 0.5, "id": f"p{i}", "rewrite_higher": v}
         for i, v in enumerate([1.0] * 3 + [0.0] * 7 + [None] * 2)]
FILTERS = [{"share": 0.5, "defence": "trusted-4", "retriever": "bm25", "precision": 1.0, "precision_ci": [0.8, 1.0],
            "recall": 1.0, "recall_ci": [0.7, 1.0], "recall_watermarked": 1.0, "human_dropped": 0.0}]


def test_exposure_table_normalises_and_runs_the_sign_test():
    lines = exposure_table(samples(), RANKS)
    assert lines[0].startswith("| retriever | share | top-1 synthetic / ceiling = normalised | top-3")
    [row] = lines[2:]
    assert row.startswith("| bm25 | 0.50 | 0.50 / 1.00 = 0.50 | 0.17 / 0.33 = 0.50 | 0.30 [0.07, 0.65] | 10 (2) |")


def test_a_probe_whose_answer_chunk_has_no_rewrite_in_the_index_makes_no_pair():
    # at a share below 0.5 most answer chunks have no rewrite; an absent one is not "ranked below its original"
    absent = [{"retriever": "bm25", "share": 0.5, "id": f"q{i}", "rewrites": 0, "rewrite_higher": 0.0}
              for i in range(30)]
    [row] = exposure_table(samples(), RANKS + absent)[2:]
    assert "| 0.30 [0.07, 0.65] | 10 (2) |" in row


def test_control_and_defence_tables_come_from_paired_differences():
    gaps = differences(samples())
    lines = control_table(gaps)
    assert "k=1: synthetic - human" in lines[0]
    row = next(line for line in lines if line.startswith("| gen 0 | bm25 | 0.50 |"))
    cells = [c.strip() for c in row.split("|")[4:-1]]
    assert cells[0].startswith("-0.50 [") and cells[0].endswith("*")  # cost against the clean index
    assert cells[1].startswith("-0.25 [")  # the rewrites cost 0.25 more than as many human chunks
    [defence] = defence_table(FILTERS, gaps)[2:]
    assert defence.startswith("| bm25 | 0.50 | trusted-4 | 1.00 [0.80, 1.00] | 1.00 [0.70, 1.00] | 1.00 | 0.00 |")
    assert "+0.50 [" in defence  # the gain, over the 10 test probes


def test_fluency_table_and_all_tables():
    results = {"fluency": {"writer": "generation 1, sampling at temperature 1", "scorer": "gen0",
                           "scorer_is_writer": False, "rewrites": {"median": 109.3, "q25": 80.0, "q75": 150.0, "n": 15},
                           "human": {"median": 49.4, "n": 5}, "ratio": 2.21, "unchanged": 0, "total_rewrites": 15},
               "filters": FILTERS}
    [row] = fluency_table(results)[2:]
    assert row == "| generation 1, sampling at temperature 1 | gen0 | 109.3 [80.0, 150.0] (n 15) | 49.4 (n 5) | 2.21 " \
                  "| 0 of 15 |"
    text = all_tables(results, samples(), RANKS, "exact_match")
    assert text.count("### ") == 4 and "Defences on the test probes" in text
    assert fluency_table({}) == [] and exposure_table([], []) == []
