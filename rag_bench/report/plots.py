"""The report's figures, drawn with matplotlib (Agg) from the tidy rows of ``rag_bench.report.results``.

    from rag_bench.report.plots import exact_match_figure, save_png
    save_png(exact_match_figure(rows), "runs/r1/report/exact_match.png")

A row is ``{"strategy", "seed", "generation", "mode", "bucket", "metric", "value", "n"}``. Several seeds of
one strategy at one generation are replicates: a line goes through their mean and a band spans min to max.
Every figure keeps one colour per strategy and one line style per mode, so the figures read together.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server, and no GUI toolkit imported

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from rag_bench.records import atomic_path

MODE_ORDER = ("closed", "grounded", "grounded_span", "human")
BUCKET_ORDER = ("tail", "torso", "head", "all")
LINESTYLES = {"closed": "-", "grounded": "--", "grounded_span": "-.", "human": ":"}
STYLE = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 8,
         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 110}
Key = tuple[str, str, str, str]


def ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """``values`` with the known names first, in ``order``, then the rest sorted."""
    values = set(values)
    return [v for v in order if v in values] + sorted(values - set(order))


def series_points(rows: Iterable[dict[str, Any]]) -> dict[Key, list[tuple[int, float, float, float, int]]]:
    """(strategy, mode, bucket, metric) -> [(generation, mean, min, max, replicates)] over seeds, by generation."""
    values: dict[Key, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["value"] is not None and np.isfinite(row["value"]):
            key = (row["strategy"], row["mode"], row["bucket"], row["metric"])
            values[key][row["generation"]].append(float(row["value"]))
    return {key: [(g, float(np.mean(v)), min(v), max(v), len(v)) for g, v in sorted(by_gen.items())]
            for key, by_gen in values.items()}


def strategy_colours(strategies: Iterable[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {s: cmap(i % 10) for i, s in enumerate(sorted(set(strategies)))}


def _line(ax, points, *, colour, style="-", label=None, marker="o") -> None:
    gens = [p[0] for p in points]
    ax.plot(gens, [p[1] for p in points], linestyle=style, marker=marker, markersize=4, color=colour, label=label)
    if any(p[4] > 1 for p in points):
        ax.fill_between(gens, [p[2] for p in points], [p[3] for p in points], color=colour, alpha=0.25, lw=0)


def _generation_axis(ax) -> None:
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("generation")


def _empty(title: str) -> Figure:
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no data in the results", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(title)
    return fig


def _legend(fig: Figure, axes) -> None:
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center",
                   ncols=min(len(labels), 4), frameon=False)


def panel_grid(rows: list[dict[str, Any]], *, panel_keys: tuple[str, str], title: str, ylabel: str,
               ncols: int | None = None, by_mode: bool = False, zero_line: bool = False,
               ylim01: bool = False) -> Figure:
    """A panel per distinct (row[panel_keys[0]], row[panel_keys[1]]), one line per strategy (and mode, ``by_mode``).

    Panels fill a grid row by row, ``ncols`` wide (default: one column per value of the second key).
    """
    if not rows:
        return _empty(title)
    orders = {"mode": MODE_ORDER, "bucket": BUCKET_ORDER}
    first = ordered({r[panel_keys[0]] for r in rows}, orders.get(panel_keys[0], ()))
    second = ordered({r[panel_keys[1]] for r in rows}, orders.get(panel_keys[1], ()))
    present = {(r[panel_keys[0]], r[panel_keys[1]]) for r in rows}
    panels = [(a, b) for a in first for b in second if (a, b) in present]
    ncols = min(ncols or len(second), len(panels))
    nrows = -(-len(panels) // ncols)
    by_panel: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_panel[(row[panel_keys[0]], row[panel_keys[1]])].append(row)
    colours = strategy_colours(r["strategy"] for r in rows)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(max(3.2 * ncols + 0.6, 7.5), 2.6 * nrows + 1.0), squeeze=False,
                                 layout="constrained")
        for ax in axes.ravel()[len(panels):]:
            ax.set_axis_off()
        for ax, panel in zip(axes.ravel(), panels, strict=False):
            human_drawn = False
            for (strategy, mode, _, _), pts in sorted(series_points(by_panel[panel]).items()):
                if mode == "human":  # the same human texts under every strategy: one black line is enough
                    if not human_drawn:
                        _line(ax, pts, colour="black", style=LINESTYLES["human"], label="human text", marker="")
                    human_drawn = True
                    continue
                label = f"{strategy} · {mode}" if by_mode else strategy
                _line(ax, pts, colour=colours[strategy], style=LINESTYLES.get(mode, "-") if by_mode else "-",
                      label=label)
            n = next((r.get("n") for r in by_panel[panel] if r["generation"] == 0 and r["mode"] != "human"), None)
            ax.set_title(" · ".join(part for part in panel if part) + (f" (n={n})" if n else ""))
            if zero_line:
                ax.axhline(0, color="black", lw=0.8)
            if ylim01:
                ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel(ylabel)
            _generation_axis(ax)
        fig.suptitle(title)
        _legend(fig, axes)
    return fig


def exact_match_figure(rows: list[dict[str, Any]]) -> Figure:
    return panel_grid(rows, panel_keys=("mode", "bucket"), ylabel="exact match", ylim01=True,
                      title="Exact match against generation, by mode (rows) and frequency bucket (columns)")


def gap_figure(rows: list[dict[str, Any]]) -> Figure:
    return panel_grid(rows, panel_keys=("mode", "bucket"), ylabel="EM difference", zero_line=True,
                      title="Grounded minus closed-book exact match against generation")


def diversity_figure(rows: list[dict[str, Any]]) -> Figure:
    return panel_grid(rows, panel_keys=("bucket", "metric"), ncols=4, ylabel="value", by_mode=True,
                      title="Diversity of continuations of fixed human prompts (human: the texts that followed)")


def perplexity_figure(rows: list[dict[str, Any]]) -> Figure:
    title = "Held-out human perplexity against generation"
    if not rows:
        return _empty(title)
    colours = strategy_colours(r["strategy"] for r in rows)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
        for (strategy, *_), pts in sorted(series_points(rows).items()):
            _line(ax, pts, colour=colours[strategy], label=strategy)
        values = [r["value"] for r in rows if r["value"]]
        if values and max(values) / min(values) > 20:
            ax.set_yscale("log")
        ax.set_ylabel("perplexity (lower is better)")
        ax.set_title(title)
        _generation_axis(ax)
        ax.legend()
    return fig


def histograms(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[int, tuple[list[float], list[float]]]]:
    """(strategy, mode) -> generation -> (edges, counts) from rows of one bin each, seeds summed."""
    bins: dict[tuple[str, str, int], dict[tuple[float, float], float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        bins[(row["strategy"], row["mode"], row["generation"])][(row["low"], row["high"])] += row["value"] or 0.0
    out: dict[tuple[str, str], dict[int, tuple[list[float], list[float]]]] = defaultdict(dict)
    for (strategy, mode, generation), by_bin in bins.items():
        keys = sorted(by_bin)
        out[(strategy, mode)][generation] = ([k[0] for k in keys] + [keys[-1][1]], [by_bin[k] for k in keys])
    return dict(out)


def histogram_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Shumailov et al. 2024, Fig. 1: a panel per strategy (columns) and mode (rows), a curve per generation.

    The human continuations (the same prompts' human text) are drawn in black.
    """
    curves = histograms(rows)
    title = "Perplexity of each continuation under generation 0 (share of continuations per bin)"
    if not curves:
        return _empty(title)
    strategies = sorted({s for s, _ in curves})
    modes = ordered({m for _, m in curves if m != "human"}, MODE_ORDER)
    last = max(g for by_gen in curves.values() for g in by_gen)
    cmap = plt.get_cmap("viridis")
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(modes), len(strategies), figsize=(max(4.2 * len(strategies) + 0.5, 7.5),
                                 3.0 * len(modes) + 0.9), squeeze=False, sharex=True, layout="constrained")
        for i, mode in enumerate(modes):
            for j, strategy in enumerate(strategies):
                ax = axes[i][j]
                for generation, (edges, counts) in sorted(curves.get((strategy, mode), {}).items()):
                    colour = cmap(generation / max(last, 1) * 0.9)
                    _histogram_curve(ax, edges, counts, colour=colour, label=f"gen {generation}")
                human = curves.get((strategy, "human"), {})
                if human:
                    edges, counts = human[min(human)]
                    _histogram_curve(ax, edges, counts, colour="black", label="human text", style=":")
                ax.set_xscale("log")
                ax.set_xlim(*_occupied_range(curves))
                ax.set_title(f"{strategy} · {mode}")
                if i == len(modes) - 1:
                    ax.set_xlabel("perplexity under generation 0")
                if j == 0:
                    ax.set_ylabel("share of continuations")
        fig.suptitle(title)
        _legend(fig, axes)
    return fig


