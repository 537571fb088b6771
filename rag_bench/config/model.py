"""Generation 0: the causal LM built from scratch, its decoding and its training (rag_bench.lm, rag_bench.training).

    from rag_bench.config import ModelConfig, TrainConfig
    TrainConfig(model=ModelConfig.preset("small"), max_steps=1100, copy_share=0.375)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from rag_bench.config.base import ConfigBase, ConfigError

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # name: overrides of ModelConfig; parameter counts are for the default 8192-token vocabulary
    "tiny": {"vocab_size": 512, "n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 128},
    "small": {"n_layer": 4, "n_head": 4, "n_embd": 128, "n_positions": 512},
    "base": {"n_layer": 4, "n_head": 4, "n_embd": 256, "n_positions": 512},
    "large": {"n_layer": 8, "n_head": 6, "n_embd": 384, "n_positions": 1024},
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(ConfigBase):
    """The causal LM built from scratch; ``ModelConfig.preset("base")`` gives a named size."""

    name: str = "small"  # preset the sizes came from, recorded in reports
    arch: Literal["lfm2", "llama", "gpt2"] = "lfm2"  # short-conv + attention hybrid (learns to copy), Llama or GPT-2
    vocab_size: int = 8192  # byte-level BPE vocabulary trained on the corpus
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # hidden width
    n_positions: int = 512  # context length: training block and longest prompt + answer
    dropout: float = 0.0  # residual/attention/embedding dropout (0 suits short runs on small data)
    tie_embeddings: bool = True  # share input and output embeddings (saves vocab_size * n_embd parameters)

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if min(self.n_layer, self.n_head, self.n_embd, self.n_positions) < 1:
            raise ConfigError("n_layer, n_head, n_embd and n_positions must be >= 1")
        if self.vocab_size < 260:
            raise ConfigError(f"vocab_size must be >= 260 (256 bytes + special tokens), got {self.vocab_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        if name not in MODEL_PRESETS:
            raise ConfigError(f"unknown model preset {name!r}; choose from {sorted(MODEL_PRESETS)}")
        return cls(**{"name": name, **MODEL_PRESETS[name], **overrides})


@dataclasses.dataclass(frozen=True, kw_only=True)
class DecodeConfig(ConfigBase):
    """How ``LM.generate`` decodes: greedy by default, stopping at the end of a Factbook line."""

    max_new_tokens: int = 32  # new tokens per prompt at most
    do_sample: bool = False  # sample instead of greedy / beam search
    temperature: float = 1.0  # softmax temperature when sampling
    top_p: float = 1.0  # nucleus sampling mass (1 = off)
    top_k: int = 0  # keep the k most likely tokens when sampling (0 = off)
    num_beams: int = 1  # beam search width (1 = off)
    repetition_penalty: float = 1.0  # > 1 discourages repeating tokens (CTRL-style)
    stop: tuple[str, ...] = ("\n",)  # generation ends at the first of these; the text is cut before it
    batch_size: int = 32  # prompts per forward batch
    seed: int = 0  # seeds sampling so that a run can be repeated

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.num_beams < 1 or self.batch_size < 1:
            raise ConfigError("top_k must be >= 0, num_beams and batch_size >= 1")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if any(not s for s in self.stop):
            raise ConfigError("stop strings must be non-empty")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(ConfigBase):
    """``rag-bench train``: optimisation, evaluation, checkpoints and the training mixture of generation 0."""

    model: ModelConfig = dataclasses.field(default_factory=lambda: ModelConfig.preset("base"))  # built from scratch
    seed: int = 0  # model init, data order, copy curriculum
    max_steps: int = 2000  # optimizer steps
    max_minutes: float = 0.0  # stop (and checkpoint) after this wall time; 0 = no limit
    batch_size: int = 32  # rows per optimizer step (all processes together): blocks, retrieval and copy rows
    grad_accum: int = 1  # micro-batches per step (same batch, less memory)
    lr: float = 4e-3  # peak learning rate (small models copy sooner with a high rate)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100  # linear warm-up steps
    weight_decay: float = 0.1  # AdamW decay of matrices (none on embeddings, norms, biases)
    beta2: float = 0.95  # AdamW second-moment decay
    grad_clip: float = 1.0  # clip the global gradient norm
    bf16: bool = True  # bf16 autocast where the hardware supports it
    lora_rank: int = 0  # > 0: fine-tune LoRA adapters of this rank on every linear layer (PEFT), not every weight
    lora_alpha: float = 32.0  # LoRA scaling numerator: the adapters' update is scaled by lora_alpha / lora_rank
    compile: bool = False  # torch.compile the training step's model: 1.13-1.28x tokens/s after 25-46 s of compiling
    eval_every: int = 200  # steps between held-out perplexity evaluations (the best is kept)
    eval_max_texts: int = 200  # held-out texts scored per evaluation (0: all)
    save_every: int = 200  # steps between resumable checkpoints in out_dir/last
    probe_count: int = 100  # closed-book and copy probes scored at each evaluation (0: none)
    retrieval_share: float = 0.0  # share of rows that are texts prefixed with neighbour passages
    retrieval_examples: int = 5000  # texts sent to the neighbours function (one call at the start)
    copy_share: float = 0.375  # share of rows from the copy curriculum (invented / counterfactual records)
    copy_repeat_share: float = 0.0  # share of copy rows that are random-token repeats (docs/copying.md: no help here)
    copy_loss_on: Literal["values", "lines"] = "values"  # loss on the copied values only, or on whole lines
    copy_warmup_steps: int = 600  # steps of copy curriculum only, before the mixture (when copy_share > 0)
    copy_lr_hold: bool = True  # keep the peak rate through the copy warm-up (copying appears late, at a high rate)
    copy_min_lines: int = 1  # record lines per copy passage at least (one-line passages bootstrap copying)
    copy_max_lines: int = 3  # record lines per copy passage at most
    copy_max_value_chars: int = 30  # record lines with longer values are left out of the copy curriculum
    copy_max_distractors: int = 0  # other passages beside the one holding the fact, at most
    copy_invented_share: float = 0.7  # copy passages about invented entities; the rest give real ones false values
    copy_same_fields_share: float = 0.0  # distractor passages with the target's fields for another entity (hard ones)
    fact_share: float = 0.0  # share of rows of record lines in random order (closed-book recall; examples.FactRows)
    fact_fields: tuple[str, ...] = ()  # record fields the fact rows draw from, e.g. ["Capital"] (empty: every field)

    def __post_init__(self) -> None:
        if min(self.max_steps, self.batch_size, self.grad_accum, self.eval_every, self.save_every) < 1:
            raise ConfigError("max_steps, batch_size, grad_accum, eval_every and save_every must be >= 1")
        if self.lora_rank < 0 or self.lora_alpha <= 0:
            raise ConfigError(f"lora_rank must be >= 0 and lora_alpha > 0, got {self.lora_rank}, {self.lora_alpha}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ConfigError("lr must be > 0, min_lr_ratio in [0, 1], warmup_steps >= 0")
        shares = (self.retrieval_share, self.copy_share, self.fact_share)
        if not (all(0 <= share <= 1 for share in shares) and sum(shares) <= 1):
            raise ConfigError("retrieval_share, copy_share and fact_share must be in [0, 1] and sum to at most 1")
        if not all(0 <= share <= 1 for share in (self.copy_repeat_share, self.copy_invented_share,
                                                 self.copy_same_fields_share)):
            raise ConfigError("copy_repeat_share, copy_invented_share and copy_same_fields_share must be in [0, 1]")
        if not 1 <= self.copy_min_lines <= self.copy_max_lines or self.copy_max_lines < 2:
            raise ConfigError("copy_min_lines must be >= 1 and <= copy_max_lines, and copy_max_lines >= 2")
        if self.copy_max_distractors < 0 or self.copy_warmup_steps < 0 or self.copy_max_value_chars < 1:
            raise ConfigError("copy_max_distractors and copy_warmup_steps must be >= 0, copy_max_value_chars >= 1")
