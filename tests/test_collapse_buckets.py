"""The collapse loop on a pretrained-style base with natural questions and knowledge buckets (tiny Llama, 3 countries).

    .venv/bin/pytest tests/test_collapse_buckets.py -q

Generation 0 fine-tunes a small saved Llama (standing in for SmolLM2: a local Hugging Face folder with its own
tokenizer); generation 1 fine-tunes the same base on generation 0's text. The probes are the natural questions.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rag_bench.collapse.run import run_collapse
from rag_bench.config import ConfigError, collapse_preset
from rag_bench.index.store import load_index
from rag_bench.probes.natural import make_natural_probe_file
from rag_bench.records import read_json, read_jsonl
from tests.conftest import copy_data_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, factbook3: Path) -> Path:
    """A copy of the session's 3-country Factbook, with the natural questions beside its record probes."""
    data = copy_data_dir(factbook3, tmp_path_factory.mktemp("buckets") / "data")
    chunks = load_index(data / "indexes" / "factbook").chunks
    make_natural_probe_file(chunks, data / "probes" / "factbook-natural.jsonl",
                            facts_path=data / "corpora" / "factbook" / "facts.jsonl", limit=None)
    return data


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory, data_dir: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from rag_bench.models.scratch import train_tokenizer

    texts = [r["contents"] for r in read_jsonl(data_dir / "corpora" / "factbook" / "corpus.jsonl")]
    tokenizer = train_tokenizer(texts, 400)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=160,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    folder = tmp_path_factory.mktemp("base")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_config(base: Path, **changes):
    cfg = collapse_preset("tiny", strategies=("replace", "mix:0.5"), init="base", base_model=str(base),
                          probe_kind="natural", knowledge_buckets=True, human_documents=8, report=False)
    # the pretrained path: no curriculum in any generation, only text
    train = cfg.train.replace(retrieval_share=0.0, copy_share=0.0, fact_share=0.0)
    return cfg.replace(train=train, next_train=train.replace(max_steps=4, warmup_steps=1, eval_every=4,
                                                              save_every=2), **changes)


