"""The steps of a collapse run (train, evaluate, write, build the pool) and how each knows it is finished.

    from rag_bench.collapse.steps import StepRunner
    runner = StepRunner(cfg, run_dir=run_dir, data_dir=data_dir, inputs=inputs)
    for step in runner.plan():
        if not step.done():
            step.run()

A step's ``weight`` is its estimated seconds at reference CPU rates (for the fraction and ETA in
status.json). A step is finished when its output exists: ``eval/results.json``, ``synthetic.jsonl``, or
the manifest's ``steps`` entry written after the model or pool was saved; see rag_bench.collapse.run.

``StepRunner`` holds the plan, the run's paths and manifests, and the resources its steps share (generation 0,
the index, the prompts), loaded on first use; the steps themselves are functions of the runner:
``train_steps`` (train generation 0 and each later one), ``write_steps`` (write synthetic text, build the
next pool), and ``evaluate``/``write_report`` here.
"""

from __future__ import annotations

import dataclasses
import functools
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag_bench.collapse.budget import tokens_of
from rag_bench.collapse.data import (
    InputError,
    RunInputs,
    base_model_dir,
    copy_guard,
    fact_guard,
    gen0_cache_key,
    next_steps,
    probed_fields,
)
from rag_bench.collapse.strategies import Strategy, human_units
from rag_bench.collapse.synthetic import (
    PromptBlock,
    budget_prompts,
    grounded_blocks,
    prompt_blocks,
    prompts_for,
    watermarking_config,
)
from rag_bench.collapse.train_steps import train_gen0, train_next
from rag_bench.collapse.write_steps import build_pool_step, write_step
from rag_bench.config import CollapseConfig, TrainConfig
from rag_bench.lm import LM
from rag_bench.overlap import HumanNgrams
from rag_bench.records import read_json, read_jsonl, sha256_file, write_json
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


