"""Result tables recomputed from a published folder's per-probe files alone, with intervals that account for seeds.

    from rag_bench.report.seed_tables import SEED_TABLES, merge_per_probe
    SEED_TABLES["trajectory"](Path("docs/results/quick-control"))     # README lines: the answer metric by generation

A table marked ``<!-- table:NAME:trajectory -->`` (the answer metric of the primary comparisons, every mode),
``trajectory-recall`` (recall@k of the gold chunk, grounded), ``trajectory-perplexity`` (held-out perplexity) or
``change`` (the answer metric's last generation minus generation 0, paired within each seed) in
README.md or a docs page is rendered here from ``docs/results/NAME/*.jsonl.gz``, never from an aggregate, so
``readme_tables --check`` fails when a committed sample changes. Each cell is the mean over seeds of the per-seed
figure on the same probes (or texts) in every seed, with the cluster bootstrap over seeds then probes (texts)
(``rag_bench.eval.seed_intervals``); probes are the primary comparisons' split, without echo probes when the
primary comparisons leave them out. ``merge_per_probe`` pools seeds published at different times (``publish --add``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rag_bench.eval.seed_intervals import (
    CLUSTER,
    CLUSTER_TEXTS,
    SEED_T,
    SeedInterval,
    cluster_bootstrap,
    perplexity_cluster_interval,
    seed_t_interval,
)
from rag_bench.records import read_json
from rag_bench.report.per_probe import PerProbe, answer_cells, nll_cells, read_per_probe
from rag_bench.report.primary import SPEC_PATH, PrimarySpec, load_spec
from rag_bench.report.results import ReportError

MODE_NAMES = {"closed": "closed-book", "grounded": "grounded", "oracle": "oracle (gold passage)"}


def published_spec(folder: Path, spec_path: Path = SPEC_PATH) -> PrimarySpec:
    """The primary comparisons a published folder follows: its preset's, with the control it was published with."""
    meta = read_json(folder / "published.json")
    preset, control = meta.get("preset"), meta.get("control")
    if not isinstance(preset, str):
        raise ReportError(f"{folder / 'published.json'}: no preset recorded, so no primary comparisons to check")
    return load_spec(spec_path, preset, **({"control": control} if isinstance(control, str) else {}))


def _header(gens: list[int]) -> list[str]:
    return ["| | " + " | ".join(f"generation {g}" if g == gens[0] else str(g) for g in gens) + " |",
            "|---|" + "---:|" * len(gens)]


def _cell(values: np.ndarray, interval: Callable, fmt: str) -> str:
    got = interval(values)
    return f"{got.value:{fmt}} [{got.low:{fmt}}, {got.high:{fmt}}]"


def _common(cell: dict[int, dict[str, float]]) -> tuple[list[int], list[str]]:
    seeds = sorted(cell)
    return seeds, sorted(set.intersection(*(set(cell[s]) for s in seeds)))


def _strategies(keys: set[tuple], control: str) -> list[str]:
    found = sorted({k[0] for k in keys})
    return [s for s in found if s != control] + [s for s in found if s == control]  # the control last


def answer_trajectory(folder: Path, metric: str | None = None, modes: tuple[str, ...] | None = None) -> list[str]:
    """``metric`` (default: the primary comparisons' answer metric) by generation, per strategy and mode."""
    spec, data = published_spec(folder), read_per_probe(folder)
    metric = metric or spec.answer_metric
    cells = answer_cells(data, metric, split=spec.split, exclude_echo=spec.exclude_echo)
    if not cells:
        raise ReportError(f"{folder}: no {metric!r} scores on the {spec.split} probes")
    gens = sorted({k[1] for k in cells})
    modes = modes or tuple(m for m in spec.modes if any(k[2] == m for k in cells))
    out, sizes = _header(gens), set()
    for strategy in _strategies(set(cells), spec.control):
        for mode in modes:
            row = []
            for g in gens:
                cell = cells.get((strategy, g, mode))
                if not cell:
                    row.append("")
                    continue
                seeds, probes = _common(cell)
                sizes.add((len(seeds), len(probes)))
                row.append(_cell(np.asarray([[cell[s][p] for p in probes] for s in seeds]), cluster_bootstrap,
                                 ".3f"))
            out.append(f"| {strategy}, {MODE_NAMES.get(mode, mode)} | " + " | ".join(row) + " |")
    seeds = ", ".join(f"{s} seeds x {p} probes" for s, p in sorted(sizes))
    echo = ", echo probes left out" if spec.exclude_echo else ""
    return [f"{metric} on the {spec.split} probes ({seeds}{echo}); mean over seeds [95% {CLUSTER}]; recomputed "
            f"from docs/results/{folder.name}/samples.jsonl.gz.", "", *out]


