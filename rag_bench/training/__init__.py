"""Training: the loop every generation runs, the rows of each step, their schedule and checkpoints.

    rag-bench train --model-size small --max-minutes 10          # the Factbook, DATA_DIR/models/factbook-small
    from rag_bench.training.loop import train                  # or rag_bench.train, the same function

Modules, in the order a step uses them:

* ``loop``: ``train``: resume, forwards under the logits cap, evaluation, best and last checkpoints, DDP-ready;
* ``batches``: ``Batches``: the rows of every step by (seed, step), and the tokens trained on per kind and origin;
* ``examples``: the row kinds: packed corpus blocks, retrieval-augmented rows, the copy curriculum, fact rows;
* ``schedule``: the fused AdamW and the learning-rate schedule;
* ``checkpoints``: ``out_dir/model`` and ``out_dir/last`` written atomically, and read back.

This package imports nothing at import time; ``loop`` brings torch.
"""
