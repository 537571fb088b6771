"""The text steps of a collapse run: what generation k writes, and the pool generation k+1 trains on.

    from rag_bench.collapse.write_steps import build_pool_step, write_step
    write_step(runner, strategy, 0)            # runner: a rag_bench.collapse.context.RunContext
    build_pool_step(runner, strategy, 1)

``write_step`` writes ``synthetic.jsonl`` (generation 0: one file per writer, ``synthetic_<writer>.jsonl``)
through ``rag_bench.collapse.synthetic``; ``build_pool_step`` writes ``pool.jsonl`` through
``rag_bench.collapse.strategies.build_pool``, with each pool's word 8-gram overlap with the human text. Both
record their statistics, seeds and sources in the generation's manifest after the file is written.
"""

from __future__ import annotations

import math
import statistics

from rag_bench.collapse.budget import token_cutter
from rag_bench.collapse.context import RunContext
from rag_bench.collapse.data import stable_seed
from rag_bench.collapse.strategies import Strategy, build_pool
from rag_bench.collapse.synthetic import watermark_z_scores, write_synthetic
from rag_bench.records import read_jsonl, sha256_file, write_jsonl
from rag_bench.run_status import utc_now


def write_step(runner: RunContext, strategy: Strategy, k: int) -> None:
    cfg, writer = runner.cfg, strategy.writer
    gen_dir, path = runner.gen_dir(strategy, k), runner.synthetic_path(strategy, k)
    lm = runner.gen0 if k == 0 else runner.generation_lm(gen_dir)  # the model its evaluation loaded
    prompts = runner.grounded_prompts() if writer == "grounded" else runner.prompts
    seed = stable_seed(cfg.seed, "write", k, writer if k == 0 else strategy.folder)
    stats = write_synthetic(lm, prompts, cfg.decode, out=path, generation=k, seed=seed, writer=writer,
                            watermark=runner.watermark if writer == "watermark" else None,
                            scorer=runner.gen0 if runner.score_synthetic else None,
                            on_part=lambda done, total: runner.progress.update(done / total),
                            budget_tokens=runner.budget if cfg.pool_tokens else 0)
    rows = read_jsonl(path)
    ppl = [r["metadata"]["gen0_ppl"] for r in rows if math.isfinite(r["metadata"].get("gen0_ppl") or math.nan)]
    stats.update(sha256=sha256_file(path), path=runner.rel(path), seed=seed, decode=cfg.decode.to_dict(),
                 human_tokens=runner.budget, prompt_tokens=cfg.prompt_tokens,
                 gen0_ppl_median=statistics.median(ppl) if ppl else None)
    runner.update_manifest(gen_dir, outputs={path.stem: stats}, seeds={f"write_{writer}": seed},
                           steps={write_key(strategy, k): {"finished": utc_now()}})


def write_key(strategy: Strategy, k: int) -> str:
    return f"write_{strategy.writer}" if k == 0 else "write"


def build_pool_step(runner: RunContext, strategy: Strategy, k: int) -> None:
    cfg, gen_dir = runner.cfg, runner.gen_dir(strategy, k)
    sources_of = range(k) if strategy.writes else range(0)  # the generations whose text the pool may hold
    synthetic = [read_jsonl(runner.synthetic_path(strategy, j)) for j in sources_of] or [[] for _ in range(k)]
    needs_human = strategy.keeps_human
    human_path = runner.inputs.fresh_path if strategy.human_only else runner.inputs.train_path
    human = (runner.fresh_units if strategy.human_only else runner.human_units) if needs_human else []
    pool, stats = build_pool(
        strategy, generation=k, human=human, synthetic=synthetic, cut=token_cutter(runner.gen0.tokenizer),
        budget=runner.budget, seed=cfg.seed, filter_by=cfg.filter_by, keep=cfg.filter_keep,
        dedup_ngram=cfg.dedup_ngram, dedup_threshold=cfg.dedup_threshold, contamination=cfg.contamination,
        z_threshold=cfg.watermark_z,
        z_scores=(lambda texts: watermark_z_scores(runner.gen0, texts, runner.watermark))
        if strategy.kind == "watermark" else None)
    written = [u["contents"] for u in pool if u["metadata"]["source"] != "human"]
    stats["human_overlap"] = {"written": runner.human_ngrams.summary(written),
                              "pool": runner.human_ngrams.summary([u["contents"] for u in pool])}
    write_jsonl(gen_dir / "pool.jsonl", pool)
    sources = {runner.rel(runner.synthetic_path(strategy, j)): sha256_file(runner.synthetic_path(strategy, j))
               for j in sources_of}
    if needs_human:
        sources[runner.rel(human_path)] = sha256_file(human_path)
    runner.update_manifest(gen_dir, pool=stats, inputs={"pool_sources": sources},
                           steps={"pool": {"finished": utc_now()}})
