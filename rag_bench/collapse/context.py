"""What the steps of a collapse run share: the run's paths and manifests, and resources loaded on first use.

    from rag_bench.collapse.context import RunContext
    ctx = RunContext(cfg, run_dir=run_dir, data_dir=data_dir, inputs=inputs)
    ctx.gen_dir(strategy, 2)                  # run_dir/<strategy folder>/gen_2 (gen_0 is shared)
    ctx.update_manifest(gen_dir, outputs={...})
    ctx.gen0, ctx.prompts, ctx.budget         # generation 0, its prompt blocks, the pool's token budget

The step functions (``train_steps``, ``write_steps``) take a ``RunContext``; ``steps.StepRunner`` is one, with
the plan of steps on top, so the steps never import the module that calls them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from rag_bench.collapse.budget import tokens_of
from rag_bench.collapse.data import (
    InputError,
    RunInputs,
    base_model_dir,
    copy_guard,
    fact_guard,
    probed_fields,
)
from rag_bench.collapse.overlap import HumanNgrams
from rag_bench.collapse.strategies import Strategy, human_units
from rag_bench.collapse.synthetic import (
    PromptBlock,
    budget_prompts,
    grounded_blocks,
    prompt_blocks,
    prompts_for,
    watermarking_config,
)
from rag_bench.config import CollapseConfig, TrainConfig
from rag_bench.lm import LM
from rag_bench.records import read_json, read_jsonl, sha256_file, write_json


class RunContext:
    """A run's config, folders, manifests and shared resources (models, index); resources load on first use."""

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

    def generation_lm(self, gen_dir: Path) -> LM:
        """The model of ``gen_dir`` (generation 0's own for gen_0), loaded once for its evaluation and its writing.

        The last one loaded is kept, keyed by its folder and the folder's files' times, so a retrained model is
        loaded anew.
        """
        model_dir = gen_dir / "model"
        if model_dir.resolve() == (self.run_dir / "gen_0" / "model").resolve():
            return self.gen0
        stamp = tuple(sorted((f.name, f.stat().st_mtime_ns) for f in model_dir.iterdir())) if model_dir.is_dir() else ()
        key = (str(model_dir.resolve()), stamp)
        loaded = getattr(self, "_generation_lm", None)
        if loaded is None or loaded[0] != key:
            self._generation_lm = None  # free the previous model before loading the next
            loaded = self._generation_lm = (key, LM.load(model_dir))
        return loaded[1]

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
        builds from the human training text (rag_bench.training)."""
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
