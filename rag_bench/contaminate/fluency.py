"""How fluent a writer is, as a number: the perplexity of its rewrites under a neutral scorer.

    from rag_bench.contaminate.fluency import fluency
    fluency(scorer_lm, rewrites, answer_chunks, scorer="smollm2-135m", writer="generation 4, ...", sample=400)
    # {"writer", "scorer", "scorer_is_writer", "rewrites": {"median", "q25", "q75", "n"}, "human": {...},
    #  "ratio": median rewrite ppl / median human ppl, "unchanged": rewrites identical to their original}

The scorer is a fixed model that is not the writer (the base SmolLM2 by default; the report says when it is the
writer, which flatters the writer). The human figure is the same scorer on the answer chunks the rewrites
stand in for, so a ratio near 1 is text as predictable as the human original, well above 1 garbled text.
Stored in ``fluency.json`` beside the rewrites and read back when the rewrites are the same.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from rag_bench.records import read_json, sha256_text, write_json


def summary(values: Sequence[float]) -> dict[str, Any]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if not v.size:
        return {"median": float("nan"), "q25": float("nan"), "q75": float("nan"), "n": 0}
    return {"median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)), "q75": float(np.quantile(v, 0.75)),
            "n": int(v.size)}


def fluency(scorer_lm: Any, rewrites: Sequence[dict[str, Any]], answer_chunks: Sequence[Document], *, scorer: str,
            writer: str, scorer_is_writer: bool, sample: int = 400, seed: int = 0,
            batch_size: int = 16) -> dict[str, Any]:
    """Perplexities of a seeded sample of ``rewrites`` (corpus rows) and of the human answer chunks."""
    rows = random.Random(seed).sample(list(rewrites), min(sample, len(rewrites)))
    humans = random.Random(seed).sample(list(answer_chunks), min(sample, len(answer_chunks)))
    originals = {c.metadata.get("chunk_id"): c.page_content for c in answer_chunks}
    synthetic = scorer_lm.sequence_perplexities([r["contents"] for r in rows], batch_size=batch_size)
    human = scorer_lm.sequence_perplexities([c.page_content for c in humans], batch_size=batch_size)
    out = {"writer": writer, "scorer": scorer, "scorer_is_writer": scorer_is_writer,
           "rewrites": summary(synthetic), "human": summary(human),
           "unchanged": sum(r["contents"].strip() == originals.get(r["metadata"].get("rewrite_of"), "").strip()
                            for r in rewrites), "total_rewrites": len(rewrites)}
    out["ratio"] = out["rewrites"]["median"] / out["human"]["median"] if out["human"]["n"] else float("nan")
    return out


def cached_fluency(path: Path, load_scorer: Any, rewrites: Sequence[dict[str, Any]],
                   answer_chunks: Sequence[Document], **kwargs: Any) -> dict[str, Any]:
    """``fluency`` stored at ``path``, keyed by the rewrites and the scorer; ``load_scorer()`` only when needed."""
    key = sha256_text("\n".join([kwargs["scorer"], *(r["id"] + r["contents"] for r in rewrites)]))
    stored = read_json(path) if path.is_file() else {}
    if stored.get("key") != key:
        stored = {"key": key, **fluency(load_scorer(), rewrites, answer_chunks, **kwargs)}
        write_json(path, stored)
    return {k: v for k, v in stored.items() if k != "key"}