def answer_change(folder: Path) -> list[str]:
    """The primary comparisons' answer metric at the last generation minus generation 0, per strategy and mode:
    each seed's change on the same probes (paired), with the cluster bootstrap and the seed-level t-interval. These
    rows are exploratory (the primary comparisons are strategy minus control); they say how much each arm drifted."""
    spec, data = published_spec(folder), read_per_probe(folder)
    cells = answer_cells(data, spec.answer_metric, split=spec.split, exclude_echo=spec.exclude_echo)
    if not cells:
        raise ReportError(f"{folder}: no {spec.answer_metric!r} scores on the {spec.split} probes")
    last = max(k[1] for k in cells)
    out = [f"| | generation 0 | generation {last} | change [{CLUSTER}] | change [{SEED_T}] |",
           "|---|---:|---:|---:|---:|"]
    sizes = set()
    for strategy in _strategies(set(cells), spec.control):
        for mode in (m for m in spec.modes if (strategy, last, m) in cells and (strategy, 0, m) in cells):
            start, end = cells[(strategy, 0, mode)], cells[(strategy, last, mode)]
            seeds = sorted(set(start) & set(end))
            probes = sorted(set.intersection(*(set(start[s]) & set(end[s]) for s in seeds)))
            sizes.add((len(seeds), len(probes)))
            before = np.asarray([[start[s][p] for p in probes] for s in seeds])
            after = np.asarray([[end[s][p] for p in probes] for s in seeds])
            change = cluster_bootstrap(after - before)
            t = seed_t_interval((after - before).mean(axis=1)) if len(seeds) > 1 else None
            out.append(f"| {strategy}, {MODE_NAMES.get(mode, mode)} | {before.mean():.3f} | {after.mean():.3f} | "
                       f"{change.value:+.3f} [{change.low:+.3f}, {change.high:+.3f}] | "
                       + _t_cell(t) + " |")
    seeds = ", ".join(f"{s} seeds x {p} probes" for s, p in sorted(sizes))
    echo = ", echo probes left out" if spec.exclude_echo else ""
    return [f"{spec.answer_metric}, generation {last} minus generation 0, on the {spec.split} probes ({seeds}{echo}), "
            f"paired within each seed; exploratory; recomputed from docs/results/{folder.name}/samples.jsonl.gz.",
            "", *out]


def _t_cell(t: SeedInterval | None) -> str:
    if t is None:
        return "n/a: one seed"
    if not math.isfinite(t.low):
        return "n/a: no seed spread"  # the seeds tied: no interval (rag_bench.eval.seed_intervals.seed_t_interval)
    return f"[{t.low:+.3f}, {t.high:+.3f}]"


def perplexity_trajectory(folder: Path) -> list[str]:
    """Held-out perplexity by generation, per strategy."""
    spec, data = published_spec(folder), read_per_probe(folder)
    cells = nll_cells(data)
    if not cells:
        raise ReportError(f"{folder}: no held-out NLL rows")
    gens = sorted({k[1] for k in cells})
    out, sizes = _header(gens), set()
    for strategy in _strategies(set(cells), spec.control):
        row = []
        for g in gens:
            cell = cells.get((strategy, g))
            if not cell:
                row.append("")
                continue
            seeds = sorted(cell)
            sizes.add((len(seeds), len(cell[seeds[0]])))
            row.append(_cell(np.asarray([cell[s] for s in seeds]), perplexity_cluster_interval, ".2f"))
        out.append(f"| {strategy} | " + " | ".join(row) + " |")
    seeds = ", ".join(f"{s} seeds x {t} texts" for s, t in sorted(sizes))
    return [f"Held-out perplexity ({seeds}); mean over seeds [95% {CLUSTER_TEXTS}]; recomputed from "
            f"docs/results/{folder.name}/heldout_nll.jsonl.gz.", "", *out]


def merge_per_probe(published: PerProbe, new: PerProbe) -> PerProbe:
    """Rows of ``published`` whose seed ``new`` does not have, then every row of ``new``: seeds run in different
    sessions pooled into one folder, a republished seed replacing its old rows."""
    seeds = {r["seed"] for kind in (new.samples, new.nll, new.diversity) for r in kind}

    def keep(rows: list[dict]) -> list[dict]:
        return [r for r in rows if r["seed"] not in seeds]

    return PerProbe(samples=keep(published.samples) + new.samples, nll=keep(published.nll) + new.nll,
                    diversity=keep(published.diversity) + new.diversity)


SEED_TABLES: dict[str, Callable[[Path], list[str]]] = {
    "trajectory": answer_trajectory,
    "trajectory-recall": lambda folder: answer_trajectory(folder, "recall_at_k", ("grounded",)),
    "trajectory-perplexity": perplexity_trajectory,
    "change": answer_change,
}