def run(cfg, run_dir: Path, data_dir: Path) -> Path:
    threads = torch.get_num_threads()
    try:
        return run_collapse(cfg, run_dir=run_dir, data_dir=data_dir, echo=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def natural_run(data_dir: Path, base_folder: Path) -> Path:
    return run(tiny_config(base_folder), data_dir / "runs" / "natural", data_dir)


def test_generations_answer_questions_and_start_from_the_base(natural_run: Path, base_folder: Path):
    samples = read_jsonl(natural_run / "gen_0" / "eval" / "samples_closed.jsonl")
    assert samples and all(s["prompt"].endswith("?") and s["id"].startswith("natural/") for s in samples)
    manifest = read_json(natural_run / "replace" / "gen_1" / "manifest.json")
    assert manifest["config"]["init_from"] == str(base_folder)
    assert manifest["inputs"]["copy_curriculum"]["state"] == "off"
    assert manifest["inputs"]["fact_rows"]["state"] == "off"
    assert manifest["pool"]["human_tokens"] == 0  # replace: generation 0's text only
    assert len(read_jsonl(natural_run / "data" / "human_train.jsonl")) == 8  # human_documents


def test_every_generation_has_metrics_by_bucket(natural_run: Path):
    axes = read_json(natural_run / "data" / "probe_axes.json")
    evaluated = {s["id"] for s in read_jsonl(natural_run / "gen_0" / "eval" / "samples_closed.jsonl")}
    assert set(axes["probes"]) == evaluated
    assert sum(axes["counts"]["confidence"].values()) == len(evaluated)
    for row in axes["probes"].values():
        assert row["confidence"] in ("low", "mid", "high") and row["known"] in ("known", "unknown")
        assert row["frequency"] in ("tail", "torso", "head") and row["gold_logprob"] < 0
    for gen_dir in (natural_run / "gen_0", natural_run / "replace" / "gen_1", natural_run / "mix-0.5" / "gen_1"):
        table = read_json(gen_dir / "eval" / "buckets.json")
        cells = table["confidence"]["grounded"]
        assert sum(c["exact_match"]["n"] for c in cells.values()) == len(evaluated)
    with open(natural_run / "knowledge_buckets.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["strategy"], r["generation"]) for r in rows} == {(s, g) for s in ("replace", "mix:0.5") for g in "01"}
    assert {r["axis"] for r in rows} >= {"confidence", "known", "frequency"}


def test_a_lost_bucket_file_is_rebuilt_on_resume_without_retraining(natural_run: Path, data_dir: Path,
                                                                    base_folder: Path):
    target = natural_run / "replace" / "gen_1" / "eval" / "buckets.json"
    before = target.read_text()
    trained = (natural_run / "replace" / "gen_1" / "model" / "model.safetensors").stat().st_mtime_ns
    target.unlink()
    run(tiny_config(base_folder), natural_run, data_dir)
    assert target.read_text() == before
    assert (natural_run / "replace" / "gen_1" / "model" / "model.safetensors").stat().st_mtime_ns == trained


def test_bad_settings_are_refused(base_folder: Path):
    with pytest.raises(ConfigError, match="probe_kind"):
        tiny_config(base_folder, probe_kind="trivia")
    with pytest.raises(ConfigError, match="human_documents"):
        tiny_config(base_folder, human_documents=-1)
    cfg = tiny_config(base_folder)
    with pytest.raises(ConfigError, match="knowledge_buckets needs 'closed'"):
        cfg.replace(eval=cfg.eval.replace(modes=("grounded",)))


def test_the_smol_preset_runs_on_a_small_base(data_dir: Path, base_folder: Path):
    """The smol preset as it is, but on the tiny base, 6 documents, 2 steps and 8 probes: the pretrained path."""
    cfg = collapse_preset("smol", base_model=str(base_folder), generations=2, strategies=("replace",),
                          human_documents=6, kinds=(), report=False)
    cfg = cfg.replace(train=cfg.train.replace(max_steps=2, eval_every=2, model=cfg.train.model.replace(n_positions=64)),
                      next_train=cfg.next_train.replace(model=cfg.next_train.model.replace(n_positions=64)),
                      next_epochs=0.2, prompt_tokens=8, decode=cfg.decode.replace(max_new_tokens=16),
                      eval=cfg.eval.replace(limit=8, diversity_prompts=2, heldout_max_texts=4))
    run_dir = run(cfg, data_dir / "runs" / "smol", data_dir)
    assert read_json(run_dir / "gen_0" / "manifest.json")["config"]["base_model"] == str(base_folder)
    assert (run_dir / "replace" / "gen_1" / "eval" / "buckets.json").is_file()
    assert read_json(run_dir / "replace" / "gen_1" / "manifest.json")["pool"]["human_tokens"] == 0


def test_smol_generation_0_on_the_real_smollm2(data_dir: Path, smollm2_data_dir: Path, tmp_path: Path):
    """The smol preset's pretrained path on the real SmolLM2-135M (converted once per session): generation 0
    fine-tunes it for one small step, answers natural questions through its chat template, and is bucketed."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("corpora", "indexes", "probes"):
        (data / name).symlink_to(data_dir / name)
    (data / "models").symlink_to(smollm2_data_dir / "models")
    cfg = collapse_preset("smol", generations=1, human_documents=2, kinds=(), report=False)
    cfg = cfg.replace(train=cfg.train.replace(max_steps=1, batch_size=2, eval_every=1, eval_max_texts=2,
                                              model=cfg.train.model.replace(n_positions=32)),
                      eval=cfg.eval.replace(limit=4, diversity_prompts=0, heldout_max_texts=2))
    run_dir = run(cfg, tmp_path / "run", data)
    assert read_json(run_dir / "config.json")["base_model"] == "smollm2-135m"
    assert read_json(run_dir / "gen_0" / "manifest.json")["gen0_cache"]["key"]
    samples = read_jsonl(run_dir / "gen_0" / "eval" / "samples_closed.jsonl")
    assert len(samples) == 4 and all(s["prediction"].strip() for s in samples)  # a chat model says something
    axes = read_json(run_dir / "data" / "probe_axes.json")
    assert axes["known_metric"] == "contains" and len(axes["probes"]) == 4
    assert (run_dir / "gen_0" / "eval" / "buckets.json").is_file()
