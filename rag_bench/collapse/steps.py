"""The steps of a collapse run (train, evaluate, write, build the pool) and how each knows it is finished.

    from rag_bench.collapse.steps import StepRunner
    runner = StepRunner(cfg, run_dir=run_dir, data_dir=data_dir, inputs=inputs)
    for step in runner.plan():
        if not step.done():
            step.run()

A step's ``weight`` is its estimated seconds at reference CPU rates (for the fraction and ETA in
status.json). A step is finished when its output exists: ``eval/results.json``, ``synthetic.jsonl``, or
the manifest's ``steps`` entry written after the model or pool was saved; see rag_bench.collapse.run.

``StepRunner`` holds the plan on top of the run's context (``context.RunContext``: paths, manifests and the
resources its steps share, loaded on first use); the steps themselves are functions of that context:
``train_steps`` (train generation 0 and each later one), ``write_steps`` (write synthetic text, build the
next pool), and ``evaluate``/``write_report`` here.
"""

from __future__ import annotations

import dataclasses
import functools
import traceback
from collections.abc import Callable
from pathlib import Path

from rag_bench.collapse.context import RunContext
from rag_bench.collapse.data import (
    base_model_dir,
    gen0_cache_key,
    next_steps,
)
from rag_bench.collapse.strategies import Strategy
from rag_bench.collapse.train_steps import train_gen0, train_next
from rag_bench.collapse.write_steps import build_pool_step, write_step
from rag_bench.models.device import compute_record
from rag_bench.run_status import utc_now

TRAIN_TOKENS_PER_S = 3000.0  # reference rates for the weights (small model, one busy core); the pace corrects them
WRITE_TOKENS_PER_S = 1200.0
CHARS_PER_TOKEN = 4.5  # Factbook text under an 8k BPE


@dataclasses.dataclass(kw_only=True)
class Step:
    """One unit of work of a run."""

    key: str  # its entry in the generation's manifest "steps"
    label: str  # for people: "gen 2 replace: train"
    gen_dir: Path  # the generation folder it writes into
    generation: int
    strategy: str | None  # None for the shared generation 0
    weight: float  # estimated seconds
    run: Callable[[], None]
    done: Callable[[], bool]


