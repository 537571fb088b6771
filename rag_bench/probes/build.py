"""Probe builders: Factbook facts, generic cloze probes for any corpus, user QA JSONL; fact frequency buckets.

    rag-bench probes --kind factbook                       # data/probes/factbook-factbook.jsonl (+ .meta.json)
    rag-bench probes --kind cloze --name acme --limit 500  # any corpus ingested with `rag-bench ingest`

A probe is a prompt the model continues and the answers it may give (QA JSONL, ``rag_bench.records.Probe``).
Factbook probes use the exact record prefix the generation-0 LM was trained on (``Algeria | Government |
Capital:``); cloze probes use a sentence prefix that stops right before a salient span (a number, a proper noun
or a rare term). Each probe carries its ``source_chunk_id``, so a grounded model could answer it in principle.

Fact frequency follows Kandpal et al. 2023 ("Large Language Models Struggle to Learn Long-Tail Knowledge"):
the number of corpus chunks in which the subject and the answer occur together, as whole words, case-insensitive,
with whitespace normalised, counted by ``rag_bench.probes.frequency``. The probes are split into tail / torso / head
buckets of sizes as equal as the ties allow; the thresholds are stored in every probe's metadata and in the sidecar
``<probes>.meta.json``, which also holds the counts, the builder's arguments and the facts and chunk hashes.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document

from rag_bench.probes.factbook_answers import DEFAULT_FIELDS, factbook_answers
from rag_bench.probes.frequency import (
    BUCKET_RULE,
    BUCKETS,
    FREQUENCY_DEFINITION,
    WORD,
    ChunkCooccurrence,
    assign_buckets,
    normalize_text,
    phrase_pattern,
)
from rag_bench.prompt import PASSAGE_SEPARATOR
from rag_bench.records import (
    Probe,
    RecordError,
    iter_jsonl,
    read_jsonl,
    read_probes,
    sha256_file,
    sha256_text,
    write_json,
    write_jsonl,
)
from rag_bench.training.examples import CopyTask, record_lines

EXCLUDED_CODES = frozenset({"xx", "ee"})  # World and European Union: aggregates, not countries


# ---------------------------------------------------------------------------------------
# Factbook probes


def build_factbook_probes(facts_path: str | Path, chunks: Sequence[Document], *, fields: Sequence[str] = DEFAULT_FIELDS,
                          split: str = "train", limit: int | None = None, seed: int = 0,
                          thresholds: dict[str, int] | None = None) -> list[Probe]:
    """Probes from ``facts.jsonl``: prompt = the record prefix, answers = the cleaned value, then the value verbatim
    (a model that writes the record's whole value, "47,532,318 (2025 est.)", answers correctly too).

    ``split`` is "train" (closed-book can only know what it trained on), "heldout" or "all"; ``limit`` keeps a
    seeded random sample. Facts whose line is in no chunk, or whose value is not short, are left out.
    """
    return _factbook_probes(facts_path, chunks, fields=fields, split=split, limit=limit, seed=seed,
                            thresholds=thresholds)[0]


def _factbook_probes(facts_path: str | Path, chunks: Sequence[Document], *, fields: Sequence[str], split: str,
                     limit: int | None, seed: int, thresholds: dict[str, int] | None) -> tuple[list[Probe], Counter]:
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be train, heldout or all, got {split!r}")
    by_doc: dict[str, list[Document]] = defaultdict(list)
    for chunk in chunks:
        by_doc[chunk.metadata.get("doc_id", "")].append(chunk)
    wanted, skipped, probes, seen, countries = set(fields), Counter(), [], set(), set()
    for number, fact in enumerate(read_jsonl(facts_path), start=1):
        countries.add(fact.get("country", ""))
        if fact.get("field") not in wanted or fact.get("country_code") in EXCLUDED_CODES:
            continue
        if split != "all" and fact.get("split") != split:
            skipped["other split"] += 1
            continue
        try:
            prefix, value, country = fact["record_prefix"], fact["value"], fact["country"]
        except KeyError as exc:
            raise ValueError(f"{facts_path}:{number}: a fact needs {exc.args[0]!r}") from None
        answer_type, answers = factbook_answers(fact["field"], value)
        if not answers:
            skipped["value not short"] += 1
            continue
        line = f"\n{prefix} {value}\n"
        source = next((c for c in by_doc.get(fact.get("doc_id", ""), ()) if line in f"\n{c.page_content}\n"), None)
        if source is None or prefix in seen:
            skipped["line in no chunk" if source is None else "duplicate prefix"] += 1
            continue
        if not phrase_pattern(normalize_text(answers[0])).search(normalize_text(value)):
            skipped["answer not whole words of the value"] += 1
            continue
        seen.add(prefix)
        probes.append(Probe(
            id=f"factbook/{fact.get('country_code', '')}/{_slug(fact['section'])}/{_slug(fact['field'])}",
            prompt=prefix, golden_answers=tuple(dict.fromkeys([*answers, " ".join(value.split())])),
            metadata={"kind": "factbook", "subject": country, "country": country,
                      "country_code": fact.get("country_code"), "section": fact["section"], "field": fact["field"],
                      "answer_type": answer_type, "value": value, "split": fact.get("split"),
                      "frequency_answer": _frequency_answer(answer_type, answers),
                      "source_chunk_id": source.metadata["chunk_id"], "doc_id": fact.get("doc_id")}))
    probes = _sample(probes, limit, seed)
    counter = ChunkCooccurrence(chunks)
    for probe in probes:
        name = probe.metadata["country"]
        longer = sorted(c for c in countries if c != name and name.casefold() in c.casefold())
        probe.metadata["frequency"] = counter.count(name, probe.metadata["frequency_answer"], exclude=longer)
    return assign_buckets(probes, thresholds), skipped


def _frequency_answer(answer_type: str, answers: list[str]) -> str:
    """The form counted in the corpus: a figure with its unit ("225 km", not "225", which occurs by chance)."""
    with_unit = [a for a in answers[1:] if a.startswith(answers[0] + " ")]
    return with_unit[0] if answer_type == "number" and with_unit else answers[0]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _sample(probes: list[Probe], limit: int | None, seed: int) -> list[Probe]:
    """A seeded sample that keeps the input order, so a given seed always gives the same file."""
    if limit is None or limit >= len(probes):
        return probes
    keep = set(random.Random(seed).sample(range(len(probes)), limit))
    return [p for i, p in enumerate(probes) if i in keep]


# ---------------------------------------------------------------------------------------
# Cloze probes for any corpus

_STOPWORDS = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "also", "an", "and", "any", "are", "as", "at", "be",
    "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "each",
    "for", "from", "further", "had", "has", "have", "he", "her", "here", "his", "how", "i", "if", "in", "into", "is",
    "it", "its", "itself", "more", "most", "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other",
    "our", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "would", "you", "your"
})
_SENTENCE = re.compile(r"(?:^|(?<=[.!?]\s))([A-Z][^\n]*?[.!?])(?=\s|$)", re.M)
_NUMBER_SPAN = re.compile(r"(?<![\w.,-])\d[\d,]*(?:\.\d+)?%?(?![\w%]|[.,]\d)")
_PROPER_SPAN = re.compile(r"(?<![\w'’.-])[A-Z][\w-]*[a-zA-Z](?: [A-Z][\w-]*[a-zA-Z])*(?![\w'’-]|\.\w)")
_TERM_SPAN = re.compile(r"(?<![\w'-])[a-z][a-z-]{5,}(?![\w'-])")


def build_cloze_probes(chunks: Sequence[Document], *, limit: int | None = 1000, seed: int = 0,
                       min_prefix_words: int = 5, max_span_words: int = 5, rare_max_chunks: int = 2,
                       thresholds: dict[str, int] | None = None) -> list[Probe]:
    """Cloze probes: a sentence prefix that ends right before a salient span, which is the answer.

    Salient spans are numbers, proper nouns (capitalised words not at the sentence start) and rare terms
    (a lowercase word of 6+ letters in at most ``rare_max_chunks`` chunks). Each sentence gives at most one
    probe, its last salient span after ``min_prefix_words`` words that the prefix does not already contain.
    The subject stands in for Kandpal's subject entity: the rarest (fewest chunks) capitalised word of the prefix,
    the most specific name in it ("Karzai" rather than "Afghanistan"); without one, the rarest content word.
    """
    counter = ChunkCooccurrence(chunks)
    candidates: dict[tuple[str, str], Probe] = {}
    for chunk in chunks:
        text, meta = chunk.page_content, chunk.metadata
        for sentence in _SENTENCE.finditer(text):
            if sentence.start() == 0 and meta.get("start_index", 0) > 0:
                continue  # may be the tail of a sentence cut by the chunker
            probe = _cloze_from_sentence(sentence[1], sentence.start(1), chunk, counter, min_prefix_words,
                                         max_span_words, rare_max_chunks)
            if probe is not None:
                candidates.setdefault((probe.prompt, probe.golden_answers[0]), probe)
    probes = _sample(list(candidates.values()), limit, seed)
    for probe in probes:
        probe.metadata["frequency"] = counter.count(probe.metadata["subject"], probe.golden_answers[0])
        probe.metadata["frequency_answer"] = probe.golden_answers[0]
    return assign_buckets(probes, thresholds)


def _cloze_from_sentence(sentence: str, offset: int, chunk: Document, counter: ChunkCooccurrence,
                         min_prefix_words: int, max_span_words: int, rare_max_chunks: int) -> Probe | None:
    spans = [(m.start(), m.group(), "number") for m in _NUMBER_SPAN.finditer(sentence)]
    spans += [(m.start(), m.group(), "proper_noun") for m in _PROPER_SPAN.finditer(sentence) if m.start() > 0]
    spans += [(m.start(), m.group(), "rare_term") for m in _TERM_SPAN.finditer(sentence)
              if len(counter.postings.get(m.group(), ())) <= rare_max_chunks]
    for start, span, span_type in sorted(spans, reverse=True):
        prompt = sentence[:start].rstrip()
        words = WORD.findall(prompt.casefold())
        if (len(words) < min_prefix_words or len(span.split()) > max_span_words
                or phrase_pattern(normalize_text(span)).search(normalize_text(prompt))):
            continue
        content = [w for w in dict.fromkeys(words) if len(w) >= 3 and w not in _STOPWORDS and not w.isdigit()]
        if not content:
            continue
        capitalised = {w.casefold() for w in WORD.findall(prompt) if w[0].isupper()}
        names = [w for w in content if w in capitalised]
        subject = min(names or content, key=lambda w: (len(counter.postings.get(w, ())), words.index(w)))
        chunk_id = chunk.metadata["chunk_id"]
        return Probe(id=f"cloze/{chunk_id}/{offset + start}", prompt=prompt, golden_answers=(span,),
                     metadata={"kind": "cloze", "subject": subject, "field": span_type,
                               "answer_type": "number" if span_type == "number" else "text",
                               "source_chunk_id": chunk_id, "source": chunk.metadata.get("source"),
                               "doc_id": chunk.metadata.get("doc_id"), "char_start": offset + start})
    return None


# ---------------------------------------------------------------------------------------
# Files: the probes and their sidecar


def build_copy_probes(chunks: Sequence[Document], *, limit: int = 500, seed: int = 0, max_lines: int = 6,
                      max_distractors: int = 2) -> list[Probe]:
    """Invented-entity probes: can the model read a fact it cannot know from the passages in its prompt?

    Each prompt holds a window of 2-``max_lines`` record lines of a real entity, renamed to an invented
    one with every value changed (another entity's value for the field, or an invented one of the same
    shape), and up to ``max_distractors`` other such passages; the question is one line's prefix. Score
    them closed-book (``rag-bench eval --modes closed``): the passages are already in the prompt.
    """
    records = record_lines(chunk.page_content for chunk in chunks)
    if not records:
        raise ValueError("copy probes need record lines 'Entity | Section | Field: value'; none in the chunks")
    task = CopyTask(records, seed=seed, min_lines=2, max_lines=max_lines, max_distractors=max_distractors,
                    p_invented=1.0, max_value_chars=40)
    probes = []
    for i in range(limit):
        prompt, value, passages = task.probe(invented=True)
        entity, section, field = prompt.rsplit(PASSAGE_SEPARATOR, 1)[1][:-1].split(" | ", 2)
        target = next(p for p in passages if f"{entity} | {section} | {field}: {value}" in p)
        probes.append(Probe(id=f"copy/{i}", prompt=prompt, golden_answers=(value,), metadata={
            "subject": entity, "section": section, "field": field, "frequency": 0, "answer_type": "text",
            "passages": len(passages), "target_lines": target.count("\n") + 1}))
    return probes


def load_probes(path: str | Path) -> list[Probe]:
    """A user's QA JSONL, accepted as it is (``read_probes``); probe ids must be unique."""
    probes = read_probes(path)
    first_line: dict[str, int] = {}
    for (number, _), probe in zip(iter_jsonl(path), probes, strict=True):
        if probe.id in first_line:
            raise RecordError(f"{path}:{number}: probe id {probe.id!r} already used on line {first_line[probe.id]}")
        first_line[probe.id] = number
    return probes


def meta_path(probes_path: str | Path) -> Path:
    """``data/probes/x.jsonl`` -> ``data/probes/x.meta.json``."""
    path = Path(probes_path)
    return path.with_name(path.stem + ".meta.json")


def summarize(probes: Sequence[Probe]) -> dict[str, Any]:
    """Counts by bucket, field and answer type, subjects covered, thresholds and frequency quantiles."""
    freqs = [p.metadata.get("frequency", 0) for p in probes]
    thresholds = probes[0].metadata.get("bucket_thresholds") if probes else None
    return {
        "probes": len(probes),
        "buckets": {b: sum(p.metadata.get("bucket") == b for p in probes) for b in BUCKETS},
        "bucket_thresholds": thresholds,
        "bucket_rule": BUCKET_RULE,
        "frequency": {"min": min(freqs), "median": float(np.median(freqs)), "max": max(freqs)} if freqs else {},
        "fields": dict(sorted(Counter(p.metadata.get("field", "") for p in probes).items())),
        "answer_types": dict(sorted(Counter(p.metadata.get("answer_type", "") for p in probes).items())),
        "subjects": len({p.metadata.get("subject") for p in probes}),
        "countries": sorted({p.metadata["country"] for p in probes if "country" in p.metadata}),
    }


def chunks_hash(chunks: Iterable[Document]) -> str:
    return sha256_text("\n".join(sorted(c.metadata["chunk_id"] for c in chunks)))


def make_probe_file(kind: str, chunks: Sequence[Document], out: str | Path, *, facts_path: str | Path | None = None,
                    fields: Sequence[str] = DEFAULT_FIELDS, split: str = "train", limit: int | None = None,
                    seed: int = 0, thresholds: dict[str, int] | None = None,
                    index_info: dict[str, Any] | None = None, copy_shape: tuple[int, int] = (6, 2)) -> dict[str, Any]:
    """Build probes of ``kind`` ("factbook", "cloze" or "copy"), write ``out`` and its sidecar; return the sidecar.

    ``thresholds`` (``{"tail_max": a, "torso_max": b}``) fixes the buckets; by default they are chosen from
    the frequencies (see ``rag_bench.probes.frequency.frequency_thresholds``). ``copy_shape`` is (lines per passage
    at most, distractor passages at most) of copy probes.
    """
    started = time.perf_counter()
    if kind == "factbook":
        if facts_path is None or not Path(facts_path).is_file():
            raise FileNotFoundError(f"{facts_path}: facts.jsonl not found; build it with `rag-bench factbook`")
        probes, skipped = _factbook_probes(facts_path, chunks, fields=fields, split=split, limit=limit, seed=seed,
                                           thresholds=thresholds)
        arguments = {"fields": list(fields), "split": split, "limit": limit, "seed": seed, "thresholds": thresholds,
                     "facts": str(facts_path), "facts_sha256": sha256_file(facts_path),
                     "golden_answers": "cleaned answers, then the value verbatim"}
    elif kind == "copy":
        probes, skipped = build_copy_probes(chunks, limit=limit or 500, seed=seed, max_lines=copy_shape[0],
                                            max_distractors=copy_shape[1]), Counter()
        arguments = {"limit": limit or 500, "seed": seed, "max_lines": copy_shape[0], "max_distractors": copy_shape[1]}
    elif kind == "cloze":
        probes, skipped = build_cloze_probes(chunks, limit=limit, seed=seed, thresholds=thresholds), Counter()
        arguments = {"limit": limit, "seed": seed, "thresholds": thresholds}
    else:
        raise ValueError(f"unknown probe kind {kind!r}; choose factbook, cloze or copy")
    if not probes:
        raise ValueError(f"no {kind} probes could be built from {len(chunks)} chunks")
    write_jsonl(out, probes)
    sidecar = {"kind": kind, "path": str(out), "builder_args": arguments, "skipped": dict(sorted(skipped.items())),
               "chunks": len(chunks), "chunks_sha256": chunks_hash(chunks), "index": index_info or {},
               "frequency_definition": FREQUENCY_DEFINITION,
               **summarize(probes), "seconds": round(time.perf_counter() - started, 2)}
    write_json(meta_path(out), sidecar)
    return sidecar
