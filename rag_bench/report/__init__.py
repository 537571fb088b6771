"""The report of a collapse run, or of several: figures, CSV, report.md and report.html; the README's tables.

    rag-bench report data/runs/quick                     # writes data/runs/quick/report/
    python -m rag_bench.report.readme_tables --check     # exit 1 when a marked table (README, docs/) disagrees
    from rag_bench.report.write import write_report      # or rag_bench.write_report

Modules:

* ``results``: every ``results.json`` of a run (or of several) found and checked, and turned into tidy rows;
* ``write``: the figures, CSV, report.md and report.html of those rows, the report folder swapped in whole;
* ``ci``: paired bootstrap intervals of every figure and difference, on the test probes;
* ``summary``: the generated summary lines; ``plots``: the figures (matplotlib, Agg);
* ``readme_tables``: the result tables of README.md and docs/ from ``docs/results/`` and the check that they agree;
* ``marked_files``: which Markdown files carry marked tables, rewritten or checked together.

This package imports nothing at import time.
"""
