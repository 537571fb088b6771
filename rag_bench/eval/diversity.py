"""Diversity of generated text: pure functions of a list of texts or of their embeddings.

Model collapse shows up here first: later generations repeat themselves, reuse the same n-grams
and forget the rare words of the human corpus. Every function is registered in
:mod:`rag_bench.eval.metrics` (kind ``diversity``) and :func:`diversity_report` computes all that its
inputs allow::

    from rag_bench.eval.diversity import diversity_report, rare_ngrams
    rare = rare_ngrams(human_texts, max_count=3)
    diversity_report(continuations, embeddings=minilm_vectors, rare=rare)
    # {"distinct_1": ..., "self_bleu": ..., "vendi_score": ..., "tail_survival_unigram": ..., ...}

Tokenisation (everything except self-BLEU, which uses sacrebleu's own ``13a`` tokeniser): the text
is lowercased and split into words with the regex ``\\w+(?:['’-]\\w+)*`` ("don't", "guinea-bissau"
and "1990" are one token each); punctuation is dropped. N-grams never cross from one text into the next.

Run the tests with ``.venv/bin/pytest tests/test_eval_metrics.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from sacrebleu.metrics import BLEU

from rag_bench.eval.metrics import register_metric

_WORD = re.compile(r"\w+(?:['’-]\w+)*")


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens; see the module docstring for the rule."""
    return _WORD.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return zip(*(tokens[i:] for i in range(n)), strict=False)


