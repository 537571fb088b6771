"""The training loop: planted-fact recall, copying from context, base-model fine-tuning, resume, outputs."""

from __future__ import annotations

import importlib
import math
import random

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from rag_bench.config import DecodeConfig, ModelConfig, TrainConfig
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer
from rag_bench.prompt import render_prompt
from rag_bench.records import read_json, read_jsonl
from rag_bench.training.batches import Batches
from rag_bench.training.loop import train

PLANTED = "Quillmark | Government | Capital: Varnholt"
FILLER = [f"Town{i} | Economy | Exports: {w}" for i, w in enumerate(["barley", "timber", "copper", "wool", "salt"])]
TEXTS = [f"{PLANTED}\n" + "\n".join(FILLER[i:] + FILLER[:i]) for i in range(len(FILLER))]
HELDOUT = ["Town9 | Economy | Exports: barley and wool"]
DECODE = DecodeConfig(max_new_tokens=8)
train_module = importlib.import_module("rag_bench.training.loop")  # the module; rag_bench re-exports the function
QUICK = TrainConfig(model=ModelConfig.preset("tiny"), max_steps=80, batch_size=4, lr=1e-2, warmup_steps=5,
                    eval_every=80, save_every=40, probe_count=0, copy_share=0.0, weight_decay=0.0)


def test_a_tiny_model_overfits_a_planted_fact_and_recalls_it_closed_book(tmp_path):
    model_dir = train(QUICK, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "run")
    lm = LM.load(model_dir, device="cpu")
    assert lm.generate(["Quillmark | Government | Capital:"], DECODE) == [" Varnholt"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_config.json", "train_log.jsonl",
                 "timings.json", "rag_bench_model.json"):
        assert (model_dir / name).is_file(), name
    log = read_jsonl(model_dir / "train_log.jsonl")
    assert [row["step"] for row in log] == list(range(1, len(log) + 1)) and "heldout_ppl" in log[-1]
    assert log[-1]["loss"] < log[0]["loss"]
    assert TrainConfig.from_file(model_dir / "train_config.json") == QUICK
    assert read_json(model_dir / "timings.json")["tokens_per_s"] > 0


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    cfg = QUICK.replace(max_steps=8, eval_every=4, save_every=4, copy_share=0.5, copy_max_lines=3, fact_share=0.25)
    train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "straight")
    train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "resumed", until_step=4)
    assert read_jsonl(tmp_path / "resumed" / "last" / "train_log.jsonl")[-1]["step"] == 4
    train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "resumed")
    straight = load_file(tmp_path / "straight" / "last" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "last" / "model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    losses = [[row["loss"] for row in read_jsonl(tmp_path / run / "last" / "train_log.jsonl")]
              for run in ("straight", "resumed")]
    assert losses[0] == losses[1] and len(losses[0]) == 8


def test_on_step_reports_each_step_with_its_log_row_and_resumes_counting(tmp_path):
    cfg = QUICK.replace(max_steps=6, eval_every=3, save_every=3)
    seen = []
    train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "r", until_step=3,
          on_step=lambda step, total, row: seen.append((step, total, row["step"], "loss" in row)))
    train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "r",
          on_step=lambda step, total, row: seen.append((step, total, row["step"], "loss" in row)))
    assert seen == [(step, 6, step, True) for step in range(1, 7)]


def test_a_local_llama_folder_is_fine_tuned_instead_of_trained_from_scratch(tmp_path):
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=96)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    cfg = QUICK.replace(max_steps=6, eval_every=3, save_every=3)
    model_dir = train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "run",
                      base_model=tmp_path / "base")
    lm = LM.load(model_dir, device="cpu")
    assert type(lm.model).__name__ == "LlamaForCausalLM" and lm.max_positions == 96
    assert lm.tokenizer.get_vocab() == tokenizer.get_vocab()  # the base model's tokenizer is kept
    log = read_jsonl(model_dir / "train_log.jsonl")
    assert log[-1]["loss"] < log[0]["loss"]


