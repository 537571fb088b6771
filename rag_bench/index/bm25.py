"""bm25 statistics kept with the index: computed once at ingest, sealed in the manifest, read back in milliseconds.

    rag-bench ingest ./docs --name acme      # writes versions/<v>/bm25.npz beside index.faiss, sha256 in the manifest
    rag-bench ask "How quickly must on-call acknowledge a page?" --name acme   # reads it instead of re-counting

    from rag_bench.index.bm25 import Bm25Stats
    stats = Bm25Stats.from_texts(texts)           # rank_bm25's BM25Okapi, its statistics as flat arrays
    stats.save(path); Bm25Stats.load(path)        # a plain .npz, read with allow_pickle=False
    stats.get_scores(bm25_tokens("capital of Kenya"))   # the same floats as BM25Okapi.get_scores

Re-counting the Factbook's 24k chunks took seconds on every `ask`; the stored arrays are a term-by-chunk matrix
(CSR: for each term, the chunks holding it and how often), the chunk lengths, the idf of each term and the
average length. The idf values are BM25Okapi's own (its floor for common terms included), so scores and ranks
are identical to building BM25Okapi in memory. Nothing is pickled: the vocabulary is a unicode array.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

BM25_FILE = "bm25.npz"  # in a version folder; its sha256 is in the manifest like index.faiss's
BM25_FORMAT = "rag_bench.bm25/1"
K1, B = 1.5, 0.75  # BM25Okapi's defaults, which the index has always used
_WORD = re.compile(r"\w+", re.UNICODE)


def bm25_tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclasses.dataclass(frozen=True, kw_only=True)
class Bm25Stats:
    """BM25Okapi's statistics as arrays: enough to score a query without the chunks' text."""

    vocab: np.ndarray  # terms, unicode
    idf: np.ndarray  # float64 per term, as BM25Okapi computed it
    term_ptr: np.ndarray  # int64, len(vocab) + 1: the chunks of term t are docs[term_ptr[t]:term_ptr[t + 1]]
    docs: np.ndarray  # int32 chunk rows (FAISS row order)
    tf: np.ndarray  # float64 occurrences of the term in each of those chunks
    doc_len: np.ndarray  # float64 tokens per chunk
    avgdl: float  # BM25Okapi's average chunk length

    @classmethod
    def from_texts(cls, texts: list[str]) -> Bm25Stats:
        from rank_bm25 import BM25Okapi

        okapi = BM25Okapi([bm25_tokens(t) for t in texts])
        vocab = list(okapi.idf)
        column = {term: i for i, term in enumerate(vocab)}
        postings: list[list[tuple[int, int]]] = [[] for _ in vocab]
        for row, freqs in enumerate(okapi.doc_freqs):
            for term, count in freqs.items():
                postings[column[term]].append((row, count))
        ptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([len(p) for p in postings])
        flat = [pair for posting in postings for pair in posting]
        return cls(vocab=np.asarray(vocab, dtype=str), idf=np.asarray([okapi.idf[t] for t in vocab], dtype=np.float64),
                   term_ptr=ptr, docs=np.asarray([r for r, _ in flat], dtype=np.int32),
                   tf=np.asarray([c for _, c in flat], dtype=np.float64),
                   doc_len=np.asarray(okapi.doc_len, dtype=np.float64), avgdl=float(okapi.avgdl))

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, format=np.asarray(BM25_FORMAT), vocab=self.vocab, idf=self.idf, term_ptr=self.term_ptr,
                     docs=self.docs, tf=self.tf, doc_len=self.doc_len, avgdl=np.asarray(self.avgdl))

    @classmethod
    def load(cls, path: Path) -> Bm25Stats:
        """Read a saved file (never unpickling); a foreign or inconsistent one is a ValueError naming it."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != BM25_FORMAT:
                    raise ValueError(f"format {str(data['format'])!r}, expected {BM25_FORMAT!r}")
                stats = cls(vocab=data["vocab"], idf=data["idf"], term_ptr=data["term_ptr"], docs=data["docs"],
                            tf=data["tf"], doc_len=data["doc_len"], avgdl=float(data["avgdl"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable bm25 statistics file ({exc})") from None
        if len(stats.term_ptr) != len(stats.vocab) + 1 or len(stats.docs) != len(stats.tf) != stats.term_ptr[-1]:
            raise ValueError(f"{path}: inconsistent bm25 statistics (array lengths disagree)")
        return stats

    @property
    def chunks(self) -> int:
        return len(self.doc_len)

    def get_scores(self, query: list[str]) -> np.ndarray:
        """BM25Okapi.get_scores: the same formula in the same order, over the chunks that hold each term."""
        if not hasattr(self, "_column"):
            object.__setattr__(self, "_column", {str(t): i for i, t in enumerate(self.vocab.tolist())})
        scores = np.zeros(self.chunks)
        norm = K1 * (1 - B + B * self.doc_len / self.avgdl)
        for term in query:
            t = self._column.get(term)
            if t is None:
                continue
            lo, hi = self.term_ptr[t], self.term_ptr[t + 1]
            rows, tf = self.docs[lo:hi], self.tf[lo:hi]
            scores[rows] += self.idf[t] * (tf * (K1 + 1) / (tf + norm[rows]))
        return scores