def _occupied_range(curves) -> tuple[float, float]:
    """From the lowest to the highest bin edge that holds any count, so the curves fill the panel."""
    lows, highs = [], []
    for by_gen in curves.values():
        for edges, counts in by_gen.values():
            filled = [i for i, c in enumerate(counts) if c > 0]
            if filled:
                lows.append(edges[filled[0]])
                highs.append(edges[filled[-1] + 1])
    return (min(lows), max(highs)) if lows else (1.0, 10.0)


def _histogram_curve(ax, edges, counts, *, colour, label, style="-") -> None:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        return
    centres = np.sqrt(np.asarray(edges[:-1]) * np.asarray(edges[1:]))  # geometric: the bins are log-spaced
    ax.plot(centres, counts / total, color=colour, linestyle=style, label=label, lw=1.4)


def theory_rows(theory: dict[str, Any]) -> list[dict[str, Any]]:
    """The theory figure's data as tidy rows: strategy = anchor, mode = simulated | se | closed_form."""
    anchors = [(f"gaussian-{e}", s, list(s["simulated"])) for e, s in theory["gaussian"].items()]
    anchors += [(f"regression-{k}", theory["regression"][k], [None]) for k in ("replace", "accumulate")]
    rows = []
    for name, series, quantities in anchors:
        for q, kind in itertools.product(quantities, ("simulated", "se", "closed_form")):
            values = series[kind][q] if q else series[kind]
            rows += [{"strategy": name, "generation": g, "mode": kind, "bucket": "", "metric": q or "error",
                      "value": v, "n": None, "seed": theory["seed"], "run": "theory"}
                     for g, v in zip(series["generation"], values, strict=True)]
    return rows


