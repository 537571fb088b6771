"""A run's per-probe data: every answer's scores, every held-out text's NLL and each seed's diversity, gathered from
the run's files, written as small gzipped JSONL beside the published aggregates and read back to recompute them.

    from rag_bench.report.per_probe import gather, write_per_probe, read_per_probe, answer_cells
    data = gather(entries)             # entries: rag_bench.report.results.find_results / collect_runs
    write_per_probe(folder, data)      # folder/samples.jsonl.gz, heldout_nll.jsonl.gz, diversity_seeds.jsonl.gz
    data = read_per_probe(folder)
    answer_cells(data, "contains", split="test")   # {(strategy, generation, mode): {seed: {probe id: score}}}

A sample row is ``{"probe", "seed", "generation", "strategy", "mode", "bucket", "echo", "answer", "scores"}`` (echo:
the golden answer occurs in the question, None where the run predates the flag): probe ids,
not prompts or passages, and the answer cut to ``ANSWER_CHARS`` characters (the scores were computed on the whole
answer). A held-out row is ``{"seed", "generation", "strategy", "text", "nll", "tokens"}``: the summed NLL in nats
of held-out text number ``text`` (the same texts in every generation). A diversity row is one metric of one
series' continuations in one seed. The files are written with a fixed gzip time stamp, so the same data gives the
same bytes.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rag_bench.eval.splits import probe_split
from rag_bench.records import read_jsonl
from rag_bench.report.results import ReportError

FILES = {"samples": "samples.jsonl.gz", "nll": "heldout_nll.jsonl.gz", "diversity": "diversity_seeds.jsonl.gz"}
ANSWER_CHARS = 160  # enough to read what was answered; the scores are of the whole answer
DIGITS = 4  # scores and NLL are rounded to this many decimals (NLL sums: 4 decimals of a nat)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PerProbe:
    """Rows of the three kinds, as written and read."""

    samples: list[dict[str, Any]]
    nll: list[dict[str, Any]]
    diversity: list[dict[str, Any]]


def _seed(seed: Any) -> int:
    return seed if isinstance(seed, int) else 0  # a run reported alone is seed 0 of itself


def _number(value: Any) -> float | None:
    return round(float(value), DIGITS) if isinstance(value, int | float) and not isinstance(value, bool) else None


def gather(entries: Sequence[Any]) -> PerProbe:
    """The per-probe rows of every evaluated generation in ``entries`` (from their samples and results files)."""
    samples, nll, diversity = [], [], []
    seen: dict[tuple, Path] = {}
    for e in sorted(entries, key=lambda e: (e.strategy, _seed(e.seed), e.generation)):
        where = {"seed": _seed(e.seed), "generation": e.generation, "strategy": e.strategy}
        first = seen.setdefault(tuple(where.values()), e.path)
        if first is not e.path:  # two runs pooled as seeds that share a seed would mix silently
            raise ReportError(f"{e.path}: seed {where['seed']} of {e.strategy}, generation {e.generation}, is given "
                              f"twice (also {first}); pool runs of different seeds")
        for mode in e.results.get("metrics", {}):
            path = e.path.parent / f"samples_{mode}.jsonl"
            for r in read_jsonl(path) if path.is_file() else ():
                scores = {k: v for k, v in ((k, _number(v)) for k, v in (r.get("scores") or {}).items())
                          if v is not None}
                samples.append({"probe": r["id"], **where, "mode": mode, "bucket": r.get("bucket"),
                                "echo": r.get("echo"), "answer": str(r.get("prediction") or "")[:ANSWER_CHARS],
                                "scores": scores})
        per_text = ((e.results.get("fit") or {}).get("heldout_perplexity") or {}).get("per_text_nll") or []
        nll += [{**where, "text": i, "nll": _number(v), "tokens": int(t)} for i, (v, t) in enumerate(per_text)]
        for series, cells in (e.results.get("diversity") or {}).items():
            diversity += [{**where, "series": series, "metric": metric, "value": _number(cell.get("value"))}
                          for metric, cell in cells.items() if isinstance(cell, dict)
                          and _number(cell.get("value")) is not None]
    return PerProbe(samples=samples, nll=nll, diversity=diversity)


def _gzip_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def write_per_probe(folder: Path, data: PerProbe) -> list[Path]:
    """The three gzipped JSONL files in ``folder`` (each written aside and renamed into place)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, name in FILES.items():
        _gzip_jsonl(folder / name, getattr(data, kind))
        written.append(folder / name)
    return written


def has_per_probe(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES.values())


def read_per_probe(folder: Path) -> PerProbe:
    """The per-probe rows published in ``folder``; a missing or broken file is a ReportError naming it."""
    kinds = {}
    for kind, name in FILES.items():
        path = folder / name
        if not path.is_file():
            raise ReportError(f"{path}: per-probe file not found (written by readme_tables publish)")
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                kinds[kind] = [json.loads(line) for line in fh if line.strip()]
        except (OSError, EOFError, ValueError) as exc:
            raise ReportError(f"{path}: not gzipped JSONL ({exc})") from None
    return PerProbe(**kinds)


def echo_probes(data: PerProbe, *, split: str = "test") -> set[str]:
    """Probes of the ``split`` half whose golden answer occurs in the question (``contains`` would credit an echo)."""
    return {r["probe"] for r in data.samples if r.get("echo") and (split == "all" or probe_split(r["probe"]) == split)}


def answer_cells(data: PerProbe, metric: str, *, split: str = "test",
                 exclude_echo: bool = False) -> dict[tuple, dict[int, dict[str, float]]]:
    """``metric`` per probe of the ``split`` half (without echo probes if ``exclude_echo``):
    {(strategy, generation, mode): {seed: {probe id: score}}}."""
    out: dict[tuple, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in data.samples:
        score = r["scores"].get(metric)
        if score is not None and (split == "all" or probe_split(r["probe"]) == split) and not (
                exclude_echo and r.get("echo")):
            out[(r["strategy"], r["generation"], r["mode"])][r["seed"]][r["probe"]] = score
    return out


def nll_cells(data: PerProbe) -> dict[tuple, dict[int, list[list[float]]]]:
    """Held-out texts' (NLL, tokens) in text order: {(strategy, generation): {seed: [[nll, tokens], ...]}}."""
    out: dict[tuple, dict[int, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(dict))
    for r in data.nll:
        out[(r["strategy"], r["generation"])][r["seed"]][r["text"]] = [r["nll"], r["tokens"]]
    return {key: {seed: [texts[i] for i in sorted(texts)] for seed, texts in by.items()} for key, by in out.items()}


def diversity_cells(data: PerProbe) -> dict[tuple, dict[int, float]]:
    """{(strategy, generation, series, metric): {seed: value}}."""
    out: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in data.diversity:
        out[(r["strategy"], r["generation"], r["series"], r["metric"])][r["seed"]] = r["value"]
    return out
