"""Finding a run's results for the report: strategy and seed read from any folder layout.

    .venv/bin/python -m pytest tests/test_report_results.py -q

The malformed-file errors, tidy rows and pooled seeds are checked through the written report in
tests/test_report_write.py, on the same run folders (built by its ``write_gen``).
"""

from __future__ import annotations

from rag_bench.report.results import find_results
from tests.test_report_write import write_gen


def test_discovery_reads_strategy_and_seed_from_any_layout(tmp_path):
    single = tmp_path / "single"
    for generation in range(2):
        write_gen(single / f"gen_{generation}", "accumulate", generation, full=False)  # manifest names it
    assert [(e.strategy, e.seed, e.generation) for e in find_results(single)[0]] == [
        ("accumulate", None, 0), ("accumulate", None, 1)]
    nested = tmp_path / "nested"
    for seed in (3, 4):
        for generation in range(2):
            write_gen(nested / "replace" / f"seed_{seed}" / f"gen_{generation}", "replace", generation, full=False)
    write_gen(nested / "gen_0", "replace", 0, full=False)  # ignored by replace, which has its own gen_0 per seed
    (nested / "replace" / "seed_3" / "gen_1" / "model" / "gen_9" / "eval").mkdir(parents=True)  # not a generation
    assert [(e.strategy, e.seed, e.generation) for e in find_results(nested)[0]] == [
        ("replace", 3, 0), ("replace", 3, 1), ("replace", 4, 0), ("replace", 4, 1)]
