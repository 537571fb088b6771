"""What the page shows about a run, read from disk: status.json and log.txt (docs/runs.md), the console of
the process that ran it, and the command file the page keeps beside it (how it started, how it ended).

    from rag_bench.app.run_view import known_runs, run_view
    known_runs(cfg, runner)                     # running and queued first, then newest first
    run_view(cfg, runner, "quick-factbook")     # state, stage, step, fraction, ETA, error, log tail

``runner`` is the server's rag_bench.app.runs.RunQueue: what it runs now overrides a stale status.json.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from rag_bench.app.state import AppConfig, check_name, read_json_or_none
from rag_bench.records import write_json

FINISHED = ("done", "failed", "cancelled")


class JobView(Protocol):
    """What the view reads of a job of the queue (rag_bench.app.runs.Job)."""

    state: str  # queued | running | done | failed | cancelled
    console: Path  # the file its process writes stdout and stderr to


class QueueView(Protocol):
    """What the view asks the server's queue (rag_bench.app.runs.RunQueue, which imports this module)."""

    def job(self, job_id: str) -> JobView | None: ...

    def active_runs(self) -> list[str]: ...

    def position(self, job_id: str) -> int | None: ...


def command_file(cfg: AppConfig, run_id: str) -> Path:
    """How the UI started a run, so that it can resume it after a restart."""
    return cfg.ui_path / "runs" / f"{run_id}.json"


def update_command_file(cfg: AppConfig, run_id: str, **fields: Any) -> None:
    saved = read_json_or_none(command_file(cfg, run_id))
    write_json(command_file(cfg, run_id), {**(saved if isinstance(saved, dict) else {}), **fields})


def console_error(console: Path) -> str:
    """The last line a failed process printed: its error, for a process that died before writing status.json."""
    lines = [line for line in tail(console, 20).splitlines() if line.strip() and not line.startswith("$ ")]
    return lines[-1].strip()[:500] if lines else ""


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tail(path: Path, lines: int = 30, max_bytes: int = 65536) -> str:
    """The last ``lines`` lines of a text file (a progress bar's carriage returns keep only its last state)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - max_bytes))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    rows = [next((piece for piece in reversed(row.split("\r")) if piece.strip()), "")
            for row in text.replace("\r\n", "\n").split("\n")]
    return "\n".join([row for row in rows if row.strip()][-lines:])


def known_runs(cfg: AppConfig, runner: QueueView) -> list[str]:
    """Runs to list: those running or queued first, then the others newest first, counting the runs this page
    started that ended before making their folder (a bad setting fails at once: it must still be seen)."""
    stamps: dict[str, float] = {}
    for folder, pattern in ((cfg.runs_path, "*"), (cfg.ui_path / "runs", "*.json")):
        for path in folder.glob(pattern) if folder.is_dir() else []:
            name = path.name if pattern == "*" else path.stem
            if (path.is_dir() or pattern != "*") and not name.startswith("."):
                stamps[name] = max(stamps.get(name, 0.0), path.stat().st_mtime)
    active = runner.active_runs()
    return active + sorted((r for r in stamps if r not in active), key=lambda r: -stamps[r])


def run_view(cfg: AppConfig, runner: QueueView, run_id: str) -> dict[str, Any]:
    """Everything the page shows about a run: status.json merged with what this server knows of its process."""
    run_dir = cfg.runs_path / check_name(run_id, "run")
    status = read_json_or_none(run_dir / "status.json") or {}
    if not isinstance(status, dict):
        status = {}
    saved = read_json_or_none(command_file(cfg, run_id)) or {}
    ended = saved.get("exit") if isinstance(saved.get("exit"), dict) else {}
    job = runner.job(run_id)
    position = runner.position(run_id)
    state = status.get("state") or "unknown"
    error = status.get("error")
    if position:
        state = "queued"
    elif position == 0:  # this server runs it now; a state left by an earlier process is stale until rewritten
        state = "running" if state == "running" else "starting"
    elif ended.get("state") in ("failed", "cancelled") and state not in FINISHED:
        state = ended["state"]  # the process ended without saying so (killed, or failed before writing status)
        error = error or ended.get("error")
    elif job is not None and job.state in ("failed", "cancelled") and state not in FINISHED:
        state = job.state
    elif state == "running" and position is None and not pid_alive(status.get("pid")):
        state = "interrupted"
    if state == "failed" and not error:
        error = ended.get("error") or (console_error(job.console) if job is not None else None)
    log = tail(run_dir / "log.txt")
    console = job.console if job is not None else cfg.ui_path / "logs" / f"{run_id}.txt"
    if not log or state in ("failed", "starting"):
        log = (log + "\n" if log else "") + tail(console, 15)
    return {
        "run_id": run_id, "state": state, "stage": status.get("stage", ""), "fraction": status.get("fraction"),
        "eta_seconds": status.get("eta_seconds"), "detail": status.get("detail"),
        "generation": status.get("generation"), "generations": status.get("generations"),
        "strategy": status.get("strategy"), "error": error, "position": position, "log": log,
        "cancelled_by_user": bool(saved.get("cancelled_by_user")),
        "stopped_by_server": bool(saved.get("stopped_by_server")),
        "resumable": state in ("cancelled", "interrupted", "failed") and position is None,
    }
