"""Contaminated retrieval corpora: a human index plus text a run's generation wrote, and provenance defences.

    rag-bench contaminate data/runs/quick-factbook --gen 4 --shares 0,0.25,0.5,0.75,0.9 --limit 100

Modules, in the order data flows through them:

* ``config``: ``ContaminateConfig`` and the share list's rules;
* ``writer``: generation n rewrites the chunks that hold the probed facts, in the corpus's own form;
* ``build``: one index per share, incremental on top of a copy of the human index, resumable;
* ``defences``: retriever wrappers that drop chunks by watermark, by perplexity, or by trusted source;
* ``metrics``: the registered pure functions (synthetic share retrieved, synthetic value copied, filter P/R);
* ``evaluate``: shares x retrievers x defences x models -> results.json, samples JSONL, CSV;
* ``report``: the figure and the table (the ``rag-bench contaminate`` subcommand is ``rag_bench.cli.contaminate``).

This package imports nothing heavy at import time, so the metrics register cheaply.
"""
