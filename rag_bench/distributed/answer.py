"""Answering probes sharded over workers with Ray Data: one model actor per worker, one chunk of probes per call.

    rag-bench collapse --preset quick --ray        # generation 0's evaluation answers its probes this way

    from rag_bench.distributed.answer import ray_answerer
    evaluate(lm, probes, retriever=retriever, cfg=cfg, out_dir=out,
             answer_with=ray_answerer(model_path, address="local", threads=1))

The unit of work is the chunk that ``rag_bench.eval.run.answer_probes`` answers in one call
(``cfg.batch_size * ANSWER_CHUNK_BATCHES`` probes, counted from the first), in every mode of the evaluation:
an actor calls ``rag_bench.answer.answer`` on exactly the prompts, in the same order and batches and with the same
template (``EvalConfig.template``, ``auto`` resolved against the model's tokenizer), as the direct path, so greedy
answers are the same token for token at the same torch thread count, and so are the per-sample JSONL and every
score. Each actor loads the generation's model once and answers every mode's chunks it is given. The oracle modes
are not sent: their passages are each probe's gold chunk, on the probes whose chunk is in the index, which
``evaluate`` finds and answers itself (as it does after the default one-pass answerer).

In a collapse run with ``--ray``, generation 0's evaluation (in the driver) answers this way. The branches'
evaluations answer inside their own task: a branch is already one task per worker, and Ray Data actors started
from inside it would wait for the CPUs the branches hold.

Retrieval stays in the driver: ``evaluate`` retrieves every probe's passages once before answering (cached
under RUN/cache and shared by all generations), and the actors receive those very Documents. Retrieving in the
actor would load MiniLM and the FAISS index into every actor (seconds of start-up and hundreds of MB each) to
compute the same passages again; shipping them costs a few kB per probe.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag_bench.distributed.cluster import connect
from rag_bench.distributed.generate import actor_resources


class ProbeAnswerer:
    """The Ray Data actor: loads the model once, then answers the (mode, chunk) rows it is given."""

    def __init__(self, *, model_path: str, chunks: list[list[str]], contexts: list[list[list[Any]]] | None, k: int,
                 decode: dict[str, Any], threads: int, template: str = "auto") -> None:
        began, started = time.time(), time.perf_counter()
        import torch

        from rag_bench.answer import resolve_template  # imported here so that its cost counts as start-up
        from rag_bench.config import DecodeConfig
        from rag_bench.lm import LM

        imported = time.perf_counter()
        torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS to the actor's CPUs; torch is told explicitly
        self.lm = LM.load(model_path)
        self.chunks, self.contexts, self.k, self.decode = chunks, contexts, k, DecodeConfig.from_dict(decode)
        self.template = resolve_template(template, self.lm.tokenizer)  # as answer_probes and one_pass resolve it
        # what the actor's start-up spent in our code (the rest of the time to the first chunk is Ray's)
        self.startup = json.dumps({"began": began, "import_s": imported - started,
                                   "load_s": time.perf_counter() - imported, "torch_threads": torch.get_num_threads(),
                                   "omp_num_threads": os.environ.get("OMP_NUM_THREADS")})

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from rag_bench.answer import answer
        from rag_bench.eval.inputs import ContextRetriever

        answered, seconds, cpu = [], [], []
        for mode, chunk in zip(batch["mode"], batch["chunk"], strict=True):
            started, cpu_started = time.perf_counter(), time.process_time()
            questions = self.chunks[int(chunk)]
            retriever = ContextRetriever(questions, self.contexts[int(chunk)]) if self.contexts else None
            answers = answer(self.lm, questions, str(mode), retriever=retriever, k=self.k, decode=self.decode,
                             template=self.template)
            # JSON carries exactly what evaluate scores and writes (strings, ints and floats; sources as dicts)
            answered.append(json.dumps([a.to_dict() for a in answers]))
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)  # below seconds: the actor waited for a core
        return {"mode": batch["mode"], "chunk": batch["chunk"], "answers": answered, "answer_s": seconds,
                "answer_cpu_s": cpu,
                "finished": [time.time()] * len(answered), "startup": [self.startup] * len(answered)}


def answered_modes(cfg: Any) -> list[str]:
    """The modes of ``cfg`` the actors answer: all but the oracle ones (``evaluate`` answers those on gold chunks)."""
    from rag_bench.answer import ORACLE_MODES

    return [mode for mode in cfg.modes if mode not in ORACLE_MODES]


def chunked(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[start:start + size]) for start in range(0, len(items), size)]


def answer_on_ray(model_path: str | Path, probes: Sequence[Any], cfg: Any, retriever: Any = None, *,
                  address: str = "local", threads: int = 1, actors: int | None = None,
                  on_chunk: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Answer ``probes`` in every mode of ``cfg`` (an EvalConfig) but the oracle ones over an actor pool; answers
    in probe order.

    ``retriever`` serves the passages of the grounded modes (evaluate's ContextRetriever); ``threads`` torch
    threads per actor; ``actors`` overrides the pool size the cluster allows; ``on_chunk(done, total)`` is called
    as chunks come back. Returns ``{"answers": {mode: [Answer, ...]}, "actors", "chunks", "seconds", ...}`` and
    where the time went, for the benchmark: ``actor_began_s`` until the first actor's constructor ran (Ray's own
    start-up: planning, a worker process, its connection), ``startup`` each actor's import and model-load seconds
    and torch threads, ``first_chunk_s`` until the first answered chunk arrived here, ``first_delivery_s`` from
    its end in the actor to its arrival (one machine's wall clock), ``answer_s`` the actors' seconds inside
    ``answer`` (summed; ``answer_cpu_s`` their CPU seconds) and ``first_chunk_answer_s`` that of the first chunk.
    """
    from rag_bench.answer import Answer
    from rag_bench.eval.one_pass import ANSWER_CHUNK_BATCHES

    started, called = time.perf_counter(), time.time()
    chunks = chunked([p.prompt for p in probes], cfg.batch_size * ANSWER_CHUNK_BATCHES)
    modes = answered_modes(cfg)
    grounded = [mode for mode in modes if mode != "closed"]
    if grounded and retriever is None:
        raise ValueError(f"modes {grounded} need a retriever")
    contexts = [retriever.batch_search(questions, k=cfg.k) for questions in chunks] if grounded else None
    rows = [{"mode": mode, "chunk": i} for mode in modes for i in range(len(chunks))]
    ray = connect(address)
    ray.data.DataContext.get_current().enable_progress_bars = False
    size, resources = actor_resources(ray, len(rows), threads)
    size = actors or size
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        ProbeAnswerer, batch_size=1, compute=ray.data.ActorPoolStrategy(size=size), **resources,
        fn_constructor_kwargs={"model_path": str(Path(model_path).resolve()), "chunks": chunks,
                               "contexts": contexts, "k": cfg.k,
                               "decode": cfg.decode.replace(batch_size=cfg.batch_size).to_dict(),
                               "threads": threads, "template": cfg.template})
    by_row: dict[tuple[str, int], list[Answer]] = {}
    first_chunk_s, delivered_s, answer_s, answer_cpu_s, startups = None, None, [], 0.0, {}
    for row in dataset.iter_rows():
        if first_chunk_s is None:
            first_chunk_s, delivered_s = time.perf_counter() - started, time.time() - float(row["finished"])
        by_row[(str(row["mode"]), int(row["chunk"]))] = [Answer(**a) for a in json.loads(row["answers"])]
        answer_s.append(float(row["answer_s"]))
        answer_cpu_s += float(row["answer_cpu_s"])
        startups[row["startup"]] = json.loads(row["startup"])  # one entry per actor (its own timings)
        if on_chunk is not None:
            on_chunk(len(by_row), len(rows))
    answers = {mode: [a for i in range(len(chunks)) for a in by_row[(mode, i)]] for mode in modes}
    return {"answers": answers, "actors": size, "chunks": len(rows), "seconds": time.perf_counter() - started,
            "first_chunk_s": first_chunk_s, "first_chunk_answer_s": answer_s[0], "answer_s": sum(answer_s),
            "answer_cpu_s": answer_cpu_s,
            "startup": list(startups.values()), "threads": sorted({s["torch_threads"] for s in startups.values()}),
            "actor_began_s": min(s["began"] for s in startups.values()) - called, "first_delivery_s": delivered_s}


def ray_answerer(model_path: str | Path, *, address: str = "local", threads: int = 1, actors: int | None = None,
                 log: Callable[[str], None] | None = None) -> Callable[[Sequence[Any], Any, Any], dict[str, Any]]:
    """``evaluate``'s ``answer_with``: ``(probes, cfg, retriever) -> {mode: answers}`` over Ray Data actors.

    ``log`` (e.g. a run's ``progress.log``) receives one line per evaluation: actors, start-up and total time.
    """

    def answer_with(probes: Sequence[Any], cfg: Any, retriever: Any) -> dict[str, Any]:
        if not probes or not answered_modes(cfg):  # nothing for an actor: evaluate answers the oracle modes itself
            return {}
        done = answer_on_ray(model_path, probes, cfg, retriever, address=address, threads=threads, actors=actors)
        if log is not None:
            log(f"{len(probes)} probes answered in {', '.join(done['answers'])} by {done['actors']} Ray Data actors "
                f"({done['chunks']} chunks, {done['threads']} torch threads each; first chunk after "
                f"{done['first_chunk_s']:.1f} s, all after {done['seconds']:.1f} s)")
        return done["answers"]

    return answer_with
