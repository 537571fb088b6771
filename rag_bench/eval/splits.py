"""The dev/test split of probes: anything tuned is chosen on dev; the README and reports give test.

    from rag_bench.eval.splits import probe_split
    probe_split("factbook/ja/government/capital")   # "dev" or "test", the same on every machine and run

The split is a hash of the probe id, so it needs no file, holds for every probe file built the same way, and a
probe never changes side. Half the probes are dev.
"""

from __future__ import annotations

import hashlib

DEV_SHARE = 0.5  # share of probes in dev
SPLITS = ("dev", "test")


def probe_split(probe_id: str, dev_share: float = DEV_SHARE) -> str:
    """``dev`` or ``test`` for a probe id (sha256 of the id, read as a number in [0, 1))."""
    digest = int(hashlib.sha256(f"rag_bench.split:{probe_id}".encode()).hexdigest()[:12], 16)
    return "dev" if digest / 16**12 < dev_share else "test"


def split_ids(ids: list[str] | set[str], split: str) -> set[str]:
    """The ids of ``ids`` on side ``split`` (``all`` keeps every id)."""
    if split == "all":
        return set(ids)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {[*SPLITS, 'all']}, got {split!r}")
    return {i for i in ids if probe_split(i) == split}
