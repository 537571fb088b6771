"""What ``rag-bench contaminate`` reads from a run, and the whole job: rewrites, indexes, evaluation.

    from rag_bench.contaminate.run import contaminate
    out = contaminate("data/runs/quick-factbook", generation=4, cfg=ContaminateConfig(limit=100), data_dir="data")

Inputs are checked before any work, each with one line naming the problem: a run folder without
``config.json``, a run whose generation 0 wrote no synthetic text (``gen_0/synthetic*.jsonl``), a
generation the run does not have (no ``model/`` for it under the chosen strategy), a human index or probe
file that is missing, a thresholds file not chosen on dev, a greedy writer asked for more than one round, and a
human-distractor control that needs more held-out human chunks than exist (refused with the counts, before any
rewrite is written or index built). Outputs go to ``RUN/contaminate/gen_<n>[-limit<L>]/`` (or ``out``): ``config.json``,
``rewrites/round_<j>.jsonl``, ``results.json``, ``results.csv``, ``filters.csv``, ``samples_*.jsonl`` and
the figures; the indexes to ``DATA_DIR/indexes/<index>-contam-<run>-gen<n>[-limit<L>][<writer>]-s<share>``
and the control's to ``...-human-s<share>``. A writer other than generation n at temperature 1 adds its tag
(e.g. ``-restate-t0.3``) to both names, so writers never share a folder.
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
    return run_dir / "contaminate" / (f"gen_{generation}" + (f"-limit{cfg.limit}" if cfg.limit else "")
                                      + cfg.writer_tag())


def index_names(human_index: str, run_dir: Path, generation: int, cfg: ContaminateConfig,
                arm: str = "synthetic") -> list[str]:
    tag = (f"{human_index}-contam-{run_dir.resolve().name}-gen{generation}"
           + (f"-limit{cfg.limit}" if cfg.limit else "") + cfg.writer_tag() + ("-human" if arm == "human" else ""))
    return [f"{tag}-s{share:.2f}" for share in cfg.shares]


def distractor_rows(probes_path: Path, human_chunks: list, answer_chunks: list, cfg: ContaminateConfig,
                    index_dir: Path) -> list[dict[str, Any]]:
    """The human-distractor control's rows for the largest share, or one clear error with the counts."""
    from rag_bench.contaminate.control import ControlError, draw_distractors, heldout_human
    from rag_bench.records import read_jsonl

    probed = {r.get("metadata", {}).get("source_chunk_id") for r in read_jsonl(probes_path)}
    pool = heldout_human(human_chunks, excluded=probed)
    need = rewrites_for(max(cfg.shares), len(answer_chunks))
    try:
        return draw_distractors(answer_chunks, pool, count=need, seed=cfg.seed)
    except ControlError as exc:
        raise ContaminateError(f"{index_dir}: share {max(cfg.shares)}: {exc}; lower the largest share or --limit, "
                               "or measure without the control (--no-human-control)") from None


