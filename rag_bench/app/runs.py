"""Background processes of the web UI: one collapse run (or index build) at a time, queued, cancellable.

    from rag_bench.app.runs import RunQueue, collapse_job
    runner = RunQueue(cfg)
    runner.submit(collapse_job(cfg, "quick-factbook", preset="quick"))
    run_view(cfg, runner, "quick-factbook")     # state, stage, fraction, ETA, log tail

A run is the subprocess ``python -m rag_bench collapse --preset P --run-dir DATA/runs/<id> ...``; its progress
is read from ``status.json`` and ``log.txt`` (docs/runs.md), so the page stays responsive while it trains, and
a server restart finds it again. Cancelling terminates the process; resuming runs the same command again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from rag_bench.app.run_view import (
    FINISHED,
    command_file,
    console_error,
    known_runs,
    run_view,
    tail,
    update_command_file,
)
from rag_bench.app.state import AppConfig, UserError, check_name, list_runs, read_json_or_none
from rag_bench.records import write_json

__all__ = ["AUTOSTART_RUN", "FINISHED", "Job", "RunQueue", "bootstrap", "collapse_argv", "collapse_job",
           "command_file", "known_runs", "mark_cancelled", "needs_prepare", "prepare_job", "resume_job", "run_view",
           "tail"]  # the view's functions are re-exported: the page and the tests import them from here

RUN_NICENESS = 10  # runs and index builds yield the cores to the chat: an answer should not wait behind them

AUTOSTART_RUN = "quick-factbook"  # the run first start makes when none exists
TERMINATE_GRACE_SECONDS = 10.0  # after SIGTERM, SIGKILL follows
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(kw_only=True)
class Job:
    """One subprocess the queue runs."""

    id: str  # the run id, or "prepare"
    kind: str  # collapse | prepare
    argv: list[str]  # the command, never through a shell
    run_dir: Path | None = None  # where status.json and log.txt appear (collapse only)
    console: Path  # the process's stdout and stderr
    state: str = "queued"  # queued | running | done | failed | cancelled
    returncode: int | None = None  # exit code once finished
    started: float | None = None  # time.time() at start
    ended: float | None = None  # time.time() at the end
    cancel_requested: bool = False  # set by cancel(): a non-zero exit then means cancelled, not failed
    process: subprocess.Popen | None = dataclasses.field(default=None, repr=False)


def collapse_argv(cfg: AppConfig, run_dir: Path, *, preset: str = "quick", generations: int = 0,
                  strategies: tuple[str, ...] = (), model_size: str = "", decoding: str = "",
                  corpus: str = "factbook", seed: int | None = None) -> list[str]:
    """The collapse command of docs/runs.md; a custom setting is passed only when the user chose one.

    Every flag is one that ``rag-bench collapse`` accepts (tests/test_ui.py parses the result with its parser).
    """
    argv = [*cfg.collapse_command, "--preset", preset, "--run-dir", str(run_dir), "--data-dir", str(cfg.data_path)]
    if generations:
        argv += ["--generations", str(int(generations))]
    if seed is not None:
        argv += ["--seed", str(int(seed))]
    if strategies:
        argv += ["--strategy", ",".join(strategies)]
    if model_size:
        argv += ["--model-size", model_size]
    if decoding:
        argv += ["--decoding", decoding]
    if corpus != "factbook":
        argv += ["--corpus", corpus]
    return argv


def collapse_job(cfg: AppConfig, run_id: str, **settings: Any) -> Job:
    """A new run with ``settings`` (see ``collapse_argv``); its command is saved for resuming."""
    run_id = check_name(run_id, "run name")
    run_dir = cfg.runs_path / run_id
    argv = collapse_argv(cfg, run_dir, **settings)
    write_json(command_file(cfg, run_id), {"argv": argv, "settings": settings, "created": time.time()})
    return Job(id=run_id, kind="collapse", argv=argv, run_dir=run_dir, console=cfg.ui_path / "logs" / f"{run_id}.txt")


def resume_job(cfg: AppConfig, run_id: str) -> Job:
    """The run again (the collapse run skips what it finished).

    Once the run folder holds its resolved config.json, that is what resumes it (``--run-dir`` alone): a preset
    edited since the start would otherwise be refused as a change of settings. Before, the saved settings are used.
    """
    run_id = check_name(run_id, "run name")
    run_dir = cfg.runs_path / run_id
    saved = read_json_or_none(command_file(cfg, run_id)) or {}
    if (run_dir / "config.json").is_file():
        argv = [*cfg.collapse_command, "--run-dir", str(run_dir), "--data-dir", str(cfg.data_path)]
    elif saved.get("settings") is not None:  # stopped before the run wrote its config
        argv = collapse_argv(cfg, run_dir, **saved["settings"])
    else:
        raise UserError(f"{run_id}: no config.json in {run_dir} and no settings saved by this page; start a new run")
    write_json(command_file(cfg, run_id), {**saved, "argv": argv, "cancelled_by_user": False,
                                           "stopped_by_server": False, "exit": None})
    return Job(id=run_id, kind="collapse", argv=argv, run_dir=cfg.runs_path / run_id,
               console=cfg.ui_path / "logs" / f"{run_id}.txt")


def prepare_job(cfg: AppConfig) -> Job:
    return Job(id="prepare", kind="prepare", argv=[*cfg.prepare_command, "--data-dir", str(cfg.data_path)],
               console=cfg.ui_path / "logs" / "prepare.txt")


class RunQueue:
    """Runs jobs one after another in a worker thread; ``submit`` never blocks."""

    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self._queue: list[Job] = []
        self._jobs: dict[str, Job] = {}
        self._current: Job | None = None
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False

    def submit(self, job: Job) -> int:
        """Queue ``job``; returns how many jobs run before it (0: it starts now)."""
        with self._cond:
            if self._closed:
                raise UserError("The server is shutting down.")
            if any(j.id == job.id for j in self._active()):
                raise UserError(f"{job.id} is already running or queued.")
            self._queue.append(job)
            self._jobs[job.id] = job
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="rag-bench-runs", daemon=True)
                self._worker.start()
            self._cond.notify_all()
            return len(self._active()) - 1

    def _active(self) -> list[Job]:
        return ([self._current] if self._current else []) + self._queue

    def job(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def active_runs(self) -> list[str]:
        """Ids of the collapse runs running or queued, in the order they run."""
        with self._cond:
            return [j.id for j in self._active() if j.kind == "collapse"]

    def position(self, job_id: str) -> int | None:
        """0 while running, n when n jobs run before it, None when neither."""
        with self._cond:
            ids = [j.id for j in self._active()]
            return ids.index(job_id) if job_id in ids else None

    @property
    def current(self) -> Job | None:
        return self._current

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._current = self._queue.pop(0)
            self._run(job)
            with self._cond:
                self._current = None
                if job.kind == "prepare" and job.state == "failed":
                    for waiting in self._queue:  # every run needs the corpus and index this failed to build
                        waiting.state, waiting.ended = "failed", time.time()
                        with open(waiting.console, "a", encoding="utf-8") as console:
                            console.write("not started: building the Factbook corpus and index failed "
                                          f"(see {job.console})\n")
                        record_exit(self.cfg, waiting)
                    self._queue.clear()

    def _run(self, job: Job) -> None:
        job.console.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "PYTHONUNBUFFERED": "1"}
        job.started = time.time()
        with open(job.console, "a", encoding="utf-8") as console:
            console.write(f"\n$ {' '.join(job.argv)}\n")
            console.flush()
            try:
                job.process = subprocess.Popen(job.argv, stdout=console, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=env)
            except OSError as exc:
                console.write(f"could not start: {exc}\n")
                job.state, job.returncode, job.ended = "failed", -1, time.time()
                if job.kind == "collapse":
                    record_exit(self.cfg, job)
                return
            job.state = "running"
            lower_priority(job.process.pid)
            job.returncode = job.process.wait()
        job.ended = time.time()
        if job.returncode == 0:
            job.state = "done"
        else:
            job.state = "cancelled" if job.cancel_requested else "failed"
        if job.kind == "collapse":
            record_exit(self.cfg, job)

    def cancel(self, job_id: str) -> str:
        """Drop a queued job, or terminate the running one (SIGTERM, then SIGKILL after a grace period)."""
        with self._cond:
            queued = next((j for j in self._queue if j.id == job_id), None)
            if queued is not None:
                self._queue.remove(queued)
                queued.state, queued.ended = "cancelled", time.time()
                return "removed from the queue"
            job = self._current if self._current and self._current.id == job_id else None
        if job is None or job.process is None:
            raise UserError(f"{job_id} is not running on this server.")
        job.cancel_requested = True
        stop_process(job.process)
        return "stopped"

    def shutdown(self) -> None:
        """Stop the worker and the process it runs; runs stopped or left queued resume at the next start."""
        with self._cond:
            self._closed = True
            stopped = [j for j in self._active() if j.kind == "collapse"]
            self._queue.clear()
            job = self._current
            self._cond.notify_all()
        for run in stopped:
            update_command_file(self.cfg, run.id, stopped_by_server=True)
        if job is not None and job.process is not None:
            job.cancel_requested = True
            stop_process(job.process)


def lower_priority(pid: int) -> None:
    """Renice a run (Linux: its main thread, just after exec, so that the threads torch starts inherit it)."""
    with contextlib.suppress(OSError):  # gone already, or not allowed here: the run keeps its priority
        os.setpriority(os.PRIO_PROCESS, pid, RUN_NICENESS)


def record_exit(cfg: AppConfig, job: Job) -> None:
    """How the process ended, kept beside how it was started: a run that fails before writing its own
    status.json (a bad setting, a missing file) still shows as failed, with its error, after a restart."""
    error = console_error(job.console) if job.state == "failed" else None
    update_command_file(cfg, job.id, exit={"state": job.state, "returncode": job.returncode, "ended": job.ended,
                                           "error": error})


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(TERMINATE_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def mark_cancelled(cfg: AppConfig, run_id: str) -> None:
    """Remember that the user stopped this run, so that first start does not resume it."""
    update_command_file(cfg, run_id, cancelled_by_user=True)


def needs_prepare(cfg: AppConfig) -> bool:
    from rag_bench.index.store import current_version

    corpus = cfg.data_path / "corpora" / "factbook" / "corpus.jsonl"
    probes = cfg.data_path / "probes" / "factbook-factbook.jsonl"  # the quick experiment evaluates these
    return (not corpus.is_file() or current_version(cfg.indexes_path / "factbook") is None
            or not probes.is_file())


def bootstrap(cfg: AppConfig, runner: RunQueue, *, autostart: bool = True) -> list[str]:
    """First start: build what is missing; resume the runs the last server stopped (or that died with it) unless
    the user cancelled them; then, with ``autostart``, start the quick experiment when no run exists."""
    queued = []
    if needs_prepare(cfg):
        runner.submit(prepare_job(cfg))
        queued.append("prepare")
    runs = list_runs(cfg.runs_path)
    for run_id in known_runs(cfg, runner):
        if not command_file(cfg, run_id).is_file():
            continue  # not started by this page: the CLI that started it resumes it
        view = run_view(cfg, runner, run_id)
        stopped = view["stopped_by_server"] and view["state"] in ("cancelled", "interrupted", "unknown")
        if (stopped or view["state"] == "interrupted") and not view["cancelled_by_user"]:
            runner.submit(resume_job(cfg, run_id))
            queued.append(run_id)
    if autostart and not runs and AUTOSTART_RUN not in queued:
        runner.submit(collapse_job(cfg, AUTOSTART_RUN, preset=cfg.autostart_preset))
        queued.append(AUTOSTART_RUN)
    return queued
