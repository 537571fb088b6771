"""Natural-language Factbook probes: questions a person asks ("What is the capital of Kenya?"), FlashRAG QA JSONL.

    rag-bench probes --kind natural                       # data/probes/factbook-natural.jsonl (+ .meta.json)
    rag-bench probes --kind natural --limit 2000 --seed 1

    from rag_bench.probes.natural import build_natural_probes
    probes, skipped = build_natural_probes("data/corpora/factbook/facts.jsonl", chunks, limit=1500)

Each line is FlashRAG's QA format, ``{"id", "question", "golden_answers", "metadata"}``; ``read_probes`` reads
it as it reads the record-prefix probes (``question`` in place of ``prompt``). The facts, their source chunks,
their cleaned answers and their corpus frequency buckets are those of the record-prefix probes
(``rag_bench.probes.build``), so the two kinds ask about the same facts; only the question and the accepted forms of
the answer differ (``rag_bench.probes.question_templates``). A pretrained model answers them through its chat template
(closed-book: the question alone; grounded: passages, then the question); the record-prefix probes stay for the
models trained here, which never saw a question.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from rag_bench.probes.build import _factbook_probes, chunks_hash, meta_path, summarize
from rag_bench.probes.frequency import BUCKET_RULE, FREQUENCY_DEFINITION
from rag_bench.probes.question_templates import NATURAL_FIELDS, QUESTIONS, answer_start, ask, usual_forms
from rag_bench.records import Probe, sha256_file, write_json, write_jsonl

DEFAULT_LIMIT = 1500  # a seeded sample: enough for terciles of 500 and a 95% interval of about +-0.04 on all of them
PROMPT_FORMAT = "question"  # metadata.prompt_format: a question to answer, not a record prefix to continue


def natural_probe(record: Probe) -> Probe:
    """The question form of a record-prefix probe of ``rag_bench.probes.build`` (same id suffix, facts and buckets)."""
    meta = record.metadata
    field = meta["field"]
    template, _, answer_type = QUESTIONS[field]
    golden = list(record.golden_answers)
    extra = usual_forms(answer_type, meta.get("frequency_answer") or golden[0], meta["value"])  # with its unit
    return Probe(id="natural/" + record.id.split("/", 1)[1], prompt=ask(field, meta["country"]),
                 golden_answers=tuple(dict.fromkeys([*golden, *extra])),
                 metadata={**meta, "kind": "natural", "answer_type": answer_type, "prompt_format": PROMPT_FORMAT,
                           "record_prefix": record.prompt, "question_template": template,
                           "answer_start": answer_start(field, meta["country"])})


def build_natural_probes(facts_path: str | Path, chunks: Sequence[Document], *,
                         fields: Sequence[str] = NATURAL_FIELDS, split: str = "train",
                         limit: int | None = DEFAULT_LIMIT, seed: int = 0,
                         thresholds: dict[str, int] | None = None) -> tuple[list[Probe], Counter]:
    """Questions about a seeded sample of ``limit`` facts of ``fields``; returns the probes and what was left out."""
    unknown = [f for f in fields if f not in QUESTIONS]
    if unknown:
        raise ValueError(f"no question template for the field {unknown[0]!r}; fields with one: {list(QUESTIONS)}")
    records, skipped = _factbook_probes(facts_path, chunks, fields=fields, split=split, limit=limit, seed=seed,
                                        thresholds=thresholds)
    return [natural_probe(p) for p in records], skipped


def flashrag_row(probe: Probe) -> dict[str, Any]:
    """FlashRAG's QA line: the question under ``question``."""
    return {"id": probe.id, "question": probe.prompt, "golden_answers": list(probe.golden_answers),
            "metadata": probe.metadata}


def make_natural_probe_file(chunks: Sequence[Document], out: str | Path, *, facts_path: str | Path,
                            fields: Sequence[str] = NATURAL_FIELDS, split: str = "train",
                            limit: int | None = DEFAULT_LIMIT, seed: int = 0,
                            thresholds: dict[str, int] | None = None,
                            index_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``out`` and its sidecar ``<out>.meta.json`` (as ``probes.make_probe_file`` does); return the sidecar."""
    started = time.perf_counter()
    if not Path(facts_path).is_file():
        raise FileNotFoundError(f"{facts_path}: facts.jsonl not found; build it with `rag-bench factbook`")
    probes, skipped = build_natural_probes(facts_path, chunks, fields=fields, split=split, limit=limit, seed=seed,
                                           thresholds=thresholds)
    if not probes:
        raise ValueError(f"no natural probes could be built from {facts_path} and {len(chunks)} chunks")
    write_jsonl(out, (flashrag_row(p) for p in probes))
    arguments = {"fields": list(fields), "split": split, "limit": limit, "seed": seed, "thresholds": thresholds,
                 "facts": str(facts_path), "facts_sha256": sha256_file(facts_path),
                 "questions": {f: QUESTIONS[f][0] for f in fields},
                 "golden_answers": "cleaned answers, the value verbatim, then usual forms of figures and units"}
    sidecar = {"kind": "natural", "format": "flashrag", "path": str(out), "builder_args": arguments,
               "skipped": dict(sorted(skipped.items())), "chunks": len(chunks), "chunks_sha256": chunks_hash(chunks),
               "index": index_info or {}, "frequency_definition": FREQUENCY_DEFINITION, "bucket_rule": BUCKET_RULE,
               **summarize(probes), "seconds": round(time.perf_counter() - started, 2)}
    write_json(meta_path(out), sidecar)
    return sidecar
