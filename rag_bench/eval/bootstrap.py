"""Paired bootstrap confidence intervals over probes (and seeds) for per-probe scores and their differences.

    from rag_bench.eval.bootstrap import interval, difference, read_scores
    a = read_scores("RUN/gen_0/eval/samples_closed.jsonl")                     # {probe id: exact match}
    b = read_scores("RUN/replace/gen_4/eval/samples_closed.jsonl")
    interval([a])                   # Interval(value, low, high, ...): the mean with a 95% percentile interval
    difference([a], [b])            # generation 4 minus generation 0, paired on the probes both answered

    python -m rag_bench.eval.bootstrap A/samples_grounded.jsonl [B/samples_grounded.jsonl] --split dev

Every generation and strategy answers the same probes, so a difference is taken probe by probe (paired), and the
bootstrap resamples probes (one draw of probe indices shared by both sides and by every seed) and, with several
seeds, seeds too (two-level: seeds with replacement, then probes). The interval is the percentile interval of
``B`` resampled means (TEST names it in reports). With 2 seeds the seed level has 3 distinct draws: the interval
then says little about seed-to-seed variation, and the reports say how many seeds there were.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag_bench.records import read_jsonl

B = 2000  # bootstrap replicates
LEVEL = 0.95  # two-sided coverage
TEST = f"paired percentile bootstrap over probes and seeds, {B} replicates, {LEVEL:.0%} interval"
Scores = dict[str, float]  # probe id -> score of one model (one seed)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Interval:
    """A mean over probes (and seeds) with its bootstrap interval."""

    value: float  # mean over seeds of the mean over probes
    low: float
    high: float
    probes: int  # probes per seed (those every side answered)
    seeds: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "probes": self.probes, "seeds": self.seeds}


def read_scores(samples_path: str | Path, metric: str = "exact_match", ids: set[str] | None = None) -> Scores:
    """Per-probe scores of one ``samples_<mode>.jsonl``, optionally only the probes in ``ids``."""
    return {r["id"]: float(r["scores"][metric]) for r in read_jsonl(samples_path)
            if (ids is None or r["id"] in ids) and r["scores"].get(metric) is not None}


def _matrix(sides: Sequence[Sequence[Scores]]) -> np.ndarray:
    """(side, seed, probe) over the probes that every side and seed answered, in sorted id order."""
    seeds = {len(side) for side in sides}
    if len(seeds) != 1 or not seeds.pop():
        raise ValueError(f"every side needs the same number (>= 1) of seeds, got {[len(s) for s in sides]}")
    common = sorted(set.intersection(*(set(scores) for side in sides for scores in side)))
    if not common:
        raise ValueError("no probe is answered by every side and seed")
    return np.asarray([[[scores[i] for i in common] for scores in side] for side in sides], dtype=np.float64)


def _draws(n_seeds: int, n_items: int, replicates: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seed indices (replicates x seeds; all 0 for one seed) and item indices (replicates x items)."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(n_items, size=(replicates, n_items))
    rows = rng.integers(n_seeds, size=(replicates, n_seeds)) if n_seeds > 1 else np.zeros((replicates, 1), int)
    return rows, cols


def _over_seeds(per_seed: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(seeds, replicates) statistics -> one per replicate: the mean over that replicate's drawn seeds."""
    return per_seed[rows, np.arange(rows.shape[0])[:, None]].mean(axis=1)


def bootstrap_means(values: np.ndarray, *, replicates: int = B, seed: int = 0) -> np.ndarray:
    """Resampled means of a (seed, probe) array: seeds with replacement (when several), then probes."""
    rows, cols = _draws(*values.shape, replicates, seed)
    return _over_seeds(values[:, cols].mean(axis=2), rows)


def _quantiles(means: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def _interval(values: np.ndarray, *, replicates: int, level: float, seed: int) -> Interval:
    low, high = _quantiles(bootstrap_means(values, replicates=replicates, seed=seed), level)
    return Interval(value=float(values.mean()), low=low, high=high, probes=values.shape[1], seeds=values.shape[0])


def interval(side: Sequence[Scores], *, replicates: int = B, level: float = LEVEL, seed: int = 0) -> Interval:
    """The mean score of one model (one Scores per seed) and its bootstrap interval."""
    return _interval(_matrix([side])[0], replicates=replicates, level=level, seed=seed)


def difference(a: Sequence[Scores], b: Sequence[Scores], *, replicates: int = B, level: float = LEVEL,
               seed: int = 0) -> Interval:
    """mean(b) - mean(a), paired probe by probe (seed i of a with seed i of b), and its bootstrap interval."""
    both = _matrix([a, b])
    return _interval(both[1] - both[0], replicates=replicates, level=level, seed=seed)


TextNll = Sequence[Sequence[float]]  # per held-out text of one model (one seed): (summed NLL in nats, tokens)


def perplexity_interval(a: Sequence[TextNll], b: Sequence[TextNll] | None = None, *, replicates: int = B,
                        level: float = LEVEL, seed: int = 0) -> Interval:
    """Token-weighted perplexity exp(sum NLL / sum tokens) of ``a`` (mean over seeds), or with ``b`` the paired
    difference ppl(b) - ppl(a), with a bootstrap over the held-out texts (the same texts on both sides)."""
    sides = [np.asarray(side, dtype=np.float64) for side in ([a] if b is None else [a, b])]  # (seeds, texts, 2)
    shapes = {side.shape for side in sides}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"every side needs the same seeds and texts, got shapes {sorted(shapes)}")
    n_seeds, n_texts, _ = sides[0].shape
    rows, cols = _draws(n_seeds, n_texts, replicates, seed)

    def ppl(side: np.ndarray, idx: np.ndarray | slice) -> np.ndarray:
        return np.exp(side[:, idx, 0].sum(axis=-1) / side[:, idx, 1].sum(axis=-1))

    point = ppl(sides[0], slice(None)) if b is None else ppl(sides[1], slice(None)) - ppl(sides[0], slice(None))
    per_seed = ppl(sides[0], cols) if b is None else ppl(sides[1], cols) - ppl(sides[0], cols)
    low, high = _quantiles(_over_seeds(per_seed, rows), level)
    return Interval(value=float(point.mean()), low=low, high=high, probes=n_texts, seeds=n_seeds)


def main(argv: list[str] | None = None) -> int:
    """Print the interval of one samples file, or of B minus A, on a probe split."""
    import argparse

    from rag_bench.eval.splits import split_ids

    parser = argparse.ArgumentParser(prog="python -m rag_bench.eval.bootstrap", description=main.__doc__)
    parser.add_argument("samples", type=Path, nargs="+", help="samples_<mode>.jsonl: one (an interval) or two (B - A)")
    parser.add_argument("--split", default="test", help="dev | test | all (rag_bench.eval.splits)")
    parser.add_argument("--metric", default="exact_match")
    args = parser.parse_args(argv)
    if len(args.samples) > 2:
        parser.error("give one samples file, or two for a difference")
    sides = [read_scores(p, args.metric) for p in args.samples]
    sides = [{k: v for k, v in s.items() if k in split_ids(set(s), args.split)} for s in sides]
    result = interval([sides[0]]) if len(sides) == 1 else difference([sides[0]], [sides[1]])
    what = args.samples[0] if len(sides) == 1 else f"{args.samples[1]} minus {args.samples[0]}"
    print(f"{what}: {args.metric} {result.value:+.3f} [{result.low:+.3f}, {result.high:+.3f}] over {result.probes} "
          f"{args.split} probes ({TEST})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
