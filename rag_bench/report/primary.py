"""The primary comparisons fixed in advance (docs/primary_comparisons.json): each strategy minus the control at one
generation, with seed-aware intervals, Holm-adjusted p-values and the minimum detectable effect.

    from rag_bench.report.primary import load_spec, primary_rows, primary_lines
    spec = load_spec(REPO / "docs/primary_comparisons.json", "quick")    # or load_spec(path, "tiny", control="replace")
    rows = primary_rows(spec, per_probe_data)   # per_probe_data: rag_bench.report.per_probe.gather / read_per_probe
    primary_lines(spec, rows)                   # the summary's opening lines

Per comparison: the per-probe differences (strategy minus control, the same probes, seed by seed, on the test
half of the probes) give a cluster bootstrap over seeds then probes and a t-interval over the seed-level
differences (rag_bench.eval.seed_intervals); held-out perplexity the same over texts; diversity, one value per
seed, only the t-interval. The file's ``method`` gives the p-value that Holm's adjustment uses; the minimum
detectable effect is at alpha / (number of comparisons), the strictest step of Holm. A file that names a
strategy, metric, mode or generation the run lacks is a ReportError of one line, naming the file.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from rag_bench.eval.seed_intervals import (
    METHODS,
    SEED_T,
    SeedInterval,
    cluster_bootstrap,
    holm,
    minimum_detectable_effect,
    perplexity_cluster_bootstrap,
    perplexity_seed_differences,
    seed_t_interval,
)
from rag_bench.records import RecordError, read_json
from rag_bench.report.per_probe import PerProbe, answer_cells, diversity_cells, echo_probes, nll_cells
from rag_bench.report.results import ReportError

SCHEMA = "rag_bench.primary_comparisons/1"
SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "primary_comparisons.json"
PRIMARY_COLUMNS = ("strategy", "control", "generation", "figure", "mode", "value", "low", "high", "method",
                   "other_low", "other_high", "other_method", "p_value", "p_holm", "mde", "mde_alpha", "seeds",
                   "units", "echo_excluded", "verdict")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrimarySpec:
    """One preset's primary comparisons, as the file fixes them."""

    path: str = str(SPEC_PATH)  # the file they come from (named in every error)
    preset: str = "quick"  # the preset (config.json "name") they are for
    control: str = "fresh"  # the arm every strategy is compared against
    strategies: tuple[str, ...] = ()  # strategies compared with the control
    generation: int = 0  # the generation compared (the last of the preset)
    answer_metric: str = "exact_match"  # per-probe score of the answers (contains for a chat model)
    modes: tuple[str, ...] = ("closed", "grounded")  # answer modes compared
    perplexity: bool = True  # held-out perplexity compared
    diversity: tuple[str, str] | None = None  # (series, metric) of the continuations' diversity compared
    alpha: float = 0.05  # family-wise error rate, Holm over this preset's comparisons
    power: float = 0.8  # power of the minimum detectable effect
    method: str = "seed_t"  # which interval gives the p-value: seed_t or cluster_bootstrap
    split: str = "test"  # probe split compared (rag_bench.eval.splits)
    exclude_echo: bool = True  # leave out probes whose golden answer is in the question (echo credit)
    min_probes: int = 20  # fewer probes (or texts) per seed than this: no verdict

    def comparisons(self) -> list[tuple[str, str, str]]:
        """(strategy, figure, mode) in the file's order: answer modes, perplexity, diversity (a strategy that is
        the control, as when a stand-in control is chosen, is left out)."""
        out = []
        for s in (s for s in self.strategies if s != self.control):
            out += [(s, self.answer_metric, mode) for mode in self.modes]
            out += [(s, "heldout_perplexity", "")] if self.perplexity else []
            out += [(s, f"diversity:{self.diversity[1]}", self.diversity[0])] if self.diversity else []
        return out


