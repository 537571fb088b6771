"""Tests of rag_bench.eval.buckets: confidence terciles, known/unknown, run frequency, metrics by bucket.

    .venv/bin/pytest tests/test_eval_buckets.py -q

The confidence axis is scored by a real tiny Llama (``LM.score``) on hand-made probes; the gold answer of one
probe is planted in the training text many times, so the model scores it higher after a few training steps.
"""

from __future__ import annotations

import math

import pytest
import torch

from rag_bench.eval.buckets import (
    answer_continuation,
    bucket_metrics,
    confidence_terciles,
    probe_axes,
    run_frequencies,
    wilson_interval,
)
from rag_bench.records import Probe

TEXTS = ["Kenya | Government | Capital: Nairobi\nKenya lies in East Africa; its capital Nairobi is large.",
         "Japan | Government | Capital: Tokyo\nJapan is an island country.",
         "Guinea | Government | Capital: Conakry\nEquatorial Guinea | Government | Capital: Malabo"]


def probe(pid: str, subject: str, answer: str, question: str | None = None) -> Probe:
    return Probe(id=pid, prompt=question or f"{subject} | Government | Capital:", golden_answers=(answer,),
                 metadata={"subject": subject, "frequency_answer": answer})


def test_wilson_interval_matches_the_closed_form_and_stays_in_0_1():
    low, high = wilson_interval(8, 10)
    assert math.isclose(low, 0.4902, abs_tol=1e-4) and math.isclose(high, 0.9433, abs_tol=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(0, 0) is None


def test_terciles_split_by_rank_and_report_the_cuts():
    labels, cuts = confidence_terciles([-9.0, -1.0, -5.0, -0.5, -7.0, -3.0])
    assert labels == ["low", "high", "mid", "high", "low", "mid"]
    assert cuts == {"low_max": -7.0, "mid_max": -3.0}
    assert confidence_terciles([-1.0, -1.0, -1.0])[0] == ["low", "mid", "high"]  # ties: by position


def test_answer_continuation_spaces_only_after_a_record_prefix():
    assert answer_continuation("Kenya | Government | Capital:", "Nairobi") == " Nairobi"
    assert answer_continuation("<|im_start|>assistant\n", "Nairobi") == "Nairobi"


def test_run_frequency_counts_segments_of_the_training_text():
    probes = [probe("ke", "Kenya", "Nairobi"), probe("ja", "Japan", "Osaka"), probe("gv", "Guinea", "Conakry"),
              probe("ek", "Equatorial Guinea", "Malabo")]
    counts, thresholds = run_frequencies(probes, TEXTS)
    assert counts == [1, 0, 1, 1]  # "Guinea" inside "Equatorial Guinea" does not count for Guinea's own fact
    assert set(thresholds) == {"tail_max", "torso_max"}
    long_text = ["\n".join(f"Kenya line {i}: Nairobi" for i in range(200))]  # about 4,000 characters: 8+ segments
    assert run_frequencies(probes[:1], long_text)[0][0] >= 8


@pytest.fixture(scope="module")
def tiny_lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    from rag_bench.lm import LM
    from rag_bench.models.scratch import train_tokenizer

    tokenizer = train_tokenizer(TEXTS * 20, 300)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    ids = tokenizer(TEXTS[0].split("\n")[0], return_tensors="pt")["input_ids"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):  # Kenya's line only: its gold answer becomes the most likely one
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return LM(model, tokenizer, device="cpu")


def test_probe_axes_place_each_probe_on_every_axis(tiny_lm):
    probes = [probe("ke", "Kenya", "Nairobi"), probe("ja", "Japan", "Tokyo"), probe("gv", "Guinea", "Conakry"),
              probe("ek", "Equatorial Guinea", "Malabo"), probe("xx", "Japan", "Osaka"),
              probe("yy", "Kenya", "Mombasa")]
    closed = {p.id: {"id": p.id, "scores": {"exact_match": float(p.id in ("ke", "ja"))}} for p in probes}
    axes = probe_axes(tiny_lm.score, [p.prompt for p in probes], probes, closed, TEXTS)
    rows = axes["probes"]
    assert rows["ke"]["confidence"] == "high"  # trained on: the highest log-probability of the six
    assert rows["ke"]["gold_logprob"] == max(r["gold_logprob"] for r in rows.values())
    assert [rows[p.id]["known"] for p in probes] == ["known", "known"] + ["unknown"] * 4
    assert rows["xx"]["run_frequency"] == 0 and rows["ke"]["run_frequency"] == 1
    assert axes["counts"]["confidence"] == {"low": 2, "mid": 2, "high": 2}
    assert axes["known_metric"] == "exact_match"
    questions = [Probe(id=p.id, prompt=f"What is the capital of {p.metadata['subject']}?",
                       golden_answers=p.golden_answers, metadata={**p.metadata, "prompt_format": "question"})
                 for p in probes]
    said = {p.id: {"id": p.id, "scores": {"exact_match": 0.0, "contains": float(p.id == "ke")}} for p in questions}
    asked = probe_axes(tiny_lm.score, [p.prompt for p in questions], questions, said, TEXTS)
    assert asked["known_metric"] == "contains"  # a chat model's sentence is never an exact match
    assert [asked["probes"][p.id]["known"] for p in questions] == ["known"] + ["unknown"] * 5
    with pytest.raises(ValueError, match="lack probe 'ke'"):
        probe_axes(tiny_lm.score, [p.prompt for p in probes], probes, {}, TEXTS)


def test_bucket_metrics_and_the_forgetting_rate():
    axes = {"known_metric": "exact_match", "probes": {
        "a": {"confidence": "high", "known": "known", "frequency": "head"},
        "b": {"confidence": "high", "known": "known", "frequency": "tail"},
        "c": {"confidence": "low", "known": "unknown", "frequency": "tail"}}}

    def rows(em: list[float]) -> list[dict]:
        return [{"id": pid, "scores": {"exact_match": e, "contains": e}} for pid, e in zip("abc", em, strict=True)]

    table = bucket_metrics(axes, {"closed": rows([1.0, 0.0, 1.0]), "grounded": rows([1.0, 1.0, 1.0])})
    high = table["confidence"]["closed"]["high"]["exact_match"]
    assert (high["value"], high["n"], high["higher_is_better"]) == (0.5, 2, True)
    assert high["ci95"] == pytest.approx(list(wilson_interval(1, 2)))
    assert table["known"]["grounded"]["known"]["contains"]["value"] == 1.0
    assert "mid" not in table["confidence"]["closed"]  # an empty bucket is left out, not reported as 0
    assert table["frequency"]["closed"]["tail"]["exact_match"]["value"] == 0.5
    assert table["forgetting"]["value"] == 0.5 and table["forgetting"]["forgotten"] == 1
    assert table["forgetting"]["higher_is_better"] is False
