"""The evaluation harness end to end on a planted corpus, a tiny model that learned it, and the real MiniLM.

    .venv/bin/pytest tests/test_eval_run.py -q

The planted corpus is a folder of invented countries' record lines plus some prose, ingested by the real
`rag-bench ingest` path; the model is a tiny GPT-2 trained on the record lines for a few seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rag_bench.cli import index_dir, ingest, main
from rag_bench.config import DecodeConfig, EvalConfig, ModelConfig
from rag_bench.eval.inputs import load_eval_probes, oracle_inputs
from rag_bench.eval.paths import run_generation
from rag_bench.eval.run import SCHEMA, answer_probes, evaluate
from rag_bench.eval.splits import probe_split
from rag_bench.index.retrieve import make_retriever
from rag_bench.index.store import load_index
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer
from rag_bench.probes.build import make_probe_file
from rag_bench.records import Probe, RecordError, read_jsonl, sha256_file, write_jsonl

COUNTRIES = {  # country: (capital, independence year, population), one bucket per pair of countries
    "Zorbia": ("Quenta", "1843", "41,200"), "Malvesh": ("Tirrin", "1907", "7,350"),
    "Ostrel": ("Vanhold", "1961", "128,900"), "Pellaro": ("Kesmet", "1822", "2,640"),
    "Drumlin": ("Ashgrove", "1975", "66,010"), "Ulvara": ("Sorenby", "1899", "910,300"),
}
BUCKET_OF = dict(zip(COUNTRIES, ["head", "head", "torso", "torso", "tail", "tail"], strict=True))
FIELDS = (("Government", "Capital", 0, "text"), ("Government", "Independence", 1, "year"),
          ("People", "Population", 2, "number"))
PROSE = {
    "harbour.md": "# Brellin harbour\n\nBrellin harbour handles timber exports from the northern forests. The harbour "
                  "master Ilse Varro expanded the eastern quay in 1911. Ferries leave for Dorvik twice a day.\n",
    "mining.txt": "Tarsil is a copper mining town in the Orrin valley. The Tarsil mine produced 4,800 tonnes of copper "
                  "in its best year. Miners founded a choir called the Deepsong Chorale.\n",
}
HELDOUT = [
    "The old lighthouse keeper walked along the cliffs every morning and counted the ships in the bay below.",
    "Brellin harbour was quiet in winter, when the timber barges stayed frozen in the northern forests.",
    "Copper prices fell sharply that year, and the Orrin valley mines cut their shifts from three to two.",
    "A ferry to Dorvik carried mail, passengers and sometimes a goat, and it was rarely on time at all.",
]


def record_text(country: str) -> str:
    values = COUNTRIES[country]
    return "".join(f"{country} | {section} | {field}: {values[i]}\n" for section, field, i, _ in FIELDS)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """A company-style folder (one record file per country, two prose files) ingested by `rag-bench ingest`."""
    root = tmp_path_factory.mktemp("planted")
    docs = root / "docs"
    docs.mkdir()
    for country in COUNTRIES:
        (docs / f"{country.lower()}.txt").write_text(record_text(country))
    for name, text in PROSE.items():
        (docs / name).write_text(text)
    ingest(str(docs), data_dir=root / "data", name="acme", progress=False)
    return {"root": root, "data": root / "data", "index": index_dir(root / "data", "acme")}


@pytest.fixture(scope="module")
def index(planted, embeddings):
    return load_index(planted["index"], embeddings=embeddings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[LM, Path]:
    """A tiny GPT-2 that memorised every record line (about 5 s on one thread), saved as runs/r/gen_0/model."""
    texts = [record_text(c) for c in COUNTRIES] + list(PROSE.values())
    lm = LM.build(ModelConfig.preset("tiny", n_embd=128), train_tokenizer(texts * 5, vocab_size=300), seed=0)
    lines = [line + "\n" for c in COUNTRIES for line in record_text(c).splitlines()]
    rows = [lm.tokenizer(line)["input_ids"] for line in lines]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), lm.tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):  # right padding: positions match those of generation
        ids[r, : len(row)], labels[r, : len(row)], mask[r, : len(row)] = torch.tensor(row), torch.tensor(row), 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on 2 shared cores one thread is many times faster for a model this small
    try:
        torch.manual_seed(0)
        optimizer = torch.optim.AdamW(lm.model.parameters(), lr=3e-3)
        lm.model.train()
        for _ in range(300):
            loss = lm.model(input_ids=ids, attention_mask=mask, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    lm.model.eval()
    path = tmp_path_factory.mktemp("run") / "r" / "gen_0" / "model"
    lm.save(path)
    return lm, path


@pytest.fixture(scope="module")
def untrained() -> LM:
    texts = [record_text(c) for c in COUNTRIES]
    return LM.build(ModelConfig.preset("tiny"), train_tokenizer(texts * 5, vocab_size=300), seed=1)


@pytest.fixture(scope="module")
def probes_file(planted, index) -> Path:
    """User QA JSONL over the record lines, buckets set by hand, gold chunk ids from the index."""
    chunk_of = {c.metadata["source"]: c.metadata["chunk_id"] for c in index.chunks}
    rows = []
    for country, values in COUNTRIES.items():
        for section, field, i, answer_type in FIELDS:
            rows.append({"id": f"{country}/{field}", "prompt": f"{country} | {section} | {field}:",
                         "golden_answers": [values[i]],
                         "metadata": {"subject": country, "field": field, "answer_type": answer_type,
                                      "bucket": BUCKET_OF[country], "frequency": 1,
                                      "source_chunk_id": chunk_of[f"{country.lower()}.txt"]}})
    path = planted["root"] / "probes.jsonl"
    write_jsonl(path, rows)
    return path


def small_cfg(**changes) -> EvalConfig:
    base = EvalConfig(k=2, batch_size=8, diversity_prompts=4, diversity_prompt_words=6,
                      continuation_decode=DecodeConfig(max_new_tokens=8, do_sample=True, stop=()),
                      decode=DecodeConfig(max_new_tokens=8))
    return base.replace(**changes)


@pytest.fixture(scope="module")
def full_run(trained, index, probes_file, tmp_path_factory) -> tuple[dict, Path]:
    lm, _ = trained
    out = tmp_path_factory.mktemp("runs") / "r" / "gen_0" / "eval"
    retriever = make_retriever(index.store, k=2)
    results = evaluate(lm, probes_file, retriever=retriever, heldout_texts=HELDOUT, out_dir=out,
                       cfg=small_cfg(modes=("closed", "grounded", "grounded_span")),
                       human_texts_for_rare=[record_text(c) for c in COUNTRIES], progress=False)
    return results, out


def test_results_json_is_typed_versioned_and_complete(full_run, probes_file, trained):
    results, out = full_run
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert results["schema"] == SCHEMA
    assert {"torch", "transformers", "faiss-cpu", "python"} <= set(results["versions"])
    assert results["git_commit"] is None or len(results["git_commit"]) == 40
    assert results["model"]["parameters"] == trained[0].num_parameters
    assert results["probes"]["sha256"] == sha256_file(probes_file) and results["probes"]["evaluated"] == 18
    assert results["config"]["eval"]["k"] == 2 and results["config"]["answer_decode"]["max_new_tokens"] == 8
    for mode in ("closed", "grounded", "grounded_span"):
        assert set(results["metrics"][mode]) == {"tail", "torso", "head", "all"}
        for bucket in results["metrics"][mode].values():
            for leaf in bucket.values():
                assert set(leaf) == {"value", "higher_is_better", "n"} and isinstance(leaf["higher_is_better"], bool)
    closed, grounded = results["metrics"]["closed"]["all"], results["metrics"]["grounded"]["all"]
    assert "retrieval_recall" not in closed and {"retrieval_recall", "supported", "answer_recall",
                                                 "exact_match_retrieval_hit"} <= set(grounded)
    assert closed["numeric_match"]["n"] == 6  # number probes only: the populations
    assert closed["prompt_truncated"]["higher_is_better"] is False
    tail = {mode: results["metrics"][mode]["tail"]["exact_match"]["value"] for mode in ("closed", "grounded")}
    assert results["gap"]["grounded-closed"]["tail"] == pytest.approx(tail["grounded"] - tail["closed"])
    fit = results["fit"]["heldout_perplexity"]
    assert fit["value"] > 1 and fit["higher_is_better"] is False and fit["texts"] == len(HELDOUT)
    nll = fit["per_text_nll"]  # per text, so a bootstrap over texts can give the perplexity an interval
    assert len(nll) == len(HELDOUT) and sum(n for _, n in nll) == fit["n"]
    assert fit["value"] == pytest.approx(math.exp(sum(s for s, _ in nll) / fit["n"]), rel=1e-3)


def test_bucket_split_follows_the_probes_metadata(full_run):
    results, _ = full_run
    for mode in results["metrics"]:
        by_bucket = results["metrics"][mode]
        assert [by_bucket[b]["exact_match"]["n"] for b in ("head", "torso", "tail", "all")] == [6, 6, 6, 18]


def test_samples_per_mode_have_one_line_per_probe(full_run, probes_file):
    _, out = full_run
    ids = [row["id"] for row in read_jsonl(probes_file)]
    for mode in ("closed", "grounded", "grounded_span"):
        rows = read_jsonl(out / f"samples_{mode}.jsonl")
        assert [r["id"] for r in rows] == ids
        assert {"prompt", "prediction", "golden_answers", "scores", "bucket", "sources"} <= set(rows[0])
        assert all(len(r["sources"]) == (0 if mode == "closed" else 2) for r in rows)
    grounded = read_jsonl(out / "samples_grounded.jsonl")
    assert all({"chunk_id", "score", "rank", "source"} <= set(r["sources"][0]) for r in grounded)
    recall = [r["scores"]["retrieval_recall"] for r in grounded]
    assert sum(recall) >= 12  # the country's own file is retrieved for most record prefixes


def test_a_model_that_knows_the_facts_scores_exact_match_closed_book(full_run, untrained, probes_file, tmp_path):
    results, out = full_run
    rows = {r["id"]: r for r in read_jsonl(out / "samples_closed.jsonl")}
    assert rows["Zorbia/Capital"]["prediction"] == "Quenta" and rows["Zorbia/Capital"]["scores"]["exact_match"] == 1
    assert results["metrics"]["closed"]["all"]["exact_match"]["value"] >= 0.9
    ignorant = evaluate(untrained, probes_file, heldout_texts=(), out_dir=tmp_path / "eval",
                        cfg=small_cfg(modes=("closed",)), progress=False)
    assert ignorant["metrics"]["closed"]["all"]["exact_match"]["value"] == 0.0
    assert ignorant["fit"] == {} and any("no held-out texts" in n for n in ignorant["notes"])
    # a request the data cannot meet is cut, and the cut is said (a note and a warning), never silent
    with pytest.warns(UserWarning, match=r"limit=50 requested, 18 used"):
        capped = evaluate(untrained, probes_file, heldout_texts=(), out_dir=tmp_path / "capped",
                          cfg=small_cfg(modes=("closed",), limit=50), progress=False)
    assert "limit=50 requested, 18 used: only 18 probes in the file" in capped["notes"]
    # a run that reports on test alone answers only the test side, and says how many the side held
    test_only = evaluate(untrained, probes_file, heldout_texts=(), out_dir=tmp_path / "test_only",
                         cfg=small_cfg(modes=("closed",), split="test"), progress=False)
    answered = [r["id"] for r in read_jsonl(tmp_path / "test_only" / "samples_closed.jsonl")]
    assert answered and all(probe_split(i) == "test" for i in answered)
    assert test_only["probes"]["on_split"] == len(answered) < 18


def test_diversity_and_distribution_in_each_mode(full_run):
    results, out = full_run
    assert set(results["diversity"]) == {"human", "closed", "grounded"}  # span decoding writes no free text
    for series in results["diversity"].values():
        assert {"distinct_2", "self_bleu", "vendi_score", "tail_survival_unigram"} <= set(series)
        assert series["self_bleu"]["higher_is_better"] is False and series["distinct_1"]["n"] == 4
    histogram = results["distribution"]["closed"]["histogram"]
    assert len(histogram["edges"]) == 41 and histogram["edges"][0] == 1.0 and sum(histogram["counts"]) == 4
    assert results["distribution"]["closed"]["reference"] == "self"
    assert any("scored by the evaluated model itself" in note for note in results["notes"])
    assert len(read_jsonl(out / "continuations.jsonl")) == 4 * 3


def test_limit_cache_and_reference_model(trained, untrained, index, probes_file, tmp_path):
    lm, _ = trained
    retriever = make_retriever(index.store, k=2)
    runs = []
    for gen in (1, 2):
        out = tmp_path / "r" / f"gen_{gen}" / "eval"
        runs.append(evaluate(untrained, probes_file, retriever=retriever, heldout_texts=HELDOUT, out_dir=out,
                             cfg=small_cfg(limit=5), reference_lm=lm, progress=False))
        assert len(read_jsonl(out / "samples_grounded.jsonl")) == 5
    first, second = runs
    assert first["metrics"]["closed"]["all"]["exact_match"]["n"] == 5 and first["probes"]["limit"] == 5
    assert first["cache"]["dir"] == str((tmp_path / "r" / "cache").resolve())  # shared by the run's generations
    assert [first["cache"][k] for k in ("probe_contexts", "prompt_contexts", "reference_scores")] == ["miss"] * 3
    assert [second["cache"][k] for k in ("probe_contexts", "prompt_contexts", "reference_scores")] == ["hit"] * 3
    assert first["distribution"]["human"] == second["distribution"]["human"]
    assert first["distribution"]["closed"]["reference"] == "reference model"


def test_company_corpus_with_cloze_probes(planted, index, trained, tmp_path):
    from rag_bench.eval.inputs import human_texts

    probes = tmp_path / "cloze.jsonl"
    make_probe_file("cloze", index.chunks, probes, limit=20)
    texts = human_texts(index.chunks)
    assert texts.note and len(texts.heldout) >= 1
    results = evaluate(trained[0], probes, retriever=make_retriever(index.store, k=2), cfg=small_cfg(),
                       heldout_texts=texts.heldout, human_texts_for_rare=texts.train, out_dir=tmp_path / "eval",
                       notes=[texts.note], progress=False)
    n = results["probes"]["evaluated"]
    assert n >= 3 and results["metrics"]["grounded"]["all"]["exact_match"]["n"] == n
    assert len(read_jsonl(tmp_path / "eval" / "samples_grounded.jsonl")) == n
    assert texts.note in results["notes"]


def test_malformed_probe_file_is_a_clear_error_naming_the_line(tmp_path, trained, capsys):
    bad = tmp_path / "bad.jsonl"
    good = Probe(id="a", prompt="Zorbia | Government | Capital:", golden_answers=("Quenta",)).to_dict()
    bad.write_text(json.dumps(good) + "\n" + json.dumps({"id": "b", "prompt": "x", "golden_answers": []}) + "\n")
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: 'golden_answers'"):
        evaluate(trained[0], bad, heldout_texts=(), out_dir=tmp_path / "eval", cfg=small_cfg(modes=("closed",)),
                 progress=False)
    assert main(["eval", "--model", str(trained[1]), "--probes", str(bad), "--data-dir", str(tmp_path)]) == 2
    assert f"{bad}:2: 'golden_answers' must be a non-empty list" in capsys.readouterr().err


def test_cli_eval_and_ask_end_to_end(planted, trained, probes_file, capsys):
    _, model_path = trained
    code = main(["eval", "--model", str(model_path), "--name", "acme", "--data-dir", str(planted["data"]),
                 "--probes", str(probes_file), "--limit", "6", "--modes", "closed,grounded", "-k", "2",
                 "--diversity-prompts", "2", "--batch-size", "8"])
    out = capsys.readouterr().out
    assert code == 0, out
    eval_dir = model_path.parent / "eval"  # runs/<id>/gen_0/model -> runs/<id>/gen_0/eval
    results = json.loads((eval_dir / "results.json").read_text())
    assert results["probes"]["evaluated"] == 6 and results["reference_model"]["given"]
    assert "exact_match" in out and "held-out perplexity" in out and str(eval_dir) in out
    assert "no held-out split" in out  # a company folder: 5% of chunks held out, and said so
    assert run_generation(model_path) == (model_path.parent.parent.resolve(), 0)

    code = main(["ask", "Zorbia | Government | Capital:", "--mode", "both", "--run", str(model_path.parent.parent),
                 "--gen", "0", "--name", "acme", "--data-dir", str(planted["data"]), "-k", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "closed-book:" in out and "Quenta" in out.split("grounded")[0]
    assert "sources of the grounded answer" in out and "zorbia.txt" in out and " 1. " in out


def test_ask_takes_one_model_and_a_real_folder(tmp_path, capsys):
    assert main(["ask", "q", "--mode", "closed", "--model", "smollm2-135m", "--run", str(tmp_path)]) == 2
    assert "--model PATH or --run RUN --gen N, not both" in capsys.readouterr().err
    assert main(["ask", "q", "--mode", "closed", "--model", str(tmp_path / "nope")]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_ask_takes_a_registry_name_as_the_model(smollm2_data_dir: Path, capsys):
    code = main(["ask", "What is the capital of Kenya?", "--mode", "closed", "--model", "smollm2-135m",
                 "--data-dir", str(smollm2_data_dir), "--max-new-tokens", "12"])
    out = capsys.readouterr().out
    assert code == 0 and "closed-book:" in out and "Nairobi" in out
    assert main(["ask", "q", "--mode", "closed", "--model", "gpt-17", "--data-dir", str(smollm2_data_dir)]) == 2
    assert capsys.readouterr().err == ("error: gpt-17: not a model folder (no such directory) nor a known model "
                                       "name (known: smollm2-135m)\n")


def test_oracle_mode_recall_at_k_and_the_echo_exclusion(trained, index, probes_file, tmp_path, monkeypatch):
    """The oracle reads each probe's own chunk; recall@k is the gold chunk's retrieval; a probe whose answer is in
    its question is left out of the primary metric and counted."""
    lm, _ = trained
    rows = read_jsonl(probes_file)
    echo = {**rows[0], "id": "echo/Zorbia", "prompt": "Zorbia | Government | Capital (Quenta):"}
    lost = {**rows[1], "id": "lost/Zorbia", "metadata": {**rows[1]["metadata"], "source_chunk_id": "not-in-index"}}
    path = tmp_path / "probes.jsonl"
    write_jsonl(path, [*rows, echo, lost])
    retriever = make_retriever(index.store, k=1)
    calls = []
    real = lm.generate_detailed
    monkeypatch.setattr(lm, "generate_detailed", lambda prompts, *a, **kw: calls.append(len(prompts)) or
                        real(prompts, *a, **kw))
    results = evaluate(lm, path, retriever=retriever, out_dir=tmp_path / "eval", progress=False,
                       cfg=small_cfg(modes=("closed", "grounded", "oracle"), k=1, diversity_prompts=0))
    assert results["reader"]["template"] == "plain" and results["config"]["eval"]["template"] == "auto"
    oracle_rows = read_jsonl(tmp_path / "eval" / "samples_oracle.jsonl")
    # every mode in one length-sorted generate call, the oracle's gold-passage prompts too (issue 21)
    assert calls == [2 * len(rows) + 4 + len(oracle_rows)]
    monkeypatch.undo()
    kept, gold_given = oracle_inputs(retriever, load_eval_probes(path)[0], [])
    apart = answer_probes(lm, kept, "oracle", small_cfg(k=1), retriever=gold_given, progress=False)
    assert [r["prediction"] for r in oracle_rows] == [a.text for a in apart]  # the answers of the oracle alone
    assert len(oracle_rows) == len(rows) + 1 == results["reader"]["oracle_probes"]  # "lost" has no gold chunk
    gold = {r["id"]: r["metadata"]["source_chunk_id"] for r in rows}
    assert all(r["sources"][0]["chunk_id"] == gold.get(r["id"], gold[rows[0]["id"]]) for r in oracle_rows)
    assert any("1 of 20 probes have no gold chunk" in note for note in results["notes"])
    oracle = results["metrics"]["oracle"]["all"]
    assert oracle["answer_recall"]["value"] == 1.0 and "recall_at_k" not in oracle  # the gold chunk holds it
    assert oracle["exact_match"]["value"] == pytest.approx(
        sum(r["scores"]["exact_match"] for r in oracle_rows) / len(oracle_rows))
    grounded = {r["id"]: r for r in read_jsonl(tmp_path / "eval" / "samples_grounded.jsonl")}
    assert "recall_at_k" not in grounded["lost/Zorbia"]["scores"]  # no gold chunk: no recall@k
    hits = [r["scores"]["recall_at_k"] for r in grounded.values() if "recall_at_k" in r["scores"]]
    assert results["metrics"]["grounded"]["all"]["recall_at_k"]["value"] == pytest.approx(sum(hits) / len(hits))
    assert results["echo_excluded"]["n"] == 1 and results["echo_excluded"]["ids"] == ["echo/Zorbia"]
    assert grounded["echo/Zorbia"]["echo"] and not grounded["Zorbia/Capital"]["echo"]
    assert results["primary"]["grounded"]["contains"]["n"] == len(rows) + 1  # all but the echo probe
    loss = results["retrieval_loss"]["grounded-oracle"]
    assert loss["n"] == len(rows) + 1 and -1 <= loss["contains"] <= 0.5


def test_the_scored_extractive_modes_answer_with_spans_of_their_passages(trained, index, probes_file, tmp_path):
    """grounded_scored and oracle_scored: every answer is a passage span (so it is supported) or the refusal."""
    from rag_bench.answer import NO_SPAN

    lm, _ = trained
    retriever = make_retriever(index.store, k=2)
    results = evaluate(lm, probes_file, retriever=retriever, out_dir=tmp_path / "eval", progress=False,
                       cfg=small_cfg(modes=("grounded_scored", "oracle_scored"), k=2, diversity_prompts=0))
    for mode in ("grounded_scored", "oracle_scored"):
        rows = read_jsonl(tmp_path / "eval" / f"samples_{mode}.jsonl")
        assert rows and all(r["mode"] == mode and r["prediction"] for r in rows)
        for r in rows:
            assert r["scores"]["supported"] == float(r["prediction"] != NO_SPAN), r
    assert results["retrieval_loss"]["grounded_scored-oracle_scored"]["n"] == len(read_jsonl(probes_file))
