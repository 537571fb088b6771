"""The causal LM of every generation: tokenizer, model, save/load, batched generation and scoring.

    from rag_bench.lm import LM, train_tokenizer

    tokenizer = train_tokenizer(texts, vocab_size=8192)
    lm = LM.build(ModelConfig.preset("base"), tokenizer)        # prints the parameter count
    lm.save("runs/r1/gen_0/model")
    lm = LM.load("runs/r1/gen_0/model")                         # or LM.from_pretrained_folder(any HF folder)
    lm.generate(["Algeria | Government | Capital:"], DecodeConfig())          # -> [" Algiers"]
    lm.generate([prompt], DecodeConfig(), allowed_spans=[[passage]])         # answer must be a span of passage
    lm.perplexity(heldout_texts)

Every prompt starts with what the tokenizer adds (the BOS ``<|endoftext|>`` of a tokenizer built here; nothing
for SmolLM2, whose chat template opens the prompt instead: rag_bench.models), is truncated from the left when
prompt + ``max_new_tokens`` exceeds the model's positions (reported in ``Generation.truncated_tokens``), and is
left-padded in batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    Lfm2Config,
    Lfm2ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from rag_bench.config import DecodeConfig, ModelConfig
from rag_bench.records import read_json, write_json

log = logging.getLogger(__name__)

BOS_TOKEN = "<|endoftext|>"  # begins every prompt and separates packed training documents
PAD_TOKEN = "<|pad|>"
MODEL_CONFIG_FILE = "rag_bench_model.json"  # the resolved ModelConfig beside a model built here
# GPT-2's pre-tokenisation pattern with ":?" after a run of letters
PRETOKENIZE_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+:?| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Scoring (held-out perplexity, answer log-probabilities) materialises rows x positions x vocabulary fp32 logits:
# SmolLM2's 8192 positions and 49,152-token vocabulary at batch 32 would need about 50 GB (a 23 GB machine killed
# `rag-bench eval --model smollm2-135m` so). Windows are capped, and rows per forward follow a logits budget.
SCORE_WINDOW = 1024  # positions per scoring window at most (the models trained here have 128-1024)
SCORE_LOGITS = 1 << 27  # padded tokens x vocabulary per scoring forward at most: 512 MB of fp32 logits
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")


class ModelLoadError(ValueError):
    """A path that does not hold a usable causal-LM folder; the message names the path."""


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast where the hardware runs it fast (CUDA with bf16, CPUs with AVX512-BF16/AMX), else a no-op."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------
# Tokenizer and model construction


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


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@dataclasses.dataclass(frozen=True, kw_only=True)
class Generation:
    """One generated answer and what happened to its prompt."""

    text: str  # the continuation, cut before the first stop string
    prompt_tokens: int  # prompt tokens fed to the model (after truncation)
    truncated_tokens: int  # tokens dropped from the left of the prompt to fit the model's positions
    new_tokens: int  # tokens generated (before cutting at the stop string)


# ---------------------------------------------------------------------------------------
# The model + tokenizer pair


class LM:
    """A causal LM with its tokenizer on one device; generation-0 models also carry their ModelConfig."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, *,
                 config: ModelConfig | None = None, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else pick_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.config = config
        if tokenizer.pad_token is None:  # many base models ship without one; masked out anyway
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        self._stop_ids: dict[tuple[str, ...], frozenset[int]] = {}

    @classmethod
    def build(cls, cfg: ModelConfig, tokenizer: PreTrainedTokenizerFast, *, seed: int = 0,
              device: torch.device | str | None = None) -> LM:
        torch.manual_seed(seed)
        lm = cls(build_model(cfg, tokenizer), tokenizer, config=cfg, device=device)
        print(f"built {cfg.arch} '{cfg.name}': {lm.num_parameters / 1e6:.2f}M parameters "
              f"({cfg.n_layer} layers, width {cfg.n_embd}, {cfg.n_positions} positions, vocab {len(tokenizer)})")
        return lm

    @classmethod
    def load(cls, path: str | Path, *, device: torch.device | str | None = None) -> LM:
        """Load a folder written by ``save`` or any local Hugging Face causal-LM folder with its tokenizer."""
        path = Path(path)
        if not path.is_dir():
            raise ModelLoadError(f"{path}: not a model folder (no such directory)")
        missing = [name for name in ("config.json",) if not (path / name).is_file()]
        if not any((path / name).is_file() for name in WEIGHT_FILES):
            missing.append(f"weights ({' or '.join(WEIGHT_FILES[::2])})")
        if not ((path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()):
            missing.append("tokenizer (tokenizer.json or tokenizer_config.json)")
        if missing:
            raise ModelLoadError(f"{path}: not a causal-LM model folder; missing {', '.join(missing)}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            with _quiet_transformers():
                model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"{path}: could not load the model or tokenizer ({exc})") from exc
        config_file = path / MODEL_CONFIG_FILE
        config = None
        if config_file.is_file():
            config = ModelConfig.from_dict(read_json(config_file), source=str(config_file))
        return cls(model, tokenizer, config=config, device=device)

    @classmethod
    def from_pretrained_folder(cls, path: str | Path, *, device: torch.device | str | None = None) -> LM:
        """``--base-model PATH``: a local HF causal LM to fine-tune instead of training from scratch."""
        lm = cls.load(path, device=device)
        print(f"loaded base model {path}: {type(lm.model).__name__}, {lm.num_parameters / 1e6:.2f}M parameters")
        return lm

    def save(self, path: str | Path) -> Path:
        """Write model, tokenizer and ModelConfig into a temporary sibling folder, then swap it into place."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            with _quiet_transformers():
                self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            if self.config is not None:
                write_json(tmp / MODEL_CONFIG_FILE, self.config.to_dict())
            for item in [tmp, *tmp.iterdir()]:  # mkdtemp and safetensors create owner-only files
                item.chmod(0o755 if item.is_dir() else 0o644)
            replace_dir(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)

    @property
    def max_positions(self) -> int:
        cfg = self.model.config
        for name in ("n_positions", "max_position_embeddings", "n_ctx"):
            if isinstance(getattr(cfg, name, None), int):
                return getattr(cfg, name)
        return 2048

    # -----------------------------------------------------------------------------------
    # Generation

    def generate(self, prompts: Sequence[str], decode: DecodeConfig | None = None, *,
                 allowed_spans: Sequence[Sequence[str]] | None = None) -> list[str]:
        """Continuations of ``prompts`` (see ``generate_detailed``)."""
        return [g.text for g in self.generate_detailed(prompts, decode, allowed_spans=allowed_spans)]

    def generate_detailed(self, prompts: Sequence[str], decode: DecodeConfig | None = None, *,
                          allowed_spans: Sequence[Sequence[str]] | None = None,
                          streamer: Any = None) -> list[Generation]:
        """Batched ``transformers`` generation with the KV cache, in the order of ``prompts``.

        ``allowed_spans[i]``, when given, is the context of prompt i (e.g. its retrieved passages):
        the answer is then constrained to a token span of one of those texts, chosen by the model's
        own scores (span-constrained grounded decoding). ``streamer`` (a transformers streamer) receives
        the new tokens as they come; it takes one prompt at a time.
        """
        decode = decode or DecodeConfig()
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not one string")
        if streamer is not None and len(prompts) != 1:
            raise ValueError(f"a streamer takes one prompt at a time, got {len(prompts)}")
        if allowed_spans is not None and len(allowed_spans) != len(prompts):
            raise ValueError(f"allowed_spans has {len(allowed_spans)} entries for {len(prompts)} prompts")
        encoded = [self._encode_prompt(p, decode.max_new_tokens) for p in prompts]
        if truncated := [dropped for _, dropped in encoded if dropped]:
            log.warning("%d of %d prompts truncated from the left (up to %d tokens) to fit %d positions with %d new "
                        "tokens", len(truncated), len(prompts), max(truncated), self.max_positions,
                        decode.max_new_tokens)
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i][0]))  # similar lengths pad less
        results: list[Generation | None] = [None] * len(prompts)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(decode.seed)
            for start in range(0, len(order), decode.batch_size):
                idx = order[start:start + decode.batch_size]
                spans = [allowed_spans[i] for i in idx] if allowed_spans is not None else None
                texts, n_new = self._generate_batch([encoded[i][0] for i in idx], decode, spans, streamer)
                for i, text, n in zip(idx, texts, n_new, strict=True):
                    ids, dropped = encoded[i]
                    results[i] = Generation(text=text, prompt_tokens=len(ids), truncated_tokens=dropped, new_tokens=n)
        return results  # type: ignore[return-value]

    def _encode_prompt(self, prompt: str, max_new_tokens: int) -> tuple[list[int], int]:
        if max_new_tokens >= self.max_positions:
            raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in "
                             f"{self.max_positions} positions")
        ids = self.tokenizer(prompt)["input_ids"]
        room = self.max_positions - max_new_tokens
        dropped = max(0, len(ids) - room)
        if dropped:
            ids = ids[dropped:]
        return ids, dropped

    def _generate_batch(self, batch: list[list[int]], decode: DecodeConfig, spans: Sequence[Sequence[str]] | None,
                        streamer: Any = None) -> tuple[list[str], list[int]]:
        padded = self.tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt").to(self.device)
        prompt_len = padded["input_ids"].shape[1]
        kwargs = {"max_new_tokens": decode.max_new_tokens, "do_sample": decode.do_sample,
                  "num_beams": decode.num_beams, "repetition_penalty": decode.repetition_penalty,
                  "pad_token_id": self.tokenizer.pad_token_id, "eos_token_id": self.tokenizer.eos_token_id}
        if decode.do_sample:
            kwargs.update(temperature=decode.temperature, top_p=decode.top_p, top_k=decode.top_k or None)
        else:  # silence transformers' warnings about sampling settings inherited from a base model's config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if decode.stop:
            kwargs.update(stop_strings=list(decode.stop), tokenizer=self.tokenizer)
        if streamer is not None:
            kwargs["streamer"] = streamer
        if spans is not None:
            kwargs["prefix_allowed_tokens_fn"] = SpanConstraint(
                [self._span_token_ids(s) for s in spans], prompt_len, self._stop_token_ids(decode.stop),
                self.tokenizer.eos_token_id)
        # one precision at every batch size, so an answer does not depend on the batch it was asked in, though
        # at batch 1 bf16 runs at 0.65x an fp32 pipeline (bench/generate_bench.py)
        with torch.inference_mode(), autocast(self.device):
            out = self.model.generate(**padded, **kwargs)
        new = out[:, prompt_len:].tolist()
        texts, counts = [], []
        for row in new:
            row = [t for t in row if t != self.tokenizer.pad_token_id]
            counts.append(len(row))
            texts.append(cut_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), decode.stop))
        return texts, counts

    def _span_token_ids(self, texts: Sequence[str] | str) -> list[list[int]]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def _stop_token_ids(self, stop: tuple[str, ...]) -> frozenset[int]:
        """EOS plus every vocabulary token whose text contains a stop string (e.g. each newline token)."""
        if stop not in self._stop_ids:
            ids = {self.tokenizer.eos_token_id}
            for token_id in range(len(self.tokenizer)):
                text = self.tokenizer.decode([token_id])
                if any(s in text for s in stop):
                    ids.add(token_id)
            self._stop_ids[stop] = frozenset(ids)
        return self._stop_ids[stop]

    # -----------------------------------------------------------------------------------
    # Scoring

    def token_nll(self, texts: Sequence[str], *, batch_size: int = 16,
                  stride: int | None = None) -> list[tuple[float, int]]:
        """Per text: (summed NLL in nats, scored tokens), over sliding windows of the model's positions.

        Each token after BOS is scored once, with at least ``window - stride`` tokens of context once the text is
        longer than one window (the model's positions, at most SCORE_WINDOW; stride defaults to half the window).
        """
        window = min(self.max_positions, SCORE_WINDOW)
        stride = min(stride or window // 2, window - 1)
        pieces = []  # (text index, window ids, first scored position in the window)
        for i, text in enumerate(texts):
            ids = self.tokenizer(text)["input_ids"]
            begin, scored_until = 0, 1
            while len(ids) > 1:
                end = min(begin + window, len(ids))
                pieces.append((i, ids[begin:end], max(scored_until, begin + 1) - begin))
                scored_until = end
                if end == len(ids):
                    break
                begin += stride
        totals = [[0.0, 0] for _ in texts]
        rows = self._rows_per_forward(batch_size, max((len(ids) for _, ids, _ in pieces), default=1))
        for start in range(0, len(pieces), rows):
            chunk = pieces[start:start + rows]
            for (i, _, _), (nll, n) in zip(chunk, self._window_nll([(ids, first) for _, ids, first in chunk]),
                                           strict=True):
                totals[i][0] += nll
                totals[i][1] += n
        return [(nll, n) for nll, n in totals]

    def perplexity(self, texts: Sequence[str], *, batch_size: int = 16) -> float:
        """Token-weighted perplexity of ``texts`` (held-out perplexity)."""
        pairs = self.token_nll(texts, batch_size=batch_size)
        tokens = sum(n for _, n in pairs)
        return math.exp(sum(nll for nll, _ in pairs) / tokens) if tokens else float("nan")

    def sequence_perplexities(self, texts: Sequence[str], *, batch_size: int = 16) -> list[float]:
        """Perplexity of each text on its own (nan for a text with no scorable token)."""
        return [math.exp(nll / n) if n else float("nan") for nll, n in self.token_nll(texts, batch_size=batch_size)]

    def score(self, prompts: Sequence[str], continuations: Sequence[str], *, batch_size: int = 16) -> list[float]:
        """Log-probability (nats) of each continuation after its prompt; the prompt is cut from the left to fit."""
        rows = []
        for prompt, cont in zip(prompts, continuations, strict=True):
            p_ids = self.tokenizer(prompt)["input_ids"]
            c_ids = self.tokenizer(cont, add_special_tokens=False)["input_ids"][: self.max_positions - 1]
            ids = (p_ids + c_ids)[-self.max_positions:]
            rows.append((ids, len(ids) - len(c_ids)))
        out = []
        step = self._rows_per_forward(batch_size, max((len(ids) for ids, _ in rows), default=1))
        for start in range(0, len(rows), step):
            out.extend(-nll for nll, _ in self._window_nll(rows[start:start + step]))
        return out

    def _rows_per_forward(self, batch_size: int, width: int) -> int:
        return max(1, min(batch_size, SCORE_LOGITS // (width * len(self.tokenizer))))

    def _window_nll(self, rows: list[tuple[list[int], int]]) -> list[tuple[float, int]]:
        """For each (ids, first): NLL of ids[first:] given what precedes, in one right-padded batch."""
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        targets = torch.full((len(rows), width), -100, dtype=torch.long)
        for r, (ids, first) in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
            targets[r, first: len(ids)] = torch.tensor(ids[first:], dtype=torch.long)
        with torch.inference_mode(), autocast(self.device):
            logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits
        logits, targets = logits[:, :-1].float(), targets[:, 1:].to(self.device)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
        return [(float(nll[r].sum()), int((targets[r] != -100).sum())) for r in range(len(rows))]


class SpanConstraint:
    """``prefix_allowed_tokens_fn``: the answer so far must occur in a context, token for token.

    Allowed next tokens are those that continue some occurrence in the context of the tokens
    generated so far; once the answer is non-empty a stop token (newline, EOS) is allowed too.
    Matches are cached per (row, prefix) so each step extends the previous step's matches.
    """

    def __init__(self, contexts: list[list[list[int]]], prompt_len: int, stop_ids: frozenset[int], eos_id: int) -> None:
        self.contexts, self.prompt_len, self.stop_ids, self.eos = contexts, prompt_len, stop_ids, eos_id
        self._matches: dict[tuple[int, tuple[int, ...]], list[tuple[int, int]]] = {}

    def __call__(self, batch_id: int, input_ids: torch.Tensor) -> list[int]:
        generated = tuple(input_ids[self.prompt_len:].tolist())
        if generated and generated[-1] in self.stop_ids:
            return [self.eos]  # finished rows are padded by generate; anything allowed is fine
        matches = self._find(batch_id, generated)
        ctx = self.contexts[batch_id]
        allowed = {ctx[p][j + len(generated)] for p, j in matches if j + len(generated) < len(ctx[p])}
        if generated:
            allowed |= self.stop_ids
        else:
            allowed -= self.stop_ids
        return sorted(allowed) or [self.eos]

    def _find(self, row: int, generated: tuple[int, ...]) -> list[tuple[int, int]]:
        key = (row, generated)
        if key not in self._matches:
            if not generated:
                found = [(p, j) for p, toks in enumerate(self.contexts[row]) for j in range(len(toks))]
            else:
                m, last = len(generated) - 1, generated[-1]
                found = [(p, j) for p, j in self._find(row, generated[:-1])
                         if j + m < len(self.contexts[row][p]) and self.contexts[row][p][j + m] == last]
            self._matches[key] = found
        return self._matches[key]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No per-shard progress bars for models of a few megabytes."""
    was_active = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_active:
            hf_logging.enable_progress_bar()


def cut_at_stop(text: str, stop: Iterable[str]) -> str:
    """``text`` up to (not including) the earliest stop string."""
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``, replacing any previous ``dst`` with only a rename in between."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

