"""Contaminated indexes: origin of every chunk, the human index untouched, resume after a real SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rag_bench.answer import SOURCE_FIELDS, grounded
from rag_bench.contaminate.build import MARKER, SharePlan, build_share_indexes
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import current_version, load_index
from rag_bench.lm import LM
from rag_bench.records import read_json, read_jsonl, sha256_file

REPO = Path(__file__).resolve().parents[1]


def human_fingerprint(index_dir: Path) -> dict[str, str]:
    version = current_version(index_dir)
    return {"CURRENT": (index_dir / "CURRENT").read_text(), **{p.name: sha256_file(p) for p in version.iterdir()}}


def test_every_chunk_has_its_origin_and_no_synthetic_chunk_is_human(contaminate_data: Path, contaminated: Path):
    human = {c.id: c.page_content for c in load_index(contaminate_data / "indexes" / "factbook").chunks}
    config = read_json(contaminated / "config.json")
    rewrites = {r["id"]: r for path in sorted((contaminated / "rewrites").glob("round_*.jsonl"))
                for r in read_jsonl(path)}
    results = read_json(contaminated / "results.json")
    synthetic_counts = []
    for name in results["index_names"]:
        chunks = load_index(contaminate_data / "indexes" / name).chunks
        labelled_human = {c.id for c in chunks if c.metadata["origin"] == "human"}
        assert labelled_human == set(human)  # every human chunk, and nothing else, is labelled human
        synthetic = [c for c in chunks if c.id not in human]
        for chunk in synthetic:
            meta = chunk.metadata
            assert meta["origin"] == "synthetic" and meta["origin_generation"] == config["generation"] == 1
            assert isinstance(meta["origin_watermarked"], bool) and meta["source"].startswith("uncurated/")
            assert chunk.page_content in rewrites[meta["doc_id"]]["contents"]
        synthetic_counts.append(len(synthetic))
        marker = read_json(contaminate_data / "indexes" / name / MARKER)
        assert marker["synthetic_chunks"] == len(synthetic) and marker["human_chunks"] == len(human)
    assert synthetic_counts[0] == 0 and synthetic_counts == sorted(synthetic_counts) and synthetic_counts[-1] > 0
    assert {c.metadata.get("origin") for c in load_index(contaminate_data / "indexes" / "factbook").chunks} == {None}


def test_origin_reaches_neither_the_prompt_nor_the_citations(contaminate_data: Path, contaminated: Path):
    assert not any(key.startswith("origin") for key in SOURCE_FIELDS)
    name = read_json(contaminated / "results.json")["index_names"][-1]
    store = load_index(contaminate_data / "indexes" / name).store
    lm = LM.load(contaminate_data / "runs" / "tiny" / "gen_0" / "model")
    synthetic = next(d for d in (store.docstore.search(i) for i in store.index_to_docstore_id.values())
                     if d.metadata["origin"] == "synthetic")
    question = synthetic.page_content  # its own text: bm25 ranks it first
    answer = grounded(lm, make_retriever(store, mode="bm25", k=3), [question], k=3)[0]
    assert any(s["chunk_id"] == synthetic.id for s in answer.sources)
    assert all(not key.startswith("origin") for s in answer.sources for key in s)
    assert "synthetic" not in answer.prompt and "uncurated" not in answer.prompt


def test_a_build_killed_midway_resumes_and_leaves_the_human_index_untouched(contaminate_data: Path,
                                                                           contaminated: Path, tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(contaminate_data / "indexes" / "factbook", data / "indexes" / "factbook")
    shutil.copytree(contaminate_data / "runs" / "tiny", data / "runs" / "tiny", ignore=shutil.ignore_patterns(
        "contaminate"))
    before = human_fingerprint(data / "indexes" / "factbook")
    out = data / "runs" / "tiny" / "contaminate" / "gen_1-limit6"
    command = [sys.executable, "-m", "rag_bench", "contaminate", str(data / "runs" / "tiny"), "--gen", "1",
               "--shares", "0,0.5,0.75", "--limit", "6", "--data-dir", str(data), "--retrievers", "bm25",
               "--defences", "none", "--ks", "1", "--no-human-control",
               "--fluency-scorer", "gen0"]  # the rewrites and indexes do not depend on these
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((data / "indexes").glob("*-s0.50")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    assert not (out / "results.json").exists()
    assert human_fingerprint(data / "indexes" / "factbook") == before

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert human_fingerprint(data / "indexes" / "factbook") == before
    resumed = read_json(out / "results.json")
    first = read_json(contaminated / "results.json")
    for a, b in zip(resumed["indexes"], first["indexes"], strict=True):
        assert a["synthetic"] == b["synthetic"] and a["synthetic_chunks"] == b["synthetic_chunks"]
    for round_file in sorted((contaminated / "rewrites").glob("round_*.jsonl")):
        assert read_jsonl(out / "rewrites" / round_file.name) == read_jsonl(round_file)
    assert not list((data / "indexes").glob("*/versions/.staging-*"))


def test_a_plan_without_rewrites_is_the_human_index_relabelled(contaminate_data: Path, tmp_path: Path):
    human_dir = contaminate_data / "indexes" / "factbook"
    marker = build_share_indexes(human_dir, [SharePlan(share=0.0, rows=(), pool=3, info={})], [tmp_path / "zero"])[0]
    assert marker["synthetic_chunks"] == 0 and marker["embedded"] == 0 and marker["pool_share"] == 0.0
    assert [c.id for c in load_index(tmp_path / "zero").chunks] == [c.id for c in load_index(human_dir).chunks]
