"""A run folder's progress contract: status.json's stage, step detail and an ETA measured from the run's own pace.

    .venv/bin/pytest -q tests/test_run_status.py
"""

from __future__ import annotations

import importlib
import time

import pytest

from rag_bench.records import read_json
from rag_bench.run_status import RunLock, RunLocked, RunProgress

run_status = importlib.import_module("rag_bench.run_status")


def test_a_stage_that_reports_steps_gets_an_eta_from_its_own_rate_before_any_stage_finished(tmp_path, monkeypatch):
    monkeypatch.setattr(run_status, "MIN_RATE_SECONDS", 0.2)
    monkeypatch.setattr(run_status, "DETAIL_LOG_SECONDS", 0.0)
    progress = RunProgress(tmp_path, total_weight=200.0, generations=2, echo=False)
    try:
        progress.start("gen 0: train", weight=100.0, generation=0, strategy=None)
        progress.update(0.1, detail="step 10/100, loss 3.000")
        status = read_json(tmp_path / "status.json")
        assert status["detail"] == "step 10/100, loss 3.000" and status["fraction"] == pytest.approx(0.05)
        assert status["eta_seconds"] is None  # one report: no rate measured yet, so no promise
        time.sleep(0.5)
        progress.update(0.2, detail="step 20/100, loss 2.500")
        status = read_json(tmp_path / "status.json")
        # 10 steps in ~0.5 s: 80 steps left in this stage (~4 s) and a stage of the same weight after it (~5 s)
        assert 6 <= status["eta_seconds"] <= 14, status
        log = (tmp_path / "log.txt").read_text()
        assert "gen 0: train: step 20/100, loss 2.500, run ETA" in log
        progress.finish()
        progress.start("gen 0: evaluate", weight=100.0, generation=0, strategy=None)
        status = read_json(tmp_path / "status.json")
        assert status["detail"] is None and status["eta_seconds"] is not None  # the finished stage's pace
    finally:
        progress.close("done", stage="done")
    status = read_json(tmp_path / "status.json")
    assert (status["state"], status["fraction"], status["eta_seconds"], status["detail"]) == ("done", 1.0, None, None)


def test_without_a_measured_rate_the_eta_stays_unknown(tmp_path):
    progress = RunProgress(tmp_path, total_weight=50.0, generations=1, echo=False)
    try:
        progress.start("gen 0: train", weight=50.0, generation=0, strategy=None)
        assert read_json(tmp_path / "status.json")["eta_seconds"] is None
    finally:
        progress.close("cancelled", stage="cancelled")
    assert read_json(tmp_path / "status.json")["state"] == "cancelled"


def test_one_process_per_run_folder(tmp_path):
    lock = RunLock(tmp_path)
    try:
        with pytest.raises(RunLocked, match="another process"):
            RunLock(tmp_path)
    finally:
        lock.release()
    RunLock(tmp_path).release()
