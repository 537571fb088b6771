"""Branches on a real local Ray cluster: a tiny two-branch run killed mid-branch resumes with and without Ray
and equals the same run without Ray, seed for seed (models, pools, synthetic text, evaluations)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag_bench.collapse.run import run_collapse
from rag_bench.config import collapse_preset
from rag_bench.records import read_json, sha256_file
from tests.conftest import copy_data_dir

REPO = Path(__file__).resolve().parents[1]
# one thread everywhere: the same seed gives the same floats only at the same thread count
CFG = collapse_preset("tiny", generations=3, strategies=("replace", "accumulate"), threads=1, report=False,
                      knowledge_buckets=True)  # the bucket steps, and the run's CSV both branches rewrite


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, factbook3: Path) -> Path:
    """DATA_DIR with a 3-country Factbook corpus, its index and probes (a copy of the session's)."""
    return copy_data_dir(factbook3, tmp_path_factory.mktemp("branches") / "data")


def fingerprint(run: Path) -> dict[str, object]:
    """What must be equal seed for seed: weights, pools, synthetic text, and every score of every evaluation."""
    out: dict[str, object] = {}
    for path in sorted(run.rglob("*")):
        rel = str(path.relative_to(run))
        if any(part.startswith(".") for part in path.relative_to(run).parts):
            continue  # temporary folders a killed process left (e.g. a checkpoint swap's .last.old-<pid>)
        if path.name in ("model.safetensors", "pool.jsonl", "buckets.json", "knowledge_buckets.csv") \
                or path.name.startswith("synthetic"):
            out[rel] = sha256_file(path)
        elif path.name == "results.json":
            results = read_json(path)
            out[rel] = json.dumps({k: v for k, v in results.items() if k in ("metrics", "modes", "fit", "diversity")},
                                  sort_keys=True)
    return out


def finished_steps(run: Path) -> dict[str, dict]:
    return {str(m.relative_to(run)): read_json(m).get("steps", {}) for m in run.glob("*/gen_*/manifest.json")}


def test_a_killed_ray_run_resumes_with_or_without_ray_and_equals_the_plain_run(data_dir, ray_cluster, tmp_path):
    plain = run_collapse(CFG, run_dir=tmp_path / "plain", data_dir=data_dir, echo=False)
    expected = fingerprint(plain)
    assert any(k.startswith("accumulate/gen_2/") for k in expected) and "gen_0/synthetic.jsonl" in expected
    assert "knowledge_buckets.csv" in expected and "replace/gen_2/eval/buckets.json" in expected

    killed = tmp_path / "ray"
    (tmp_path / "tiny.json").write_text(json.dumps(CFG.to_dict()))
    command = [sys.executable, "-m", "rag_bench", "collapse", "--config", str(tmp_path / "tiny.json"), "--run-dir",
               str(killed), "--data-dir", str(data_dir), "--ray", ray_cluster]
    process = subprocess.Popen(command, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:  # killed once a branch has trained a generation
        if any("train" in steps for steps in finished_steps(killed).values()):
            break
        time.sleep(0.1)
    assert process.poll() is None, "the Ray run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    before = finished_steps(killed)
    log = (killed / "log.txt").read_text()
    assert "parts written by" in log and "probes answered in" in log  # generation 0 wrote and answered on Ray Data
    assert not (killed / "replace" / "gen_2" / "eval" / "results.json").is_file()
    shutil.copytree(killed, tmp_path / "ray-then-plain")

    run_collapse(CFG, run_dir=killed, data_dir=data_dir, echo=False, ray_address=ray_cluster)  # the same command
    run_collapse(CFG, run_dir=tmp_path / "ray-then-plain", data_dir=data_dir, echo=False)  # resumed without Ray
    for run in (killed, tmp_path / "ray-then-plain"):
        after = finished_steps(run)
        assert all(after[m][key] == value for m, steps in before.items() for key, value in steps.items())
        assert read_json(run / "status.json")["state"] == "done"
        assert fingerprint(run) == expected
    assert "on Ray" in (killed / "log.txt").read_text().split("(pid ")[-1]  # the resume ran branches as tasks


def test_the_cli_refuses_an_unreachable_cluster_in_one_line(data_dir, tmp_path):
    result = subprocess.run([sys.executable, "-m", "rag_bench", "collapse", "--preset", "tiny", "--run-dir",
                             str(tmp_path / "r"), "--data-dir", str(data_dir), "--ray", "127.0.0.1:9"],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("error: --ray 127.0.0.1:9: cannot reach a Ray cluster")