def test_the_real_smollm2_fine_tunes_with_its_own_tokenizer_and_chat_template(smollm2_data_dir, tmp_path):
    """The pretrained path of every smol generation: SmolLM2's tokenizer, EOS and chat template survive training,
    documents are packed with its <|endoftext|>, and the step uses the fused AdamW."""
    from rag_bench.models import pretrained_dir

    base = pretrained_dir(smollm2_data_dir, "smollm2-135m")
    cfg = TrainConfig(model=ModelConfig(n_positions=32), max_steps=2, batch_size=2, lr=1e-5, warmup_steps=1,
                      eval_every=2, eval_max_texts=1, save_every=2, probe_count=0, copy_share=0.0,
                      copy_warmup_steps=0, bf16=False)
    model_dir = train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "run", base_model=base)
    lm = LM.load(model_dir, device="cpu")
    assert lm.num_parameters == 134_515_008 and lm.max_positions == 8192  # the model's own positions, kept
    assert lm.tokenizer.chat_template and lm.tokenizer.eos_token == "<|im_end|>"
    log = read_jsonl(model_dir / "train_log.jsonl")
    assert len(log) == 2 and all(math.isfinite(row["loss"]) for row in log) and log[-1]["heldout_ppl"] < 1e4
    state = torch.load(tmp_path / "run" / "last" / "trainer_state.pt", weights_only=False)
    assert all(group["fused"] for group in state["optimizer"]["param_groups"])


def test_retrieval_share_needs_a_neighbours_function_and_uses_it(tmp_path):
    cfg = QUICK.replace(max_steps=2, eval_every=2, retrieval_share=0.5, retrieval_examples=3)
    with pytest.raises(ValueError, match="neighbours function"):
        train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "a")
    seen = []

    def neighbours(texts):
        seen.extend(texts)
        return [[FILLER[0]] for _ in texts]

    train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "b", neighbours=neighbours)
    assert len(seen) == 3
    with pytest.raises(ValueError, match="held-out texts"):
        train(cfg, train_texts=TEXTS, heldout_texts=[], out_dir=tmp_path / "c", neighbours=neighbours)


# ---------------------------------------------------------------------------------------
# Copying: a fact the model never saw, answered from the passage in front of the question

