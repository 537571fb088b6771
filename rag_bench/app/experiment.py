"""The Experiment tab's handlers: start, cancel, resume and follow a collapse run.

    from rag_bench.app.experiment import start_run, cancel_run, resume_run, progress_html
    run_id, message = start_run(cfg, runner, preset="quick", corpus="factbook")
    progress_html(run_view(cfg, runner, run_id))     # a bar with the stage and the ETA

Runs go through the server's one RunQueue, so a second start waits for the first instead of sharing the cores.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator
from typing import Any

from rag_bench.app.corpus import cloze_probes, has_probes
from rag_bench.app.runs import RunQueue, collapse_job, known_runs, mark_cancelled, resume_job, run_view
from rag_bench.app.state import AppConfig, UserError, check_name
from rag_bench.config import COLLAPSE_PRESETS, MODEL_PRESETS, STRATEGY_KINDS

PRESETS = tuple(COLLAPSE_PRESETS)
STRATEGIES = tuple("mix:0.1" if kind == "mix" else kind for kind in STRATEGY_KINDS)  # mix needs its share
MODEL_SIZES = ("preset default", *MODEL_PRESETS)
DECODINGS = ("preset default", "beam", "sample")
LIVE = ("queued", "starting", "running")
FOLLOW_POLL_SECONDS = 1.0


def format_duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds < 0:
        return "unknown"
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60)} min"


def start_run(cfg: AppConfig, runner: RunQueue, *, name: str = "", preset: str = "quick", generations: int = 0,
              strategies: list[str] | None = None, model_size: str = "", decoding: str = "",
              corpus: str = "factbook", seed: int | float | None = None) -> tuple[str, str]:
    """Queue a new run; returns its id and what happened, for the page."""
    if preset not in PRESETS:
        raise UserError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    unknown = [s for s in strategies or [] if s not in STRATEGIES]
    if unknown:
        raise UserError(f"Unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}.")
    if not 0 <= int(generations or 0) <= 100:
        raise UserError(f"generations must be between 1 and 100 (0 keeps the preset's), got {generations}")
    if seed is not None and (seed != int(seed) or not 0 <= int(seed) < 2**31):
        raise UserError(f"seed must be a whole number from 0 to {2**31 - 1}, or empty for the preset's; got {seed}")
    corpus = check_name(corpus, "corpus")
    if corpus != "factbook" and not (cfg.indexes_path / corpus / "CURRENT").is_file():
        raise UserError(f"The corpus {corpus!r} has no index yet; ingest it in the Corpus tab first.")
    if corpus != "factbook" and not has_probes(cfg, corpus) and cloze_probes(cfg, corpus) == 0:
        raise UserError(f"No probe could be built from the corpus {corpus!r} (no sentence ends in a number, name or "
                        "rare term); add documents in the Corpus tab, or give probes with `rag-bench probes`.")
    run_id = check_name(name.strip() if name and name.strip() else
                        f"{preset}-{corpus}-{time.strftime('%Y%m%d-%H%M%S')}", "run name")
    if (cfg.runs_path / run_id).exists() or runner.position(run_id) is not None:
        raise UserError(f"A run named {run_id!r} exists already; resume it, or choose another name.")
    settings = {"preset": preset, "generations": int(generations or 0), "strategies": tuple(strategies or ()),
                "model_size": "" if model_size in ("", MODEL_SIZES[0]) else model_size,
                "decoding": "" if decoding in ("", DECODINGS[0]) else decoding, "corpus": corpus,
                "seed": None if seed is None else int(seed)}
    ahead = runner.submit(collapse_job(cfg, run_id, **settings))
    return run_id, (f"Started {run_id}." if ahead == 0 else f"Queued {run_id} behind {ahead} job(s).")


def cancel_run(cfg: AppConfig, runner: RunQueue, run_id: str) -> str:
    if not run_id:
        raise UserError("Pick a run to cancel.")
    done = runner.cancel(check_name(run_id, "run"))
    mark_cancelled(cfg, run_id)
    return f"{run_id}: {done}. Resume it to continue where it stopped."


def resume_run(cfg: AppConfig, runner: RunQueue, run_id: str) -> str:
    if not run_id:
        raise UserError("Pick a run to resume.")
    view = run_view(cfg, runner, check_name(run_id, "run"))
    if view["state"] in LIVE:
        raise UserError(f"{run_id} is {view['state']} already.")
    if view["state"] == "done":
        raise UserError(f"{run_id} has finished; there is nothing to resume.")
    ahead = runner.submit(resume_job(cfg, run_id))
    return f"Resuming {run_id}." if ahead == 0 else f"Queued the resume of {run_id} behind {ahead} job(s)."


def default_run(cfg: AppConfig, runner: RunQueue) -> str | None:
    """The run to show first: the one running or queued, else the newest."""
    runs = known_runs(cfg, runner)
    return runs[0] if runs else None


def parse_seed(text: Any) -> int | None:
    """The Seed field: empty keeps the preset's seed, else a whole number."""
    text = "" if text is None else str(text).strip()
    if not text:
        return None
    if not text.isdigit() or int(text) >= 2**31:
        raise UserError(f"seed must be a whole number from 0 to {2**31 - 1}, or empty for the preset's; got {text!r}")
    return int(text)


