"""Fact frequency (Kandpal et al. 2023): in how many corpus chunks a subject and an answer occur together,
and the tail / torso / head buckets those counts fall into.

    from rag_bench.probes.frequency import ChunkCooccurrence, assign_buckets
    counter = ChunkCooccurrence(chunks)                          # LangChain Documents, e.g. load_index(...).chunks
    counter.count("Algeria", "Algiers")                          # chunks holding both, as whole words
    counter.count("Guinea", "Gabon", exclude=["Equatorial Guinea"])
    assign_buckets(probes)                                       # metadata["frequency"] -> metadata["bucket"]

A collapse run recounts its probes over the text it trains on (``recount_over_texts``): what a model can have
seen is its training text, not the whole index. Matching is case-insensitive, with whitespace normalised, and
whole words only ("Algiers" is not found in "Algiersville"). The probe builders of ``rag_bench.probes.build`` set
each probe's frequency with it; used by ``rag-bench probes``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from langchain_core.documents import Document

from rag_bench.records import Probe

BUCKETS = ("tail", "torso", "head")
BUCKET_RULE = "tail: frequency <= tail_max; torso: tail_max < frequency <= torso_max; head: above"
FREQUENCY_DEFINITION = ("chunks in which the subject and the answer (metadata.frequency_answer) occur together as "
                        "whole words, case-insensitive, whitespace normalised (Kandpal et al. 2023)")
WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    return " ".join(text.casefold().split())


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """``phrase`` as whole words: not preceded or followed by a word character."""
    return re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)")


class ChunkCooccurrence:
    """Whole-word phrase search over chunks, through an inverted index of word tokens.

    ``count(subject, answer)`` intersects the posting sets of the phrases' tokens, then checks each
    phrase as whole words on the few candidate chunks, so thousands of probes over ~25k chunks take seconds.
    ``exclude`` phrases are blanked before the subject is searched: "Guinea" must not match "Equatorial Guinea".
    """

    def __init__(self, chunks: Sequence[Document]):
        self.texts = [normalize_text(c.page_content) for c in chunks]
        self.postings: dict[str, set[int]] = defaultdict(set)
        for i, text in enumerate(self.texts):
            for token in set(WORD.findall(text)):
                self.postings[token].add(i)
        self._cache: dict[tuple[str, tuple[str, ...]], frozenset[int]] = {}

    def chunks_with(self, phrase: str, exclude: Sequence[str] = ()) -> frozenset[int]:
        key = (normalize_text(phrase), tuple(normalize_text(e) for e in exclude))
        if key not in self._cache:
            tokens = WORD.findall(key[0])
            found: set[int] = set()
            if tokens:
                posting = sorted((self.postings.get(t, set()) for t in set(tokens)), key=len)
                pattern = phrase_pattern(key[0])
                masks = [phrase_pattern(e) for e in key[1] if key[0] in e]
                for i in set.intersection(*posting):
                    text = self.texts[i]
                    for mask in masks:
                        text = mask.sub(" ", text)
                    if pattern.search(text):
                        found.add(i)
            self._cache[key] = frozenset(found)
        return self._cache[key]

    def count(self, subject: str | Sequence[str], answer: str, exclude: Sequence[str] = ()) -> int:
        """Chunks holding every subject phrase and the answer, each as whole words."""
        subjects = [subject] if isinstance(subject, str) else list(subject)
        sets = [self.chunks_with(s, exclude) for s in subjects] + [self.chunks_with(answer)]
        return len(frozenset.intersection(*sets))


def frequency_thresholds(frequencies: Sequence[int]) -> dict[str, int]:
    """Cut points among the observed values that make tail / torso / head as equal in size as possible.

    tail: frequency <= tail_max; torso: tail_max < frequency <= torso_max; head: above. Without ties these are
    the tertiles; with many ties (most Factbook facts occur in one chunk) the tertiles would coincide and leave a
    bucket empty, so the pair minimising the squared deviation of the bucket sizes from n/3 is chosen instead.
    """
    if not frequencies:
        return {"tail_max": 0, "torso_max": 0}
    values, counts = np.unique(np.asarray(frequencies), return_counts=True)
    cumulative, n = np.cumsum(counts), len(frequencies)
    best = None
    for i in range(len(values)):
        for j in range(i, len(values)):
            sizes = (cumulative[i], cumulative[j] - cumulative[i], n - cumulative[j])
            cost = sum((size - n / 3) ** 2 for size in sizes)
            if best is None or cost < best[0]:
                best = (cost, i, j)
    return {"tail_max": int(values[best[1]]), "torso_max": int(values[best[2]])}


def bucket_of(frequency: int, thresholds: dict[str, int]) -> str:
    if frequency <= thresholds["tail_max"]:
        return "tail"
    return "torso" if frequency <= thresholds["torso_max"] else "head"


def assign_buckets(probes: list[Probe], thresholds: dict[str, int] | None = None) -> list[Probe]:
    """Set ``bucket`` and ``bucket_thresholds`` from ``frequency`` (tertiles unless thresholds are given)."""
    thresholds = thresholds or frequency_thresholds([p.metadata["frequency"] for p in probes])
    for probe in probes:
        probe.metadata.update(bucket=bucket_of(probe.metadata["frequency"], thresholds),
                              bucket_thresholds=dict(thresholds))
    return probes


def recount_over_texts(rows: list[dict], texts: Sequence[str], *, chunk_chars: int = 500) -> tuple[list[dict], dict]:
    """Probe rows (JSON dicts) with ``frequency`` and ``bucket`` recounted over ``texts`` cut into chunks of about
    ``chunk_chars`` characters at line ends; the index-wide values are kept as ``frequency_index``/``bucket_index``.

    Returns the rows and the new thresholds. A subject that is part of a longer one ("Niger" in "Nigeria") is
    blanked out of the longer name first, as the probe builder does.
    """
    from rag_bench.training.examples import text_segments

    counter = ChunkCooccurrence([Document(page_content=c) for c in text_segments(texts, chunk_chars)])
    subjects = sorted({str(r["metadata"].get("subject", "")) for r in rows} - {""})
    counts = []
    for row in rows:
        meta = row["metadata"]
        subject, answer = meta.get("subject"), meta.get("frequency_answer") or row["golden_answers"][0]
        longer = [s for s in subjects if subject and s != subject and subject.casefold() in s.casefold()]
        counts.append(counter.count(subject, answer, exclude=longer) if subject else 0)
    thresholds = frequency_thresholds(counts)
    out = []
    for row, count in zip(rows, counts, strict=True):
        meta = dict(row["metadata"])
        meta.update(frequency_index=meta.get("frequency"), bucket_index=meta.get("bucket"), frequency=count,
                    bucket=bucket_of(count, thresholds), bucket_thresholds=dict(thresholds),
                    frequency_over="the run's human training text")
        out.append({**row, "metadata": meta})
    return out, thresholds