def contaminate(run_dir: str | Path, *, generation: int, cfg: ContaminateConfig = ContaminateConfig(),
                data_dir: str | Path = "data", out: str | Path | None = None, thresholds: str | Path | None = None,
                echo: Callable[[str], None] | None = print) -> Path:
    """Write the rewrites, build one index per share (and per control share), evaluate; returns the output folder.
    ``thresholds``: a thresholds.json chosen on dev to reuse (default: chosen here on this run's dev probes)."""
    from rag_bench.collapse.synthetic import watermarking_config
    from rag_bench.contaminate.build import SharePlan, build_share_indexes
    from rag_bench.contaminate.calibrate import ThresholdError, read_thresholds
    from rag_bench.contaminate.evaluate import evaluate_contamination
    from rag_bench.eval.inputs import load_eval_probes
    from rag_bench.index.store import load_index
    from rag_bench.lm import LM

    say = echo or (lambda _line: None)
    started = time.perf_counter()
    # resolved, so that the resume keys (which name the models' folders) match however the paths were typed
    run_dir, data_dir = Path(run_dir).resolve(), Path(data_dir).resolve()
    run_cfg, strategy, done = check_run(run_dir, generation, cfg)
    try:
        chosen = read_thresholds(thresholds) if thresholds is not None else None
    except ThresholdError as exc:
        raise ContaminateError(str(exc)) from None
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
    rounds = math.ceil(most / len(pool))
    if cfg.writer_temperature == 0 and rounds > 1:
        raise ContaminateError(f"share {max(cfg.shares)} needs {rounds} rewrites of each answer chunk, but a greedy "
                               "writer writes the same one every round; use --writer-temperature above 0")
    distractors = distractor_rows(probes_path, human.chunks, answer_chunks, cfg, human_dir) if cfg.human_control \
        else []
    watermark = watermarking_config(bias=run_cfg.watermark_bias, greenlist=run_cfg.watermark_greenlist,
                                    key=run_cfg.watermark_key)
    from rag_bench.contaminate.fluency import cached_fluency
    from rag_bench.contaminate.writer import write_rewrites, writer_name
    from rag_bench.models import load_model, resolve_model

    writer = writer_name(cfg, generation)
    say(f"{writer} rewrites the {len(pool)} chunks that hold the probed facts: {most} rewrites")
    writer_dir = (model_dir(run_dir, strategy, generation) if cfg.writer == "generation"
                  else resolve_model(cfg.restate_model, data_dir))
    written = write_rewrites(LM.load(writer_dir), answer_chunks, rounds=rounds, out_dir=out / "rewrites",
                             generation=generation, cfg=cfg, decode=run_cfg.decode, watermark=watermark, echo=say)
    ordered = [row for round_rows in written for row in round_rows]
    scorer = cfg.fluency_scorer
    scorer_dir = model_dir(run_dir, strategy, 0) if scorer == "gen0" else resolve_model(scorer, data_dir)
    fluent = cached_fluency(out / "fluency.json", lambda: load_model(scorer_dir, data_dir), ordered, answer_chunks,
                            scorer=scorer, writer=writer, scorer_is_writer=scorer_dir.resolve() == writer_dir.resolve(),
                            sample=cfg.perplexity_sample, seed=cfg.seed, batch_size=cfg.batch_size)
    say(f"fluency under {scorer}: rewrites' median perplexity {fluent['rewrites']['median']:.1f}, "
        f"the human originals' {fluent['human']['median']:.1f}")
    info = {"run": str(run_dir.resolve()), "generation": generation, "strategy": strategy.name, "writer": writer}
    plans = [SharePlan(share=s, rows=tuple(ordered[:rewrites_for(s, len(pool))]), pool=len(pool), info=info)
             for s in cfg.shares]
    names = index_names(run_cfg.resolved_index(), run_dir, generation, cfg)
    markers = build_share_indexes(human_dir, plans, [data_dir / "indexes" / n for n in names],
                                  embeddings=human.store.embedding_function, human=human, echo=say)
    controls = []
    if distractors:
        shares = [s for s in cfg.shares if s > 0]  # share 0 is the human index itself, the baseline of both arms
        control_plans = [SharePlan(share=s, rows=tuple(distractors[:rewrites_for(s, len(pool))]), pool=len(pool),
                                   info={**info, "arm": "human"}) for s in shares]
        control_names = index_names(run_cfg.resolved_index(), run_dir, generation, cfg.replace(shares=tuple(shares)),
                                    arm="human")
        control_markers = build_share_indexes(human_dir, control_plans,
                                              [data_dir / "indexes" / n for n in control_names],
                                              embeddings=human.store.embedding_function, human=human, echo=say)
        controls = [(data_dir / "indexes" / n, m) for n, m in zip(control_names, control_markers, strict=True)]
    models = {g: model_dir(run_dir, strategy, g) for g in sorted({0, last})}
    results = evaluate_contamination(
        models=models, probes=probes, indexes=[(data_dir / "indexes" / n, m) for n, m in zip(names, markers,
                                                                                             strict=True)],
        controls=controls, human_chunks=human.chunks, cfg=cfg, k=k, watermark=watermark,
        detector=writer_dir if cfg.writer == "restate" else None, thresholds=chosen, decode=run_cfg.eval.decode,
        out_dir=out, embeddings=human.store.embedding_function, echo=say)
    results.update(run=str(run_dir.resolve()), writer_generation=generation, strategy=strategy.name,
                   writer={"name": writer, "kind": cfg.writer, "decoding": cfg.decoding(),
                           "model": str(writer_dir)}, fluency=fluent,
                   index_names=names, probes=probe_info, answer_chunks=len(pool),
                   seconds=round(time.perf_counter() - started, 1))
    from rag_bench.contaminate.report import write_outputs

    write_outputs(results, out)
    return out


def load_results(out_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(out_dir) / "results.json")