def progress_text(view: dict[str, Any]) -> str:
    """One line: state, stage, generation, strategy, per cent and ETA."""
    parts = [view["state"]]
    if view["state"] == "queued":
        parts.append(f"{view['position']} job(s) ahead")
    if view.get("stage") and view["stage"] != view["state"]:
        parts.append(str(view["stage"]))
    if view.get("detail") and view["state"] == "running":
        parts.append(str(view["detail"]))
    if view.get("generations") and isinstance(view.get("generation"), int) and view["state"] != "done":
        parts.append(f"generation {view['generation']} of {view['generations']}")
    elif view.get("generations"):
        parts.append(f"{view['generations']} generations")
    if view.get("strategy"):
        parts.append(f"strategy {view['strategy']}")
    if isinstance(view.get("fraction"), int | float):
        parts.append(f"{100 * view['fraction']:.0f}%")
    if view["state"] == "running":
        parts.append(f"ETA {format_duration(view.get('eta_seconds'))}")
    if view.get("error"):
        parts.append(f"error: {view['error']}")
    return " · ".join(parts)


def progress_html(view: dict[str, Any] | None) -> str:
    if view is None:
        return "<p>No run yet. Start one below.</p>"
    fraction = view.get("fraction") if isinstance(view.get("fraction"), int | float) else 0.0
    fraction = 1.0 if view["state"] == "done" else max(0.0, min(1.0, float(fraction)))
    color = {"failed": "#d9534f", "cancelled": "#999", "interrupted": "#f0ad4e"}.get(view["state"], "#3b82f6")
    hint = " Resume continues where it stopped." if view.get("resumable") else ""
    return (f'<div class="rb-run"><b>{html.escape(view["run_id"])}</b>: {html.escape(progress_text(view))}.{hint}'
            f'<div style="background:#e5e7eb;border-radius:4px;height:10px;margin-top:6px">'
            f'<div style="background:{color};width:{100 * fraction:.1f}%;height:10px;border-radius:4px"></div>'
            f"</div></div>")


def follow_run(cfg: AppConfig, runner: RunQueue, run_id: str | None,
               progress: Callable[..., Any] | None = None) -> Iterator[tuple[str, str]]:
    """Yield (progress HTML, log tail) until the run stops; ``progress`` gets the fraction, stage and ETA."""
    if not run_id:
        yield progress_html(None), ""
        return
    while True:
        view = run_view(cfg, runner, run_id)
        if progress is not None and view["state"] in LIVE:
            fraction = view["fraction"] if isinstance(view["fraction"], int | float) else None
            progress(fraction, desc=progress_text(view))
        yield progress_html(view), view["log"]
        if view["state"] not in LIVE:
            return
        time.sleep(FOLLOW_POLL_SECONDS)
