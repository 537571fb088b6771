"""The README's result tables, regenerated from the small result files committed under ``docs/results/<name>/``.

    python -m rag_bench.report.readme_tables publish quick data/reports/quick-seeds data/runs/quick-factbook ...
    python -m rag_bench.report.readme_tables inputs quick-inputs data/runs/quick-factbook   # a run's data splits
    python -m rag_bench.report.readme_tables harness theory-harness            # the Gaussian through the harness
    python -m rag_bench.report.readme_tables                # rewrite every marked table: README.md and docs/**/*.md
    python -m rag_bench.report.readme_tables --check        # exit 1 when any marked table and its results disagree

``publish`` copies a report's ``intervals.csv``, ``differences.csv``, ``primary.csv``, ``diversity.csv`` and
``report.json``, and each run's ``knowledge_buckets.csv``, into ``docs/results/<name>/``, collects
``provenance.json`` from the runs' manifests (tokens trained on per row kind and origin, each pool's origins and its
8-gram overlap with the human training text), and writes the runs' per-probe data (rag_bench.report.per_probe:
``samples.jsonl.gz``, ``heldout_nll.jsonl.gz``, ``diversity_seeds.jsonl.gz``) with ``published.json`` (the preset
and control of the primary comparisons). A table in the README or in any Markdown file under docs/
(rag_bench.report.marked_files) sits between ``<!-- table:<name>:<kind> -->`` and
``<!-- /table -->``; ``kind`` is one of TABLES. The ``primary`` table is not copied from an aggregate: rendering it
(and so ``--check``) recomputes every primary interval from the committed per-probe files and
docs/primary_comparisons.json. Results published before issue 20 (``quick``, ``smol``, ...) have no per-probe
files; their tables are history, checked against their committed CSV as before.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag_bench.records import read_json, write_json
from rag_bench.report.ci import MIN_PROBES
from rag_bench.report.contaminate_tables import TABLES as CONTAMINATION_TABLES
from rag_bench.report.marked_files import marked_files, rewrite_tables
from rag_bench.report.per_probe import gather, has_per_probe, read_per_probe, write_per_probe
from rag_bench.report.primary import SPEC_PATH, primary_rows
from rag_bench.report.primary import primary_table as primary_rows_table
from rag_bench.report.results import ReportError, collect_runs, read_optional
from rag_bench.report.seed_tables import SEED_TABLES, merge_per_probe, published_spec
from rag_bench.theory.harness import harness_zscores

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "results"
MARKER = re.compile(r"(<!-- table:(?P<name>[\w.-]+):(?P<kind>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _ci(row: dict[str, str], fmt: str = ".3f") -> str:
    return f"{float(row['value']):{fmt}} [{float(row['low']):{fmt}}, {float(row['high']):{fmt}}]"


def _grid(rows: list[dict[str, str]], label: Callable[[dict[str, str]], str], fmt: str = ".3f") -> list[str]:
    gens = sorted({int(r["generation"]) for r in rows})
    labels = list(dict.fromkeys(label(r) for r in rows))
    cells = {(label(r), int(r["generation"])): _ci(r, fmt) for r in rows}
    out = ["| | " + " | ".join(f"generation {g}" if g == gens[0] else str(g) for g in gens) + " |",
           "|---|" + "---:|" * len(gens)]
    return out + [f"| {lab} | " + " | ".join(cells.get((lab, g), "") for g in gens) + " |" for lab in labels]


def exact_match_table(folder: Path, metric: str = "exact_match") -> list[str]:
    rows = [r for r in _csv(folder / "intervals.csv") if r["figure"] == metric and r["bucket"] == "all"]
    rows.sort(key=lambda r: (r["strategy"], r["mode"] != "closed", r["mode"], int(r["generation"])))
    return _grid(rows, lambda r: f"{r['strategy']}, {'closed-book' if r['mode'] == 'closed' else r['mode']}")


def perplexity_table(folder: Path) -> list[str]:
    rows = [r for r in _csv(folder / "intervals.csv") if r["figure"] == "heldout_perplexity"]
    rows.sort(key=lambda r: (r["strategy"], int(r["generation"])))
    return _grid(rows, lambda r: r["strategy"], ".2f")


def differences_table(folder: Path, metric: str = "exact_match") -> list[str]:
    rows = [r for r in _csv(folder / "differences.csv") if r["figure"] in (metric, "heldout_perplexity")]
    last = max((int(r["generation"]) for r in rows), default=0)
    keep = [r for r in rows if int(r["generation"]) == last]
    out = [f"| exploratory difference (generation {last}) | mode | bucket | value [95% interval] | excludes 0 |",
           "|---|---|---|---:|---|"]
    for r in keep:
        what = {"generation vs 0": f"{r['strategy']}: generation {last} minus 0",
                "strategy vs strategy": f"{r['strategy']} minus {r['against']}"}.get(
            r["comparison"], f"{r['strategy']}: {r['mode']} minus closed-book")
        fmt = ".2f" if r["figure"] == "heldout_perplexity" else ".3f"
        mode = "perplexity" if r["figure"] == "heldout_perplexity" else r["mode"]
        shown = "yes" if r["excludes_zero"] == "True" else "no"
        if int(r["probes"]) < MIN_PROBES:  # no claim on a small cell (issue 20), whatever an old CSV says
            shown = f"no claim (n < {MIN_PROBES})"
        out.append(f"| {what} | {mode} | {r['bucket']} | {_ci(r, fmt)} | {shown} |")
    return out


def tokens_table(folder: Path) -> list[str]:
    data = read_json(folder / "provenance.json")
    out = ["| run | strategy | generation | corpus blocks by origin | curriculum rows (tokens) | pool 8-gram overlap "
           "with human text (written part) |", "|---|---|---:|---|---|---:|"]
    for r in data["generations"]:
        trained = r.get("trained_tokens") or {}
        corpus = trained.get("corpus", {}).get("by_origin", {})
        curriculum = ", ".join(f"{k} {v['tokens']:,}" for k, v in trained.items() if k != "corpus") or "none"
        overlap = ((r.get("pool") or {}).get("human_overlap") or {}).get("written", {}).get("share")
        out.append(f"| {r['run']} | {r['strategy'] or 'shared'} | {r['generation']} | "
                   + ", ".join(f"{k} {v:,}" for k, v in corpus.items()) + f" | {curriculum} | "
                   + (f"{overlap:.3f}" if overlap is not None else "") + " |")
    return out


def inputs_table(folder: Path) -> list[str]:
    data = read_json(folder / "inputs.json")
    out = ["| input of the run | count |", "|---|---:|"]
    out += [f"| {label} | {value} |" for label, value in data["rows"]]
    return out


def harness_table(folder: Path) -> list[str]:
    data = read_json(folder / "harness.json")
    rep, acc = data["replace"], data["accumulate"]
    z = harness_zscores(rep)
    return ["| Gaussian through build_pool and the generation loop | value |", "|---|---:|",
            f"| chains x generations, M samples per fit | {rep['chains']} x {len(rep['generation'])}, "
            f"{rep['samples']} |",
            f"| replace: largest abs(simulated - closed form) / SE over {len(z)} points | {max(z):.2f} |",
            f"| accumulate: largest mean shift E[(mu_n - mu_0)^2] | {max(acc['simulated']['mean_shift_sq']):.4f} |",
            f"| bound (pi^2/6) sigma0^2 / M | {acc['mean_shift_bound']:.4f} |",
            f"| replace: mean shift at the last generation | {rep['simulated']['mean_shift_sq'][-1]:.4f} |"]


def _bucket_files(folder: Path) -> dict[str, list[dict[str, str]]]:
    """``knowledge_buckets-<run>.csv`` files of a results folder (one per seed), by run name."""
    return {p.stem.removeprefix("knowledge_buckets-"): _csv(p) for p in sorted(folder.glob("knowledge_buckets-*.csv"))}


def buckets_table(folder: Path, metric: str = "contains") -> list[str]:
    """Per run (seed): ``metric`` [95% Wilson] by knowledge bucket at generation 0 and at the last generation."""
    runs = _bucket_files(folder)
    last = {run: max(int(r["generation"]) for r in rows) for run, rows in runs.items()}
    head = [f"{run}: generation {g}" for run in runs for g in (0, last[run])]
    out = ["| strategy, bucket, mode | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    keys = list(dict.fromkeys((r["strategy"], r["axis"], r["bucket"], r["mode"]) for rows in runs.values()
                              for r in rows if r["metric"] == metric and r["axis"] in ("known", "confidence")))
    for strategy, axis, bucket, mode in keys:
        cells = []
        for run, rows in runs.items():
            for g in (0, last[run]):
                hit = [r for r in rows if (r["strategy"], r["axis"], r["bucket"], r["mode"], r["metric"],
                                           int(r["generation"])) == (strategy, axis, bucket, mode, metric, g)]
                cells.append(f"{float(hit[0]['value']):.2f} [{float(hit[0]['ci95_low']):.2f}, "
                             f"{float(hit[0]['ci95_high']):.2f}] (n {hit[0]['n']})" if hit else "")
        label = bucket if axis == "known" else f"confidence {bucket}"
        out.append(f"| {strategy}, {label}, {'closed-book' if mode == 'closed' else mode} | " + " | ".join(cells)
                   + " |")
    return out


def forgetting_table(folder: Path) -> list[str]:
    """Share of generation 0's known facts that each later generation no longer answers, per run and strategy."""
    rows = [dict(r, strategy=f"{run}, {r['strategy']}") for run, rs in _bucket_files(folder).items() for r in rs
            if r["metric"] == "forgetting" and int(r["generation"]) > 0]
    for r in rows:
        r.update(value=r["value"], low=r["ci95_low"], high=r["ci95_high"])
    return _grid(rows, lambda r: r["strategy"], ".2f")