class StepRunner(RunContext):
    """Builds the plan of a run and carries out its steps, over the run's context (paths, manifests, resources)."""

    def record_timing(self, step: Step, seconds: float) -> None:
        self.update_manifest(step.gen_dir, timings={f"{step.key}_s": round(seconds, 2)},
                             compute={step.key: compute_record()})

    # -----------------------------------------------------------------------------------
    # The plan

    def plan(self) -> list[Step]:
        cfg = self.cfg
        human_tokens = sum(map(len, self.inputs.train_texts)) / CHARS_PER_TOKEN
        pool_tokens = cfg.pool_tokens or human_tokens
        block = cfg.train.model.n_positions
        beams = 1 + 0.33 * (cfg.decode.num_beams - 1)
        write_w = pool_tokens * beams / WRITE_TOKENS_PER_S + (pool_tokens / 5000 if self.score_synthetic else 0)
        n_modes = len(cfg.eval.modes)
        eval_w = 20 + 0.05 * n_modes * (cfg.eval.limit or 300) + 0.4 * n_modes * cfg.eval.diversity_prompts
        key, _ = gen0_cache_key(cfg, self.inputs, self.gen0_train[0], base_model_dir(cfg, self.data_dir))
        cached = (self.data_dir / "gen0_cache" / key / "done.json").is_file()
        train0_w = 5.0 if cached else cfg.train.max_steps * cfg.train.batch_size * block / TRAIN_TOKENS_PER_S
        g0 = self.gen_dir(None, 0)
        steps = [
            Step(key="train", label="gen 0: train", gen_dir=g0, generation=0, strategy=None, weight=train0_w,
                 run=functools.partial(train_gen0, self), done=lambda: self.step_done(g0, "train")),
            Step(key="eval", label="gen 0: evaluate", gen_dir=g0, generation=0, strategy=None, weight=eval_w,
                 run=lambda: self.evaluate(None, 0), done=lambda: (g0 / "eval" / "results.json").is_file())]
        if cfg.generations > 1:
            for writer in sorted({s.writer for s in self.strategies if s.writes}):
                first = next(s for s in self.strategies if s.writes and s.writer == writer)
                path = self.synthetic_path(first, 0)
                steps.append(Step(key=f"write_{writer}", label=f"gen 0: write ({writer})", gen_dir=g0, generation=0,
                                  strategy=None, weight=write_w, run=functools.partial(write_step, self, first, 0),
                                  done=functools.partial(Path.is_file, path)))
        for k in range(1, cfg.generations):
            for s in self.strategies:
                d = self.gen_dir(s, k)
                growth = (k + 1) if s.kind == "accumulate" else 1
                train_tokens = next_steps(cfg, int(pool_tokens), block, growth) * cfg.next_train.batch_size * block
                label = f"gen {k} {s.name}"
                steps += [
                    Step(key="pool", label=f"{label}: build pool", gen_dir=d, generation=k, strategy=s.name,
                         weight=2.0 + (human_tokens / 2000 if s.kind == "watermark" else 0),
                         run=functools.partial(build_pool_step, self, s, k),
                         done=functools.partial(self.step_done, d, "pool")),
                    Step(key="train", label=f"{label}: train", gen_dir=d, generation=k, strategy=s.name,
                         weight=train_tokens / TRAIN_TOKENS_PER_S, run=functools.partial(train_next, self, s, k),
                         done=functools.partial(self.step_done, d, "train")),
                    Step(key="eval", label=f"{label}: evaluate", gen_dir=d, generation=k, strategy=s.name,
                         weight=eval_w, run=functools.partial(self.evaluate, s, k),
                         done=functools.partial(Path.is_file, d / "eval" / "results.json"))]
                if k < cfg.generations - 1 and s.writes:
                    steps.append(Step(key="write", label=f"{label}: write", gen_dir=d, generation=k, strategy=s.name,
                                      weight=write_w, run=functools.partial(write_step, self, s, k),
                                      done=functools.partial(Path.is_file, self.synthetic_path(s, k))))
        return steps

    # -----------------------------------------------------------------------------------
    # Steps: training in train_steps.py, writing and pools in write_steps.py; evaluation and the report here

    def evaluate(self, strategy: Strategy | None, k: int) -> None:
        from rag_bench.eval.run import evaluate

        gen_dir = self.gen_dir(strategy, k)
        lm = self.gen0 if k == 0 else self.generation_lm(gen_dir)  # loaded once for evaluation and writing
        index_info = {"path": str(self.inputs.index_path), "version": self.index.path.name,
                      "chunks": len(self.index.store.index_to_docstore_id)}
        evaluate(lm, self.inputs.probes_path, retriever=self.retriever,
                 cfg=self.cfg.eval.replace(cache_dir=str(self.run_dir / "cache")),
                 heldout_texts=self.inputs.eval_texts, out_dir=gen_dir / "eval", reference_lm=self.gen0,
                 human_texts_for_rare=self.inputs.train_texts, model_path=gen_dir / "model", index_info=index_info,
                 progress=False, answer_with=self.answerer(gen_dir / "model") if self.answerer else None)
        self.update_manifest(gen_dir, steps={"eval": {"finished": utc_now()}},
                             outputs={"eval": self.file_info(gen_dir / "eval" / "results.json")})

    def write_report(self) -> None:
        try:
            from rag_bench.report.write import write_report
        except ImportError:
            self.progress.log("report: rag_bench.report is not available; skipped")
            return
        if not self.cfg.report:
            return
        self.progress.log("writing the report")
        try:
            write_report(self.run_dir)
        except Exception as exc:  # every generation is done; `rag-bench report RUN` can rebuild the report
            self.progress.log(f"report failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            return
        self.progress.log(f"report written to {self.run_dir / 'report'}")
