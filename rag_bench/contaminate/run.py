"""What ``rag-bench contaminate`` reads from a run, and the whole job: rewrites, indexes, evaluation.

    from rag_bench.contaminate.run import contaminate
    out = contaminate("data/runs/quick-factbook", generation=4, cfg=ContaminateConfig(limit=100), data_dir="data")

Inputs are checked before any work, each with one line naming the problem: a run folder without
``config.json``, a run whose generation 0 wrote no synthetic text (``gen_0/synthetic*.jsonl``), a
generation the run does not have (no ``model/`` for it under the chosen strategy), a human index or probe
file that is missing. Outputs go to ``RUN/contaminate/gen_<n>[-limit<L>]/`` (or ``out``): ``config.json``,
``rewrites/round_<j>.jsonl``, ``results.json``, ``results.csv``, ``filters.csv``, ``samples_*.jsonl`` and
the figures; the indexes to ``DATA_DIR/indexes/<index>-contam-<run>-gen<n>[-limit<L>]-s<share>``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag_bench.collapse.strategies import Strategy
from rag_bench.config import CollapseConfig
from rag_bench.contaminate.config import ContaminateConfig, rewrites_for
from rag_bench.records import read_json, write_json

OUT_FORMAT = "rag_bench.contaminate/1"


class ContaminateError(ValueError):
    """A run, generation or input ``rag-bench contaminate`` cannot use; the message names it."""


def run_config(run_dir: Path) -> CollapseConfig:
    path = run_dir / "config.json"
    if not path.is_file():
        raise ContaminateError(f"{run_dir}: not a run folder (no config.json); start one with `rag-bench collapse`")
    return CollapseConfig.from_file(path)


def model_dir(run_dir: Path, strategy: Strategy, k: int) -> Path:
    return (run_dir / "gen_0" if k == 0 else run_dir / strategy.folder / f"gen_{k}") / "model"


def finished_generations(run_dir: Path, strategy: Strategy, generations: int) -> list[int]:
    return [k for k in range(generations) if (model_dir(run_dir, strategy, k) / "config.json").is_file()]


def check_run(run_dir: Path, generation: int, cfg: ContaminateConfig) -> tuple[CollapseConfig, Strategy, list[int]]:
    """The run's config, the strategy whose generations answer, and its finished generations; or one clear error."""
    run_cfg = run_config(run_dir)
    if not any((run_dir / "gen_0").glob("synthetic*.jsonl")):
        raise ContaminateError(f"{run_dir}: the run has no synthetic text (gen_0/synthetic*.jsonl); its generation 0 "
                               "must have written before it can contaminate an index")
    name = cfg.strategy or run_cfg.strategies[0]
    if name not in run_cfg.strategies:
        raise ContaminateError(f"{run_dir}: strategy {name!r} is not one of the run's {list(run_cfg.strategies)}")
    strategy = Strategy.parse(name)
    done = finished_generations(run_dir, strategy, run_cfg.generations)
    if generation not in done:
        raise ContaminateError(f"{run_dir}: --gen {generation} is not a generation of this run (strategy {name}: "
                               f"generations with a model: {done or 'none'})")
    return run_cfg, strategy, done


def out_dir_for(run_dir: Path, generation: int, cfg: ContaminateConfig) -> Path:
    return run_dir / "contaminate" / (f"gen_{generation}" + (f"-limit{cfg.limit}" if cfg.limit else ""))


def index_names(human_index: str, run_dir: Path, generation: int, cfg: ContaminateConfig) -> list[str]:
    tag = f"{human_index}-contam-{run_dir.resolve().name}-gen{generation}" + (f"-limit{cfg.limit}" if cfg.limit else "")
    return [f"{tag}-s{share:.2f}" for share in cfg.shares]