def diversity_table(folder: Path, metrics: tuple[str, ...] = ("distinct_2", "vendi_score",
                                                            "tail_survival_unigram")) -> list[str]:
    """Diversity of each generation's continuations: the mean over seeds, and each seed's value (no interval)."""
    rows = [r for r in _csv(folder / "diversity.csv") if r["metric"] in metrics and r["mode"] == "closed"]
    gens = sorted({int(r["generation"]) for r in rows})
    out = ["| strategy, metric | " + " | ".join(f"generation {g}" if g == gens[0] else str(g) for g in gens) + " |",
           "|---|" + "---:|" * len(gens)]
    for strategy, metric in dict.fromkeys((r["strategy"], r["metric"]) for r in rows):
        cells = []
        for g in gens:
            vals = [float(r["value"]) for r in rows if (r["strategy"], r["metric"], int(r["generation"])) ==
                    (strategy, metric, g)]
            cells.append(f"{sum(vals) / len(vals):.3f} (" + ", ".join(f"{v:.3f}" for v in vals) + ")" if vals else "")
        out.append(f"| {strategy}, {metric} | " + " | ".join(cells) + " |")
    return out


def primary_table(folder: Path, spec_path: Path = SPEC_PATH) -> list[str]:
    """The primary comparisons, recomputed from the per-probe files in ``folder`` (not from an aggregate)."""
    spec = published_spec(folder, spec_path)
    rows = primary_rows(spec, read_per_probe(folder))
    return [f"Primary comparisons of preset {spec.preset} ({spec_path.name}); intervals recomputed from the per-probe "
            f"files in docs/results/{folder.name}/.", "", *primary_rows_table(rows)]


