"""The fresh-human control and the fixed dose on a 3-country Factbook: the control trains only on held-aside human
text, disjoint from generation 0's, for the same steps and tokens as the strategies it controls; two seeds get the
same dose; too little held-aside text is refused before any training, with the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rag_bench.cli import main
from rag_bench.collapse.run import run_collapse
from rag_bench.config import collapse_preset
from rag_bench.records import read_json, read_jsonl
from tests.conftest import copy_data_dir

STRATEGIES = ("replace", "mix:0.5", "fresh")
DOSE = ("steps", "batch_size", "block", "train_tokens", "budget_tokens", "pool_tokens")  # what must not vary
BUDGET = 1200  # tokens of every later pool; ck and kt train generation 0, the fresh text is mostly Pitcairn's


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, factbook3: Path) -> Path:
    return copy_data_dir(factbook3, tmp_path_factory.mktemp("fresh") / "data")


def config(seed: int, **overrides):
    # one checkpoint per later generation (the last step): the kept model has trained the whole dose in every seed
    return collapse_preset("tiny", **{"countries": ("ck", "kt"), "human_documents": 12, "strategies": STRATEGIES,
                                      "generations": 3, "pool_tokens": BUDGET, "next_checkpoints": 1, "seed": seed,
                                      "report": False, **overrides})


@pytest.fixture(scope="module")
def runs(data_dir: Path) -> dict[int, Path]:
    threads = torch.get_num_threads()
    try:
        return {seed: run_collapse(config(seed), run_dir=data_dir / "runs" / f"seed{seed}", data_dir=data_dir,
                                   echo=False) for seed in (0, 1)}
    finally:
        torch.set_num_threads(threads)


def manifest(run: Path, folder: str, k: int) -> dict:
    return read_json(run / folder / f"gen_{k}" / "manifest.json")


def test_the_control_trains_only_on_held_aside_human_text_disjoint_from_generation_0(runs: dict[int, Path]):
    run = runs[0]
    gen0_docs = read_jsonl(run / "data" / "human_train.jsonl")
    fresh_docs = read_jsonl(run / "data" / "human_fresh.jsonl")
    heldout = {r["id"] for r in read_jsonl(run / "data" / "human_heldout.jsonl")}
    probed = {p["metadata"].get("doc_id") for p in read_jsonl(run / "data" / "probes.jsonl")}
    assert fresh_docs and not {r["id"] for r in fresh_docs} & ({r["id"] for r in gen0_docs} | heldout | probed)
    assert all(r["metadata"]["split"] == "train" for r in fresh_docs)
    gen0_text, fresh_text = "\n".join(r["contents"] for r in gen0_docs), "\n".join(r["contents"] for r in fresh_docs)
    lines_by_gen = []
    for k in (1, 2):
        m = manifest(run, "fresh", k)
        assert m["pool"]["origin_tokens"] == {"human": BUDGET} and m["config"]["keeps_human"] is True
        assert set(m["trained_tokens"]["corpus"]["by_origin"]) == {"human"}
        assert set(m["inputs"]["pool_sources"]) == {"data/human_fresh.jsonl"}  # never generation 0's text
        pool = read_jsonl(run / "fresh" / f"gen_{k}" / "pool.jsonl")
        assert all(u["contents"] in fresh_text for u in pool)
        lines = {line for u in pool for line in u["contents"].splitlines() if len(line) > 30}
        assert lines and not any(line in gen0_text for line in lines)
        lines_by_gen.append(lines)
        assert m["pool"]["human_overlap"]["pool"]["share"] < 0.2  # against generation 0's text; mix's is higher
    assert not lines_by_gen[0] & lines_by_gen[1]  # each generation's sample is fresh
    assert not (run / "fresh" / "gen_1" / "synthetic.jsonl").exists()  # the control writes nothing
    for k in (1, 2):  # the same steps, tokens trained and pool tokens as the strategies it controls
        doses = {name: {f: v for f, v in manifest(run, name, k)["dose"].items() if f in DOSE}
                 for name in ("replace", "mix-0.5", "fresh")}
        assert doses["fresh"] == doses["replace"] == doses["mix-0.5"], doses
        assert doses["fresh"]["pool_tokens"] == BUDGET and doses["fresh"]["steps"] == config(0).next_train.max_steps


def test_two_seeds_get_the_same_dose(runs: dict[int, Path]):
    human = {seed: manifest(run, "", 0)["inputs"]["train_texts"]["tokens"] for seed, run in runs.items()}
    assert human[0] != human[1]  # the seeded human sample differs, and with it the writer's prompts
    for seed, run in runs.items():
        assert read_json(run / "gen_0" / "manifest.json")["outputs"]["synthetic"]["tokens"] == BUDGET, seed
    table = {seed: {(name, k): manifest(run, name, k)["dose"] for name in ("replace", "mix-0.5", "fresh")
                    for k in (1, 2)} for seed, run in runs.items()}
    for key, dose in table[0].items():
        same = {f: dose[f] for f in DOSE}
        assert same == {f: table[1][key][f] for f in same}, key
    for run in runs.values():  # with next_checkpoints=1 the kept model is the last step: the whole dose
        for name in ("replace", "mix-0.5", "fresh"):
            m = manifest(run, name, 2)
            assert m["dose"]["kept_step"] == m["checkpoint"]["chosen_step"] == m["dose"]["steps"]
            assert m["trained_tokens"]["corpus"]["tokens"] == m["dose"]["train_tokens"]


def test_too_little_held_aside_text_is_refused_before_any_training(data_dir: Path, tmp_path: Path, capsys):
    cfg_file = tmp_path / "big.json"
    cfg_file.write_text(json.dumps(config(0, pool_tokens=1_000_000).to_dict()))
    run = tmp_path / "refused"
    assert main(["collapse", "--config", str(cfg_file), "--data-dir", str(data_dir), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "generations 1-2 need 2000000 tokens of fresh human text (2 x 1000000)" in err[0], err
    assert str(run / "data" / "human_fresh.jsonl") in err[0]
    available = int(err[0].split(" holds ")[1].split()[0])
    assert 0 < available < 2_000_000
    assert not (run / "gen_0" / "model").exists() and not (run / "gen_0" / "manifest.json").exists()
