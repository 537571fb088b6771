"""How much of a pool is human text: the share of its word 8-grams found in the human training text.

    from rag_bench.collapse.overlap import HumanNgrams
    human = HumanNgrams(human_train_texts, n=8)
    human.share(pool_texts)        # 0.0 .. 1.0: 8-gram positions of the texts that occur in the human text

A synthetic text that copies its prompt's true continuation (or a passage) shares long n-grams with the
human corpus; one written freely shares few beyond the Factbook's fixed phrases (``Country | Section |
Field:`` prefixes are about 4-6 words, so 8-grams reach into the values).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

WORD = re.compile(r"\w+")


def word_ngrams(text: str, n: int) -> list[int]:
    """Hashes of the lower-cased word n-grams of ``text``, one per position."""
    words = WORD.findall(text.lower())
    return [hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)]


class HumanNgrams:
    """The set of word n-grams of the human training text."""

    def __init__(self, texts: Iterable[str], *, n: int = 8) -> None:
        self.n = n
        self.grams = {g for text in texts for g in word_ngrams(text, n)}

    def counts(self, texts: Sequence[str]) -> tuple[int, int]:
        """(n-gram positions found in the human text, all n-gram positions) over ``texts``."""
        found = total = 0
        for text in texts:
            grams = word_ngrams(text, self.n)
            total += len(grams)
            found += sum(g in self.grams for g in grams)
        return found, total

    def share(self, texts: Sequence[str]) -> float | None:
        found, total = self.counts(texts)
        return found / total if total else None

    def summary(self, texts: Sequence[str]) -> dict[str, float | int | None]:
        found, total = self.counts(texts)
        return {"ngram": self.n, "found": found, "ngrams": total, "share": found / total if total else None}


def pool_overlap_lines(manifests: Iterable[tuple[str, int, dict]]) -> list[str]:
    """Summary lines: per strategy, the written part's 8-gram overlap with the human text by generation.

    ``manifests``: (strategy, generation, manifest.json) of each generation; several seeds are averaged.
    """
    shares: dict[str, dict[int, list[float]]] = {}
    for strategy, generation, manifest in manifests:
        share = (((manifest.get("pool") or {}).get("human_overlap") or {}).get("written") or {}).get("share")
        if isinstance(share, int | float):
            shares.setdefault(strategy, {}).setdefault(generation, []).append(float(share))
    return [f"{strategy}: share of the written pool's word 8-grams found in the human training text, by generation: "
            + ", ".join(f"{g}: {sum(v) / len(v):.3f}" for g, v in sorted(by_gen.items()))
            + (" (mean of the seeds)" if any(len(v) > 1 for v in by_gen.values()) else "")
            for strategy, by_gen in sorted(shares.items())]
