"""The collapse loop on a 3-country Factbook: layout, purity, each strategy's pool, validation, cache, kill+resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rag_bench.cli import main
from rag_bench.collapse.run import run_collapse
from rag_bench.config import collapse_preset
from rag_bench.index.store import load_index
from rag_bench.records import read_json, read_jsonl, sha256_file
from tests.conftest import copy_data_dir

REPO = Path(__file__).resolve().parents[1]
ALL = ("replace", "mix:0.5", "accumulate", "accumulate-fixed", "accumulate-subsample", "filter", "filter:dedup",
       "watermark", "grounded")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, factbook3: Path) -> Path:
    """DATA_DIR with a 3-country Factbook corpus (20% held out), its index and its probes (a copy of the session's)."""
    return copy_data_dir(factbook3, tmp_path_factory.mktemp("collapse") / "data")


@pytest.fixture(scope="module")
def tiny_run(data_dir: Path) -> Path:
    """Two generations of every strategy, sharing one generation 0."""
    threads = torch.get_num_threads()
    try:
        return run_collapse(collapse_preset("tiny", strategies=ALL), run_dir=data_dir / "runs" / "all",
                            data_dir=data_dir, echo=False)
    finally:
        torch.set_num_threads(threads)


def contents(path: Path) -> list[str]:
    return [r["contents"] for r in read_jsonl(path)]


def test_a_tiny_run_writes_the_layout(tiny_run: Path):
    status = read_json(tiny_run / "status.json")
    assert status["state"] == "done" and status["fraction"] == 1.0 and status["error"] is None
    assert {"stage", "generation", "generations", "strategy", "eta_seconds", "pid", "updated"} <= set(status)
    assert "gen 1 grounded: train: finished" in (tiny_run / "log.txt").read_text()
    assert read_json(tiny_run / "config.json")["strategies"] == list(ALL)
    assert (tiny_run / "report" / "report.html").is_file()  # the report step at the run's end (the other runs skip it)
    g0 = tiny_run / "gen_0"
    for name in ("model/model.safetensors", "model/tokenizer.json", "eval/results.json", "eval/samples_closed.jsonl",
                 "eval/samples_grounded.jsonl", "synthetic.jsonl", "synthetic_watermark.jsonl",
                 "synthetic_grounded.jsonl", "manifest.json"):
        assert (g0 / name).is_file(), name
    manifest = read_json(g0 / "manifest.json")
    assert set(manifest["steps"]) == {"train", "eval", "write_plain", "write_watermark", "write_grounded"}
    assert manifest["outputs"]["synthetic"]["sha256"] == sha256_file(g0 / "synthetic.jsonl")
    assert manifest["inputs"]["train_texts"]["tokens"] > 0 and manifest["timings"]["train_s"] > 0
    # where each step ran and at what precision, so seeds run on different machines can be told apart
    assert set(manifest["compute"]) == set(manifest["steps"])
    native = (torch.cuda.is_bf16_supported() if torch.cuda.is_available()
              else torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert manifest["compute"]["eval"]["precision"] == ("bf16 autocast" if native else "fp32")
    trained_on = manifest["train"]["compute"]
    assert trained_on[0]["device"] in ("cpu", "cuda") and trained_on[0]["threads"] >= 1
    for folder in ("replace", "mix-0.5", "accumulate", "accumulate-fixed", "accumulate-subsample", "filter",
                   "filter-dedup", "watermark", "grounded"):
        gen = tiny_run / folder / "gen_1"
        assert (gen / "model" / "config.json").is_file() and (gen / "eval" / "results.json").is_file()
        assert not (gen / "synthetic.jsonl").exists()  # the last generation writes nothing
        assert not (gen / "last").exists()  # optimizer state is dropped once the step is done
        manifest = read_json(gen / "manifest.json")
        assert set(manifest["steps"]) == {"pool", "train", "eval"}
        assert manifest["inputs"]["train_texts"]["sha256"] == sha256_file(gen / "pool.jsonl")
        assert manifest["seeds"]["train"] and manifest["config"]["init_from"] == "gen_0/model"
        assert read_json(gen / "eval" / "results.json")["schema"] == "rag_bench.results/1"


def test_replace_trains_only_on_the_previous_generations_text(tiny_run: Path):
    manifest = read_json(tiny_run / "replace" / "gen_1" / "manifest.json")
    synthetic = tiny_run / "gen_0" / "synthetic.jsonl"
    assert manifest["inputs"]["pool_sources"] == {"gen_0/synthetic.jsonl": sha256_file(synthetic)}
    assert read_json(tiny_run / "gen_0" / "manifest.json")["outputs"]["synthetic"]["sha256"] == sha256_file(synthetic)
    inputs = manifest["inputs"]
    # no curriculum rows after generation 0 (next_curriculum is off): plain blocks of the pool, all written by gen 0
    assert inputs["neighbours"] == {"source": "train_texts", "passages_k": 2, "enabled": False}
    assert inputs["copy_curriculum"]["state"] == "off" and inputs["fact_rows"]["state"] == "off"
    assert manifest["config"]["curriculum"].startswith("off") and manifest["config"]["keeps_human"] is False
    trained = manifest["trained_tokens"]
    assert set(trained) == {"corpus"} and set(trained["corpus"]["by_origin"]) == {"gen_0"}
    assert trained["corpus"]["by_origin"]["gen_0"] == trained["corpus"]["tokens"] > 0
    assert inputs["heldout_texts"]["use"].startswith("validation")
    # the same checkpoint rule as generation 0: validation perplexity at as many evenly spaced steps (tiny: 2)
    assert list(manifest["checkpoint"]["validation_ppl_by_step"]) == ["4", "8"]
    assert manifest["checkpoint"]["chosen_step"] in (4, 8)
    assert list(read_json(tiny_run / "gen_0" / "manifest.json")["checkpoint"]["validation_ppl_by_step"]) == [
        "20", "40"]
    g0_trained = read_json(tiny_run / "gen_0" / "manifest.json")["trained_tokens"]
    assert set(g0_trained["corpus"]["by_origin"]) == {"human"} and g0_trained["copy"]["built_from"]["human"] > 0
    pool = read_jsonl(tiny_run / "replace" / "gen_1" / "pool.jsonl")
    assert {r["metadata"]["source"] for r in pool} == {"synthetic"} and manifest["pool"]["human_tokens"] == 0
    assert set(contents(tiny_run / "replace" / "gen_1" / "pool.jsonl")) <= set(contents(synthetic))
    human_lines = {line for text in contents(tiny_run / "data" / "human_train.jsonl") for line in text.splitlines()
                   if len(line) > 40}
    assert not any(line in text for text in contents(synthetic) for line in human_lines)
    accumulate = read_json(tiny_run / "accumulate" / "gen_1" / "manifest.json")
    assert "data/human_train.jsonl" in accumulate["inputs"]["pool_sources"]  # the other strategies name it
    assert set(accumulate["trained_tokens"]["corpus"]["by_origin"]) == {"human", "gen_0"}


def test_accumulate_trains_on_the_whole_union_and_the_fixed_variant_does_not(tiny_run: Path):
    steps = {name: read_json(tiny_run / name / "gen_1" / "manifest.json")["config"]["train"]["max_steps"]
             for name in ("replace", "accumulate", "accumulate-fixed")}
    pools = {name: read_json(tiny_run / name / "gen_1" / "manifest.json")["pool"]
             for name in ("accumulate", "accumulate-fixed")}
    assert pools["accumulate"]["tokens"] == pools["accumulate-fixed"]["tokens"]  # the same union
    scale = pools["accumulate"]["tokens"] / pools["accumulate"]["budget_tokens"]
    assert steps["accumulate-fixed"] == steps["replace"] == 8
    assert steps["accumulate"] == pytest.approx(8 * scale, abs=1) and steps["accumulate"] > 8


def test_each_strategy_builds_its_pool(tiny_run: Path):
    pools = {name: read_json(tiny_run / name / "gen_1" / "manifest.json")["pool"]
             for name in ("mix-0.5", "accumulate", "accumulate-subsample", "filter", "filter-dedup", "watermark")}
    budget = pools["mix-0.5"]["budget_tokens"]
    assert pools["mix-0.5"]["human_share"] == pytest.approx(0.5, abs=0.1)
    assert pools["accumulate"]["human_tokens"] == pytest.approx(budget, rel=0.01)
    assert pools["accumulate"]["synthetic_tokens"] == pytest.approx(budget, rel=0.05)
    assert budget <= pools["accumulate-subsample"]["tokens"] < 1.2 * budget
    assert 0 < pools["accumulate-subsample"]["human_share"] < 1
    assert pools["filter"]["filter"]["kept_share_units"] == pytest.approx(0.8, abs=0.01)
    assert pools["filter-dedup"]["filter"]["by"] == "dedup"
    assert 0 < pools["filter-dedup"]["filter"]["kept_share_units"] <= 1
    wm = pools["watermark"]["watermark"]
    assert {"precision", "recall", "flagged", "synthetic", "human", "z_threshold"} <= set(wm)
    assert wm["recall"] > 0.5 and wm["precision"] > 0.8
    for name, pool in pools.items():  # each pool's overlap with the human training text is measured
        overlap = pool["human_overlap"]
        assert overlap["written"]["ngram"] == 8 and 0 <= overlap["pool"]["share"] <= 1, name
    assert pools["accumulate"]["human_overlap"]["pool"]["share"] > 0.4  # half of it is the human text itself
    assert pools["accumulate"]["origin_tokens"]["human"] == pools["accumulate"]["human_tokens"]
    grounded = read_jsonl(tiny_run / "gen_0" / "synthetic_grounded.jsonl")
    assert sum(r["metadata"]["grounded_passages"] > 0 for r in grounded) > 0.95 * len(grounded)
    heldout = {r["id"] for r in read_jsonl(tiny_run / "data" / "human_heldout.jsonl")}
    docstore = load_index(tiny_run.parent.parent / "indexes" / "factbook").store.docstore
    chosen = read_json(tiny_run / "cache" / "writer_passages.json")["chunk_ids"]
    used = {c for ids in chosen for c in ids}
    assert used and not any(docstore.search(c).metadata["doc_id"] in heldout for c in used)
    # no passage holds a word 8-gram of the true human continuation of its prompt (the neighbouring chunk)
    from rag_bench.collapse.overlap import word_ngrams
    from rag_bench.collapse.synthetic import prompt_blocks
    from rag_bench.lm import LM

    tokenizer = LM.load(tiny_run / "gen_0" / "model").tokenizer
    prompts = prompt_blocks(contents(tiny_run / "data" / "human_train.jsonl"), tokenizer, prompt_tokens=16,
                            new_tokens=16)
    assert len(prompts) == len(chosen)
    for prompt, ids in zip(prompts, chosen, strict=True):
        after = set(word_ngrams(tokenizer.decode(list(prompt.continuation), skip_special_tokens=True), 8))
        assert not any(after & set(word_ngrams(docstore.search(c).page_content, 8)) for c in ids)


def test_an_invalid_config_is_refused_naming_the_key(data_dir: Path, tmp_path: Path, capsys):
    for flags, key in ((["--strategy", "bogus"], "strategies"), (["--strategy", "mix:1.5"], "strategies"),
                       (["--generations", "0"], "generations"), (["--threads", "-1"], "threads")):
        run = tmp_path / key
        assert main(["collapse", "--preset", "tiny", "--data-dir", str(data_dir), "--run-dir", str(run), *flags]) == 2
        assert key in capsys.readouterr().err
        assert not run.exists()  # refused before any work
    bad = tmp_path / "bad.json"
    bad.write_text('{"strategies": ["replace"], "filter_keep": 1.5}')
    assert main(["collapse", "--config", str(bad), "--data-dir", str(data_dir), "--run-dir", str(tmp_path / "b")]) == 2
    assert "filter_keep" in capsys.readouterr().err


def test_generation_0_is_shared_through_the_cache(tiny_run: Path, data_dir: Path):
    threads = torch.get_num_threads()
    try:
        other = run_collapse(collapse_preset("tiny", generations=1, strategies=("replace",), report=False),
                             run_dir=data_dir / "runs" / "other", data_dir=data_dir, echo=False)
    finally:
        torch.set_num_threads(threads)
    assert "generation 0 taken from the cache" in (other / "log.txt").read_text()
    weights = "gen_0/model/model.safetensors"
    assert sha256_file(other / weights) == sha256_file(tiny_run / weights)


def snapshot(run: Path) -> dict[str, tuple[int, str]]:
    """mtime and sha256 of every file a finished step wrote (models, pools, synthetic text, eval results)."""
    out = {}
    for manifest_path in run.rglob("manifest.json"):
        gen, steps = manifest_path.parent, read_json(manifest_path).get("steps", {})
        names = [("model", "train"), ("pool.jsonl", "pool"), ("eval/results.json", "eval"),
                 ("synthetic.jsonl", "write_plain"), ("synthetic.jsonl", "write")]
        for name, step in names:
            if step in steps:
                for path in [gen / name] if (gen / name).is_file() else sorted((gen / name).rglob("*")):
                    out[str(path.relative_to(run))] = (path.stat().st_mtime_ns, sha256_file(path))
    return out


def test_sigkill_mid_run_resumes_without_recomputing_finished_steps(tiny_run: Path, data_dir: Path, tmp_path: Path):
    run = data_dir / "runs" / "killed"
    config = tmp_path / "tiny.json"  # the tiny preset, 3 generations of replace; no report (tiny_run draws one)
    config.write_text(json.dumps(collapse_preset("tiny", generations=3, strategies=("replace",),
                                                 report=False).to_dict()))
    command = [sys.executable, "-m", "rag_bench", "collapse", "--config", str(config), "--run-dir", str(run),
               "--data-dir", str(data_dir)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gen1 = run / "replace" / "gen_1" / "manifest.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if gen1.is_file() and "train" in read_json(gen1).get("steps", {}):
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    before = snapshot(run)
    assert "gen_0/eval/results.json" in before and any(k.startswith("replace/gen_1/model/") for k in before)
    assert read_json(run / "status.json")["state"] == "running"  # a SIGKILL leaves no time to say otherwise
    assert subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=300).returncode == 0
    after = snapshot(run)
    assert {k: after[k] for k in before} == before
    sessions = (run / "log.txt").read_text().split(f"run {run} (pid ")
    assert len(sessions) == 3  # two starts
    log = sessions[-1]
    assert "gen 0: train" not in log and "gen 1 replace: train" not in log and "gen 2 replace: train" in log
    assert read_json(run / "status.json")["state"] == "done"
    assert (run / "replace" / "gen_2" / "eval" / "results.json").is_file()


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory, data_dir: Path) -> Path:
    """A small random Llama with its own tokenizer, saved as any local Hugging Face model would be."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rag_bench.models.scratch import train_tokenizer

    texts = contents(data_dir / "corpora" / "factbook" / "corpus.jsonl")
    tokenizer = train_tokenizer(texts, 400)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=160,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=128, bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    folder = tmp_path_factory.mktemp("llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("init", ["scratch", "base"])
def test_generation_1_starts_from_a_fresh_model_or_the_base_model(init: str, data_dir: Path, llama_folder: Path):
    base = str(llama_folder) if init == "base" else ""
    threads = torch.get_num_threads()
    try:
        run = run_collapse(collapse_preset("tiny", strategies=("replace",), init=init, base_model=base, report=False),
                           run_dir=data_dir / "runs" / f"init-{init}", data_dir=data_dir, echo=False)
    finally:
        torch.set_num_threads(threads)
    manifest = read_json(run / "replace" / "gen_1" / "manifest.json")
    assert manifest["config"]["init"] == init
    gen0 = read_json(run / "gen_0" / "model" / "config.json")
    gen1 = read_json(run / "replace" / "gen_1" / "model" / "config.json")
    assert gen1["architectures"] == gen0["architectures"]
    if init == "base":
        assert manifest["config"]["init_from"] == str(llama_folder) and gen0["architectures"] == ["LlamaForCausalLM"]
        assert read_json(run / "gen_0" / "manifest.json")["config"]["base_model"] == str(llama_folder)
    else:
        assert manifest["config"]["init_from"] == "replace/gen_1/init"
        assert not (run / "replace" / "gen_1" / "init").exists()  # removed once trained
        arch = collapse_preset("tiny").train.model.arch
        assert gen0["architectures"] == [{"lfm2": "Lfm2ForCausalLM", "llama": "LlamaForCausalLM",
                                          "gpt2": "GPT2LMHeadModel"}[arch]]


def test_fact_rows_can_teach_just_the_probed_fields(data_dir: Path):
    from rag_bench.collapse.data import fact_guard, probed_fields
    from rag_bench.config import TrainConfig

    probes = data_dir / "probes" / "factbook-factbook.jsonl"
    fields = probed_fields(probes)
    assert "Capital" in fields and "Climate" not in fields
    records = ["Kt | Government | Capital: Flying Fish Cove\nKt | Geography | Climate: tropical"]
    tcfg, state = fact_guard(TrainConfig(fact_share=0.25), records, fields)
    assert tcfg.fact_fields == ("Capital",) and state == "the probed fields ['Capital']"
    tcfg, state = fact_guard(TrainConfig(fact_share=0.25, fact_fields=("Climate",)), ["prose, no records"], fields)
    assert tcfg.fact_fields == () and state.startswith("every field: the texts hold no record line")
    assert fact_guard(TrainConfig(fact_share=0.0), records, fields)[1] == "off"
    threads = torch.get_num_threads()
    try:
        tiny = collapse_preset("tiny", strategies=("replace",), report=False, fact_fields_from_probes=True,
                               next_curriculum=True)
        cfg = tiny.replace(train=tiny.train.replace(fact_share=0.25),
                           next_train=tiny.next_train.replace(fact_share=0.25))
        run = run_collapse(cfg, run_dir=data_dir / "runs" / "facts", data_dir=data_dir, echo=False)
    finally:
        torch.set_num_threads(threads)
    taught = read_json(run / "gen_0" / "model" / "train_config.json")["fact_fields"]
    assert taught and set(taught) <= set(fields) and "Capital" in taught
    assert read_json(run / "gen_0" / "manifest.json")["inputs"]["fact_rows"]["state"] == (
        f"the probed fields {taught}")
    gen1 = read_json(run / "replace" / "gen_1" / "manifest.json")
    trained = gen1["trained_tokens"]
    assert gen1["config"]["curriculum"].startswith("on") and trained["retrieval"]["rows"] > 0
    # replace: every curriculum row is built from its pool, what generation 0 wrote, never from human text
    assert set(trained["retrieval"]["built_from"]) == {"gen_0"}
    assert all(set(v.get("built_from", {})) <= {"gen_0", "random tokens"} for v in trained.values())
    # the cache key is that of the config generation 0 trained with: taught fields or not, never the same model
    from rag_bench.collapse.data import RunInputs, gen0_cache_key

    inputs = RunInputs(train_texts=[], heldout_texts=[], train_path=run / "data" / "human_train.jsonl",
                       heldout_path=run / "data" / "human_heldout.jsonl", probes_path=probes, index_path=run,
                       eval_texts=[], eval_path=run / "data" / "human_heldout.jsonl")
    trained = TrainConfig.from_file(run / "gen_0" / "model" / "train_config.json")
    key = read_json(run / "gen_0" / "manifest.json")["gen0_cache"]["key"]
    assert gen0_cache_key(cfg, inputs, trained)[0] == key
    assert gen0_cache_key(cfg, inputs, trained.replace(fact_fields=()))[0] != key


def test_the_probes_note_names_the_function_that_recounted_them(data_dir: Path, tmp_path: Path):
    import pkgutil
    import re

    from rag_bench.collapse.data import prepare_inputs
    from rag_bench.probes.frequency import recount_over_texts

    inputs = prepare_inputs(collapse_preset("tiny"), run_dir=tmp_path / "run", data_dir=data_dir)
    note = read_json(inputs.probes_path.with_name("probes.meta.json"))["frequency_over"]
    named = re.fullmatch(r"the run's human training text \((\S+)\)", note)
    assert named and pkgutil.resolve_name(named[1]) is recount_over_texts  # importable, not a path it had once


def test_a_run_resumes_across_a_field_added_since_it_started_but_not_a_changed_one(tmp_path: Path):
    import json

    from rag_bench.collapse.run import check_resume
    from rag_bench.config import ConfigError

    cfg = collapse_preset("tiny")
    saved = json.loads(json.dumps(cfg.to_dict()))
    del saved["next_curriculum"], saved["train"]["fact_fields"]  # written before these fields existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_resume(cfg, tmp_path)  # the missing fields read as their defaults
    with pytest.raises(ConfigError, match=r"next_curriculum: .* was started with a different value"):
        check_resume(cfg.replace(next_curriculum=True), tmp_path)
    check_resume(cfg.replace(generations=4), tmp_path)  # an allowed change


def test_a_later_generation_is_loaded_once_for_its_evaluation_and_its_writing(data_dir: Path, tmp_path: Path,
                                                                             monkeypatch):
    from rag_bench.lm import LM

    loads: list[Path] = []
    real = LM.load.__func__
    monkeypatch.setattr(LM, "load", classmethod(lambda cls, path, **kw: loads.append(Path(path).resolve())
                                                or real(cls, path, **kw)))
    threads = torch.get_num_threads()
    try:  # init=scratch: generation 2 does not start from generation 1's weights, so only its eval and write load it
        run = run_collapse(collapse_preset("tiny", strategies=("replace",), generations=3, init="scratch",
                                           report=False), run_dir=tmp_path / "three", data_dir=data_dir, echo=False)
    finally:
        torch.set_num_threads(threads)
    (gen1,) = [p.resolve() for p in run.rglob("gen_1/model")]
    assert any(gen1.parent.glob("synthetic*.jsonl"))  # generation 1 wrote, so its model served two steps
    assert loads.count(gen1) == 1


def test_stage_costs_count_the_tokens_each_stage_processed(tiny_run: Path):
    from rag_bench.collapse.costs import stage_costs, stage_totals

    rows = stage_costs(tiny_run)
    params = read_json(tiny_run / "gen_0" / "model" / "timings.json")["parameters"]
    by_key = {(r["generation"], r["strategy"], r["stage"]): r for r in rows}
    assert {("gen", 0), ("train", 0), ("eval", 0)} <= {(k[2] if k[2] != "write" else "gen", k[0]) for k in by_key}
    for (generation, strategy, stage), row in by_key.items():
        gen_dir = tiny_run / "gen_0" if strategy is None else tiny_run / strategy / f"gen_{generation}"
        timings = read_json(gen_dir / "manifest.json")["timings"]
        if stage != "write":
            assert row["seconds"] == timings[f"{stage}_s"]  # the manifest's own time, not a re-measure
        assert row["tokens"] > 0 and row["flops"] == (6 if stage == "train" else 2) * params * row["tokens"]
    replace = by_key[(1, "replace", "train")]
    trained = read_json(tiny_run / "replace" / "gen_1" / "model" / "timings.json")["trained_tokens"]
    assert replace["tokens"] == sum(v["tokens"] for v in trained.values())
    evaluated = by_key[(1, "replace", "eval")]
    prompts = sum(r["prompt_tokens"] for mode in ("closed", "grounded")
                  for r in read_jsonl(tiny_run / "replace" / "gen_1" / "eval" / f"samples_{mode}.jsonl"))
    assert evaluated["tokens"] > prompts  # prompts, answers and the held-out text
    totals = stage_totals(rows)
    assert totals["train"]["tokens"] == sum(r["tokens"] for r in rows if r["stage"] == "train")
