"""Probes: the questions every generation is asked, their accepted answers and how often each fact occurs.

    rag-bench probes --kind factbook                       # data/probes/factbook-factbook.jsonl (+ .meta.json)
    from rag_bench.probes.build import load_probes         # or rag_bench.load_probes

Modules:

* ``build``: Factbook record-prefix probes, cloze probes for any corpus, copy probes, user QA JSONL;
* ``natural``: the same Factbook facts asked as questions a person asks (FlashRAG JSONL);
* ``question_templates``: the question of each Factbook field and the usual forms of its answers;
* ``factbook_answers``: one cleaner per Factbook field: a record value -> the answers a probe accepts;
* ``frequency``: Kandpal et al.'s co-occurrence count of a fact and its tail / torso / head bucket.

This package imports nothing at import time.
"""