TABLES: dict[str, Callable[[Path], list[str]]] = {
    "exact-match": exact_match_table, "contains": lambda folder: exact_match_table(folder, "contains"),
    "perplexity": perplexity_table, "differences": differences_table,
    "differences-contains": lambda folder: differences_table(folder, "contains"), "buckets": buckets_table,
    "forgetting": forgetting_table, "diversity": diversity_table, "tokens": tokens_table, "inputs": inputs_table,
    "harness": harness_table, "primary": primary_table}
TABLES.update(CONTAMINATION_TABLES)  # rag_bench.report.contaminate_tables: recomputed from per-probe files
TABLES.update(SEED_TABLES)  # rag_bench.report.seed_tables: by generation, recomputed from per-probe files


def render(readme: str, results: Path = RESULTS, spec_path: Path = SPEC_PATH, source: str = "README") -> str:
    """``readme`` (the text of the file ``source``) with every marked table regenerated from ``results/<name>/`` (the
    primary table with the primary comparisons of ``spec_path``)."""
    def table(match: re.Match) -> str:
        kind = match["kind"]
        if kind not in TABLES:
            raise ValueError(f"{source}: unknown table kind {kind!r}; choose from {sorted(TABLES)}")
        folder = results / match["name"]
        if not folder.is_dir():
            raise ValueError(f"{source}: table {match['name']}:{kind} has no results folder {folder}")
        lines = primary_table(folder, spec_path) if kind == "primary" else TABLES[kind](folder)
        return match[1] + "\n".join(lines) + "\n" + match[5]

    return MARKER.sub(table, readme)


