"""The collapse experiment: generations retrained on their own text, under data strategies, resumable.

    rag-bench collapse --preset quick                          # data/runs/quick-factbook
    rag-bench collapse --preset quick --strategy replace,mix:0.1 --generations 3 --run-dir data/runs/r2
    rag-bench collapse --preset quick --ray                    # branches as Ray tasks (docs/scale.md)

    from rag_bench.collapse.run import run_collapse
    run_collapse(collapse_preset("tiny"), run_dir="runs/t", data_dir="data")

Layout (docs/runs.md): ``RUN/gen_0`` is shared by every strategy; ``RUN/<strategy>/gen_<k>`` (a colon
becomes a dash: ``mix-0.1``) holds generation k >= 1 of that strategy. Each generation folder holds
``model/``, ``manifest.json`` (config, seeds, sha256 and tokens of every data file, timings, finished
steps), ``eval/`` (both modes), ``pool.jsonl`` (what it trained on) and ``synthetic.jsonl`` (what it
wrote for the next generation; generation 0 writes one per writer: plain, watermark, grounded).

Data purity: generation n+1 sees only its pool. Its retrieval-augmented rows take their passages from
the pool (BM25 over the pool's own passages, ``PoolNeighbours``), its copy curriculum is built from the
pool's record lines, and after generation 0 the human held-out texts only measure (one evaluation at the
last step, no checkpoint selection). Evaluation retrieves from the human index.

Generation 0 is trained in ``DATA_DIR/gen0_cache/<hash>`` (the hash covers its train config, base model,
seed and the sha256 of the human splits) and copied into the run, so runs with the same generation 0
share it. Every step is marked finished in its manifest only after its outputs are written atomically;
a run killed at any point resumes at the first unfinished step with the same command.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from rag_bench.collapse.buckets import with_bucket_steps
from rag_bench.collapse.data import check_inputs, prepare_inputs
from rag_bench.collapse.steps import Step, StepRunner
from rag_bench.config import CollapseConfig, ConfigError, collapse_preset
from rag_bench.records import read_json, write_json
from rag_bench.run_status import RunLock, RunProgress

ALLOWED_CHANGES = ("generations", "strategies", "threads", "report")  # a resumed run may change only these


class RunCancelled(Exception):
    """SIGTERM arrived: the run stops, and the same command resumes it."""


def default_run_dir(cfg: CollapseConfig, data_dir: Path) -> Path:
    suffix = f"-seed{cfg.seed}" if cfg.seed else ""
    return data_dir / "runs" / f"{cfg.name}-{cfg.corpus}{suffix}"


def resolve_config(*, config_file: str | Path | None = None, preset: str | None = None,
                   run_dir: Path | None = None, overrides: dict[str, Any] | None = None) -> CollapseConfig:
    """The config of a start or a resume: a file, a preset, or the run folder's own config.json, plus overrides.

    Raises ConfigError (naming the key) before any work; ``model_size`` and ``decoding`` overrides are
    shorthands for the model preset of both train configs and for the writer's beam or sampling decoding;
    ``lora_rank`` sets both train configs' LoRA rank.
    """
    from rag_bench.config import ModelConfig

    if config_file is not None:
        cfg = CollapseConfig.from_file(config_file)
    elif preset is not None:
        cfg = collapse_preset(preset)
    elif run_dir is not None and (Path(run_dir) / "config.json").is_file():
        cfg = CollapseConfig.from_file(Path(run_dir) / "config.json")
    else:
        raise ConfigError("give --config FILE or --preset NAME (or --run-dir of an existing run to resume it)")
    changes = dict(overrides or {})
    size = changes.pop("model_size", None)
    if size:
        model = ModelConfig.preset(size)
        changes.update(train=cfg.train.replace(model=model), next_train=cfg.next_train.replace(model=model))
    lora_rank = changes.pop("lora_rank", None)
    if lora_rank is not None:
        changes.update(train=changes.get("train", cfg.train).replace(lora_rank=lora_rank),
                       next_train=changes.get("next_train", cfg.next_train).replace(lora_rank=lora_rank))
    decoding = changes.pop("decoding", None)
    if decoding == "beam":
        changes["decode"] = cfg.decode.replace(do_sample=False, num_beams=5, repetition_penalty=1.2)
    elif decoding == "sample":
        changes["decode"] = cfg.decode.replace(do_sample=True, num_beams=1, temperature=1.0, top_p=1.0,
                                               repetition_penalty=1.0)
    elif decoding:
        raise ConfigError(f"decoding: {decoding!r} is not one of ['beam', 'sample']")
    if changes.get("corpus") and changes["corpus"] != cfg.corpus:
        # the Factbook subset of a preset (countries, kinds, probes) does not carry over to another corpus
        changes.setdefault("index", "")
        changes.setdefault("probes", "")
        if changes["corpus"] != "factbook":
            changes.setdefault("countries", ())
            changes.setdefault("kinds", ())
    return cfg.replace(**changes) if changes else cfg


def check_resume(cfg: CollapseConfig, run_dir: Path) -> None:
    """A run folder keeps its config; only ALLOWED_CHANGES may differ (more generations, more strategies)."""
    path = run_dir / "config.json"
    if not path.is_file():
        return
    saved = read_json(path)
    with contextlib.suppress(ConfigError):  # a field added since the run started reads as its default
        saved = json.loads(json.dumps(CollapseConfig.from_dict(saved, source=str(path)).to_dict()))
    current = json.loads(json.dumps(cfg.to_dict()))  # tuples become lists, as in the saved file
    for key in sorted(set(saved) | set(current)):
        if key not in ALLOWED_CHANGES and saved.get(key) != current.get(key):
            raise ConfigError(f"{key}: {path} was started with a different value ({saved.get(key)!r}); "
                              f"resume with the same settings or choose another --run-dir")


def set_threads(threads: int) -> int:
    """Torch threads: on a machine that others keep busy, one thread each avoids OpenMP contention."""
    cores = os.cpu_count() or 1
    if threads == 0:
        busy = os.getloadavg()[0]
        threads = max(1, min(cores, round(cores - busy)))
    torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def _sigterm_cancels() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise RunCancelled("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_steps(steps: list[Step], runner: StepRunner, progress: RunProgress,
               before: Callable[[Step], None] | None = None) -> None:
    for step in steps:
        if step.done():
            progress.skip(step.weight)
            continue
        progress.start(step.label, weight=step.weight, generation=step.generation, strategy=step.strategy)
        if before is not None:
            before(step)
        step.run()
        seconds = progress.finish()
        runner.record_timing(step, seconds)
        progress.log(f"{step.label}: finished in {seconds:.1f} s")


def run_collapse(cfg: CollapseConfig, *, run_dir: str | Path, data_dir: str | Path, echo: bool = True,
                 ray_address: str | None = None) -> Path:
    """Run (or resume) the experiment in ``run_dir``; returns it. Raises RunCancelled on SIGTERM.

    ``ray_address`` (``"local"``, ``"auto"``, ``HOST:PORT``): after generation 0, run the branches as Ray
    tasks and shard generation 0's writing over Ray Data (rag_bench.distributed); None runs all in order.
    """
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    check_resume(cfg, run_dir)
    check_inputs(cfg, data_dir)
    if ray_address is not None:  # an unreachable cluster stops the run here, before any work
        from rag_bench.distributed.cluster import connect

        connect(ray_address)
    lock = RunLock(run_dir)
    progress = None
    try:
        with _sigterm_cancels():
            threads = set_threads(cfg.threads)
            inputs = prepare_inputs(cfg, run_dir=run_dir, data_dir=data_dir)
            write_json(run_dir / "config.json", cfg.to_dict())
            runner = StepRunner(cfg, run_dir=run_dir, data_dir=data_dir, inputs=inputs)
            runner.check_fresh()  # too little held-aside human text for the control: refused before any training
            steps = with_bucket_steps(runner, runner.plan())
            progress = RunProgress(run_dir, total_weight=sum(s.weight for s in steps), generations=cfg.generations,
                                   echo=echo)
            runner.progress = progress
            progress.log(f"run {run_dir} (pid {os.getpid()}, {threads} torch threads): {cfg.name}, "
                         f"{cfg.generations} generations, strategies {', '.join(cfg.strategies)}, init {cfg.init}; "
                         f"{len(inputs.train_texts)} human training and {len(inputs.heldout_texts)} held-out texts")
            # generation 0 is shared; after it, each strategy is an independent branch (Ray runs them at once)
            shared = [step for step in steps if step.strategy is None]
            branches = [step for step in steps if step.strategy is not None]
            before = None
            if ray_address is not None:  # generation 0's writers and probe answering shard over Ray Data actors
                from rag_bench.distributed.answer import ray_answerer
                from rag_bench.distributed.generate import shard_write

                def before(step: Step) -> None:
                    shard_write(runner, step, address=ray_address)

                runner.answerer = functools.partial(ray_answerer, address=ray_address, threads=cfg.threads or 1,
                                                    log=progress.log)

            _run_steps(shared, runner, progress, before=before)
            if ray_address is not None:
                from rag_bench.distributed.branches import run_branches

                run_branches(runner, branches, progress, address=ray_address)
            else:
                _run_steps(branches, runner, progress)
            runner.write_report()
            progress.close("done", stage="done")
            progress.log("run finished")
    except (RunCancelled, KeyboardInterrupt) as exc:
        if progress is not None:
            progress.log(f"cancelled ({exc or 'interrupted'}); the same command resumes the run")
            progress.close("cancelled", stage="cancelled")
        raise
    except BaseException as exc:
        if progress is not None:
            progress.log(f"failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            progress.close("failed", error=f"{type(exc).__name__}: {exc}", stage="failed")
        raise
    finally:
        lock.release()
    return run_dir