def _ngram_counts(texts: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    if n < 1:
        raise ValueError(f"n-gram order must be >= 1, got {n}")
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        counts.update(_ngrams(tokenize(text), n))
    return counts


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / total n-grams over the whole set (Li et al. 2016); 0.0 when there are none."""
    counts = _ngram_counts(texts, n)
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


for _n in (1, 2, 3):
    register_metric(f"distinct_{_n}", higher_is_better=True, kind="diversity", doc=f"distinct-{_n} over the set")(
        functools.partial(distinct_n, n=_n)
    )


def ngram_entropy(texts: Sequence[str], n: int) -> float:
    """Shannon entropy, in bits, of the pooled n-gram distribution; 0.0 when there are no n-grams."""
    counts = np.fromiter(_ngram_counts(texts, n).values(), dtype=np.float64)
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


register_metric("unigram_entropy", higher_is_better=True, kind="diversity", doc="entropy (bits) of unigrams")(
    functools.partial(ngram_entropy, n=1)
)
register_metric("bigram_entropy", higher_is_better=True, kind="diversity", doc="entropy (bits) of bigrams")(
    functools.partial(ngram_entropy, n=2)
)


@register_metric("type_token_ratio", higher_is_better=True, kind="diversity")
def type_token_ratio(texts: Sequence[str]) -> float:
    """Mean over texts of unique tokens / tokens within each text (texts without tokens are skipped).

    Per text on purpose: pooled over the set it would equal distinct_1. This one catches a model
    that loops inside a continuation; distinct_n catches one that repeats across continuations.
    """
    ratios = [len(set(tokens)) / len(tokens) for tokens in map(tokenize, texts) if tokens]
    return sum(ratios) / len(ratios) if ratios else 0.0


@register_metric("self_bleu", higher_is_better=False, kind="diversity")
def self_bleu(texts: Sequence[str], max_samples: int | None = None, seed: int = 0) -> float:
    """Mean sentence BLEU (sacrebleu, effective order, 0..1 scale) of each text against all the others.

    Lower is more diverse (Zhu et al. 2018, Texygen). The cost grows as the square of the number
    of texts, so with ``max_samples`` a subset of that size, drawn with ``seed``, is scored against itself.
    """
    texts = list(texts)
    if max_samples is not None and len(texts) > max_samples:
        keep = np.random.default_rng(seed).choice(len(texts), size=max_samples, replace=False)
        texts = [texts[i] for i in sorted(keep)]
    if len(texts) < 2:
        raise ValueError(f"self_bleu needs at least 2 texts, got {len(texts)}")
    bleu = BLEU(effective_order=True)
    scores = [bleu.sentence_score(text, texts[:i] + texts[i + 1 :]).score for i, text in enumerate(texts)]
    return sum(scores) / len(scores) / 100.0


@register_metric("compression_ratio", higher_is_better=True, kind="diversity")
def compression_ratio(texts: Sequence[str]) -> float:
    """len(gzip(texts joined by newlines)) / len(joined UTF-8 bytes), gzip level 9.

    Higher means less compressible, i.e. less repetitive, i.e. more diverse. gzip adds an
    18-byte header and trailer, so compare sets of similar size, not tiny ones.
    """
    data = "\n".join(texts).encode("utf-8")
    if not data:
        raise ValueError("compression_ratio of empty text is undefined")
    return len(gzip.compress(data, compresslevel=9, mtime=0)) / len(data)


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 1:
        raise ValueError(f"embeddings must be a non-empty 2-D array, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("embeddings hold an all-zero row; its cosine similarity is undefined")
    return matrix / norms


@register_metric("mean_pairwise_cosine_distance", higher_is_better=True, kind="diversity")
def mean_pairwise_cosine_distance(embeddings: np.ndarray) -> float:
    """Mean of 1 - cos(e_i, e_j) over ordered pairs i != j of embedding rows."""
    unit = _unit_rows(embeddings)
    n = unit.shape[0]
    if n < 2:
        raise ValueError(f"mean_pairwise_cosine_distance needs at least 2 rows, got {n}")
    similarity = unit @ unit.T
    off_diagonal_sum = similarity.sum() - np.trace(similarity)
    return float(1.0 - off_diagonal_sum / (n * (n - 1)))


@register_metric("vendi_score", higher_is_better=True, kind="diversity")
def vendi_score(embeddings: np.ndarray) -> float:
    """exp(Shannon entropy of the eigenvalues of K/n), K the cosine similarity matrix (Friedman & Dieng 2023).

    The effective number of distinct items: n for n orthogonal rows, 1 for n identical rows.
    """
    unit = _unit_rows(embeddings)
    eigenvalues = np.linalg.eigvalsh(unit @ unit.T / unit.shape[0])
    eigenvalues = eigenvalues[eigenvalues > 1e-12]  # round-off can make zero eigenvalues slightly negative
    return float(math.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


@dataclasses.dataclass(frozen=True, kw_only=True)
class RareNgrams:
    """The human corpus's rare unigrams and bigrams, and the counts that define rare."""

    unigrams: frozenset[str] = frozenset()  # tokens occurring min_count..max_count times
    bigrams: frozenset[tuple[str, str]] = frozenset()  # adjacent token pairs occurring min_count..max_count times
    min_count: int = 1  # lowest count that is still rare (1 keeps hapax legomena)
    max_count: int = 3  # highest count that is still rare


def rare_ngrams(human_texts: Sequence[str], max_count: int = 3, min_count: int = 1) -> RareNgrams:
    """Unigrams and bigrams occurring between ``min_count`` and ``max_count`` times (inclusive) in the human texts.

    The tail of the distribution is what collapse removes first (Shumailov et al. 2024). Counts use
    :func:`tokenize`; numbers count as tokens, since rare figures are rare facts.
    """
    if not 1 <= min_count <= max_count:
        raise ValueError(f"need 1 <= min_count <= max_count, got {min_count} and {max_count}")

    def in_tail(counts: Counter) -> frozenset:
        return frozenset(gram for gram, c in counts.items() if min_count <= c <= max_count)

    return RareNgrams(
        unigrams=frozenset(g[0] for g in in_tail(_ngram_counts(human_texts, 1))),
        bigrams=in_tail(_ngram_counts(human_texts, 2)),
        min_count=min_count,
        max_count=max_count,
    )


def _share_produced(rare: Iterable, produced: set, what: str) -> float:
    rare = set(rare)
    if not rare:
        raise ValueError(f"tail survival needs a non-empty set of rare {what} (see rare_ngrams)")
    return len(produced & rare) / len(rare)


@register_metric("tail_survival_unigram", higher_is_better=True, kind="diversity")
def tail_survival_unigram(texts: Sequence[str], rare_unigrams: Iterable[str]) -> float:
    """Share of the human corpus's rare unigrams that occur at least once in the generated texts."""
    return _share_produced(rare_unigrams, {g[0] for g in _ngram_counts(texts, 1)}, "unigrams")


@register_metric("tail_survival_bigram", higher_is_better=True, kind="diversity")
def tail_survival_bigram(texts: Sequence[str], rare_bigrams: Iterable[tuple[str, str]]) -> float:
    """Share of the human corpus's rare bigrams that occur at least once in the generated texts."""
    return _share_produced(map(tuple, rare_bigrams), set(_ngram_counts(texts, 2)), "bigrams")


def tail_survival(
    texts: Sequence[str], rare_unigrams: Iterable[str], rare_bigrams: Iterable[tuple[str, str]]
) -> dict[str, float]:
    """Both tail-survival shares, keyed by their registered names."""
    return {
        "tail_survival_unigram": tail_survival_unigram(texts, rare_unigrams),
        "tail_survival_bigram": tail_survival_bigram(texts, rare_bigrams),
    }


def diversity_report(
    texts: Sequence[str],
    embeddings: np.ndarray | None = None,
    rare: RareNgrams | None = None,
    self_bleu_max_samples: int | None = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Every diversity metric the inputs allow, keyed by registered metric name.

    Text metrics always; self_bleu with at least 2 texts; embedding metrics when ``embeddings``
    (one row per text) are given; tail survival when ``rare`` is given.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("diversity_report needs at least one text")
    report = {f"distinct_{n}": distinct_n(texts, n) for n in (1, 2, 3)}
    report["unigram_entropy"] = ngram_entropy(texts, 1)
    report["bigram_entropy"] = ngram_entropy(texts, 2)
    report["type_token_ratio"] = type_token_ratio(texts)
    if any(texts):
        report["compression_ratio"] = compression_ratio(texts)
    if len(texts) >= 2:
        report["self_bleu"] = self_bleu(texts, max_samples=self_bleu_max_samples, seed=seed)
    if embeddings is not None:
        if len(embeddings) != len(texts):
            raise ValueError(f"{len(embeddings)} embedding rows for {len(texts)} texts")
        if len(texts) >= 2:
            report["mean_pairwise_cosine_distance"] = mean_pairwise_cosine_distance(embeddings)
        report["vendi_score"] = vendi_score(embeddings)
    if rare is not None:
        report.update(tail_survival(texts, rare.unigrams, rare.bigrams))
    return report
