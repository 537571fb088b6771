"""What each stage of a collapse run cost: its wall time (from the manifests) beside the forward FLOPs of the tokens it
processed, so a benchmark can set the time against a compute floor (bench/smol_preset.py, issue 21).

    from rag_bench.collapse.costs import stage_costs
    rows = stage_costs("data/runs/smol-factbook")       # one row per (generation, strategy, stage)
    totals = stage_totals(rows)                          # {"train": {"seconds": .., "flops": ..}, "write": .., ...}

FLOPs are counted from what the run wrote, per token the stage processed once: training ``6 N`` per trained token
(forward and backward, ``model/timings.json``); writing ``2 N`` per prompt and generated token of every written row
(``synthetic*.jsonl``: the prompt is ``prompt_tokens``, the rest is re-encoded); evaluation ``2 N`` per prompt and
answer token of every sample (``samples_<mode>.jsonl``'s ``prompt_tokens``, the answer re-encoded) and per held-out
token scored, ``N`` the model's parameters. Attention's quadratic term, padding, recomputed prefixes, validation
passes, the reference model's scores and the diversity continuations are not counted: the floor is a lower bound,
and the time above it is what a faster path could win.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rag_bench.records import read_json, read_jsonl

STAGES = ("train", "write", "eval")  # the stages timed per generation; the report is timed by the caller


def _parameters(gen_dir: Path) -> int | None:
    timings = gen_dir / "model" / "timings.json"
    return read_json(timings).get("parameters") if timings.is_file() else None


@functools.lru_cache(maxsize=4)
def _tokenizer(model_dir: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def _count(tokenizer: Any, texts: Iterable[str]) -> int:
    texts = [t for t in texts if t]
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else 0


def _trained_tokens(gen_dir: Path) -> int:
    timings = gen_dir / "model" / "timings.json"
    kinds = read_json(timings).get("trained_tokens", {}) if timings.is_file() else {}
    return sum(int(v.get("tokens", 0)) for v in kinds.values())


def _written_tokens(gen_dir: Path, tokenizer: Any, prompt_tokens: int) -> int:
    rows = [r for path in sorted(gen_dir.glob("synthetic*.jsonl")) for r in read_jsonl(path)]
    return prompt_tokens * len(rows) + _count(tokenizer, (r.get("contents", "") for r in rows))


def _evaluated_tokens(gen_dir: Path, tokenizer: Any) -> int:
    total = 0
    for path in sorted((gen_dir / "eval").glob("samples_*.jsonl")):
        rows = read_jsonl(path)
        total += sum(int(r.get("prompt_tokens") or 0) for r in rows)
        total += _count(tokenizer, (r.get("prediction", "") for r in rows))
    results = gen_dir / "eval" / "results.json"
    if results.is_file():
        heldout = read_json(results).get("fit", {}).get("heldout_perplexity") or {}
        total += int(heldout.get("n") or 0)
    return total


def _generation_dirs(run_dir: Path) -> list[tuple[Path, str | None, int]]:
    found = [(run_dir / "gen_0", None, 0)] if (run_dir / "gen_0").is_dir() else []
    for path in sorted(run_dir.glob("*/gen_*")):
        if path.parent.name not in ("data", "cache", "report") and path.name.removeprefix("gen_").isdigit():
            found.append((path, path.parent.name, int(path.name.removeprefix("gen_"))))
    return found


def stage_costs(run_dir: str | Path) -> list[dict[str, Any]]:
    """One row per (generation, strategy, stage) that has a recorded time: ``seconds``, ``tokens``, ``flops``."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    prompt_tokens = int(config.get("prompt_tokens") or 0)
    params = _parameters(run_dir / "gen_0")
    if params is None:
        raise ValueError(f"{run_dir / 'gen_0' / 'model' / 'timings.json'}: no parameter count (is gen_0 trained?)")
    tokenizer = _tokenizer(str(run_dir / "gen_0" / "model"))
    rows = []
    for gen_dir, strategy, generation in _generation_dirs(run_dir):
        manifest = gen_dir / "manifest.json"
        timings = read_json(manifest).get("timings", {}) if manifest.is_file() else {}
        written = sum(v for k, v in timings.items() if k.startswith("write") and k.endswith("_s"))
        for stage, seconds in (("train", timings.get("train_s")), ("write", written or None),
                               ("eval", timings.get("eval_s"))):
            if seconds is None:
                continue
            if stage == "train":
                tokens, per_token = _trained_tokens(gen_dir), 6
            elif stage == "write":
                tokens, per_token = _written_tokens(gen_dir, tokenizer, prompt_tokens), 2
            else:
                tokens, per_token = _evaluated_tokens(gen_dir, tokenizer), 2
            rows.append({"generation": generation, "strategy": strategy, "stage": stage, "seconds": float(seconds),
                         "tokens": tokens, "flops": float(per_token * params * tokens)})
    return rows


def stage_totals(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Seconds, tokens and FLOPs summed per stage over every generation and strategy."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "tokens": 0, "flops": 0.0})
    for r in rows:
        for key in ("seconds", "tokens", "flops"):
            totals[r["stage"]][key] += r[key]
    return {stage: dict(totals[stage]) for stage in STAGES if stage in totals}
