"""The steps of a collapse run (train, evaluate, write, build the pool) and how each knows it is finished.

    from rag_bench.collapse.steps import StepRunner
    runner = StepRunner(cfg, run_dir=run_dir, data_dir=data_dir, inputs=inputs)
    for step in runner.plan():
        if not step.done():
            step.run()

A step's ``weight`` is its estimated seconds at reference CPU rates (for the fraction and ETA in
status.json). A step is finished when its output exists: ``eval/results.json``, ``synthetic.jsonl``, or
the manifest's ``steps`` entry written after the model or pool was saved; see rag_bench.collapse.run.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import math
import shutil
import statistics
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rag_bench.collapse.data import (
    RunInputs,
    base_model_dir,
    checkpoint_every,
    copy_guard,
    copy_model,
    curriculum_off,
    fact_guard,
    gen0_cache_key,
    next_steps,
    probed_fields,
    stable_seed,
)
from rag_bench.collapse.strategies import PoolNeighbours, Strategy, build_pool, human_units, tokens_of, unit_origin
from rag_bench.collapse.synthetic import (
    PromptBlock,
    grounded_blocks,
    prompt_blocks,
    watermark_z_scores,
    watermarking_config,
    write_synthetic,
)
from rag_bench.config import CollapseConfig, TrainConfig
from rag_bench.lm import LM
from rag_bench.overlap import HumanNgrams
from rag_bench.records import read_json, read_jsonl, sha256_file, write_json, write_jsonl
from rag_bench.run_status import utc_now
from rag_bench.train import train

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
        return prompt_blocks(self.inputs.train_texts, self.gen0.tokenizer, prompt_tokens=self.cfg.prompt_tokens,
                             new_tokens=self.cfg.decode.max_new_tokens)

    @functools.cached_property
    def human_units(self) -> list[dict[str, Any]]:
        return human_units(self.inputs.train_texts, segment_chars=self.cfg.segment_chars,
                           count_tokens=self.count_tokens)

    @functools.cached_property
    def human_ngrams(self) -> HumanNgrams:
        return HumanNgrams(self.inputs.train_texts, n=8)

    @functools.cached_property
    def budget(self) -> int:
        return tokens_of(self.human_units)

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
        block = cfg.train.model.n_positions
        beams = 1 + 0.33 * (cfg.decode.num_beams - 1)
        write_w = human_tokens * beams / WRITE_TOKENS_PER_S + (human_tokens / 5000 if self.score_synthetic else 0)
        n_modes = len(cfg.eval.modes)
        eval_w = 20 + 0.05 * n_modes * (cfg.eval.limit or 300) + 0.4 * n_modes * cfg.eval.diversity_prompts
        key, _ = gen0_cache_key(cfg, self.inputs, self.gen0_train[0], base_model_dir(cfg, self.data_dir))
        cached = (self.data_dir / "gen0_cache" / key / "done.json").is_file()
        train0_w = 5.0 if cached else cfg.train.max_steps * cfg.train.batch_size * block / TRAIN_TOKENS_PER_S
        g0 = self.gen_dir(None, 0)
        steps = [
            Step(key="train", label="gen 0: train", gen_dir=g0, generation=0, strategy=None, weight=train0_w,
                 run=self.train_gen0, done=lambda: self.step_done(g0, "train")),
            Step(key="eval", label="gen 0: evaluate", gen_dir=g0, generation=0, strategy=None, weight=eval_w,
                 run=lambda: self.evaluate(None, 0), done=lambda: (g0 / "eval" / "results.json").is_file())]
        if cfg.generations > 1:
            for writer in sorted({s.writer for s in self.strategies}):
                first = next(s for s in self.strategies if s.writer == writer)
                path = self.synthetic_path(first, 0)
                steps.append(Step(key=f"write_{writer}", label=f"gen 0: write ({writer})", gen_dir=g0, generation=0,
                                  strategy=None, weight=write_w, run=functools.partial(self.write, first, 0),
                                  done=functools.partial(Path.is_file, path)))
        for k in range(1, cfg.generations):
            for s in self.strategies:
                d = self.gen_dir(s, k)
                growth = (k + 1) if s.kind == "accumulate" else 1
                train_tokens = next_steps(cfg, int(human_tokens * growth), block, growth) \
                    * cfg.next_train.batch_size * block
                label = f"gen {k} {s.name}"
                steps += [
                    Step(key="pool", label=f"{label}: build pool", gen_dir=d, generation=k, strategy=s.name,
                         weight=2.0 + (human_tokens / 2000 if s.kind == "watermark" else 0),
                         run=functools.partial(self.build_pool, s, k),
                         done=functools.partial(self.step_done, d, "pool")),
                    Step(key="train", label=f"{label}: train", gen_dir=d, generation=k, strategy=s.name,
                         weight=train_tokens / TRAIN_TOKENS_PER_S, run=functools.partial(self.train_next, s, k),
                         done=functools.partial(self.step_done, d, "train")),
                    Step(key="eval", label=f"{label}: evaluate", gen_dir=d, generation=k, strategy=s.name,
                         weight=eval_w, run=functools.partial(self.evaluate, s, k),
                         done=functools.partial(Path.is_file, d / "eval" / "results.json"))]
                if k < cfg.generations - 1:
                    steps.append(Step(key="write", label=f"{label}: write", gen_dir=d, generation=k, strategy=s.name,
                                      weight=write_w, run=functools.partial(self.write, s, k),
                                      done=functools.partial(Path.is_file, self.synthetic_path(s, k))))
        return steps

    # -----------------------------------------------------------------------------------
    # Steps

    def train_progress(self, step: int, max_steps: int, row: dict) -> None:
        """A training step done: the stage's fraction, and its step and loss on the page (docs/runs.md)."""
        self.progress.update(step / max(1, max_steps), detail=f"step {step}/{max_steps}, loss {row['loss']:.3f}")

    def train_gen0(self) -> None:
        cfg, texts = self.cfg, self.inputs.train_texts
        tcfg, copy_state, fact_state = self.gen0_train

        def train_into(out_dir: Path) -> None:
            neighbours = PoolNeighbours(texts, k=cfg.neighbours_k) if tcfg.retrieval_share > 0 else None
            train(tcfg, train_texts=texts, heldout_texts=self.inputs.heldout_texts, out_dir=out_dir,
                  neighbours=neighbours, base_model=base_model_dir(cfg, self.data_dir), on_step=self.train_progress,
                  origins=["human"] * len(texts))

        key, material = gen0_cache_key(cfg, self.inputs, tcfg, base_model_dir(cfg, self.data_dir))
        cache = self.data_dir / "gen0_cache" / key
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache.parent / f"{key}.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.progress.log(f"another run is training generation 0 {key}; waiting for it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            if (cache / "done.json").is_file():
                self.progress.log(f"generation 0 taken from the cache {cache}")
            else:
                write_json(cache / "key.json", material)
                train_into(cache)
                write_json(cache / "checkpoint.json", self._checkpoint(cache))
                shutil.rmtree(cache / "last", ignore_errors=True)
                write_json(cache / "done.json", {"finished": utc_now()})
        g0 = self.gen_dir(None, 0)
        copy_model(cache / "model", g0 / "model")
        human = self.file_info(self.inputs.train_path, texts)
        self.update_manifest(
            g0, config={"train": tcfg.to_dict(), "init": "base_model" if cfg.base_model else "scratch",
                        "base_model": cfg.base_model or None,
                        "run_config_sha256": sha256_file(self.run_dir / "config.json")},
            seeds={"train": tcfg.seed},
            inputs={"train_texts": human, "neighbours": {"source": "train_texts", "passages_k": cfg.neighbours_k,
                                                         "enabled": tcfg.retrieval_share > 0},
                    "copy_curriculum": {"source": "train_texts", "state": copy_state},
                    "fact_rows": {"source": "train_texts", "state": fact_state},
                    "heldout_texts": {**self.file_info(self.inputs.heldout_path),
                                      "use": "validation: checkpoint selection"},
                    "eval_texts": {**self.file_info(self.inputs.eval_path), "use": "measurement (perplexity, "
                                   "diversity prompts)"}},
            gen0_cache={"key": key, "path": str(cache)},
            trained_tokens=self._timings(g0).get("trained_tokens", {}), train=self._timings(g0),
            checkpoint=read_json(cache / "checkpoint.json") if (cache / "checkpoint.json").is_file() else {},
            steps={"train": {"finished": utc_now()}})

    @staticmethod
    def _checkpoint(out_dir: Path) -> dict[str, Any]:
        """Which step the kept model is: the lowest validation perplexity among the evaluated steps (read from the
        full log in ``last/``, before it is removed; ``model/`` holds the log up to the kept step)."""
        log = next((p for p in (out_dir / "last" / "train_log.jsonl", out_dir / "model" / "train_log.jsonl")
                    if p.is_file()), None)
        rows = read_jsonl(log) if log else []
        scored = [(r["step"], r["heldout_ppl"]) for r in rows if "heldout_ppl" in r]
        best = [r["step"] for r in rows if r.get("best")]
        return {"rule": "lowest validation perplexity among evenly spaced steps (checkpoint_every)",
                "validation_ppl_by_step": dict(scored), "chosen_step": best[-1] if best else None}

    @staticmethod
    def _timings(gen_dir: Path) -> dict[str, Any]:
        path = gen_dir / "model" / "timings.json"
        return read_json(path) if path.is_file() else {}

    def evaluate(self, strategy: Strategy | None, k: int) -> None:
        from rag_bench.evaluate import evaluate

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

    def write(self, strategy: Strategy, k: int) -> None:
        cfg, writer = self.cfg, strategy.writer
        gen_dir, path = self.gen_dir(strategy, k), self.synthetic_path(strategy, k)
        lm = self.gen0 if k == 0 else LM.load(gen_dir / "model")
        prompts = self.grounded_prompts() if writer == "grounded" else self.prompts
        seed = stable_seed(cfg.seed, "write", k, writer if k == 0 else strategy.folder)
        stats = write_synthetic(lm, prompts, cfg.decode, out=path, generation=k, seed=seed, writer=writer,
                                watermark=self.watermark if writer == "watermark" else None,
                                scorer=self.gen0 if self.score_synthetic else None,
                                on_part=lambda done, total: self.progress.update(done / total))
        rows = read_jsonl(path)
        ppl = [r["metadata"]["gen0_ppl"] for r in rows if math.isfinite(r["metadata"].get("gen0_ppl") or math.nan)]
        stats.update(sha256=sha256_file(path), path=self.rel(path), seed=seed, decode=cfg.decode.to_dict(),
                     human_tokens=self.budget, prompt_tokens=cfg.prompt_tokens,
                     gen0_ppl_median=statistics.median(ppl) if ppl else None)
        self.update_manifest(gen_dir, outputs={path.stem: stats}, seeds={f"write_{writer}": seed},
                             steps={self.write_key(strategy, k): {"finished": utc_now()}})

    @staticmethod
    def write_key(strategy: Strategy, k: int) -> str:
        return f"write_{strategy.writer}" if k == 0 else "write"

    def grounded_prompts(self) -> list[PromptBlock]:
        heldout_ids = {r["id"] for r in read_jsonl(self.inputs.heldout_path)}
        return grounded_blocks(self.prompts, self.gen0.tokenizer, self.retriever, self.index.store.docstore,
                               k=self.cfg.grounded_k, heldout_ids=heldout_ids,
                               cache=self.run_dir / "cache" / "writer_passages.json")

    def build_pool(self, strategy: Strategy, k: int) -> None:
        cfg, gen_dir = self.cfg, self.gen_dir(strategy, k)
        synthetic = [read_jsonl(self.synthetic_path(strategy, j)) for j in range(k)]
        needs_human = strategy.keeps_human
        pool, stats = build_pool(
            strategy, generation=k, human=self.human_units if needs_human else [], synthetic=synthetic,
            budget=self.budget, seed=cfg.seed, filter_by=cfg.filter_by, keep=cfg.filter_keep,
            dedup_ngram=cfg.dedup_ngram, dedup_threshold=cfg.dedup_threshold, contamination=cfg.contamination,
            z_threshold=cfg.watermark_z,
            z_scores=(lambda texts: watermark_z_scores(self.gen0, texts, self.watermark))
            if strategy.kind == "watermark" else None)
        written = [u["contents"] for u in pool if u["metadata"]["source"] != "human"]
        stats["human_overlap"] = {"written": self.human_ngrams.summary(written),
                                  "pool": self.human_ngrams.summary([u["contents"] for u in pool])}
        write_jsonl(gen_dir / "pool.jsonl", pool)
        sources = {self.rel(self.synthetic_path(strategy, j)): sha256_file(self.synthetic_path(strategy, j))
                   for j in range(k)}
        if needs_human:
            sources[self.rel(self.inputs.train_path)] = sha256_file(self.inputs.train_path)
        self.update_manifest(gen_dir, pool=stats, inputs={"pool_sources": sources},
                             steps={"pool": {"finished": utc_now()}})

    def train_next(self, strategy: Strategy, k: int) -> None:
        cfg, gen_dir = self.cfg, self.gen_dir(strategy, k)
        rows = read_jsonl(gen_dir / "pool.jsonl")
        texts = [r["contents"] for r in rows]
        block = min(cfg.train.model.n_positions, self.gen0.max_positions)
        pool_tokens = sum(self.count_tokens(texts))
        steps = next_steps(cfg, pool_tokens, block, strategy.compute_scale(pool_tokens, self.budget))
        nt = cfg.next_train if cfg.next_curriculum else curriculum_off(cfg.next_train)
        tcfg = nt.replace(model=cfg.train.model, seed=stable_seed(cfg.seed, "train", k, strategy.folder),
                          max_steps=steps, warmup_steps=min(nt.warmup_steps, steps // 4),
                          eval_every=checkpoint_every(steps, cfg), save_every=min(nt.save_every, steps))
        tcfg, copy_state = copy_guard(tcfg, texts)
        tcfg, fact_state = fact_guard(tcfg, texts, self.fact_fields)
        neighbours = PoolNeighbours(texts, k=cfg.neighbours_k) if tcfg.retrieval_share > 0 else None
        init = self.init_model(strategy, k, gen_dir)
        train(tcfg, train_texts=texts, heldout_texts=self.inputs.heldout_texts, out_dir=gen_dir,
              neighbours=neighbours, base_model=init, on_step=self.train_progress,
              origins=[unit_origin(r) for r in rows])
        checkpoint = self._checkpoint(gen_dir)
        shutil.rmtree(gen_dir / "last", ignore_errors=True)
        shutil.rmtree(gen_dir / "init", ignore_errors=True)
        pool_info = {**self.file_info(gen_dir / "pool.jsonl"), "texts": len(texts), "tokens": pool_tokens}
        curriculum = "on: built from the pool only" if cfg.next_curriculum else "off (next_curriculum=false)"
        timings = read_json(gen_dir / "model" / "timings.json")
        self.update_manifest(
            gen_dir, config={"train": tcfg.to_dict(), "init": cfg.init, "init_from": self.rel(init)
                             if Path(init).is_relative_to(self.run_dir) else str(init), "strategy": strategy.name,
                             "keeps_human": strategy.keeps_human, "curriculum": curriculum,
                             "run_config_sha256": sha256_file(self.run_dir / "config.json")},
            seeds={"train": tcfg.seed},
            inputs={"train_texts": pool_info,
                    "neighbours": {"source": "train_texts", "passages_k": cfg.neighbours_k,
                                   "enabled": neighbours is not None},
                    "copy_curriculum": {"source": "train_texts", "state": copy_state},
                    "fact_rows": {"source": "train_texts", "state": fact_state},
                    "heldout_texts": {**self.file_info(self.inputs.heldout_path),
                                      "use": "validation: the best of the evenly spaced checkpoints, as in gen 0"},
                    "eval_texts": {**self.file_info(self.inputs.eval_path), "use": "measurement"}},
            trained_tokens=timings.get("trained_tokens", {}), checkpoint=checkpoint,
            train=timings, steps={"train": {"finished": utc_now()}})

    def init_model(self, strategy: Strategy, k: int, gen_dir: Path) -> Path:
        """Where generation k starts: generation k-1, the base model, or a fresh model saved to ``gen_dir/init``."""
        if self.cfg.init == "previous":
            return self.gen_dir(strategy, k - 1) / "model"
        if self.cfg.init == "base":
            return base_model_dir(self.cfg, self.data_dir)
        init = gen_dir / "init"
        if not (init / "config.json").is_file():
            torch.manual_seed(stable_seed(self.cfg.seed, "init", k, strategy.folder))
            fresh = type(self.gen0.model)(self.gen0.model.config)
            LM(fresh, self.gen0.tokenizer, config=self.gen0.config, device="cpu").save(init)
        return init

    def write_report(self) -> None:
        try:
            from rag_bench.report import write_report
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
