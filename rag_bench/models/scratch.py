"""Generation 0 from scratch: a byte-level BPE tokenizer trained on the corpus and a randomly initialised model.

    from rag_bench.models.scratch import train_tokenizer
    tokenizer = train_tokenizer(texts, vocab_size=8192)
    lm = LM.build(ModelConfig.preset("base"), tokenizer)        # LM.build calls build_model

    rag-bench train --model-size small --max-minutes 10         # both, then the training loop

Architectures: LFM2 (gated short convolutions and attention), Llama and GPT-2, sized by ``ModelConfig``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    Lfm2Config,
    Lfm2ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from rag_bench.config import ModelConfig

BOS_TOKEN = "<|endoftext|>"  # begins every prompt and separates packed training documents
PAD_TOKEN = "<|pad|>"
# GPT-2's pre-tokenisation pattern with ":?" after a run of letters
PRETOKENIZE_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+:?| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192, *, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on ``texts``; prepends BOS, pads on the left.

    Pre-tokenisation is GPT-2's except that a word keeps a colon right after it, so a record field
    and its colon (`` Capital:``) can become one token: the last token of a question then names
    the field, and copying its value from a passage is a single induction step (see docs/copying.md).
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=[BOS_TOKEN, PAD_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    bos_id = tok.token_to_id(BOS_TOKEN)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B",
                                                       special_tokens=[(BOS_TOKEN, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS_TOKEN, eos_token=BOS_TOKEN,
                                   pad_token=PAD_TOKEN, padding_side="left", model_max_length=1 << 30)


def build_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """A randomly initialised LFM2, Llama or GPT-2 of ``cfg``'s size for ``tokenizer``'s vocabulary."""
    common = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
              "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
              "tie_word_embeddings": cfg.tie_embeddings}
    if cfg.arch == "gpt2":
        config = GPT2Config(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, n_positions=cfg.n_positions,
                            resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, **common)
        return GPT2LMHeadModel(config)
    if cfg.arch == "lfm2":
        # Even blocks are gated short convolutions, odd ones attention: a convolution hands each position its
        # previous tokens, so the next attention block can match and copy ("induction") without first learning a
        # previous-token head -- see docs/copying.md (H3, Zoology). Without causal-conv1d, torch's conv1d runs it.
        config = Lfm2Config(num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
                            num_key_value_heads=cfg.n_head, hidden_size=cfg.n_embd,
                            intermediate_size=_llama_ffn_width(cfg.n_embd), block_auto_adjust_ff_dim=False,
                            layer_types=["conv" if i % 2 == 0 else "full_attention" for i in range(cfg.n_layer)],
                            max_position_embeddings=cfg.n_positions,
                            rope_parameters={"rope_type": "default", "rope_theta": 10_000.0}, **common)
        return Lfm2ForCausalLM(config)
    config = LlamaConfig(num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_head,
                         hidden_size=cfg.n_embd, intermediate_size=_llama_ffn_width(cfg.n_embd),
                         max_position_embeddings=cfg.n_positions, attention_dropout=cfg.dropout, **common)
    return LlamaForCausalLM(config)


def _llama_ffn_width(n_embd: int) -> int:
    # SwiGLU with 8/3 width keeps the parameter count of GPT-2's 4x MLP; rounded to a multiple of 32
    return 32 * math.ceil(8 * n_embd / 3 / 32)
