"""LoRA fine-tuning through PEFT: only the adapters train, checkpoints are plain merged models, resume is exact.

    .venv/bin/pytest tests/test_models_lora.py -q
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from rag_bench.config import ConfigError, ModelConfig, TrainConfig
from rag_bench.lm import LM
from rag_bench.models.lora import add_lora, lora_state, plain_lm
from rag_bench.models.scratch import train_tokenizer
from rag_bench.records import read_jsonl
from rag_bench.training.loop import train

PLANTED = "Quillmark | Government | Capital: Varnholt"
FILLER = [f"Town{i} | Economy | Exports: {w}" for i, w in enumerate(["barley", "timber", "copper", "wool", "salt"])]
TEXTS = [f"{PLANTED}\n" + "\n".join(FILLER[i:] + FILLER[:i]) for i in range(len(FILLER))]
HELDOUT = ["Town9 | Economy | Exports: barley and wool"]
LORA = TrainConfig(model=ModelConfig.preset("tiny"), max_steps=8, batch_size=4, lr=1e-2, warmup_steps=1,
                   eval_every=4, save_every=4, probe_count=0, copy_share=0.0, weight_decay=0.0, lora_rank=4,
                   lora_alpha=8.0)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=96)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("base")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_only_the_adapters_train_and_the_merged_copy_leaves_them_in_place(base):
    lm = LM.load(base, device="cpu")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    add_lora(lm, LORA)
    trainable = [n for n, p in lm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():  # as a trained adapter: B is no longer zero, so the merged weights differ from the base
        for name, param in lm.model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.01)
    merged = plain_lm(lm)
    assert type(merged.model).__name__ == "LlamaForCausalLM" and lora_state(merged.model) is None
    changed = merged.model.state_dict()
    assert not torch.equal(changed["model.layers.0.self_attn.q_proj.weight"],
                           before["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(changed["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    assert lora_state(lm.model)  # the model in training still carries its adapters


def test_lora_checkpoints_are_plain_models_and_resume_exactly(base, tmp_path):
    model_dir = train(LORA, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "straight", base_model=base)
    lm = LM.load(model_dir, device="cpu")
    assert type(lm.model).__name__ == "LlamaForCausalLM"
    assert not any("lora" in k for k in load_file(model_dir / "model.safetensors"))
    log = read_jsonl(model_dir / "train_log.jsonl")
    assert log[-1]["loss"] < log[0]["loss"]

    train(LORA, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "resumed", base_model=base, until_step=4)
    train(LORA, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "resumed", base_model=base)
    straight = load_file(tmp_path / "straight" / "last" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "last" / "model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    losses = [[r["loss"] for r in read_jsonl(tmp_path / run / "last" / "train_log.jsonl")]
              for run in ("straight", "resumed")]
    assert losses[0] == losses[1] and len(losses[0]) == 8


def test_lora_needs_a_base_model_and_a_valid_rank(tmp_path):
    with pytest.raises(ValueError, match="lora_rank needs a base model"):
        train(LORA, train_texts=TEXTS, heldout_texts=HELDOUT, out_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match="lora_rank"):
        LORA.replace(lora_rank=-1)
