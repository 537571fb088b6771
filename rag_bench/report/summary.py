"""The generated summary of a collapse report: what the numbers show, and nothing beyond them.

    from rag_bench.report.summary import summarize
    for line in summarize(figure_rows, theory):   # figure_rows: rag_bench.report.results.tidy_rows(...)
        print(line)

A change is called a rise or a fall only when it exceeds ``Z`` standard errors. For a share (exact match)
the standard error is the larger of the unpaired binomial one, sqrt(p(1-p)(1/n_a + 1/n_b)) (conservative:
the probes are the same at every generation), and the seed-to-seed one when seeds were run; for perplexity
only the seed spread can judge a change, so with one seed the numbers are stated without a verdict.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rag_bench.report.plots import MODE_ORDER, ordered

Z = 2.0  # a change counts as shown when it exceeds Z standard errors
Cell = list[tuple[float, int | None]]  # (value, n) per seed at one generation


def _values(points: dict, strategy: str, mode: str, bucket: str, metric: str) -> dict[int, Cell]:
    return points.get((strategy, mode, bucket, metric), {})


def index_rows(rows: Sequence[dict[str, Any]]) -> dict[tuple, dict[int, Cell]]:
    index: dict[tuple, dict[int, Cell]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["value"] is not None:
            index[(r["strategy"], r["mode"], r["bucket"], r["metric"])][r["generation"]].append((r["value"], r["n"]))
    return index


def seed_mean(cell: Cell) -> float:
    return sum(v for v, _ in cell) / len(cell)


def _seed_se(cell: Cell) -> float:
    if len(cell) < 2:
        return 0.0
    m = seed_mean(cell)
    return math.sqrt(sum((v - m) ** 2 for v, _ in cell) / (len(cell) - 1) / len(cell))


def change_se(a: Cell, b: Cell, *, binomial: bool) -> float:
    """SE of mean(b) - mean(a): the larger of the seed-to-seed one and (for a share) the unpaired binomial one."""
    seed = math.sqrt(_seed_se(a) ** 2 + _seed_se(b) ** 2)
    if not binomial:
        return seed
    na, nb = sum(n or 0 for _, n in a), sum(n or 0 for _, n in b)  # probes of every seed, not the first's only
    p = (seed_mean(a) + seed_mean(b)) / 2
    binom = math.sqrt(p * (1 - p) * (1 / na + 1 / nb)) if na and nb else 0.0
    return max(seed, binom)


def _spread(cell: Cell, fmt: str = ".3f") -> str:
    return f"; {len(cell)} seeds, {min(v for v, _ in cell):{fmt}} to {max(v for v, _ in cell):{fmt}}" if len(cell) > 1 \
        else ""


def _describe(label: str, a_gen: int, a: Cell, b_gen: int, b: Cell, *, binomial: bool, fmt: str = ".3f") -> str:
    """"label: A at generation a -> B at generation b, n=...: fell (-0.2, 2 SE = 0.05)", or no verdict."""
    delta, se = seed_mean(b) - seed_mean(a), change_se(a, b, binomial=binomial)
    n = f", n={b[0][1]} per seed" if binomial and b[0][1] else ""
    text = (f"{label}: {seed_mean(a):{fmt}} at generation {a_gen} -> {seed_mean(b):{fmt}} at generation {b_gen}"
            f"{n}{_spread(b, fmt)}")
    if se == 0:
        return text + " (no seed spread or standard error to judge this change against)"
    verdict = ("fell" if delta < 0 else "rose") if abs(delta) > Z * se else "did not change beyond noise"
    return text + f": {verdict} ({delta:+{fmt}}, {Z:g} SE = {Z * se:{fmt}})"


def summarize(figure_rows: dict[str, list[dict[str, Any]]], theory: dict[str, Any] | None = None,
              pending: Sequence[str] = (), interval_lines: Sequence[str] = ()) -> list[str]:
    """Sentences stating what the numbers show, per strategy, then across strategies and the theory anchors.

    ``interval_lines`` (rag_bench.report.ci.difference_lines: paired bootstrap intervals from the per-probe
    samples) replace the exact-match and perplexity changes judged by standard errors when given.
    """
    if interval_lines:
        return _with_intervals(figure_rows, theory, pending, interval_lines)
    em, gap = index_rows(figure_rows.get("exact_match", [])), index_rows(figure_rows.get("gap", []))
    ppl = index_rows(figure_rows.get("heldout_perplexity", []))
    lines = []
    strategies = sorted({key[0] for key in em} | {key[0] for key in ppl})
    for s in strategies:
        gens = sorted({g for key, by in {**em, **ppl}.items() if key[0] == s for g in by})
        first, last = gens[0], gens[-1]
        lines.append(f"{s}: generations {first} to {last} evaluated.")
        modes = ordered({k[1] for k in em if k[0] == s}, MODE_ORDER)
        for mode in modes:
            by = _values(em, s, mode, "all", "exact_match")
            if first in by and last in by and first != last:
                lines.append(_describe(f"{s}, {mode} exact match (all probes)", first, by[first], last, by[last],
                                       binomial=True))
            for bucket in ("tail", "torso", "head"):  # every bucket, none picked after the fact
                by = _values(em, s, mode, bucket, "exact_match")
                if first in by and last in by and first != last:
                    lines.append(_describe(f"{s}, {mode} exact match ({bucket} bucket)", first, by[first], last,
                                           by[last], binomial=True))
        for key, by in sorted(gap.items()):
            if key[0] != s or key[2] != "all":
                continue
            means = {g: seed_mean(v) for g, v in sorted(by.items())}
            below = [g for g, m in means.items() if m <= 0]
            clear = sum(m > Z * _gap_se(em, s, key[1].removesuffix("-closed"), g) for g, m in means.items())
            worst = min(means, key=means.get)
            head = (f"{s}: {key[1].replace('-closed', '')} exact match was above closed-book at every one of the "
                    f"{len(means)} evaluated generations" if not below else
                    f"{s}: {key[1].replace('-closed', '')} exact match was not above closed-book at generation(s) "
                    f"{', '.join(map(str, below))} of {len(means)}")
            lines.append(f"{head} (smallest gap {means[worst]:+.3f} at generation {worst}; above by more than {Z:g} "
                         f"SE at {clear} of {len(means)}).")
        by = _values(ppl, s, "", "heldout", "heldout_perplexity")
        if first in by and last in by and first != last:
            steps = [seed_mean(by[g]) for g in sorted(by)]
            ups = sum(b > a for a, b in itertools.pairwise(steps))
            downs = sum(b < a for a, b in itertools.pairwise(steps))
            trend = f"between evaluated generations it rose {ups} and fell {downs} of {len(steps) - 1} times"
            lines.append(_describe(f"{s}, held-out human perplexity", first, by[first], last, by[last],
                                   binomial=False, fmt=".2f") + f"; {trend}.")
    lines += _across(em, strategies)
    if theory:
        lines.append(_theory_line(theory))
    lines += [f"Not yet evaluated: {p}." for p in pending]
    return lines


def _with_intervals(figure_rows, theory, pending, interval_lines) -> list[str]:
    gens = index_rows(figure_rows.get("exact_match", []))
    lines = [f"{s}: generations {min(g)} to {max(g)} evaluated." for s, g in sorted(
        {k[0]: set(by) for k, by in gens.items()}.items())]
    lines += list(interval_lines)
    if theory:
        lines.append(_theory_line(theory))
    return lines + [f"Not yet evaluated: {p}." for p in pending]


def _gap_se(em, strategy: str, mode: str, generation: int) -> float:
    a = _values(em, strategy, "closed", "all", "exact_match").get(generation)
    b = _values(em, strategy, mode, "all", "exact_match").get(generation)
    return change_se(a, b, binomial=True) if a and b else math.inf


def _across(em, strategies: list[str]) -> list[str]:
    """Closed-book exact match of the strategies at the last generation they all reached."""
    reached = [set(_values(em, s, "closed", "all", "exact_match")) for s in strategies]
    common = set.intersection(*reached) if len(reached) > 1 else set()
    if not common or max(common) == 0:
        return []
    g = max(common)
    cells = {s: _values(em, s, "closed", "all", "exact_match")[g] for s in strategies}
    order = sorted(strategies, key=lambda s: -seed_mean(cells[s]))
    text = ", ".join(f"{s} {seed_mean(cells[s]):.3f}" for s in order)
    top, bottom = order[0], order[-1]
    delta, se = seed_mean(cells[top]) - seed_mean(cells[bottom]), change_se(cells[bottom], cells[top], binomial=True)
    verdict = (f"{top} is above {bottom} by {delta:.3f}, more than {Z:g} SE ({Z * se:.3f})" if delta > Z * se else
               f"the highest and lowest differ by {delta:.3f}, within {Z:g} SE ({Z * se:.3f}): no strategy is shown "
               "to be better")
    return [f"Closed-book exact match at generation {g}, by strategy: {text}; {verdict}."]


def _theory_line(theory: dict[str, Any]) -> str:
    zs = []
    for series in list(theory["gaussian"].values()) + [theory["regression"][k] for k in ("replace", "accumulate")]:
        for q in series["simulated"] if isinstance(series["simulated"], dict) else [None]:
            sim = series["simulated"][q] if q else series["simulated"]
            se, exact = (series["se"][q], series["closed_form"][q]) if q else (series["se"], series["closed_form"])
            zs += [abs(a - b) / c for a, b, c in zip(sim, exact, se, strict=True) if c > 0]
    worst = max(zs)
    verdict = "agree with" if worst <= 4 else "DEVIATE from"
    line = (f"Theory anchors: the simulations {verdict} their closed forms (largest |simulated - exact| / SE = "
            f"{worst:.1f} over {len(zs)} points).")
    harness = theory.get("harness") or {}
    if "replace" in harness:
        from rag_bench.theory.harness import harness_zscores

        hz = harness_zscores(harness["replace"])
        acc = harness.get("accumulate") or {}
        shift = max(acc["simulated"]["mean_shift_sq"]) if acc else None
        line += (f" Through the harness (build_pool and the generation loop, a Gaussian fit as the model): replace "
                 f"{'agrees with' if max(hz) <= 4 else 'DEVIATES from'} the closed form (largest z = {max(hz):.1f} "
                 f"over {len(hz)} points)")
        if shift is not None:
            line += (f"; accumulate's largest mean shift {shift:.4f} is "
                     f"{'below' if shift <= acc['mean_shift_bound'] else 'ABOVE'} the bound "
                     f"{acc['mean_shift_bound']:.4f}")
        line += "."
    return line
