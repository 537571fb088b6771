"""Defence thresholds chosen on the dev probes only, and the file that records them.

    from rag_bench.contaminate.calibrate import choose_threshold, choose_band, read_thresholds
    z = choose_threshold(dev_scores, dev_is_synthetic)          # drop a chunk whose score > z
    low, high = choose_band(dev_scores, dev_is_synthetic)       # drop a chunk whose score is outside [low, high]
    thresholds = read_thresholds("thresholds.json")             # refused unless its split is dev

Both choose the cut that maximises Youden's J (recall on synthetic candidates minus the share of human
candidates dropped) over the candidates the dev probes retrieved; ties go to the cut that drops fewer human
chunks. The test probes never take part, so the precision, recall and restored accuracy reported on them
are out of sample. The split of a probe is ``rag_bench.eval.splits.probe_split`` (a hash of its id).

``thresholds.json`` holds ``{"format", "split": "dev", "provenance": {"z": ...}, "perplexity": {"band": [...]},
"dev": {counts}}``; ``rag-bench contaminate --thresholds FILE`` reuses one, and a file whose split is anything
but dev is refused in one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag_bench.records import read_json

FORMAT = "rag_bench.contaminate.thresholds/1"
CALIBRATION_SPLIT = "dev"
BAND_QUANTILES = (0.0, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3)  # of dev human scores: candidate cuts of each band end


class ThresholdError(ValueError):
    """A thresholds file that cannot be used; the message names the file and the problem."""


def _finite(scores: Sequence[float], synthetic: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    if len(scores) != len(synthetic):
        raise ValueError(f"{len(scores)} scores but {len(synthetic)} labels")
    s = np.asarray(scores, dtype=float)
    y = np.asarray(synthetic, dtype=bool)
    keep = np.isfinite(s)
    return s[keep], y[keep]


def youden(dropped: np.ndarray, synthetic: np.ndarray) -> tuple[float, float]:
    """(recall on synthetic, share of human dropped) of a verdict vector."""
    recall = float(dropped[synthetic].mean()) if synthetic.any() else 0.0
    false = float(dropped[~synthetic].mean()) if (~synthetic).any() else 0.0
    return recall, false


def choose_threshold(scores: Sequence[float], synthetic: Sequence[bool]) -> float:
    """The cut t (drop when score > t) with the largest recall - false-drop rate; inf (drop nothing) when no
    cut gains anything or the dev candidates hold no synthetic chunk."""
    s, y = _finite(scores, synthetic)
    best, best_key = math.inf, (0.0, 0.0)
    for t in np.unique(s):
        recall, false = youden(s > t, y)
        key = (recall - false, -false)
        if key > best_key:
            best, best_key = float(t), key
    return best


def choose_band(scores: Sequence[float], synthetic: Sequence[bool]) -> tuple[float, float]:
    """The band [low, high] (drop outside it), both ends cut at quantiles of the dev human scores
    (``BAND_QUANTILES`` from each side), with the largest recall - false-drop rate; (-inf, inf) when none gains."""
    s, y = _finite(scores, synthetic)
    human = s[~y]
    if not human.size or not y.any():
        return -math.inf, math.inf
    lows = [-math.inf if q == 0 else float(np.quantile(human, q)) for q in BAND_QUANTILES]
    highs = [math.inf if q == 0 else float(np.quantile(human, 1 - q)) for q in BAND_QUANTILES]
    best, best_key = (-math.inf, math.inf), (0.0, 0.0)
    for low in lows:
        for high in highs:
            recall, false = youden((s < low) | (s > high), y)
            key = (recall - false, -false)
            if key > best_key:
                best, best_key = (low, high), key
    return best


def check_thresholds(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` if it is a thresholds record chosen on dev; ThresholdError (one line) otherwise."""
    if data.get("format") != FORMAT:
        raise ThresholdError(f"{source}: not a thresholds file (format {data.get('format')!r}, expected {FORMAT})")
    if data.get("split") != CALIBRATION_SPLIT:
        raise ThresholdError(f"{source}: thresholds were chosen on split {data.get('split')!r}; only thresholds "
                             f"chosen on {CALIBRATION_SPLIT!r} may be used (the test probes report them)")
    return data


def read_thresholds(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ThresholdError(f"{path}: thresholds file not found")
    try:
        data = read_json(path)
    except ValueError as exc:
        raise ThresholdError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ThresholdError(f"{path}: not a thresholds file (a JSON object is expected)")
    return check_thresholds(data, str(path))


def calibrate(candidates: dict[str, list[tuple[float, bool]]]) -> dict[str, Any]:
    """Thresholds from the dev candidates' (score, is synthetic) pairs of each scored defence."""
    out: dict[str, Any] = {"format": FORMAT, "split": CALIBRATION_SPLIT, "dev": {}}
    for name, pairs in candidates.items():
        scores, labels = [p[0] for p in pairs], [p[1] for p in pairs]
        out["dev"][name] = {"candidates": len(pairs), "synthetic": sum(labels)}
        if name == "provenance":
            out[name] = {"z": choose_threshold(scores, labels)}
        elif name == "perplexity":
            out[name] = {"band": list(choose_band(scores, labels))}
    return out
