"""Evaluation of one model: probes answered closed-book and grounded, metrics, diversity, intervals.

    rag-bench eval --model data/runs/quick-factbook/gen_0/model --probes data/probes/factbook-factbook.jsonl
    from rag_bench.eval.run import evaluate                     # or rag_bench.evaluate

Modules:

* ``run``: ``evaluate``: one model in every mode -> results.json + samples_<mode>.jsonl;
* ``scoring``: the scores of one answer, their averages by bucket, the grounded-minus-closed gaps;
* ``paths``: a run's generation, eval folder and cache, the corpus an index was built from;
* ``inputs``: the probes, retrieved contexts and human texts an evaluation needs, cached;
* ``tables``: the most-frequent-answer baseline, exact match by field, printed tables;
* ``continuations``: continuations of human prompts, their diversity and perplexity under generation 0;
* ``metrics``: accuracy, grounding and fit metrics, pure functions registered with ``higher_is_better``;
* ``diversity``: diversity metrics of generated text, registered in the same registry;
* ``buckets``: knowledge buckets (generation 0's confidence, known/unknown, frequency) and metrics by bucket;
* ``splits``: the dev/test split of probes; ``bootstrap``: paired bootstrap intervals over probes and seeds.

This package imports nothing at import time; ``run`` brings torch.
"""
