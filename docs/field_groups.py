"""Exact match of eval outputs split by whether a training config's fact rows taught the field (README, stage 5).

    python docs/field_groups.py data/evals/base-know-factbook data/evals/base-know3-factbook
    python docs/field_groups.py EVAL_DIR... --config configs/gen0-base-stage5.json

Reads each folder's samples_<mode>.jsonl (written by `rag-bench eval`); a field is "taught" when it is in the
config's ``fact_fields``, else "control". Prints exact match per group and mode, and per group and bucket.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

MODES = ("closed", "grounded", "grounded_span")


def group_scores(eval_dir: Path, taught: set[str]) -> dict[str, dict[str, tuple[float, int]]]:
    """mode -> group (or "group/bucket") -> (exact match, n)."""
    out = {}
    for mode in MODES:
        path = eval_dir / f"samples_{mode}.jsonl"
        if not path.is_file():
            continue
        hits: dict[str, list[float]] = defaultdict(list)
        for line in path.read_text().splitlines():
            row = json.loads(line)
            group = "taught" if row["field"] in taught else "control"
            for key in (group, f"{group}/{row['bucket']}"):
                hits[key].append(row["scores"]["exact_match"])
        out[mode] = {key: (sum(v) / len(v), len(v)) for key, v in sorted(hits.items())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_dirs", nargs="+", type=Path, help="rag-bench eval output folders")
    parser.add_argument("--config", type=Path, default=Path("configs/gen0-base-stage5.json"),
                        help="a TrainConfig JSON whose fact_fields are the taught fields")
    args = parser.parse_args()
    taught = set(json.loads(args.config.read_text())["fact_fields"])
    for eval_dir in args.eval_dirs:
        print(eval_dir)
        for mode, groups in group_scores(eval_dir, taught).items():
            print(f"  {mode:<14}" + "  ".join(f"{key} {em:.3f} (n={n})" for key, (em, n) in groups.items()))


if __name__ == "__main__":
    main()
