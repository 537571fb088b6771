"""The decode loop against transformers' own: the same greedy tokens, the same draws, the same bf16 logits."""

from __future__ import annotations

import pytest
import torch
from transformers import TextIteratorStreamer

import rag_bench.models.decode_loop as loop
from rag_bench.config import DecodeConfig, ModelConfig
from rag_bench.lm import LM
from rag_bench.models.scratch import train_tokenizer
from tests.conftest import overfit_lines

LINES = [f"Land{i} | Government | Capital: {city}" for i, city in enumerate(
    ["Orvane", "Belmuth Vale", "Carsk", "Dunmere of the North", "Eskaville", "Farrow", "Gellin Upon Hoxley", "Hox"])]
TEXTS = ["\n".join(LINES[i:i + 3]) for i in range(len(LINES))] * 4
# answers of different lengths (rows stop at different steps) and prompts of different lengths (left padding)
PROMPTS = [f"Land{i} | Government | Capital:" for i in range(8)] + ["\n".join(LINES[:3]) + "\nLand5 | Government |"]
GREEDY = DecodeConfig(max_new_tokens=10, batch_size=16)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=320)


def fitted(tokenizer, arch: str) -> LM:
    """A tiny model of ``arch`` that has overfitted the planted lines, so answers end at a newline."""
    return overfit_lines(LM.build(ModelConfig.preset("tiny", arch=arch), tokenizer, seed=0, device="cpu"), LINES, 150)


@pytest.fixture(scope="module")
def llama(tokenizer) -> LM:
    """The fitted llama, once per module: the tests below only decode with it (none trains or changes it)."""
    return fitted(tokenizer, "llama")


@pytest.fixture(scope="module", params=["lfm2", "llama", "gpt2"])
def lm(request, tokenizer) -> LM:
    return request.getfixturevalue("llama") if request.param == "llama" else fitted(tokenizer, request.param)


@pytest.fixture
def compactions(monkeypatch) -> list[int]:
    """Counts the rows kept each time finished rows leave the batch; they leave as soon as one has finished."""
    kept: list[int] = []
    monkeypatch.setattr(loop, "COMPACT_SHARE", 0.0)
    real = loop.PreallocatedLayer.reorder_cache

    def counting(self, indices):
        kept.append(len(indices))
        return real(self, indices)

    monkeypatch.setattr(loop.PreallocatedLayer, "reorder_cache", counting)
    return kept


def both(lm: LM, decode: DecodeConfig, prompts=PROMPTS, **kwargs):
    ours = lm.generate_detailed(prompts, decode, **kwargs)
    theirs = lm.generate_detailed(prompts, decode, reference=True, **kwargs)
    return ours, theirs


def test_greedy_tokens_equal_transformers_while_finished_rows_leave_the_batch(lm, compactions):
    ours, theirs = both(lm, GREEDY)
    assert ours == theirs
    assert len({g.new_tokens for g in ours}) > 1  # rows stopped at different steps
    assert compactions and min(compactions) < len(PROMPTS)


def test_sampled_tokens_equal_transformers_under_a_seed_when_no_row_stops_early(lm):
    decode = DecodeConfig(max_new_tokens=12, do_sample=True, temperature=1.3, top_k=40, top_p=0.9,
                          repetition_penalty=1.2, stop=(), seed=5)
    ours, theirs = both(lm, decode)
    assert ours == theirs
    assert len({g.text for g in ours}) > 2  # really sampled


def test_sampling_after_compaction_draws_from_the_same_distributions(lm, compactions):
    # top_k=1 makes each draw certain: any processor or row mix-up after compaction would change a token
    decode = GREEDY.replace(do_sample=True, top_k=1, temperature=0.7, repetition_penalty=1.3, seed=2)
    ours, theirs = both(lm, decode)
    assert ours == theirs == lm.generate_detailed(PROMPTS, GREEDY.replace(repetition_penalty=1.3), reference=True)
    assert compactions


def test_span_constrained_answers_equal_transformers(lm, compactions):
    contexts = [[LINES[(i + 3) % len(LINES)]] for i in range(len(PROMPTS))]
    ours, theirs = both(lm, GREEDY, allowed_spans=contexts)
    assert ours == theirs
    assert all(g.text and g.text in c[0] for g, c in zip(ours, contexts, strict=True))


def test_a_streamer_gets_the_same_text_as_with_transformers(lm):
    texts = []
    for reference in (False, True):
        streamer = TextIteratorStreamer(lm.tokenizer, skip_prompt=True, skip_special_tokens=True)
        (gen,) = lm.generate_detailed([PROMPTS[3]], GREEDY, streamer=streamer, reference=reference)
        texts.append(("".join(streamer), gen))
    assert texts[0] == texts[1] and texts[0][0].startswith(texts[0][1].text)


def test_writer_continuations_equal_transformers(tokenizer, llama):
    from rag_bench.collapse.synthetic import PromptBlock, continue_prompts

    lm = llama
    blocks = [PromptBlock(index=i, ids=tokenizer(p)["input_ids"]) for i, p in enumerate(PROMPTS)]
    decode = DecodeConfig(max_new_tokens=12, do_sample=True, stop=(), batch_size=4)
    ours = continue_prompts(lm, blocks, decode, seed=3)
    theirs = continue_prompts(lm, blocks, decode, seed=3, reference=True)
    assert ours == theirs and all(len(r) == 12 for r in ours)


def test_bf16_weight_copies_give_autocast_logits_bit_for_bit_and_follow_weight_updates(tokenizer):
    lm = LM.build(ModelConfig.preset("tiny", arch="llama"), tokenizer, seed=1, device="cpu")
    ids = torch.tensor([tokenizer("Land3 | Government | Capital:")["input_ids"]])
    assert loop.cast_weights(lm.model) is None  # no autocast: nothing cast
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        weights = loop.cast_weights(lm.model)
        assert weights and all(w.dtype == torch.bfloat16 for w in weights.values())
        assert "lm_head.weight" in weights and lm.model.model.embed_tokens.weight.dtype == torch.float32
        assert loop.cast_weights(lm.model) is weights  # cast once
        expected = lm.model(input_ids=ids).logits
        assert torch.equal(loop._forward(lm.model, weights, {"input_ids": ids}).logits, expected)
    with torch.no_grad():
        lm.model.model.layers[0].mlp.up_proj.weight.add_(0.5)  # what an optimizer step does
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        fresh = loop.cast_weights(lm.model)
        assert fresh is not weights
        assert torch.equal(loop._forward(lm.model, fresh, {"input_ids": ids}).logits, lm.model(input_ids=ids).logits)


def test_bf16_greedy_tokens_equal_transformers_under_autocast(llama, monkeypatch):
    lm = llama
    monkeypatch.setattr("rag_bench.lm.autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    ours, theirs = both(lm, GREEDY)
    assert ours == theirs


def test_beam_search_still_goes_to_transformers(llama):
    lm = llama
    ours, theirs = both(lm, GREEDY.replace(num_beams=3), prompts=PROMPTS[:3])
    assert ours == theirs