class StepRunner:
    """Builds the plan of a run and carries out its steps; resources (models, index) load on first use."""

    def __init__(self, cfg: CollapseConfig, *, run_dir: Path, data_dir: Path, inputs: RunInputs) -> None:
        self.cfg, self.run_dir, self.data_dir, self.inputs = cfg, run_dir, data_dir, inputs
        self.strategies = [Strategy.parse(s) for s in cfg.strategies]
        self.progress: Any = None  # RunProgress, set by run_collapse
        self.answerer: Any = None  # model folder -> evaluate's answer_with (Ray Data actors; run_collapse --ray)
        self.watermark = watermarking_config(bias=cfg.watermark_bias, greenlist=cfg.watermark_greenlist,
                                             key=cfg.watermark_key)
        # the perplexity filter ranks by generation 0's perplexity, so its writers must score what they write
        self.score_synthetic = cfg.score_synthetic or any(
            s.kind == "filter" and (s.param or cfg.filter_by) == "perplexity" for s in self.strategies)

    # -----------------------------------------------------------------------------------
    # Paths and manifests

    def gen_dir(self, strategy: Strategy | None, k: int) -> Path:
        return self.run_dir / "gen_0" if k == 0 else self.run_dir / strategy.folder / f"gen_{k}"

    def synthetic_path(self, strategy: Strategy, j: int) -> Path:
        if j == 0:
            name = "synthetic.jsonl" if strategy.writer == "plain" else f"synthetic_{strategy.writer}.jsonl"
            return self.run_dir / "gen_0" / name
        return self.gen_dir(strategy, j) / "synthetic.jsonl"

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.run_dir))

    def manifest(self, gen_dir: Path) -> dict[str, Any]:
        path = gen_dir / "manifest.json"
        return read_json(path) if path.is_file() else {}

    def update_manifest(self, gen_dir: Path, **sections: dict[str, Any]) -> None:
        data = self.manifest(gen_dir)
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        write_json(gen_dir / "manifest.json", data)

    def step_done(self, gen_dir: Path, key: str) -> bool:
        return key in self.manifest(gen_dir).get("steps", {})

    def record_timing(self, step: Step, seconds: float) -> None:
        self.update_manifest(step.gen_dir, timings={f"{step.key}_s": round(seconds, 2)})

    def file_info(self, path: Path, texts: list[str] | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {"path": self.rel(path), "sha256": sha256_file(path)}
        if texts is not None:
            info.update(texts=len(texts), tokens=sum(self.count_tokens(texts)))
        return info

    # -----------------------------------------------------------------------------------
    # Resources, loaded on first use

    @functools.cached_property
    def gen0(self) -> LM:
        return LM.load(self.run_dir / "gen_0" / "model")

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.gen0.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    @functools.cached_property
    def prompts(self) -> list[PromptBlock]:
        """The writer's prompts: one per human block, or, with ``pool_tokens``, as many as the budget needs."""
        new_tokens = self.cfg.decode.max_new_tokens
        blocks = prompt_blocks(self.inputs.train_texts, self.gen0.tokenizer, prompt_tokens=self.cfg.prompt_tokens,
                               new_tokens=new_tokens)
        return budget_prompts(blocks, prompts_for(self.budget, new_tokens)) if self.cfg.pool_tokens else blocks

    def grounded_prompts(self) -> list[PromptBlock]:
        heldout_ids = {r["id"] for r in read_jsonl(self.inputs.heldout_path)}
        return grounded_blocks(self.prompts, self.gen0.tokenizer, self.retriever, self.index.store.docstore,
                               k=self.cfg.grounded_k, heldout_ids=heldout_ids,
                               cache=self.run_dir / "cache" / "writer_passages.json")

    @functools.cached_property
    def human_units(self) -> list[dict[str, Any]]:
        return human_units(self.inputs.train_texts, segment_chars=self.cfg.segment_chars,
                           count_tokens=self.count_tokens)

    @functools.cached_property
    def human_ngrams(self) -> HumanNgrams:
        return HumanNgrams(self.inputs.train_texts, n=8)

    @functools.cached_property
    def budget(self) -> int:
        """Tokens of every later generation's pool: ``pool_tokens``, else the human training split's."""
        return self.cfg.pool_tokens or tokens_of(self.human_units)

    @functools.cached_property
    def fresh_units(self) -> list[dict[str, Any]]:
        """The human text held aside for the fresh control, in segments (ids ``fresh/<i>``, origin human)."""
        return human_units([r["contents"] for r in read_jsonl(self.inputs.fresh_path)],
                           segment_chars=self.cfg.segment_chars, count_tokens=self.count_tokens, id_prefix="fresh")

    def check_fresh(self) -> None:
        """Refuse, before any training, a fresh control with too little held-aside text (tokens needed, available),
        counted with the tokenizer generation 0 has or will have."""
        if not any(s.human_only for s in self.strategies) or self.cfg.generations < 2:
            return
        tokenizer = self.planned_tokenizer()

        def count(texts: list[str]) -> list[int]:
            return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

        budget = self.cfg.pool_tokens or tokens_of(human_units(self.inputs.train_texts, count_tokens=count,
                                                               segment_chars=self.cfg.segment_chars))
        texts = [r["contents"] for r in read_jsonl(self.inputs.fresh_path)]
        needed, available = (self.cfg.generations - 1) * budget, sum(count(texts)) if texts else 0
        if available < needed:
            raise InputError(
                f"fresh: generations 1-{self.cfg.generations - 1} need {needed} tokens of fresh human text "
                f"({self.cfg.generations - 1} x {budget}), but {self.inputs.fresh_path} holds {available} "
                "(training-split documents of the run's kinds outside generation 0's and the probed facts' "
                "documents); lower pool_tokens or generations")

    def planned_tokenizer(self) -> Any:
        """Generation 0's tokenizer, before generation 0 exists too: the base model's, or the BPE that training
        builds from the human training text (rag_bench.train)."""
        if (self.run_dir / "gen_0" / "model" / "config.json").is_file():
            return self.gen0.tokenizer
        base = base_model_dir(self.cfg, self.data_dir)
        if base is not None:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(base, local_files_only=True)
        from rag_bench.models.scratch import train_tokenizer

        return train_tokenizer(self.inputs.train_texts, self.cfg.train.model.vocab_size)

    @functools.cached_property
    def gen0_train(self) -> tuple[TrainConfig, str, str]:
        """Generation 0's training config with the run's seed and the guards applied; what each guard decided."""
        texts = self.inputs.train_texts
        tcfg, copy_state = copy_guard(self.cfg.train.replace(seed=self.cfg.seed), texts)
        tcfg, fact_state = fact_guard(tcfg, texts, self.fact_fields)
        return tcfg, copy_state, fact_state

    @functools.cached_property
    def fact_fields(self) -> tuple[str, ...] | None:
        """The probed fields when fact rows should teach only them (``fact_fields_from_probes``), else None."""
        return probed_fields(self.inputs.probes_path) if self.cfg.fact_fields_from_probes else None

    @functools.cached_property
    def index(self) -> Any:
        from rag_bench.index.store import load_index

        return load_index(self.inputs.index_path)

    @functools.cached_property
    def retriever(self) -> Any:
        from rag_bench.index.retrieve import make_retriever

        return make_retriever(self.index.store, mode=self.cfg.eval.retrieval, k=self.cfg.eval.k)

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
        lm = self.gen0 if k == 0 else LM.load(gen_dir / "model")
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
