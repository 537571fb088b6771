"""The synthetic writer: prompt blocks, exact continuation length, resumable parts, watermark, grounded context."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rag_bench.collapse import synthetic
from rag_bench.collapse.synthetic import (
    PromptBlock,
    continue_prompts,
    prompt_blocks,
    split_documents,
    watermark_z_scores,
    watermarking_config,
    write_synthetic,
)
from rag_bench.config import DecodeConfig, ModelConfig, TrainConfig
from rag_bench.lm import LM
from rag_bench.records import read_jsonl
from rag_bench.training.examples import corpus_stream
from rag_bench.training.loop import train

TEXTS = [f"Country{i} | Government | Capital: City{i}\nCountry{i} | Economy | Currency: coin {i}\n"
         f"Country{i} | Geography | Area - total: {i * 37} sq km" for i in range(40)]
SAMPLE = DecodeConfig(max_new_tokens=12, do_sample=True, stop=(), batch_size=16)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine OpenMP contention slows small models about tenfold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lm(tmp_path_factory, one_thread) -> LM:
    """A tiny model trained for a few seconds: it writes valid text, which a random model does not."""
    # GPT-2: after 60 steps its attention already uses the whole prompt, which these tests of the writer need
    cfg = TrainConfig(model=ModelConfig.preset("tiny", n_positions=64, arch="gpt2"), max_steps=60, batch_size=8,
                      warmup_steps=5, eval_every=60, save_every=60, probe_count=0, copy_share=0.0)
    return LM.load(train(cfg, train_texts=TEXTS, heldout_texts=TEXTS[:2], out_dir=tmp_path_factory.mktemp("lm")))


def test_prompt_blocks_cover_the_human_stream(lm):
    stream = corpus_stream(TEXTS, lm.tokenizer)
    blocks = prompt_blocks(TEXTS, lm.tokenizer, prompt_tokens=8, new_tokens=6)
    assert all(len(b.ids) == 8 for b in blocks)
    assert [b.ids for b in blocks[:3]] == [stream[0:8], stream[6:14], stream[12:20]]
    assert abs(len(blocks) * 6 - len(stream)) <= 8  # as many new tokens as the human split holds


def test_continuations_have_exactly_m_tokens_and_split_at_document_ends(lm):
    blocks = prompt_blocks(TEXTS, lm.tokenizer, prompt_tokens=8, new_tokens=12)[:10]
    out = continue_prompts(lm, blocks, SAMPLE, seed=1)
    assert [len(ids) for ids in out] == [12] * 10
    assert out == continue_prompts(lm, blocks, SAMPLE, seed=1)  # seeded
    sep = lm.tokenizer.bos_token_id
    assert split_documents([5, sep, 6, 7, sep, sep], sep) == [[5], [6, 7]]


def test_write_resumes_at_the_first_missing_part(lm, tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "PART_PROMPTS", 4)
    blocks = prompt_blocks(TEXTS, lm.tokenizer, prompt_tokens=8, new_tokens=12)[:11]
    whole = write_synthetic(lm, blocks, SAMPLE, out=tmp_path / "whole.jsonl", generation=2, seed=5)

    def killed(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt("killed after the first part")

    with pytest.raises(KeyboardInterrupt):
        write_synthetic(lm, blocks, SAMPLE, out=tmp_path / "resumed.jsonl", generation=2, seed=5, scorer=lm,
                        on_part=killed)
    assert [p.name for p in (tmp_path / ".resumed.jsonl.parts").iterdir()] == ["part_00000.jsonl"]
    resumed = write_synthetic(lm, blocks, SAMPLE, out=tmp_path / "resumed.jsonl", generation=2, seed=5, scorer=lm)
    assert resumed["prompts_written_this_session"] == 7
    rows, again = read_jsonl(tmp_path / "whole.jsonl"), read_jsonl(tmp_path / "resumed.jsonl")
    assert [r["contents"] for r in rows] == [r["contents"] for r in again]
    assert whole["tokens"] == resumed["tokens"] <= 11 * 12
    assert all(r["metadata"]["source"] == "synthetic" and r["metadata"]["gen0_ppl"] > 1 for r in again)
    assert not (tmp_path / ".resumed.jsonl.parts").exists()


def test_watermarked_text_is_detected_and_human_text_is_not(lm):
    wm = watermarking_config(bias=3.0, greenlist=0.25, key=15485863)
    blocks = prompt_blocks(TEXTS, lm.tokenizer, prompt_tokens=8, new_tokens=12)[:16]
    decode = dataclasses.replace(SAMPLE, max_new_tokens=32)
    marked = [lm.tokenizer.decode(ids) for ids in continue_prompts(lm, blocks, decode, seed=3, watermark=wm)]
    plain = [lm.tokenizer.decode(ids) for ids in continue_prompts(lm, blocks, decode, seed=3)]
    z_marked, z_plain = watermark_z_scores(lm, marked, wm), watermark_z_scores(lm, plain, wm)
    assert sum(z > 4 for z in z_marked) >= 12  # low-entropy stretches carry little watermark
    assert sum(z > 4 for z in z_plain) <= 1
    assert sum(z > 4 for z in watermark_z_scores(lm, TEXTS, wm)) <= 1


def test_grounded_writer_reads_its_passages(lm):
    (block,) = prompt_blocks(TEXTS, lm.tokenizer, prompt_tokens=8, new_tokens=12)[:1]
    grounded = PromptBlock(index=0, ids=block.ids, passages=("Country3 | Government | Capital: City3",) * 2)
    greedy = DecodeConfig(max_new_tokens=12, stop=())
    plain_out, grounded_out = continue_prompts(lm, [block, grounded], greedy, seed=0)
    assert plain_out != grounded_out
    too_long = PromptBlock(index=0, ids=block.ids, passages=(" ".join(TEXTS),))
    (truncated,) = continue_prompts(lm, [too_long], greedy, seed=0)  # passages cut from the left, prompt kept
    assert len(truncated) == 12


KILLED_WRITER = r'''
import sys, torch
torch.set_num_threads(1)
from rag_bench.config import DecodeConfig
from rag_bench.lm import LM
from rag_bench.collapse.synthetic import prompt_blocks, write_synthetic
from tests.test_collapse_synthetic import TEXTS
lm = LM.load(sys.argv[1])
blocks = prompt_blocks(TEXTS, lm.tokenizer, prompt_tokens=8, new_tokens=12)
decode = DecodeConfig(max_new_tokens=48, do_sample=True, stop=(), batch_size=2)
write_synthetic(lm, blocks, decode, out=sys.argv[2], generation=0, seed=7, scorer=lm)
'''


def test_a_sigkilled_write_resumes_at_its_last_finished_batch(lm, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    lm.save(tmp_path / "model")
    out = tmp_path / "synthetic.jsonl"
    batches = tmp_path / ".synthetic.jsonl.parts" / "part_00000.batches"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "model"), str(out)], cwd=repo,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(list(batches.glob("batch_*.json"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = len(list(batches.glob("batch_*.json")))
    assert saved >= 3 and not out.exists()

    blocks = prompt_blocks(TEXTS, lm.tokenizer, prompt_tokens=8, new_tokens=12)
    decode = DecodeConfig(max_new_tokens=48, do_sample=True, stop=(), batch_size=2)
    calls = []
    generate = lm.model.generate

    def counted(*args, **kwargs):  # the real generate, counted
        calls.append(1)
        return generate(*args, **kwargs)

    lm.model.generate = counted
    try:
        write_synthetic(lm, blocks, decode, out=out, generation=0, seed=7, scorer=lm)
    finally:
        lm.model.generate = generate
    assert len(calls) == -(-len(blocks) // 2) - saved  # only the batches the killed writer had not finished
    whole = tmp_path / "whole.jsonl"
    write_synthetic(lm, blocks, decode, out=whole, generation=0, seed=7, scorer=lm)
    assert read_jsonl(out) == read_jsonl(whole)
    assert not (tmp_path / ".synthetic.jsonl.parts").exists()
