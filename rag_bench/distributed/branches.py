"""The branches of a collapse run (strategy x seed after the shared generation 0) as Ray tasks.

    rag-bench collapse --preset quick --ray            # run_collapse(..., ray_address="local")

``run_collapse`` runs generation 0 in the driver, as without Ray, then hands the remaining steps here.
Each branch (one strategy's generations 1..n) becomes one Ray task that declares what it needs: one GPU
when the cluster has GPUs, else an equal share of the cluster's CPUs (at least one; that many torch
threads unless the config's ``threads`` says otherwise). The task rebuilds the run's ``StepRunner`` from
the run folder and runs the branch's unfinished steps in order, exactly as the sequential loop would:
each step writes its outputs atomically and marks itself finished in its generation's manifest, so a run
killed at any point resumes (with or without ``--ray``) at the first unfinished step of each branch.
A branch holds ``RUN/<strategy>/.branch.lock`` while it runs, so a task left over from a killed driver
and its replacement never write the same branch at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag_bench.distributed.cluster import cluster_cpus, cluster_gpus, connect

POLL_SECONDS = 2.0  # how often the driver refreshes status.json while branches run


def branch_resources(ray: Any, branches: int) -> dict[str, float]:
    """What one branch task asks for: a GPU each on a GPU cluster, else the CPUs shared out evenly."""
    if cluster_gpus(ray) > 0:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": max(1, cluster_cpus(ray) // max(1, branches))}


@contextlib.contextmanager
def branch_lock(folder: Path) -> Iterator[None]:
    """Wait for, then hold, the branch's flock (the kernel drops it when a killed worker's process dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".branch.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class BranchLog:
    """The ``progress`` a StepRunner reports to inside a task: lines appended to the run's log.txt."""

    def __init__(self, run_dir: Path, strategy: str) -> None:
        self.path, self.prefix = run_dir / "log.txt", f"[ray {strategy} pid {os.getpid()}]"

    def log(self, message: str) -> None:
        from rag_bench.run_status import utc_now

        with open(self.path, "a", encoding="utf-8") as fh:  # one short O_APPEND write per line
            fh.write(f"{utc_now()}  {self.prefix} {message}\n")

    def update(self, fraction: float, detail: str | None = None) -> None:
        pass  # RunProgress's signature; the driver reports progress per branch, not per step or part


def run_branch(cfg_dict: dict[str, Any], run_dir: str, data_dir: str, strategy: str, threads: int,
               cwd: str, submitted: float | None = None) -> list[dict[str, Any]]:
    """The Ray task: run ``strategy``'s unfinished steps; returns one row per step run (key, generation, seconds).

    ``submitted`` (the driver's ``time.time()``) lets the log say how long the task took to start.
    """
    began, imported = time.time(), time.perf_counter()
    import torch

    from rag_bench.collapse.buckets import with_bucket_steps
    from rag_bench.collapse.data import prepare_inputs
    from rag_bench.collapse.steps import StepRunner
    from rag_bench.config import CollapseConfig

    if Path(cwd).is_dir():  # relative paths in the config (base_model, probes) mean what they meant to the driver
        os.chdir(cwd)
    torch.set_num_threads(threads)
    cfg, run, data = CollapseConfig.from_dict(cfg_dict), Path(run_dir), Path(data_dir)
    inputs = prepare_inputs(cfg, run_dir=run, data_dir=data)  # reads RUN/data, written by the driver
    runner = StepRunner(cfg, run_dir=run, data_dir=data, inputs=inputs)
    runner.progress = log = BranchLog(run, strategy)
    steps = [s for s in with_bucket_steps(runner, runner.plan()) if s.strategy == strategy]
    # the fixed cost of a branch on Ray, before its first step: a worker process, imports, the run's inputs
    log.log(f"branch task started {began - (submitted or began):.1f} s after it was submitted; imports and "
            f"inputs took {time.perf_counter() - imported:.1f} s more")
    done: list[dict[str, Any]] = []
    with branch_lock(steps[0].gen_dir.parent):
        for step in steps:
            if step.done():
                continue
            log.log(f"{step.label} ({threads} torch threads)")
            started = time.perf_counter()
            step.run()
            seconds = time.perf_counter() - started
            runner.record_timing(step, seconds)
            log.log(f"{step.label}: finished in {seconds:.1f} s")
            done.append({"key": step.key, "label": step.label, "generation": step.generation, "seconds": seconds})
    return done


def run_branches(runner: Any, steps: list[Any], progress: Any, *, address: str) -> None:
    """Run ``steps`` (every step of generation >= 1) as one Ray task per strategy; waits for all of them.

    ``runner`` is the driver's StepRunner and ``progress`` its RunProgress (status.json and log.txt).
    A failed branch cancels the others and raises RuntimeError naming it; so does SIGTERM (RunCancelled).
    """
    pending = [s for s in steps if not s.done()]
    for step in steps:
        if step.done():
            progress.skip(step.weight)
    strategies = list(dict.fromkeys(s.strategy for s in pending))
    if not strategies:
        return
    ray = connect(address)
    resources = branch_resources(ray, len(strategies))
    threads = runner.cfg.threads or int(resources["num_cpus"])
    task = ray.remote(max_retries=0, **resources)(run_branch)
    weight = {name: sum(s.weight for s in pending if s.strategy == name) for name in strategies}
    refs = {task.remote(runner.cfg.to_dict(), str(runner.run_dir.resolve()), str(runner.data_dir.resolve()), name,
                        threads, os.getcwd(), time.time()): name for name in strategies}
    progress.start(f"branches on Ray: {', '.join(strategies)} ({resources})", weight=sum(weight.values()),
                   generation=None, strategy=None)
    finished_weight = 0.0
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                name = refs.pop(ref)
                try:
                    rows = ray.get(ref)
                except Exception as exc:
                    raise RuntimeError(f"branch {name} failed on Ray: {exc}") from exc
                for row in rows:
                    progress.log(f"{row['label']}: finished in {row['seconds']:.1f} s (on Ray)")
                finished_weight += weight[name]
                progress.update(finished_weight / max(sum(weight.values()), 1e-9))
    except BaseException:
        for ref in refs:  # no task keeps writing after the driver gives up; the branch lock guards the rest
            ray.cancel(ref, force=True)
        raise
    if runner.cfg.knowledge_buckets:  # branches rewrote the run's CSV at once; write it again from every generation
        from rag_bench.collapse.buckets import write_bucket_csv

        write_bucket_csv(runner.run_dir)
    progress.finish()