def provenance(run_dirs: list[Path]) -> dict[str, Any]:
    """Per generation of each run: tokens trained on by row kind and origin, the pool's origins and overlap."""
    rows = []
    for run in run_dirs:
        for manifest in sorted(run.rglob("gen_*/manifest.json")):
            data = read_json(manifest)
            rel = manifest.parent.relative_to(run).parts
            pool = data.get("pool") or {}
            rows.append({"run": run.name, "strategy": rel[0] if len(rel) > 1 else None,
                         "generation": int(rel[-1].removeprefix("gen_")), "trained_tokens": data.get("trained_tokens"),
                         "curriculum": (data.get("config") or {}).get("curriculum"),
                         # where the weights were trained (gen 0 may come from a cache) and where the step ran
                         "trained_on": (data.get("train") or {}).get("compute"),
                         "steps_ran_on": data.get("compute"),
                         "pool": {k: pool.get(k) for k in ("tokens", "origin_tokens", "human_overlap")} if pool
                         else None})
    rows.sort(key=lambda r: (r["run"], r["strategy"] or "", r["generation"]))
    return {"generations": rows}


def run_inputs(run: Path) -> dict[str, Any]:
    """Counts of a run's data splits and probes (issue 13, points 5-7), from RUN/data."""
    from collections import Counter

    from rag_bench.collapse.data import CHARS_PER_TOKEN
    from rag_bench.eval.splits import probe_split
    from rag_bench.records import read_jsonl

    data = run / "data"

    def texts(name: str) -> list[str]:
        return [r["contents"] for r in read_jsonl(data / name)] if (data / name).is_file() else []

    probes = read_jsonl(data / "probes.jsonl")
    rows = []
    for label, name in (("human training texts", "human_train.jsonl"), ("validation texts (checkpoint choice)",
                                                                        "human_heldout.jsonl"),
                        ("measurement texts (perplexity, diversity prompts)", "human_eval.jsonl")):
        found = texts(name)
        chars = sum(map(len, found))
        rows.append([label, f"{len(found)} texts, {chars:,} characters (about {chars / CHARS_PER_TOKEN:,.0f} tokens)"])
    for key, label in (("bucket_index", "probes by bucket, counted over the whole index (tail / torso / head)"),
                       ("bucket", "probes by bucket, counted over the run's training text (tail / torso / head)")):
        counts = Counter(p["metadata"].get(key) for p in probes)
        rows.append([label, " / ".join(str(counts[b]) for b in ("tail", "torso", "head"))])
    sides = Counter(probe_split(p["id"]) for p in probes)
    rows.append(["probes, dev / test (rag_bench.eval.splits)", f"{sides['dev']} / {sides['test']}"])
    return {"run": run.name, "rows": rows}


