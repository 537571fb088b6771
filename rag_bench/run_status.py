"""The progress contract of a run folder (docs/runs.md): ``status.json``, ``log.txt`` and a one-process lock.

    from rag_bench.run_status import RunProgress
    progress = RunProgress(run_dir, total_weight=120.0, generations=5)
    progress.start("gen 1: train", weight=30.0, generation=1, strategy="replace")
    progress.finish()            # fraction and ETA follow from the weights and the measured pace
    progress.close("done")

``status.json`` is rewritten atomically at every stage change and every few seconds by a heartbeat thread
(the fraction inside a stage grows with the time the stage is expected to take). The ETA is the remaining
estimated weight times the pace measured in this process (seconds per unit of weight); it is null until
one stage has finished.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

from rag_bench.records import write_json

HEARTBEAT_SECONDS = 5.0


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunLocked(RuntimeError):
    """Another live process holds the run folder."""


class RunLock:
    """An exclusive ``flock`` on ``RUN/.lock``: one process per run; released by the kernel if the process dies."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / ".lock"
        self._fh = open(self.path, "a+")  # noqa: SIM115 - held open for the life of the run
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "unknown"
            self._fh.close()
            raise RunLocked(f"{run_dir}: another process (pid {holder}) is running this run") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()

    def release(self) -> None:
        if not self._fh.closed:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()


class RunProgress:
    """Writes status.json and appends to log.txt; fraction and ETA come from stage weights (estimated seconds)."""

    def __init__(self, run_dir: Path, *, total_weight: float, done_weight: float = 0.0, generations: int,
                 echo: bool = True) -> None:
        self.run_dir = run_dir
        self.total, self.done = max(total_weight, 1e-9), done_weight
        self.generations, self.echo = generations, echo
        self.stage, self.generation, self.strategy = "starting", None, None
        self.stage_weight, self.stage_started, self.stage_fraction = 0.0, time.perf_counter(), None
        self.session_weight, self.session_seconds = 0.0, 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()
        self.write("running")

    def log(self, message: str) -> None:
        line = f"{utc_now()}  {message}"
        with self._lock, open(self.run_dir / "log.txt", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        if self.echo:
            print(line, flush=True)

    def start(self, stage: str, *, weight: float, generation: int | None, strategy: str | None) -> None:
        with self._lock:
            self.stage, self.stage_weight, self.stage_fraction = stage, weight, None
            self.generation, self.strategy = generation, strategy
            self.stage_started = time.perf_counter()
        self.log(stage)
        self.write("running")

    def update(self, fraction: float) -> None:
        """The known fraction of the current stage (e.g. parts written), in place of the time-based guess."""
        with self._lock:
            self.stage_fraction = max(0.0, min(1.0, fraction))
        self.write("running")

    def finish(self) -> float:
        """Close the current stage; returns its seconds."""
        with self._lock:
            seconds = time.perf_counter() - self.stage_started
            self.done += self.stage_weight
            self.session_weight += self.stage_weight
            self.session_seconds += seconds
            self.stage_weight, self.stage_fraction = 0.0, None
        self.write("running")
        return seconds

    def skip(self, weight: float) -> None:
        with self._lock:
            self.done += weight

    def _pace(self) -> float | None:
        return self.session_seconds / self.session_weight if self.session_weight > 0 else None

    def _stage_fraction(self) -> float:
        if self.stage_fraction is not None:
            return self.stage_fraction
        if self.stage_weight <= 0:
            return 0.0
        expected = self.stage_weight * (self._pace() or 1.0)
        return min(0.95, (time.perf_counter() - self.stage_started) / max(expected, 1e-9))

    def write(self, state: str, error: str | None = None) -> None:
        with self._lock:
            in_stage = self.stage_weight * self._stage_fraction()
            fraction = 1.0 if state == "done" else min(1.0, (self.done + in_stage) / self.total)
            pace = self._pace()
            eta = None
            if state == "running" and pace is not None:
                eta = round(max(0.0, self.total - self.done - in_stage) * pace)
            status: dict[str, Any] = {
                "state": state, "stage": self.stage, "generation": self.generation, "generations": self.generations,
                "strategy": self.strategy, "fraction": round(fraction, 4), "eta_seconds": eta, "pid": os.getpid(),
                "updated": utc_now(), "error": error}
            write_json(self.run_dir / "status.json", status)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):  # a full disk must not kill the run from this thread
                self.write("running")

    def close(self, state: str, error: str | None = None, stage: str | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_SECONDS + 1)
        if stage is not None:
            self.stage = stage
        self.write(state, error)
