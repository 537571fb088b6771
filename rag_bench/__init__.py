"""rag_bench: measure model collapse and what retrieval grounding protects, side by side.

    import rag_bench as rb
    corpus = rb.load_corpus("./docs")                                  # files -> chunks
    rb.update_index("data/indexes/docs", corpus)                       # FAISS, incremental
    retriever = rb.make_retriever(rb.load_index("data/indexes/docs").store, mode="hybrid", k=3)
    lm = rb.LM.load("data/runs/quick/gen_0/model")                     # or rb.load_model("smollm2-135m")
    rb.closed_book(lm, ["Algeria | Government | Capital:"])
    rb.grounded(lm, retriever, ["Algeria | Government | Capital:"], k=3)

The names below are the public API; the modules behind them are internal and may move.
Imports are lazy so that `rag-bench --help` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from rag_bench._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # configs
    "ConfigError": "config", "CorpusConfig": "config", "IndexConfig": "config", "ModelConfig": "config",
    "TrainConfig": "config", "DecodeConfig": "config", "EvalConfig": "config", "CollapseConfig": "config",
    # records
    "CorpusRecord": "records", "Probe": "records", "read_corpus": "records", "read_probes": "records",
    # corpus and index
    "load_corpus": "corpus.load", "CorpusError": "corpus.load",
    "update_index": "index.store", "load_index": "index.store", "load_embedder": "index.embedding",
    "IndexStoreError": "index.integrity", "make_retriever": "index.retrieve",
    # models and answers
    "LM": "lm", "train_tokenizer": "models.scratch", "load_model": "models", "render_prompt": "prompt",
    "train": "training.loop", "closed_book": "answer", "grounded": "answer", "grounded_chain": "answer",
    "Answer": "answer",
    # evaluation
    "get_metric": "eval.metrics", "list_metrics": "eval.metrics", "diversity_report": "eval.diversity",
    "build_factbook_probes": "probes.build", "build_cloze_probes": "probes.build", "load_probes": "probes.build",
    "evaluate": "eval.run",
    # experiments
    "run_collapse": "collapse.run", "write_report": "report.write", "theory_report": "theory.recursions",
}

# Every module that registers metrics, lowest first: each registers its own when imported (eval never imports
# contaminate), so the package's get_metric and list_metrics import them all first. A new metrics module goes here.
METRIC_MODULES = ("eval.metrics", "eval.diversity", "contaminate.metrics")

__all__ = sorted(_EXPORTS)

_export, __dir__ = lazy_exports(__name__, _EXPORTS, extra=("__version__",))


def __getattr__(name: str) -> Any:
    if name in ("get_metric", "list_metrics"):
        for module in METRIC_MODULES:
            importlib.import_module(f"{__name__}.{module}")
    return _export(name)
