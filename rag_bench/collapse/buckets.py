"""The knowledge-bucket steps of a collapse run (``CollapseConfig.knowledge_buckets``): one after each evaluation.

    from rag_bench.collapse.buckets import with_bucket_steps
    steps = with_bucket_steps(runner, runner.plan())

After generation 0's evaluation, ``RUN/data/probe_axes.json`` places every evaluated probe on the axes of
``rag_bench.eval.buckets`` (generation 0's confidence in the gold answer, known or unknown at
generation 0, co-occurrence frequency over the run's human training text). After each generation's evaluation,
``eval/buckets.json`` holds its metrics by bucket and its forgetting rate, and ``RUN/knowledge_buckets.csv``
(beside ``report/``, which the report rewrites whole) gathers every generation written so far: one row per
strategy, generation, axis, bucket, mode and metric.
A step is finished when its file exists (each is written atomically), so a killed run resumes at the first
missing one.
"""

from __future__ import annotations

import csv
import functools
import io
from pathlib import Path
from typing import Any

from rag_bench.collapse.steps import Step
from rag_bench.eval.buckets import AXES, bucket_metrics, probe_axes
from rag_bench.probes.build import load_probes
from rag_bench.prompt import render_prompt
from rag_bench.records import Probe, read_json, read_jsonl, write_json, write_text_atomic

AXES_FILE = "probe_axes.json"
CSV_COLUMNS = ("strategy", "generation", "axis", "bucket", "mode", "metric", "value", "ci95_low", "ci95_high", "n")


def with_bucket_steps(runner: Any, steps: list[Step]) -> list[Step]:
    """``steps`` with a bucket step after every evaluation step (unchanged when the config does not ask for them)."""
    if not runner.cfg.knowledge_buckets:
        return steps
    out = []
    for step in steps:
        out.append(step)
        if step.key == "eval":
            path = step.gen_dir / "eval" / "buckets.json"
            out.append(Step(key="buckets", label=step.label.replace("evaluate", "knowledge buckets"),
                            gen_dir=step.gen_dir, generation=step.generation, strategy=step.strategy,
                            weight=2.0 + (20.0 if step.generation == 0 else 0.0),
                            run=functools.partial(write_buckets, runner, step.gen_dir),
                            done=functools.partial(Path.is_file, path)))
    return out


def axes_path(run_dir: Path) -> Path:
    return run_dir / "data" / AXES_FILE


def confidence_prompts(lm: Any, probes: list[Probe]) -> list[str]:
    """Where generation 0's confidence is scored: the closed-book prompt the answer chain gives the model, then,
    for a question, the start of a one-sentence answer ("The capital of Kenya is"), which the gold answer ends."""
    prompts = []
    for probe in probes:
        prompt = render_prompt(probe.prompt, tokenizer=lm.tokenizer)  # the chat template of an instruct model
        start = probe.metadata.get("answer_start", "")
        prompts.append(prompt + (" " if start and prompt and not prompt[-1].isspace() else "") + start)
    return prompts


def write_axes(runner: Any) -> dict[str, Any]:
    """Score generation 0's confidence in every evaluated probe's gold answer; write RUN/data/probe_axes.json."""
    samples = {r["id"]: r for r in read_jsonl(runner.gen_dir(None, 0) / "eval" / "samples_closed.jsonl")}
    probes = [p for p in load_probes(runner.inputs.probes_path) if p.id in samples]
    lm = runner.gen0
    prompts = confidence_prompts(lm, probes)
    axes = probe_axes(functools.partial(lm.score, batch_size=runner.cfg.eval.batch_size), prompts, probes,
                      samples, runner.inputs.train_texts)
    write_json(axes_path(runner.run_dir), axes)
    return axes


def write_buckets(runner: Any, gen_dir: Path) -> None:
    """This generation's metrics by bucket (eval/buckets.json), then the run's CSV of every generation so far."""
    path = axes_path(runner.run_dir)
    axes = read_json(path) if path.is_file() else write_axes(runner)
    samples = {mode: read_jsonl(gen_dir / "eval" / f"samples_{mode}.jsonl") for mode in runner.cfg.eval.modes}
    table = bucket_metrics(axes, samples)
    write_json(gen_dir / "eval" / "buckets.json", table)
    write_bucket_csv(runner.run_dir)


def bucket_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Every ``eval/buckets.json`` of the run as flat rows (generation 0 under every strategy's name)."""
    config = read_json(run_dir / "config.json")
    gen0 = run_dir / "gen_0" / "eval" / "buckets.json"
    rows = []
    for strategy in config["strategies"]:
        folder = run_dir / strategy.replace(":", "-")
        later = sorted((int(p.parent.parent.name[4:]), p) for p in folder.glob("gen_*/eval/buckets.json"))
        found = [(0, gen0), *later]
        for generation, file in found:
            if not file.is_file():
                continue
            table = read_json(file)
            for axis in AXES:
                for mode, by_bucket in table.get(axis, {}).items():
                    for bucket, metrics in by_bucket.items():
                        for metric, cell in metrics.items():
                            rows.append(_row(strategy, generation, axis, bucket, mode, metric, cell))
            if "forgetting" in table:
                rows.append(_row(strategy, generation, "known", "known", "closed", "forgetting", table["forgetting"]))
    return rows


def _row(strategy: str, generation: int, axis: str, bucket: str, mode: str, metric: str,
         cell: dict[str, Any]) -> dict[str, Any]:
    low, high = cell.get("ci95") or (None, None)
    return {"strategy": strategy, "generation": generation, "axis": axis, "bucket": bucket, "mode": mode,
            "metric": metric, "value": round(cell["value"], 4), "ci95_low": None if low is None else round(low, 4),
            "ci95_high": None if high is None else round(high, 4), "n": cell["n"]}


def write_bucket_csv(run_dir: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(bucket_rows(run_dir))
    out = run_dir / "knowledge_buckets.csv"
    write_text_atomic(out, buffer.getvalue())
    return out