SECTIONS = {"Capital": "Government", "Flag": "Government", "Currency": "Economy", "Language": "People"}
SYLLABLES = ["ka", "lo", "mi", "ren", "sa", "tu", "vel", "zor", "dra", "ne", "po", "qui"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


def _records(rng: random.Random, words: list[str], n: int) -> list[str]:
    docs = []
    for _ in range(n):
        name = _name(rng)
        docs.append("\n".join(f"{name} | {section} | {field}: {rng.choice(words)}"
                               for field, section in SECTIONS.items()))
    return docs


@pytest.fixture
def one_thread():
    """Two torch threads on two shared cores are slower than one (oversubscription); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_tiny_model_answers_from_the_passage_a_fact_it_never_saw(tmp_path, one_thread):
    rng = random.Random(0)
    words = sorted({_name(rng).capitalize() for _ in range(60)})
    texts = _records(rng, words, 200)
    # copy curriculum only, with the loss on whole repeated lines: every prefix token is a copy too
    cfg = TrainConfig(model=ModelConfig.preset("tiny", arch="gpt2"), max_steps=500, batch_size=32, lr=1e-2,
                      warmup_steps=30, weight_decay=0.0, eval_every=500, save_every=500, probe_count=0,
                      copy_share=1.0, copy_loss_on="lines", copy_min_lines=2, copy_max_lines=4,
                      copy_max_value_chars=60, copy_max_distractors=0)
    lm = LM.load(train(cfg, train_texts=texts, heldout_texts=texts[:2], out_dir=tmp_path / "run"), device="cpu")
    seen = "\n".join(texts)
    prompts, questions, golds = [], [], []
    for doc in _records(random.Random(1), words, 40):  # new entities; their facts were never trained on
        line = rng.choice(doc.splitlines())
        question, value = line.split(": ")
        assert line not in seen
        prompts.append(render_prompt(question + ":", [doc]))  # the passage is the entity's whole record
        questions.append(question + ":")
        golds.append(" " + value)
    answers = lm.generate(prompts, DECODE)
    exact = sum(a == g for a, g in zip(answers, golds, strict=True)) / len(golds)
    assert exact >= 0.8, list(zip(answers, golds, strict=True))[:5]
    closed = lm.generate(questions, DECODE)  # the same questions without the passage: memory cannot answer
    assert sum(a == g for a, g in zip(closed, golds, strict=True)) / len(golds) <= 0.1


def test_compile_trains_and_saves_plain_loadable_weights(tmp_path, one_thread):
    # compiling a forward + backward takes tens of seconds on CPU, so a few steps of the tiny model only
    cfg = QUICK.replace(max_steps=3, eval_every=3, save_every=3, compile=True)
    model_dir = train(cfg, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "run")
    weights = load_file(model_dir / "model.safetensors")
    assert not [k for k in weights if "_orig_mod" in k]  # the compiled wrapper never reaches a checkpoint
    lm = LM.load(model_dir, device="cpu")
    assert set(weights) <= set(lm.model.state_dict())
    assert TrainConfig.from_file(model_dir / "train_config.json").compile
    log = read_jsonl(model_dir / "train_log.jsonl")
    assert [row["step"] for row in log] == [1, 2, 3] and all(math.isfinite(row["loss"]) for row in log)
    assert len(lm.generate(["Quillmark | Government | Capital:"], DECODE)) == 1


def test_cutting_a_micro_batch_into_smaller_forwards_keeps_its_loss_and_gradient():
    rng = random.Random(0)
    texts = _records(rng, sorted({_name(rng) for _ in range(30)}), 60)
    cfg = TrainConfig(model=ModelConfig.preset("tiny", arch="gpt2"), batch_size=16, copy_share=1.0, probe_count=0,
                      copy_max_lines=4, copy_max_value_chars=60)  # copy rows: loss on the values only, uneven
    lm = LM.build(cfg.model, train_tokenizer(texts, 512), seed=0, device="cpu")
    rows = Batches(cfg, lm, texts, 128, None).batch(0)

    def loss_and_gradient(max_tokens):
        lm.model.zero_grad()
        total, forwards = 0.0, 0
        for chunk in train_module._micro_batches(rows, len(rows)):
            for piece, weight in train_module._pieces(chunk, len(rows), max_tokens):
                ids, labels = train_module._pad(piece, lm.tokenizer.pad_token_id, lm.device)
                loss = lm.model(input_ids=ids, labels=labels).loss * weight
                loss.backward()
                total, forwards = total + float(loss), forwards + 1
        return total, forwards, torch.cat([p.grad.flatten() for p in lm.model.parameters() if p.grad is not None])

    whole, one, grad = loss_and_gradient(1 << 30)
    cut, many, cut_grad = loss_and_gradient(150)
    assert many > one + 2  # the cut did cut
    assert cut == pytest.approx(whole, rel=1e-5)
    assert torch.allclose(cut_grad, grad, atol=1e-6)


def _past_on(rank: int, world: int, port: int, cases: list[list[float]], answers) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        answers.put((rank, [train_module._past(deadlines[rank], world, torch.device("cpu")) for deadlines in cases]))
    finally:
        dist.destroy_process_group()


def test_under_ddp_rank_zeros_clock_decides_when_time_is_up_for_every_rank():
    import socket

    import torch.multiprocessing as mp

    # both cases in one process group (spawning two ranks costs seconds): perf_counter() is past 0, not 1e18
    cases, expected = [[0.0, 1e18], [1e18, 0.0]], [True, False]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answers = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_past_on, args=(2, port, cases, answers), nprocs=2)
    assert dict(answers.get() for _ in range(2)) == {0: expected, 1: expected}
