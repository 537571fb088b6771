"""Theory anchors: collapse recursions that have closed forms, and the Gaussian one run through the harness.

    .venv/bin/python -m rag_bench.theory.recursions   # prints simulated vs closed form, a few seconds
    from rag_bench.theory.recursions import theory_report   # or rag_bench.theory_report

Modules:

* ``recursions``: recursive Gaussian fitting and linear regression, simulated and in closed form;
* ``harness``: the Gaussian recursion through ``build_pool`` and the generation loop, against its closed form.

This package imports nothing at import time.
"""
