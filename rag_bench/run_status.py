"""The progress contract of a run folder (docs/runs.md): ``status.json``, ``log.txt`` and a one-process lock.

    from rag_bench.run_status import RunProgress
    progress = RunProgress(run_dir, total_weight=120.0, generations=5)
    progress.start("gen 1: train", weight=30.0, generation=1, strategy="replace")
    progress.update(0.1, detail="step 110/1100")    # a stage that knows how far it is (training steps)
    progress.finish()            # fraction and ETA follow from the weights and the measured pace
    progress.close("done")

``status.json`` is rewritten atomically at every stage change and every few seconds by a heartbeat thread
(the fraction inside a stage grows with the time the stage is expected to take, unless the stage reports its
own fraction). The ETA comes only from rates measured in this process: the pace (seconds per unit of
weight) of the finished stages pooled with that of the running stage since its first reported fraction, and
the running stage's own rate for its remainder. It is null until one stage has finished or the running stage
has reported progress for a few seconds.
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
MIN_RATE_SECONDS = 3.0  # a stage's own rate counts once measured over at least this long
DETAIL_LOG_SECONDS = 60.0  # a stage's progress line goes to log.txt at most this often


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
        self.stage_detail: str | None = None
        self.first_report: tuple[float, float] | None = None  # (time, fraction) of the stage's first update
        self.detail_logged = 0.0  # when the stage's progress line last went to log.txt
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
            self.stage_detail, self.first_report, self.detail_logged = None, None, self.stage_started
        self.log(stage)
        self.write("running")

    def update(self, fraction: float, detail: str | None = None) -> None:
        """The known fraction of the current stage (e.g. parts written, steps trained), in place of the time-based
        guess; ``detail`` ("step 120/1100") is shown beside the stage and logged about once a minute."""
        now = time.perf_counter()
        with self._lock:
            self.stage_fraction = max(0.0, min(1.0, fraction))
            self.stage_detail = detail
            if self.first_report is None:  # rates count from here: the stage's setup is not progress
                self.first_report = (now, self.stage_fraction)
            due = detail is not None and now - self.detail_logged >= DETAIL_LOG_SECONDS
            if due:
                self.detail_logged = now
        status = self.write("running")
        if due:
            eta = status["eta_seconds"]
            self.log(f"{self.stage}: {detail}" + (f", run ETA {eta} s" if eta is not None else ""))

    def finish(self) -> float:
        """Close the current stage; returns its seconds."""
        with self._lock:
            seconds = time.perf_counter() - self.stage_started
            self.done += self.stage_weight
            self.session_weight += self.stage_weight
            self.session_seconds += seconds
            self.stage_weight, self.stage_fraction, self.stage_detail, self.first_report = 0.0, None, None, None
        self.write("running")
        return seconds

    def skip(self, weight: float) -> None:
        with self._lock:
            self.done += weight

    def _stage_rate(self) -> tuple[float, float] | None:
        """(seconds, weight) the running stage has measurably done since its first reported fraction."""
        if self.first_report is None or self.stage_fraction is None:
            return None
        seconds = time.perf_counter() - self.first_report[0]
        weight = self.stage_weight * (self.stage_fraction - self.first_report[1])
        return (seconds, weight) if seconds >= MIN_RATE_SECONDS and weight > 0 else None

    def _pace(self) -> float | None:
        """Seconds per unit of weight measured in this process: finished stages and the running one pooled."""
        seconds, weight = self.session_seconds, self.session_weight
        running = self._stage_rate()
        if running is not None:
            seconds, weight = seconds + running[0], weight + running[1]
        return seconds / weight if weight > 0 else None

    def _stage_fraction(self) -> float:
        if self.stage_fraction is not None:
            return self.stage_fraction
        if self.stage_weight <= 0:
            return 0.0
        expected = self.stage_weight * (self._pace() or 1.0)
        return min(0.95, (time.perf_counter() - self.stage_started) / max(expected, 1e-9))

    def _eta(self, in_stage: float) -> float | None:
        pace = self._pace()
        if pace is None:
            return None
        rest = max(0.0, self.total - self.done - self.stage_weight) * pace
        running = self._stage_rate()
        if running is not None:  # the running stage's remainder at its own rate (steps of one kind)
            return rest + max(0.0, self.stage_weight - in_stage) * running[0] / running[1]
        return rest + max(0.0, self.stage_weight - in_stage) * pace

    def write(self, state: str, error: str | None = None) -> dict[str, Any]:
        with self._lock:
            in_stage = self.stage_weight * self._stage_fraction()
            fraction = 1.0 if state == "done" else min(1.0, (self.done + in_stage) / self.total)
            eta = self._eta(in_stage) if state == "running" else None
            status: dict[str, Any] = {
                "state": state, "stage": self.stage, "detail": self.stage_detail if state == "running" else None,
                "generation": self.generation, "generations": self.generations, "strategy": self.strategy,
                "fraction": round(fraction, 4), "eta_seconds": None if eta is None else round(eta),
                "pid": os.getpid(), "updated": utc_now(), "error": error}
            write_json(self.run_dir / "status.json", status)
            return status

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
