"""LM: build/save/load, generation options, span-constrained decoding through generate, and scoring."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import rag_bench.lm as lm_module
from rag_bench.config import ConfigError, DecodeConfig, ModelConfig
from rag_bench.lm import LM, ModelLoadError, count_parameters
from rag_bench.models.scratch import train_tokenizer
from tests.conftest import overfit_lines

LINES = [f"Land{i} | Government | Capital: {city}" for i, city in enumerate(
    ["Orvane", "Belmuth", "Carsk", "Dunmere", "Eskaville", "Farrow", "Gellin", "Hoxley"])]
TEXTS = ["\n".join(LINES[i:i + 3]) for i in range(len(LINES))] * 4
GREEDY = DecodeConfig(max_new_tokens=8, batch_size=4)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=320)


@pytest.fixture(scope="module")
def fitted_lm(tokenizer) -> LM:
    """A tiny model that has overfitted the planted lines (a few seconds of training)."""
    return overfit_lines(LM.build(ModelConfig.preset("tiny"), tokenizer, seed=0, device="cpu"), LINES, 80)


def test_presets_and_parameter_count(tokenizer, capsys):
    lm = LM.build(ModelConfig.preset("tiny"), tokenizer, device="cpu")
    assert f"{lm.num_parameters / 1e6:.2f}M parameters" in capsys.readouterr().out
    assert lm.num_parameters == count_parameters(lm.model) < sum(p.numel() for p in lm.model.parameters()) + 1
    assert lm.max_positions == ModelConfig.preset("tiny").n_positions
    assert type(lm.model).__name__ == "Lfm2ForCausalLM"  # short convolutions + attention (see docs/copying.md)
    assert lm.model.config.layer_types == ["conv", "full_attention"]
    for arch, name in (("llama", "LlamaForCausalLM"), ("gpt2", "GPT2LMHeadModel")):
        other = LM.build(ModelConfig.preset("tiny", arch=arch), tokenizer, device="cpu")
        assert type(other.model).__name__ == name and other.max_positions == lm.max_positions
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        ModelConfig.preset("huge")
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(n_embd=100, n_head=3)


def test_save_load_round_trip_is_exact(fitted_lm, tmp_path):
    path = fitted_lm.save(tmp_path / "model")
    fitted_lm.save(path)  # overwriting an existing folder is a swap, not a merge
    loaded = LM.load(path, device="cpu")
    assert loaded.config == fitted_lm.config
    prompts = [LINES[0].split(":")[0] + ":", LINES[5]]
    assert loaded.generate(prompts, GREEDY) == fitted_lm.generate(prompts, GREEDY)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_wrong_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match=str(tmp_path / "nope")):
        LM.load(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"half: not a causal-LM model folder; missing weights"):
        LM.load(tmp_path / "half")


def test_a_local_llama_folder_loads_as_base_model(tokenizer, tmp_path):
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    lm = LM.from_pretrained_folder(tmp_path / "llama", device="cpu")
    assert lm.config is None and lm.max_positions == 64
    assert len(lm.generate(["Land1 | Government | Capital:"], GREEDY)) == 1


def test_greedy_answers_are_cut_at_the_newline(fitted_lm):
    gens = fitted_lm.generate_detailed(["Land2 | Government | Capital:", "Land6 | Government |"], GREEDY)
    assert all(g.text and "\n" not in g.text for g in gens)
    assert any(g.new_tokens < GREEDY.max_new_tokens for g in gens)  # stopped early at a newline


def test_greedy_is_deterministic_and_left_padding_does_not_change_answers(fitted_lm):
    short, long = "Land2 | Government | Capital:", "\n".join(LINES[:4]) + "\nLand4 | Government | Capital:"
    alone = fitted_lm.generate([short], GREEDY) + fitted_lm.generate([long], GREEDY)
    together = fitted_lm.generate([short, long], GREEDY)
    assert together == alone == fitted_lm.generate([short, long], GREEDY)


def test_a_streamer_receives_the_answer_as_it_is_generated(fitted_lm):
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(fitted_lm.tokenizer, skip_prompt=True, skip_special_tokens=True)
    (gen,) = fitted_lm.generate_detailed(["Land2 | Government | Capital:"], GREEDY, streamer=streamer)
    streamed = "".join(streamer)  # generation has finished, so the queue holds every piece and the end
    assert streamed.startswith(gen.text) and gen.text
    with pytest.raises(ValueError, match="one prompt at a time"):
        fitted_lm.generate_detailed(["a", "b"], GREEDY, streamer=streamer)


def test_sampling_is_repeatable_with_a_seed(fitted_lm):
    decode = DecodeConfig(max_new_tokens=12, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, stop=(), seed=3)
    prompts = ["Land"] * 6
    first = fitted_lm.generate(prompts, decode)
    assert fitted_lm.generate(prompts, decode) == first
    assert fitted_lm.generate(prompts, decode.replace(seed=4)) != first
    assert len(set(first)) > 1  # rows of one batch draw different samples


def test_beam_search_and_repetition_penalty(fitted_lm):
    prompts = ["Land2 | Government | Capital:", "Land6 |"]
    beams = fitted_lm.generate(prompts, GREEDY.replace(num_beams=3))
    assert len(beams) == 2 and all(b and "\n" not in b for b in beams)
    penalised = fitted_lm.generate(["Land2 | Government | Capital:"], GREEDY.replace(repetition_penalty=1.3))
    assert isinstance(penalised[0], str)


def test_without_stop_generation_runs_to_max_new_tokens(fitted_lm):
    (gen,) = fitted_lm.generate_detailed(["Land2 | Government | Capital:"], GREEDY.replace(stop=()))
    assert gen.new_tokens == GREEDY.max_new_tokens and "\n" in gen.text


def test_over_long_prompt_is_truncated_from_the_left_and_reported(fitted_lm):
    prompt = "\n".join(LINES * 20) + "\nLand2 | Government | Capital:"
    (gen,) = fitted_lm.generate_detailed([prompt], GREEDY)
    assert gen.truncated_tokens > 0
    assert gen.prompt_tokens + GREEDY.max_new_tokens == fitted_lm.max_positions
    assert "\n" not in gen.text  # the call is what is tested: no IndexError, a cut answer
    with pytest.raises(ValueError, match="no room for a prompt"):
        fitted_lm.generate(["x"], GREEDY.replace(max_new_tokens=fitted_lm.max_positions))


def test_span_constrained_answers_are_spans_of_the_context(fitted_lm):
    contexts = [["Nowhere | Government | Capital: Zanzibarra"], ["Qux | Government | Capital: Belmuth\nFoo"]]
    prompts = ["Land2 | Government | Capital:", "Qux | Government | Capital:"]
    answers = fitted_lm.generate(prompts, GREEDY, allowed_spans=contexts)
    for answer, (context,) in zip(answers, contexts, strict=True):
        assert answer and answer in context
    beams = fitted_lm.generate(prompts, GREEDY.replace(num_beams=2), allowed_spans=contexts)
    assert all(a and a in c[0] for a, c in zip(beams, contexts, strict=True))


def test_perplexity_uses_sliding_windows_consistently(fitted_lm):
    text = "\n".join(LINES)
    (nll, n), = fitted_lm.token_nll([text])
    assert n == len(fitted_lm.tokenizer(text)["input_ids"]) - 1
    long_text = "\n".join(LINES * 10)
    (_, long_n), = fitted_lm.token_nll([long_text], stride=32)
    assert long_n == len(fitted_lm.tokenizer(long_text)["input_ids"]) - 1  # every token scored once
    assert fitted_lm.perplexity([text]) == pytest.approx(math.exp(nll / n), rel=1e-6)
    assert fitted_lm.perplexity([text]) < fitted_lm.perplexity(["zq xv wj kk pf"])
    seq = fitted_lm.sequence_perplexities([text, ""])
    assert seq[0] == pytest.approx(math.exp(nll / n), rel=1e-6) and math.isnan(seq[1])
    planted, wrong = fitted_lm.score(["Land2 | Government | Capital:"] * 2, [" Carsk", " Gov | Land"])
    assert planted > wrong


def test_scoring_in_smaller_forwards_gives_the_same_figures(fitted_lm, monkeypatch):
    """A large vocabulary or long windows split a scoring batch into several forwards; the figures stay."""
    texts = ["\n".join(LINES), "\n".join(LINES[::-1] * 3), LINES[0]]
    whole = fitted_lm.token_nll(texts, batch_size=8)
    scores = fitted_lm.score(["Land2 | Government | Capital:"] * 2, [" Carsk", " Gov | Land"], batch_size=8)
    monkeypatch.setattr(lm_module, "SCORE_LOGITS", 1)  # one row per forward
    assert fitted_lm._rows_per_forward(8, 100) == 1
    split = fitted_lm.token_nll(texts, batch_size=8)
    assert [n for _, n in split] == [n for _, n in whole]
    assert [nll for nll, _ in split] == pytest.approx([nll for nll, _ in whole], rel=1e-5)
    assert fitted_lm.score(["Land2 | Government | Capital:"] * 2, [" Carsk", " Gov | Land"],
                           batch_size=8) == pytest.approx(scores, rel=1e-5)


def test_generate_refuses_a_single_string(fitted_lm):
    with pytest.raises(TypeError, match="sequence of strings"):
        fitted_lm.generate("Land2 | Government | Capital:", GREEDY)
    with pytest.raises(ValueError, match="allowed_spans has 1 entries for 2 prompts"):
        fitted_lm.generate(["a", "b"], GREEDY, allowed_spans=[["a"]])


def test_saved_model_folder_is_readable_by_others(fitted_lm, tmp_path: Path):
    path = fitted_lm.save(tmp_path / "m")
    assert path.stat().st_mode & 0o755 == 0o755
    assert all(p.stat().st_mode & 0o644 == 0o644 for p in path.iterdir())