def publish(name: str, report: Path, run_dirs: list[Path], results: Path = RESULTS, add: bool = False) -> Path:
    """Copy ``report``'s result files into ``results/name`` with the per-probe data of ``run_dirs`` (pooled as seeds
    when the report pooled them). ``add``: pool these runs' seeds with those published there before (their
    per-probe rows and provenance; the report's aggregates, which cover only these runs, are not copied)."""
    folder = results / name
    folder.mkdir(parents=True, exist_ok=True)
    before = read_optional(folder / "published.json") if add else {}
    if add and not (before and has_per_probe(folder)):
        raise ReportError(f"{folder}: nothing published there to add to (publish it once without --add)")
    for file in ("intervals.csv", "differences.csv", "primary.csv", "report.json", "exact_match.csv",
                 "heldout_perplexity.csv", "diversity.csv"):
        if (report / file).is_file() and not add:
            shutil.copyfile(report / file, folder / file)
    for run in run_dirs:  # knowledge buckets (rag_bench.collapse.buckets) are per run: one file per seed
        if (run / "knowledge_buckets.csv").is_file():
            shutil.copyfile(run / "knowledge_buckets.csv", folder / f"knowledge_buckets-{run.name}.csv")
    made_here = provenance(run_dirs)
    if add:  # the generations of runs published before, then these (a republished run replaces its rows)
        names = {r.name for r in run_dirs}
        old = read_json(folder / "provenance.json")["generations"] if (folder / "provenance.json").is_file() else []
        made_here = {"generations": [r for r in old if r["run"] not in names] + made_here["generations"]}
    write_json(folder / "provenance.json", made_here)
    if run_dirs and (report / "report.json").is_file():  # a report of these runs: their per-probe data with it
        made = read_optional(report / "report.json")
        entries, _ = collect_runs(run_dirs, seeds=True)  # a run published alone keeps its config seed too
        data = gather(entries)
        written = write_per_probe(folder, merge_per_probe(read_per_probe(folder), data) if add else data)
        used = made.get("primary") or {}
        runs = [r for r in before.get("runs", []) if Path(r).name not in {p.name for p in run_dirs}]
        write_json(folder / "published.json", {
            "preset": used.get("preset") or before.get("preset"), "control": used.get("control") or
            before.get("control"), "runs": runs + [str(r) for r in run_dirs],
            "aggregates_from": before.get("aggregates_from", before.get("runs")) if add else [str(r) for r in run_dirs],
            "per_probe_bytes": {p.name: p.stat().st_size for p in written}})
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag_bench.report.readme_tables",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a marked file differs from its results")
    parser.add_argument("--readme", type=Path, help="check or rewrite this file (default: README.md and docs/)")
    parser.add_argument("--docs", type=Path, help="and every marked Markdown file under this folder (default: docs/ "
                        "when --readme is not given either)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="published results (default docs/results)")
    parser.add_argument("--spec", type=Path, default=SPEC_PATH, help="primary comparisons (default "
                        "docs/primary_comparisons.json)")
    sub = parser.add_subparsers(dest="command")
    pub = sub.add_parser("publish", help="copy a report's result files into docs/results/NAME")
    pub.add_argument("name")
    pub.add_argument("report", type=Path)
    pub.add_argument("runs", type=Path, nargs="*")
    pub.add_argument("--add", action="store_true", help="pool these runs' seeds with those already published in NAME")
    inp = sub.add_parser("inputs", help="write docs/results/NAME/inputs.json: a run's data splits and probe counts")
    inp.add_argument("name")
    inp.add_argument("run", type=Path)
    har = sub.add_parser("harness", help="write docs/results/NAME/harness.json: the Gaussian through the harness")
    har.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "publish":
        print(f"wrote {publish(args.name, args.report, args.runs, results=args.results, add=args.add)}")
        return 0
    if args.command in ("inputs", "harness"):
        from rag_bench.theory.harness import harness_report
        from rag_bench.theory.recursions import TheoryConfig

        data = run_inputs(args.run) if args.command == "inputs" else harness_report(TheoryConfig())
        (args.results / args.name).mkdir(parents=True, exist_ok=True)
        write_json(args.results / args.name / f"{args.command}.json", data)
        print(f"wrote {args.results / args.name / args.command}.json")
        return 0
    try:
        files = marked_files(args.readme, args.docs)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    return rewrite_tables(files, lambda text, source: render(text, args.results, args.spec, source), check=args.check)

if __name__ == "__main__":
    raise SystemExit(main())
