"""The collapse experiment: generations retrained on their own text, under data strategies, resumable.

    rag-bench collapse --preset quick                          # data/runs/quick-factbook; the same command resumes
    from rag_bench.collapse.run import run_collapse            # or rag_bench.run_collapse

Modules, in the order a run uses them:

* ``run``: ``run_collapse`` and the config checks of a new or resumed run;
* ``data``: the run's fixed inputs (human texts, probes, the generation-0 cache key) and small step helpers;
* ``context``: ``RunContext``, what the steps share: the run's paths, manifests and resources (generation 0, ...);
* ``steps``: ``StepRunner``, the plan of resumable steps over that context; the evaluate and report steps;
* ``train_steps``: train generation 0 (through the shared cache) and each later generation;
* ``write_steps``: a generation writes its synthetic text; the next generation's pool is built from it;
* ``buckets``: the knowledge-bucket steps after each evaluation;
* ``synthetic``: what generation n writes for generation n+1 (sampling, beam search, watermark);
* ``strategies``: replace, mix, accumulate, filter, watermark, grounded: the next generation's training pool;
* ``overlap``: the share of a pool's word 8-grams found in the human training text.

This package imports nothing at import time; ``run`` brings torch.
"""
