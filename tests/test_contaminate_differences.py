"""Paired differences of a contamination measurement: the cost of a share and the gain of a defence."""

from __future__ import annotations

from pathlib import Path

from rag_bench.contaminate.differences import cell_scores, differences, markdown
from rag_bench.records import write_jsonl


def samples(n: int = 40) -> list[dict]:
    """Generation 0 answers every probe right on the clean index and half of them at share 0.5; the trusted
    filter wins all of them back; generation 4 answers nothing at any share. As many human distractors cost
    generation 0 a quarter of the probes. Probes 0-19 are dev, 20-39 test."""
    rows = []
    for i in range(n):
        split = "dev" if i < n // 2 else "test"
        for share in (0.0, 0.5):
            for defence in ("none", "trusted"):
                right = share == 0.0 or defence == "trusted" or i % 2 == 0
                common = {"id": f"p{i}", "retriever": "bm25", "defence": defence, "share": share, "split": split,
                          "arm": "synthetic", "k": 1}
                rows.append({**common, "model_generation": 0, "exact_match": float(right)})
                rows.append({**common, "model_generation": 4, "exact_match": 0.0})
        rows.append({"id": f"p{i}", "retriever": "bm25", "defence": "none", "share": 0.5, "split": split,
                     "arm": "human", "k": 1, "model_generation": 0, "exact_match": float(i % 4 != 0)})
    return rows


def test_cells_hold_one_score_per_probe():
    cells = cell_scores(samples())
    assert len(cells) == 9 and all(len(scores) == 40 for scores in cells.values())
    assert sum(cells[(0, "bm25", "none", 0.5, "synthetic", 1)].values()) == 20
    assert len(cell_scores(samples(), split="test")[(0, "bm25", "none", 0.5, "synthetic", 1)]) == 20


def test_cost_and_gain_are_paired_differences_with_intervals(tmp_path: Path):
    path = tmp_path / "samples_grounded.jsonl"
    write_jsonl(path, samples())
    rows = differences(path)
    by = {(r["kind"], r["model_generation"], r["defence"], r["share"]): r for r in rows}
    cost = by[("cost", 0, "none", 0.5)]
    assert cost["difference"] == -0.5 and cost["low"] < -0.3 and cost["high"] < 0 and cost["excludes_zero"]
    assert cost["baseline_share"] == 0.0 and cost["probes"] == 40
    gain = by[("defence_gain", 0, "trusted", 0.5)]
    assert gain["difference"] == 0.5 and gain["excludes_zero"] and gain["baseline_defence"] == "none"
    assert gain["probes"] == 20  # the test probes only: the defences' thresholds were chosen on dev
    control = by[("control_cost", 0, "none", 0.5)]  # 0.5 with the rewrites against 0.75 with human distractors
    assert control["difference"] == -0.25 and control["baseline_arm"] == "human" and control["probes"] == 40
    assert by[("defence_vs_clean", 0, "trusted", 0.5)]["difference"] == 0.0
    flat = by[("cost", 4, "none", 0.5)]
    assert flat["difference"] == 0.0 and (flat["low"], flat["high"]) == (0.0, 0.0) and not flat["excludes_zero"]
    assert ("cost", 0, "none", 0.0) not in by  # share 0 is the baseline, not a difference
    table = markdown(rows)
    assert "| gen 0 | bm25 | 0.50 | -0.50 [" in table and "gain of trusted" in table and "*" in table
    assert markdown([]) == ""


def test_a_stored_sample_gets_the_answer_metrics_it_lacks():
    from rag_bench.contaminate.evaluate import with_answer_scores

    old = {"prediction": "The capital of Kenya is Nairobi.", "golden_answers": ["Nairobi"], "exact_match": 0.0}
    row = with_answer_scores(old)
    assert row["contains"] == 1.0 and row["exact_match"] == 0.0 and "contains" not in old
    assert differences([{**row, "id": "p", "model_generation": 0, "retriever": "bm25", "defence": "none",
                         "share": s} for s in (0.0, 0.5)], "contains")[0]["metric"] == "contains"
