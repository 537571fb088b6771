"""Probe answering over Ray Data actors of a real local cluster equals answering in this process, answer for answer.

    OMP_NUM_THREADS=1 .venv/bin/pytest -q tests/test_distributed_answer.py

A tiny untrained model (random weights, scaled up so that greedy answers differ from prompt to prompt and with the
passages), a tiny real index (MiniLM, FAISS), 22 probes in chunks of 8 (batch size 2): three chunks per mode, the
last one short, answered by two actors of one thread each.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from rag_bench.cli import index_dir, ingest, main
from rag_bench.config import DecodeConfig, EvalConfig, ModelConfig
from rag_bench.distributed.answer import answer_on_ray, ray_answerer
from rag_bench.eval.inputs import ContextRetriever, retrieve_contexts
from rag_bench.eval.run import answer_probes, evaluate
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer
from rag_bench.records import Probe, read_json, read_jsonl, write_jsonl

TOWNS = ["Quenta", "Tirrin", "Vanhold", "Kesmet", "Ashgrove", "Sorenby", "Dorvik", "Brellin", "Tarsil", "Askel",
         "Orrin"]
CFG = EvalConfig(k=2, batch_size=2, modes=("closed", "grounded"), diversity_prompts=0,
                 decode=DecodeConfig(max_new_tokens=6))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, embeddings) -> dict:
    """Eleven one-line documents ingested into a real index, 22 probes over them, a tiny model saved to disk."""
    root = tmp_path_factory.mktemp("answer")
    docs = root / "docs"
    docs.mkdir()
    texts = [f"{town} | Economy | Exports: {i * 37 % 101} tonnes of {'timber' if i % 2 else 'copper'}\n"
             for i, town in enumerate(TOWNS)]
    for town, text in zip(TOWNS, texts, strict=True):
        (docs / f"{town.lower()}.txt").write_text(text)
    ingest(str(docs), data_dir=root / "data", name="towns", progress=False)
    index = load_index(index_dir(root / "data", "towns"), embeddings=embeddings)
    probes = [Probe(id=f"{town}/{field}", prompt=f"{town} | Economy | {field}:", golden_answers=("timber",),
                    metadata={"bucket": "tail" if i % 2 else "head"})
              for i, town in enumerate(TOWNS) for field in ("Exports", "Main export of the valley towns")]
    lm = LM.build(ModelConfig.preset("tiny"), train_tokenizer(texts * 5, vocab_size=300), seed=3)
    with torch.no_grad():  # sharper random weights: greedy answers differ from prompt to prompt (at init, 2 strings)
        for weight in lm.model.parameters():
            if weight.dim() > 1:
                weight.mul_(8.0)
    model = root / "run" / "gen_0" / "model"
    lm.save(model)
    return {"root": root, "index": index, "index_path": index_dir(root / "data", "towns"), "probes": probes,
            "lm": LM.load(model), "model": model}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the actors run one thread each: the same floats need the same thread count
    yield
    torch.set_num_threads(threads)


def test_answers_over_ray_data_equal_direct_answers_closed_and_grounded(tiny, ray_cluster, one_thread):
    probes, retriever = tiny["probes"], make_retriever(tiny["index"].store, k=CFG.k)
    contexts, _ = retrieve_contexts(retriever, [p.prompt for p in probes], k=CFG.k)
    served = ContextRetriever([p.prompt for p in probes], contexts)
    done = answer_on_ray(tiny["model"], probes, CFG, served, address=ray_cluster, threads=1)
    assert done["actors"] == 2 and done["chunks"] == 6 and done["threads"] == [1]  # torch threads inside the actor
    assert 0 < done["first_chunk_s"] <= done["seconds"]
    for mode in CFG.modes:
        direct = answer_probes(tiny["lm"], probes, mode, CFG, retriever=served, progress=False)
        assert done["answers"][mode] == direct  # every field: text, prompt, sources, token counts
    assert len({a.text for a in done["answers"]["closed"]}) > 5  # the answers depend on the prompt,
    assert done["answers"]["closed"] != done["answers"]["grounded"]  # and on the passages
    assert [s["chunk_id"] for s in done["answers"]["grounded"][5].sources] == \
        [d.metadata["chunk_id"] for d in contexts[5]]


def test_eval_command_with_ray_answers_as_without_and_writes_the_same_samples_and_results(tiny, ray_cluster,
                                                                                           one_thread, capsys):
    """`rag-bench eval --ray` (evaluate with ray_answerer) against the same command without Ray."""
    probes, config = tiny["root"] / "probes.jsonl", tiny["root"] / "eval.json"
    write_jsonl(probes, tiny["probes"])
    config.write_text(json.dumps(CFG.to_dict()))
    command = ["eval", "--model", str(tiny["model"]), "--probes", str(probes), "--index", str(tiny["index_path"]),
               "--config", str(config), "--threads", "1", "--out"]
    assert main([*command, str(tiny["root"] / "cli-direct")]) == 0
    assert main([*command, str(tiny["root"] / "cli-ray"), "--ray", ray_cluster]) == 0
    assert "22 probes answered in closed, grounded by 2 Ray Data actors" in capsys.readouterr().out
    for mode in CFG.modes:
        assert (tiny["root"] / "cli-ray" / f"samples_{mode}.jsonl").read_bytes() == \
            (tiny["root"] / "cli-direct" / f"samples_{mode}.jsonl").read_bytes()
    direct, ray = (read_json(tiny["root"] / name / "results.json") for name in ("cli-direct", "cli-ray"))
    for key in ("metrics", "gap", "by_field", "baselines"):
        assert direct[key] == ray[key]
    assert "answered_elsewhere_s" in ray["timings"] and "answered_elsewhere_s" not in direct["timings"]


def test_ray_answerer_reads_with_the_eval_template_and_leaves_the_oracle_modes_to_evaluate(tiny, ray_cluster,
                                                                                           one_thread):
    # a chat template, so that the template changes the prompt (a model without one reads plain text whatever)
    lm = LM.load(tiny["model"])
    lm.tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                                  "{% if add_generation_prompt %}<assistant>{% endif %}")
    model = tiny["root"] / "chat" / "gen_0" / "model"
    lm.save(model)
    lm = LM.load(model)
    store = tiny["index"].store
    chunk_of = {doc.page_content.split(" |")[0]: chunk_id for chunk_id, doc in store.docstore._dict.items()}
    probes = [dataclasses.replace(p, metadata={**p.metadata, "source_chunk_id": chunk_of[p.prompt.split(" |")[0]]})
              for p in tiny["probes"]]
    cfg = CFG.replace(template="short", modes=("closed", "grounded", "oracle"))
    lines: list[str] = []
    for name, answer_with in (("direct", None), ("ray", ray_answerer(model, address=ray_cluster, log=lines.append))):
        evaluate(lm, probes, retriever=make_retriever(store, k=cfg.k), cfg=cfg, progress=False,
                 out_dir=tiny["root"] / f"template-{name}" / "gen_0" / "eval", answer_with=answer_with)
    for mode in cfg.modes:
        direct, ray = (read_jsonl(tiny["root"] / f"template-{name}" / "gen_0" / "eval" / f"samples_{mode}.jsonl")
                       for name in ("direct", "ray"))
        assert len(direct) == 22 and {row["template"] for row in direct} == {"short"}
        assert ray == direct
    # the actors answered the retrieval modes only: the oracle's gold chunks are evaluate's
    assert lines and lines[0].startswith("22 probes answered in closed, grounded by 2 Ray Data actors (6 chunks")