def theory_figure(theory: dict[str, Any]) -> Figure:
    """Simulated (points, +-2 SE) against closed form (lines): Gaussian variance and W2^2, regression error."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), layout="constrained")
        colours = {"unbiased": "tab:blue", "mle": "tab:orange", "replace": "tab:red", "accumulate": "tab:green"}
        for ax, quantity, label in ((axes[0], "var", "E[σ²]"), (axes[1], "w2_sq", "E[W₂²] to the original")):
            for estimator, series in theory["gaussian"].items():
                _anchor(ax, series["generation"], series["simulated"][quantity], series["se"][quantity],
                        series["closed_form"][quantity], colour=colours.get(estimator), name=f"{estimator} σ²")
            ax.set_title(f"Recursive Gaussian fit (M={theory['config']['gaussian_samples']}): {label}")
            _generation_axis(ax)
        unbiased = theory["gaussian"].get("unbiased")
        if unbiased:
            axes[0].plot(unbiased["generation"], unbiased["median_var"], color="grey", linestyle=":",
                         label="unbiased σ², median over chains")
        ax = axes[2]
        for strategy in ("replace", "accumulate"):
            series = theory["regression"][strategy]
            _anchor(ax, series["generation"], series["simulated"], series["se"], series["closed_form"],
                    colour=colours[strategy], name=strategy)
        ax.axhline(theory["regression"]["accumulate_bound"], color="grey", linestyle="--", lw=0.9,
                   label="π²/6 × first error")
        ax.set_title("Linear regression: test error ‖ŵ − w*‖²")
        _generation_axis(ax)
        for ax in axes:
            ax.legend()
        fig.suptitle("Theory anchors: simulation (points, ±2 SE) against closed form (lines)")
    return fig


def _anchor(ax, generations, simulated, se, closed_form, *, colour, name) -> None:
    ax.plot(generations, closed_form, color=colour, lw=1.5, label=f"{name}: closed form")
    ax.errorbar(generations, simulated, yerr=2 * np.asarray(se), fmt="o", markersize=3, color=colour,
                elinewidth=0.8, label=f"{name}: simulated")


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically and free it (pyplot keeps every open figure alive)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
