"""Writing synthetic text sharded over workers with Ray Data: one model actor per worker, one part per call.

    from rag_bench.distributed.generate import write_parts
    write_parts(model_path, prompts, decode, out=path, generation=0, seed=seed, address="local")

The unit of work is a part of ``rag_bench.collapse.synthetic`` (PART_PROMPTS prompts with their own seed), so an
actor writes exactly the text the sequential writer would and writes it atomically to the same part
file; the step that follows (``rag_bench.collapse.write_steps.write_step``) finds every part present and only
joins them. In a collapse run (``--ray``) generation 0's writers shard this way before their step runs
(``shard_write``); the branches after it are already one task per worker (rag_bench.distributed.branches).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag_bench.distributed.cluster import cluster_cpus, cluster_gpus, connect


class PartWriter:
    """The Ray Data actor: loads the writer (and the scorer) once, then writes the parts it is given."""

    def __init__(self, *, model_path: str, scorer_path: str | None, prompts: Sequence[Any], decode: dict[str, Any],
                 out: str, generation: int, seed: int, writer: str, watermark: dict[str, Any] | None,
                 threads: int) -> None:
        import torch

        from rag_bench.collapse.synthetic import watermarking_config
        from rag_bench.config import DecodeConfig
        from rag_bench.lm import LM

        torch.set_num_threads(threads)
        self.lm = LM.load(model_path)
        self.scorer = (self.lm if scorer_path == model_path else LM.load(scorer_path)) if scorer_path else None
        self.prompts, self.decode = prompts, DecodeConfig.from_dict(decode)
        self.kwargs = {"out": out, "generation": generation, "seed": seed, "writer": writer,
                       "watermark": watermarking_config(**watermark) if watermark else None}

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from rag_bench.collapse.synthetic import write_part

        written = [write_part(self.lm, self.prompts, self.decode, part=int(part), scorer=self.scorer, **self.kwargs)
                   for part in batch["part"]]
        return {"part": batch["part"], "prompts_written": written}


def actor_resources(ray: Any, parts: int, threads: int) -> tuple[int, dict[str, float]]:
    """(actors, resources of each): one per GPU, else one per ``threads`` CPUs; never more than the parts."""
    if cluster_gpus(ray) > 0:
        return max(1, min(parts, cluster_gpus(ray))), {"num_gpus": 1, "num_cpus": 1}
    return max(1, min(parts, cluster_cpus(ray) // threads)), {"num_cpus": threads}


def write_parts(model_path: str | Path, prompts: Sequence[Any], decode: Any, *, out: str | Path, generation: int,
                seed: int, writer: str = "plain", watermark: dict[str, Any] | None = None,
                scorer_path: str | Path | None = None, address: str = "local", threads: int = 1,
                actors: int | None = None) -> dict[str, Any]:
    """Write every missing part of ``out`` over an actor pool; returns {"parts", "written", "actors"}.

    ``watermark`` holds ``watermarking_config``'s keyword arguments; ``threads`` torch threads per actor (the
    run's ``threads``: results equal the sequential writer's at the same thread count); ``actors`` overrides
    the pool size the cluster allows (the benchmark times one actor).
    """
    from rag_bench.collapse.synthetic import part_count, part_path

    missing = [part for part in range(part_count(prompts)) if not part_path(out, part).is_file()]
    if not missing:
        return {"parts": part_count(prompts), "written": 0, "actors": 0}
    ray = connect(address)
    ray.data.DataContext.get_current().enable_progress_bars = False
    size, resources = actor_resources(ray, len(missing), threads)
    size = actors or size
    dataset = ray.data.from_items([{"part": part} for part in missing], override_num_blocks=len(missing))
    rows = dataset.map_batches(
        PartWriter, batch_size=1, compute=ray.data.ActorPoolStrategy(size=size), **resources,
        fn_constructor_kwargs={"model_path": str(Path(model_path).resolve()),
                               "scorer_path": str(Path(scorer_path).resolve()) if scorer_path else None,
                               "prompts": list(prompts), "decode": decode.to_dict(), "out": str(Path(out).resolve()),
                               "generation": generation, "seed": seed, "writer": writer, "watermark": watermark,
                               "threads": threads}).take_all()
    return {"parts": part_count(prompts), "written": len(missing), "actors": size,
            "prompts_written": sum(int(r["prompts_written"]) for r in rows)}


def shard_write(runner: Any, step: Any, *, address: str) -> None:
    """Before generation 0's write step ``write_<writer>``: write its parts over Ray Data (other steps: nothing).

    The writer's prompts, seed and options are those ``rag_bench.collapse.write_steps.write_step`` uses for
    generation 0.
    """
    from rag_bench.collapse.data import stable_seed

    if step.generation != 0 or not step.key.startswith("write_"):
        return
    cfg, writer = runner.cfg, step.key.removeprefix("write_")
    strategy = next(s for s in runner.strategies if s.writer == writer)
    prompts = runner.grounded_prompts() if writer == "grounded" else runner.prompts
    watermark = {"bias": cfg.watermark_bias, "greenlist": cfg.watermark_greenlist, "key": cfg.watermark_key}
    model = runner.run_dir / "gen_0" / "model"
    done = write_parts(model, prompts, cfg.decode, out=runner.synthetic_path(strategy, 0), generation=0,
                       seed=stable_seed(cfg.seed, "write", 0, writer), writer=writer,
                       watermark=watermark if writer == "watermark" else None,
                       scorer_path=model if runner.score_synthetic else None, address=address,
                       threads=cfg.threads or 1)
    runner.progress.log(f"{step.label}: {done['written']} of {done['parts']} parts written by "
                        f"{done['actors']} Ray Data actors")
