"""Confidence intervals of a collapse report: every figure and every difference, from the per-probe samples.

    from rag_bench.report.ci import interval_rows
    rows = interval_rows(entries)          # entries: rag_bench.report.results.find_results / collect_runs
    rows["intervals"], rows["differences"]  # dict rows for intervals.csv / differences.csv

Answer scores (``ANSWER_METRICS``: exact match, and ``contains``, a golden answer inside the prediction, which
is what scores a chat model's sentence answers) are read per probe from ``samples_<mode>.jsonl`` beside each
``results.json``, on the **test** half
of the probes (``rag_bench.eval.splits``; dev is where settings are tuned); held-out perplexity from the per-text NLL
in ``results.json`` (``fit.heldout_perplexity.per_text_nll``, written since issue 13; older results have none).
Every interval is ``rag_bench.eval.bootstrap.TEST``. Differences: each generation against generation 0 (per
strategy, mode and frequency bucket), strategy against strategy at each generation, and grounded against
closed-book. All buckets are listed; none is picked after the fact. Every row here is exploratory (``role``): the
intervals are not adjusted for multiplicity, and a cell of fewer than ``MIN_PROBES`` probes per seed gets no
"excludes 0" claim at all (an empty ``excludes_zero``). The primary comparisons, fixed in advance and
Holm-adjusted, are rag_bench.report.primary's.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rag_bench.eval.bootstrap import TEST, Interval, Scores, difference, interval, perplexity_interval
from rag_bench.eval.splits import probe_split
from rag_bench.records import read_jsonl

BUCKETS = ("all", "tail", "torso", "head")
CI_COLUMNS = ("figure", "strategy", "generation", "mode", "bucket", "split", "value", "low", "high", "probes",
              "seeds", "test")
DIFF_COLUMNS = ("comparison", "figure", "strategy", "against", "generation", "against_generation", "mode", "bucket",
                "split", "value", "low", "high", "excludes_zero", "probes", "seeds", "test", "role")
MIN_PROBES = 20  # fewer probes (or texts) per seed: no "excludes 0" claim
Key = tuple[str, int, str, str]  # strategy, generation, mode, bucket
# Per-probe answer scores that get intervals. Exact match for record values; `contains` (FlashRAG's `acc`) for a
# model that answers in a sentence ("The capital of Kenya is Nairobi."), where exact match is 0 by construction.
ANSWER_METRICS = ("exact_match", "contains")
# Per-probe retrieval scores: intervals only (recall@k of the gold chunk, per generation, so a contaminated or
# changed index shows); they are the same index and questions in every generation of a collapse run, so
# differences between generations would be zero by construction and are not listed.
RETRIEVAL_METRICS = ("recall_at_k",)


def _samples(entries: Sequence[Any], split: str, metric: str) -> dict[Key, dict[Any, Scores]]:
    """One metric per probe: {(strategy, generation, mode, bucket): {seed: {probe id: score}}}."""
    out: dict[Key, dict[Any, Scores]] = defaultdict(dict)
    cache: dict[str, list[dict]] = {}
    for e in entries:
        for mode in e.results.get("metrics", {}):
            path = e.path.parent / f"samples_{mode}.jsonl"
            if not path.is_file():
                continue
            rows = cache.setdefault(str(path), read_jsonl(path))
            for bucket in BUCKETS:
                scores = {r["id"]: float(r["scores"][metric]) for r in rows
                          if (split == "all" or probe_split(r["id"]) == split)
                          and (bucket == "all" or r.get("bucket") == bucket)
                          and r["scores"].get(metric) is not None}
                if scores:
                    out[(e.strategy, e.generation, mode, bucket)][e.seed] = scores
    return out


def _perplexities(entries: Sequence[Any]) -> dict[tuple[str, int], dict[Any, list]]:
    out: dict[tuple[str, int], dict[Any, list]] = defaultdict(dict)
    for e in entries:
        per_text = ((e.results.get("fit") or {}).get("heldout_perplexity") or {}).get("per_text_nll")
        if per_text:
            out[(e.strategy, e.generation)][e.seed] = per_text
    return out


def _aligned(*cells: dict[Any, Any]) -> list[list[Any]] | None:
    """The per-seed values of each cell over the seeds they all have (seed order), or None when none is shared."""
    seeds = sorted(set.intersection(*(set(c) for c in cells)), key=lambda s: (s is None, s or 0))
    return [[c[s] for s in seeds] for c in cells] if seeds else None


def _row(columns: Sequence[str], result: Interval, **fields: Any) -> dict[str, Any]:
    row = {**fields, **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.to_dict().items()},
           "test": TEST, "role": "exploratory"}
    if "excludes_zero" in columns:
        row["excludes_zero"] = result.excludes_zero if result.probes >= MIN_PROBES else None
    return {k: row.get(k) for k in columns}


def interval_rows(entries: Sequence[Any], *, split: str = "test") -> dict[str, list[dict[str, Any]]]:
    """Rows of intervals.csv (every figure) and differences.csv (every difference the summary states)."""
    intervals, diffs = [], []
    for metric in ANSWER_METRICS:
        rows = _answer_rows(_samples(entries, split, metric), metric, split)
        intervals += rows["intervals"]
        diffs += rows["differences"]
    for metric in RETRIEVAL_METRICS:
        for (strategy, gen, mode, bucket), cell in sorted(_samples(entries, split, metric).items()):
            intervals.append(_row(CI_COLUMNS, interval(_aligned(cell)[0]), figure=metric, strategy=strategy,
                                  generation=gen, mode=mode, bucket=bucket, split=split))
    ppl = _perplexities(entries)
    for (strategy, gen), cell in sorted(ppl.items()):
        sides = _aligned(cell)
        intervals.append(_row(CI_COLUMNS, perplexity_interval(sides[0]), figure="heldout_perplexity",
                              strategy=strategy, generation=gen, mode="", bucket="heldout", split="eval_texts"))
        base = ppl.get((strategy, 0))
        if gen > 0 and base and (pair := _aligned(base, cell)):
            diffs.append(_row(DIFF_COLUMNS, perplexity_interval(*pair), comparison="generation vs 0",
                              figure="heldout_perplexity", strategy=strategy, against=strategy, generation=gen,
                              against_generation=0, mode="", bucket="heldout", split="eval_texts"))
    return {"intervals": intervals, "differences": diffs}


def _answer_rows(em: dict[Key, dict[Any, Scores]], metric: str, split: str) -> dict[str, list[dict[str, Any]]]:
    """Intervals and differences of one answer metric (``figure`` names it)."""
    intervals, diffs = [], []
    for (strategy, gen, mode, bucket), cell in sorted(em.items()):
        sides = _aligned(cell)
        intervals.append(_row(CI_COLUMNS, interval(sides[0]), figure=metric, strategy=strategy,
                              generation=gen, mode=mode, bucket=bucket, split=split))
        base = em.get((strategy, 0, mode, bucket))
        if gen > 0 and base and (pair := _aligned(base, cell)):
            diffs.append(_row(DIFF_COLUMNS, difference(*pair), comparison="generation vs 0", figure=metric,
                              strategy=strategy, against=strategy, generation=gen, against_generation=0, mode=mode,
                              bucket=bucket, split=split))
        closed = em.get((strategy, gen, "closed", bucket))
        if mode != "closed" and bucket == "all" and closed and (pair := _aligned(closed, cell)):
            diffs.append(_row(DIFF_COLUMNS, difference(*pair), comparison=f"{mode} vs closed", figure=metric,
                              strategy=strategy, against=strategy, generation=gen, against_generation=gen,
                              mode=mode, bucket=bucket, split=split))
    strategies = sorted({k[0] for k in em})
    for a, b in itertools.combinations(strategies, 2):
        for (strategy, gen, mode, bucket), cell in sorted(em.items()):
            other = em.get((a, gen, mode, bucket))
            if strategy == b and gen > 0 and bucket == "all" and other and (pair := _aligned(other, cell)):
                diffs.append(_row(DIFF_COLUMNS, difference(*pair), comparison="strategy vs strategy",
                                  figure=metric, strategy=b, against=a, generation=gen, against_generation=gen,
                                  mode=mode, bucket=bucket, split=split))
    return {"intervals": intervals, "differences": diffs}


def difference_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Summary sentences of the last generation against 0, and of the strategies there (bucket all)."""
    last: dict[tuple, int] = {}
    for r in rows:
        key = (r["comparison"], r["figure"], r["strategy"], r["against"], r["mode"], r["bucket"])
        last[key] = max(last.get(key, 0), r["generation"])
    tests = sorted({r["test"] for r in rows if r.get("test")})
    lines = [f"Exploratory (every row below; not adjusted for multiplicity; no claim on a cell of fewer than "
             f"{MIN_PROBES} probes). Every interval below and in intervals.csv / differences.csv: "
             f"{'; '.join(tests)}."] if tests else []
    for r in rows:
        key = (r["comparison"], r["figure"], r["strategy"], r["against"], r["mode"], r["bucket"])
        if r["generation"] != last[key] or (r["bucket"] not in ("all", "heldout") and r["comparison"] !=
                                            "generation vs 0"):
            continue
        what = f"{r['figure'].replace('_', ' ')}{' ' + r['mode'] if r['mode'] else ''}" + (
            f" ({r['bucket']} bucket)" if r["bucket"] not in ("all", "heldout") else "")
        if r["comparison"] == "generation vs 0":
            head = f"{r['strategy']}, {what}: generation {r['generation']} minus 0"
        elif r["comparison"] == "strategy vs strategy":
            head = f"{what} at generation {r['generation']}: {r['strategy']} minus {r['against']}"
        else:
            head = (f"{r['strategy']}, generation {r['generation']}: {r['mode']} minus closed-book "
                    f"{r['figure'].replace('_', ' ')}")
        unit = "texts" if r["figure"] == "heldout_perplexity" else r["split"] + " probes"
        verdict = ("the interval excludes 0" if r["excludes_zero"] else "the interval includes 0: no change shown") \
            if r["probes"] >= MIN_PROBES else f"fewer than {MIN_PROBES} {unit.split()[-1]}: no claim"
        lines.append(f"{head} = {r['value']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}], {r['probes']} {unit}, "
                     f"{r['seeds']} seed(s); {verdict}.")
    return lines