def load_spec(path: str | Path = SPEC_PATH, preset: str = "quick", **overrides: Any) -> PrimarySpec:
    """The primary comparisons of ``preset`` in the file at ``path`` (``overrides``, e.g. control=, replace them)."""
    path = Path(path)
    try:
        data = read_json(path)
    except RecordError as exc:
        raise ReportError(str(exc)) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ReportError(f"{path}: not a {SCHEMA} file")
    presets = data.get("presets") or {}
    if preset not in presets:
        raise ReportError(f"{path}: no primary comparisons for preset {preset!r} (it lists {', '.join(presets)})")
    entry = presets[preset]
    try:
        div = entry.get("diversity")
        spec = PrimarySpec(
            path=str(path), preset=preset, control=str(entry["control"]),
            strategies=tuple(map(str, entry["strategies"])), generation=int(entry["generation"]),
            answer_metric=str(entry["answer_metric"]), modes=tuple(map(str, entry["modes"])),
            perplexity=bool(entry.get("perplexity", True)),
            diversity=(str(div["series"]), str(div["metric"])) if div else None,
            alpha=float(data.get("alpha", 0.05)), power=float(data.get("power", 0.8)),
            method=str(data.get("method", "seed_t")), split=str(data.get("split", "test")),
            exclude_echo=bool(data.get("exclude_echo", True)),
            min_probes=int(data.get("min_probes", 20)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path}: preset {preset!r}: missing or malformed field ({exc})") from None
    if spec.method not in METHODS:
        raise ReportError(f"{path}: method {spec.method!r} is not one of {sorted(METHODS)}")
    spec = dataclasses.replace(spec, **overrides)
    # a run names a strategy by its folder, where "mix:0.1" is "mix-0.1" (rag_bench.collapse.strategies)
    return dataclasses.replace(spec, control=spec.control.replace(":", "-"),
                               strategies=tuple(s.replace(":", "-") for s in spec.strategies))


def _lacks(spec: PrimarySpec, what: str, have: set) -> ReportError:
    listed = ", ".join(sorted(map(str, have))) or "none"
    return ReportError(f"{spec.path}: preset {spec.preset!r} names {what}, which the run lacks (it has: {listed})")


def _cell(cells: dict, key: tuple, spec: PrimarySpec, what: str) -> dict:
    if key not in cells:
        strategy, generation = key[0], key[1]
        if not any(k[0] == strategy for k in cells):
            raise _lacks(spec, f"strategy {strategy!r}", {k[0] for k in cells})
        if not any(k[:2] == (strategy, generation) for k in cells):
            raise _lacks(spec, f"generation {generation} of {strategy!r}", {k[1] for k in cells if k[0] == strategy})
        raise _lacks(spec, what, {k[2:] and "/".join(map(str, k[2:])) for k in cells if k[:2] == key[:2]})
    return cells[key]


def _seeds(a: dict, b: dict, spec: PrimarySpec, key: tuple) -> list:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ReportError(f"{spec.path}: {key[0]} and {spec.control} share no seed for {key[1:]}")
    return seeds


def _answers(spec: PrimarySpec, cells: dict, strategy: str, mode: str) -> tuple[SeedInterval, SeedInterval | None]:
    a = _cell(cells, (spec.control, spec.generation, mode), spec, f"mode {mode!r}")
    b = _cell(cells, (strategy, spec.generation, mode), spec, f"mode {mode!r}")
    seeds = _seeds(a, b, spec, (strategy, mode))
    probes = sorted(set.intersection(*(set(a[s]) & set(b[s]) for s in seeds)))
    if not probes:
        raise ReportError(f"{spec.path}: {strategy} and {spec.control} answered no common {spec.split} probe in "
                          f"mode {mode!r}")
    d = np.asarray([[b[s][p] - a[s][p] for p in probes] for s in seeds])
    seed_level = seed_t_interval(d.mean(axis=1), units=len(probes)) if len(seeds) > 1 else None
    return cluster_bootstrap(d), seed_level


def _perplexity(spec: PrimarySpec, cells: dict, strategy: str) -> tuple[SeedInterval, SeedInterval | None]:
    a = _cell(cells, (spec.control, spec.generation), spec, "held-out perplexity")
    b = _cell(cells, (strategy, spec.generation), spec, "held-out perplexity")
    seeds = _seeds(a, b, spec, (strategy, "heldout_perplexity"))
    if len({len(c[s]) for c in (a, b) for s in seeds}) != 1:
        raise ReportError(f"{spec.path}: {strategy} and {spec.control} were not measured on the same held-out texts "
                          f"at generation {spec.generation}")
    na, nb = np.asarray([a[s] for s in seeds]), np.asarray([b[s] for s in seeds])
    seed_level = (seed_t_interval(perplexity_seed_differences(na, nb), units=na.shape[1]) if len(seeds) > 1
                  else None)
    return perplexity_cluster_bootstrap(na, nb), seed_level


def _diversity(spec: PrimarySpec, cells: dict, strategy: str) -> tuple[None, SeedInterval | None]:
    series, metric = spec.diversity
    what = f"diversity {series}/{metric}"
    a = _cell(cells, (spec.control, spec.generation, series, metric), spec, what)
    b = _cell(cells, (strategy, spec.generation, series, metric), spec, what)
    seeds = _seeds(a, b, spec, (strategy, what))
    if len(seeds) > 1:
        return None, seed_t_interval([b[s] - a[s] for s in seeds])
    # one seed (a run reported alone): the difference without an interval; only seed-level values exist
    value = b[seeds[0]] - a[seeds[0]]
    return None, SeedInterval(value=value, low=math.nan, high=math.nan, method="one seed: no interval",
                              p_value=math.nan, seeds=1, units=0, sd=math.nan)


def primary_rows(spec: PrimarySpec, data: PerProbe) -> list[dict[str, Any]]:
    """One row per comparison (PRIMARY_COLUMNS), with Holm-adjusted p-values and the minimum detectable effect."""
    scored = {k for r in data.samples for k in r["scores"]}
    if spec.answer_metric not in scored:
        raise _lacks(spec, f"the answer metric {spec.answer_metric!r}", scored)
    answers = answer_cells(data, spec.answer_metric, split=spec.split, exclude_echo=spec.exclude_echo)
    echoes = len(echo_probes(data, split=spec.split)) if spec.exclude_echo else 0
    nll, diversity = nll_cells(data), diversity_cells(data)
    if spec.control not in {k[0] for k in answers} | {k[0] for k in nll}:
        raise _lacks(spec, f"the control {spec.control!r}", {k[0] for k in answers} | {k[0] for k in nll})
    comparisons = spec.comparisons()
    m = len(comparisons)
    rows = []
    for strategy, figure, mode in comparisons:
        if figure == "heldout_perplexity":
            boot, t = _perplexity(spec, nll, strategy)
        elif figure.startswith("diversity:"):
            boot, t = _diversity(spec, diversity, strategy)
        else:
            boot, t = _answers(spec, answers, strategy, mode)
        main, other = (t, boot) if METHODS[spec.method] == SEED_T or boot is None else (boot, t)
        shown = main or other  # one seed: only the bootstrap (over probes) exists
        rows.append({"strategy": strategy, "control": spec.control, "generation": spec.generation, "figure": figure,
                     "mode": mode, "value": shown.value, "low": shown.low, "high": shown.high,
                     "method": shown.method, "other_low": other.low if other and main else None,
                     "other_high": other.high if other and main else None,
                     "other_method": other.method if other and main else "",
                     "p_value": main.p_value if main else math.nan, "mde": minimum_detectable_effect(
                         shown.sd, shown.seeds, alpha=spec.alpha / m, power=spec.power),
                     "mde_alpha": spec.alpha / m, "seeds": shown.seeds, "units": (boot or t).units,
                     "echo_excluded": echoes if figure == spec.answer_metric else 0})
    adjusted = holm([1.0 if math.isnan(r["p_value"]) else r["p_value"] for r in rows])
    for r, p in zip(rows, adjusted, strict=True):
        r["p_holm"] = p
        if r["units"] and r["units"] < spec.min_probes:
            r["verdict"] = f"fewer than {spec.min_probes} per seed: no claim"
        elif math.isnan(r["p_value"]) and r["seeds"] > 1:
            r["verdict"] = "every seed gave the same difference: no seed-aware test"
        elif math.isnan(r["p_value"]):
            r["verdict"] = "one seed: no seed-aware test"
        else:
            r["verdict"] = "differs" if p < spec.alpha else "no difference shown"
    return [{k: round(r[k], 4) if isinstance(r[k], float) and math.isfinite(r[k]) else r[k] for k in PRIMARY_COLUMNS}
            for r in rows]


def _what(row: dict[str, Any]) -> str:
    if row["figure"] == "heldout_perplexity":
        return "held-out perplexity"
    if row["figure"].startswith("diversity:"):
        return f"{row['figure'].removeprefix('diversity:')} of {row['mode']} continuations"
    return f"{row['figure'].replace('_', ' ')} {'closed-book' if row['mode'] == 'closed' else row['mode']}"


def _num(value: Any, fmt: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:{fmt}}"


def format_row(row: dict[str, Any]) -> dict[str, str]:
    """The cells a table or a sentence shows: the difference with its interval, the other interval, p, MDE."""
    fmt = "+.2f" if row["figure"] == "heldout_perplexity" else "+.3f"
    other = (f"[{_num(row['other_low'], fmt)}, {_num(row['other_high'], fmt)}]" if row["other_method"] else "")
    return {"comparison": f"{row['strategy']} minus {row['control']}", "what": _what(row),
            "difference": f"{_num(row['value'], fmt)} [{_num(row['low'], fmt)}, {_num(row['high'], fmt)}]",
            "other": other, "p_holm": _num(row["p_holm"], ".3f"), "mde": _num(row["mde"], fmt.lstrip("+")),
            "n": f"{row['seeds']} x {row['units']}" if row["units"] else f"{row['seeds']} seeds",
            "units": ("seeds x texts" if row["figure"] == "heldout_perplexity" else "seeds x probes") if row["units"]
            else "seed-level values"}


def primary_lines(spec: PrimarySpec, rows: list[dict[str, Any]]) -> list[str]:
    """The summary's opening: what is compared and how, then one sentence per comparison."""
    methods = sorted({r["method"] for r in rows})
    lines = [f"Primary comparisons ({Path(spec.path).name}, preset {spec.preset}, fixed before the run): each "
             f"strategy minus {spec.control} at generation {spec.generation}, {spec.split} probes; interval: "
             f"{' / '.join(methods)}, 95%; p Holm-adjusted over {len(rows)} comparisons at alpha {spec.alpha:g}; "
             f"MDE: the difference found with {spec.power:.0%} power at alpha {spec.alpha / len(rows):.4g}"
             f"{_echo_note(rows)}."]
    for r in rows:
        c = format_row(r)
        beside = f"; {r['other_method']} {c['other']}" if c["other"] else ""
        lines.append(f"PRIMARY {c['comparison']}, {c['what']}: {c['difference']} ({r['method']}{beside}), "
                     f"{c['n']} ({c['units']}); "
                     f"Holm p {c['p_holm']}; MDE {c['mde']}; {r['verdict']}.")
    return lines


def _echo_note(rows: list[dict[str, Any]]) -> str:
    n = max((r["echo_excluded"] for r in rows), default=0)
    return f"; {n} probes whose golden answer is in the question left out of accuracy (echo credit)" if n else ""


def primary_table(rows: list[dict[str, Any]]) -> list[str]:
    """The README's primary table (Markdown lines): a sentence naming the methods, then the table."""
    others = sorted({r["other_method"] for r in rows if r["other_method"]})
    out = [f"Interval: {' / '.join(sorted({r['method'] for r in rows}))}, 95%"
           + (f"; other interval: {' / '.join(others)}" if others else "")
           + "; p Holm-adjusted over the rows; MDE at 80% power and alpha / rows (n/a: one seed, or no seed spread)"
           + _echo_note(rows) + ".",
           "", "| comparison | figure | difference [95% interval] | method | other interval | seeds x units | Holm p | "
           "MDE (80% power) | verdict |", "|---|---|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        c = format_row(r)
        out.append(f"| {c['comparison']} | {c['what']} | {c['difference']} | {r['method']} | {c['other']} | {c['n']} "
                   f"| {c['p_holm']} | {c['mde']} | {r['verdict']} |")
    return out
