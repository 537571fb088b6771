"""The tokenizer trained here and the randomly initialised models of generation 0.

    .venv/bin/pytest tests/test_models_scratch.py -q
"""

from __future__ import annotations

import pytest

from rag_bench.config import ModelConfig
from rag_bench.models.scratch import BOS_TOKEN, build_model, train_tokenizer

LINES = [f"Land{i} | Government | Capital: {city}" for i, city in enumerate(
    ["Orvane", "Belmuth", "Carsk", "Dunmere", "Eskaville", "Farrow", "Gellin", "Hoxley"])]
TEXTS = ["\n".join(LINES[i:i + 3]) for i in range(len(LINES))] * 4


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=320)


def test_tokenizer_round_trip_and_bos(tokenizer):
    text = "Côte d'Ivoire | Economy | GDP: $1,234 (2023 est.)\n\nnaïve ümlaut 東京"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_a_field_and_its_colon_become_one_token(tokenizer):
    tokens = tokenizer.tokenize("Land3 | Government | Capital: Dunmere")
    assert "ĠCapital:" in tokens  # the question's last token names the field (see docs/copying.md)



def test_each_architecture_is_built_for_the_tokenizer(tokenizer):
    for arch, name in (("lfm2", "Lfm2ForCausalLM"), ("llama", "LlamaForCausalLM"), ("gpt2", "GPT2LMHeadModel")):
        cfg = ModelConfig.preset("tiny", arch=arch)
        model = build_model(cfg, tokenizer)
        assert type(model).__name__ == name
        assert model.config.vocab_size == len(tokenizer) and model.config.bos_token_id == tokenizer.bos_token_id
        assert model.config.pad_token_id == tokenizer.pad_token_id != model.config.eos_token_id
    assert tokenizer.bos_token == BOS_TOKEN == tokenizer.eos_token
    lfm2 = build_model(ModelConfig.preset("tiny"), tokenizer).config
    assert lfm2.layer_types == ["conv", "full_attention"] and lfm2.intermediate_size % 32 == 0
