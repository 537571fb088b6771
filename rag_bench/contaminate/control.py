"""The human-distractor control: at each share, as many extra *human* chunks as the share adds rewrites.

    from rag_bench.contaminate.control import heldout_human, draw_distractors
    pool = heldout_human(human_chunks, excluded=probe_source_ids)
    rows = draw_distractors(answer_chunks, pool, count=900, seed=0)     # ContaminateError when too few

Contamination costs accuracy in two ways: a rewrite may carry a wrong value the reader copies, and any extra
chunk may push the true one out of the k the reader gets (crowding). The control adds the same number of
chunks written by people, so that "synthetic minus control" is the cost of the text being model-written.

The distractors are *held-out* human text: chunks of country-sections the corpus holds out of training
(``split == "heldout"`` in the Factbook) or, for a corpus without a split, the hashed 5% of
``rag_bench.eval.inputs.is_heldout_chunk``; never an answer chunk and never the source of any probe. They are
of the same form as the rewrite they stand in for: for answer chunk (country C, section S), first other
sections of C, then section S of other countries, then any chunk of the same kind (record or prose); each
held-out chunk is used once. They are added as copies (id ``distractor/<chunk id>``, ``origin: human``), so the
count matches the synthetic arm exactly; a share that needs more than exist is refused before any index is built.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document

from rag_bench.contaminate.writer import KEPT_METADATA, is_record_chunk
from rag_bench.eval.inputs import is_heldout_chunk


class ControlError(ValueError):
    """Too few held-out human chunks for the control; the message gives the counts."""


def heldout_human(human_chunks: Sequence[Document], *, excluded: Iterable[str] = ()) -> list[Document]:
    """Human chunks held out of training and of the probes (see the module docstring), in index order."""
    excluded = set(excluded)
    has_split = any("split" in c.metadata for c in human_chunks)

    def held(c: Document) -> bool:
        if has_split:
            return c.metadata.get("split") == "heldout"
        return is_heldout_chunk(c.metadata.get("chunk_id") or c.id or "")

    return [c for c in human_chunks if held(c) and (c.metadata.get("chunk_id") or c.id) not in excluded
            and c.metadata.get("origin", "human") == "human"]


def _tiers(answer: Document, candidate: Document) -> int:
    """0: same country, other section; 1: same section, other country; 2: same kind; 3: anything else."""
    a, c = answer.metadata, candidate.metadata
    if a.get("country") and a.get("country") == c.get("country") and a.get("section") != c.get("section"):
        return 0
    if a.get("section") and a.get("section") == c.get("section"):
        return 1
    return 2 if is_record_chunk(answer.page_content) == is_record_chunk(candidate.page_content) else 3


def draw_distractors(answer_chunks: Sequence[Document], pool: Sequence[Document], *, count: int,
                     seed: int = 0) -> list[dict[str, Any]]:
    """``count`` corpus rows, the i-th standing in for the rewrite of ``answer_chunks[i % C]`` (the writer's round
    order), so that the first n of them are the control of a share that adds n rewrites."""
    if count > len(pool):
        raise ControlError(f"the human-distractor control needs {count} held-out human chunks but only {len(pool)} "
                           f"exist ({len(answer_chunks)} answer chunks)")
    answer_ids = {c.metadata.get("chunk_id") or c.id for c in answer_chunks}
    rng = random.Random(seed)
    order = list(pool)
    rng.shuffle(order)
    used: set[str] = set()
    rows = []
    for i in range(count):
        answer = answer_chunks[i % len(answer_chunks)]
        choice = min((c for c in order if (c.metadata.get("chunk_id") or c.id) not in used | answer_ids),
                     key=lambda c: _tiers(answer, c))
        cid = choice.metadata.get("chunk_id") or choice.id
        used.add(cid)
        meta = {key: choice.metadata[key] for key in KEPT_METADATA if key in choice.metadata}
        meta.update(source=str(choice.metadata.get("source", "")), doc_id=f"distractor/{cid}", origin="human",
                    distractor_of=answer.metadata.get("chunk_id") or answer.id, distractor_copy_of=cid,
                    distractor_tier=_tiers(answer, choice))
        rows.append({"id": f"distractor/{cid}", "contents": choice.page_content, "metadata": meta})
    return rows
