"""bench/gpu_check.py: one clear error without CUDA, and its whole path as a CPU smoke test (tiny sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = [sys.executable, str(REPO / "bench" / "gpu_check.py")]


def test_without_cuda_it_refuses_in_one_line():
    if torch.cuda.is_available():  # on a GPU machine the refusal cannot happen; the smoke test below still runs
        return
    result = subprocess.run(SCRIPT, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: bench/gpu_check.py needs CUDA (torch.cuda.is_available() is False on this machine); "
        "run it with --device cpu for the CPU smoke test"]


def test_the_cpu_smoke_test_runs_the_tiny_experiment_twice_and_sizes_the_presets(tmp_path: Path):
    out = tmp_path / "gpu_check.json"
    result = subprocess.run([*SCRIPT, "--device", "cpu", "--train-steps", "2", "--gen-prompts", "8", "--new-tokens",
                             "4", "--batch", "4", "--out", str(out)], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["ran_on_gpu"] is False and report["passed"] is True
    evals = {row["eval"] for row in report["comparison"]}
    assert evals == {"gen_0", "replace/gen_1"}  # both generations evaluated in both processes
    assert any(row["figure"].startswith("grounded/") for row in report["comparison"])
    assert report["throughput"]["train_tokens_per_s"] > 0 and report["throughput"]["generate_new_tokens_per_s"] > 0
    for preset in ("full", "paper"):
        assert report["estimates"][preset]["train_hours"] > 0 and report["estimates"][preset]["write_hours"] > 0
