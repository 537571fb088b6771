"""Where the fresh-human control (strategy ``fresh``) takes its text from: human documents no generation trains on.

    from rag_bench.collapse.fresh import fresh_documents
    reserve = fresh_documents(records, train_ids={...}, probe_doc_ids={...}, kinds=("prose",))

Generation k >= 1 of ``fresh`` fine-tunes exactly as the run's other fixed-compute strategies do (the same init
rule, pool budget ``pool_tokens``, steps, block, learning rate and seed rule; human text in the line-end segments
of ``segment_chars`` that ``mix`` uses for its human share), but its pool is a sample of human text that is
disjoint from generation 0's training text and from every other generation's sample
(``rag_bench.collapse.budget.fresh_samples``). "Strategy minus fresh" at generation k is then the effect of who
wrote the text, with the drift of fine-tuning itself taken out.

The text held aside for it (``fresh_documents``, written once to ``RUN/data/human_fresh.jsonl``):

* documents of the corpus's training split only: never a held-out document, so never the text that chooses
  checkpoints or measures perplexity and diversity (``human_heldout.jsonl``, ``human_eval.jsonl``);
* of the run's ``kinds`` (the same form as generation 0's text: records in ``quick``, prose in ``smol``);
* minus generation 0's documents, and minus the documents the run's probes were made from (``metadata.doc_id``),
  so the control does not re-teach the probed facts;
* ignoring ``countries``: in ``quick`` (16 countries, all of their training records are generation 0's) the
  fresh text is other countries' record documents; in ``smol`` (a seeded sample of 30 prose documents) it is the
  other prose documents of the training split.

A run whose held-aside text is shorter than (generations - 1) x ``pool_tokens`` is refused before any training
(``StepRunner.check_fresh``), with the tokens needed and available.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rag_bench.eval.inputs import is_heldout_chunk
from rag_bench.records import CorpusRecord


def held_out(records: Sequence[CorpusRecord]) -> list[bool]:
    """Which records are held out: ``metadata.split == "heldout"``, or, in a corpus without splits, 5% of the
    documents by a hash of their id (the rule of rag_bench.collapse.data.prepare_inputs)."""
    has_split = any("split" in r.metadata for r in records)
    return [(r.metadata.get("split") == "heldout") if has_split else is_heldout_chunk(r.id) for r in records]


def fresh_documents(records: Sequence[CorpusRecord], *, train_ids: Collection[str], probe_doc_ids: Collection[str],
                    kinds: Collection[str] = ()) -> list[CorpusRecord]:
    """Training-split documents of ``kinds`` (empty: any) that are neither generation 0's (``train_ids``) nor a
    probed fact's (``probe_doc_ids``), in corpus order."""
    return [r for r, held in zip(records, held_out(records), strict=True)
            if not held and r.id not in train_ids and r.id not in probe_doc_ids
            and (not kinds or r.metadata.get("kind") in kinds)]