def contaminate(run_dir: str | Path, *, generation: int, cfg: ContaminateConfig = ContaminateConfig(),
                data_dir: str | Path = "data", out: str | Path | None = None,
                echo: Callable[[str], None] | None = print) -> Path:
    """Write the rewrites, build one index per share, evaluate; returns the output folder."""
    from rag_bench.collapse.synthetic import watermarking_config
    from rag_bench.contaminate.build import SharePlan, build_share_indexes
    from rag_bench.contaminate.evaluate import evaluate_contamination
    from rag_bench.eval.inputs import load_eval_probes
    from rag_bench.index.store import load_index
    from rag_bench.lm import LM

    say = echo or (lambda _line: None)
    started = time.perf_counter()
    # resolved, so that the resume keys (which name the models' folders) match however the paths were typed
    run_dir, data_dir = Path(run_dir).resolve(), Path(data_dir).resolve()
    run_cfg, strategy, done = check_run(run_dir, generation, cfg)
    human_dir = data_dir / "indexes" / run_cfg.resolved_index()
    if not (human_dir / "CURRENT").is_file():
        raise ContaminateError(f"{human_dir}: the run's human index is not here; build it with `rag-bench prepare` "
                               "or `rag-bench ingest`, or give --data-dir")
    probes_path = run_dir / "data" / "probes.jsonl"
    if not probes_path.is_file():
        raise ContaminateError(f"{probes_path}: the run's probes are missing")
    out = Path(out) if out else out_dir_for(run_dir, generation, cfg)
    k = cfg.k or run_cfg.eval.k
    probes, probe_info = load_eval_probes(probes_path, limit=cfg.limit, seed=cfg.seed)
    human = load_index(human_dir)
    by_id = {c.id: c for c in human.chunks}
    pool = list(dict.fromkeys(p.metadata.get("source_chunk_id") for p in probes
                              if p.metadata.get("source_chunk_id") in by_id))
    if not pool:
        raise ContaminateError(f"{probes_path}: no probe's source_chunk_id is in {human_dir}: nothing to rewrite")
    answer_chunks = [by_id[cid] for cid in pool]
    last = max(done)
    write_json(out / "config.json", {"format": OUT_FORMAT, "run": str(run_dir.resolve()), "generation": generation,
                                     "strategy": strategy.name, "last_generation": last, "k": k,
                                     "human_index": str(human_dir.resolve()), "probes": probe_info,
                                     "answer_chunks": len(pool), "config": cfg.to_dict()})

    most = rewrites_for(max(cfg.shares), len(pool))
    watermark = watermarking_config(bias=run_cfg.watermark_bias, greenlist=run_cfg.watermark_greenlist,
                                    key=run_cfg.watermark_key)
    from rag_bench.contaminate.writer import write_rewrites

    say(f"generation {generation} rewrites the {len(pool)} chunks that hold the probed facts: {most} rewrites")
    writer_lm = LM.load(model_dir(run_dir, strategy, generation))
    rounds = write_rewrites(writer_lm, answer_chunks, rounds=math.ceil(most / len(pool)), out_dir=out / "rewrites",
                            generation=generation, cfg=cfg, decode=run_cfg.decode, watermark=watermark, echo=say)
    ordered = [row for round_rows in rounds for row in round_rows]
    info = {"run": str(run_dir.resolve()), "generation": generation, "strategy": strategy.name}
    plans = [SharePlan(share=s, rows=tuple(ordered[:rewrites_for(s, len(pool))]), pool=len(pool), info=info)
             for s in cfg.shares]
    names = index_names(run_cfg.resolved_index(), run_dir, generation, cfg)
    markers = build_share_indexes(human_dir, plans, [data_dir / "indexes" / n for n in names],
                                  embeddings=human.store.embedding_function, human=human, echo=say)
    del writer_lm
    models = {g: model_dir(run_dir, strategy, g) for g in sorted({0, last})}
    results = evaluate_contamination(
        models=models, probes=probes, index_dirs=[data_dir / "indexes" / n for n in names], markers=markers,
        human_chunks=human.chunks, cfg=cfg, k=k, watermark=watermark,
        z_threshold=cfg.z_threshold or run_cfg.watermark_z, decode=run_cfg.eval.decode, out_dir=out,
        embeddings=human.store.embedding_function, echo=say)
    results.update(run=str(run_dir.resolve()), writer_generation=generation, strategy=strategy.name,
                   index_names=names, probes=probe_info, answer_chunks=len(pool),
                   seconds=round(time.perf_counter() - started, 1))
    from rag_bench.contaminate.report import write_outputs

    write_outputs(results, out)
    return out


def load_results(out_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(out_dir) / "results.json")
