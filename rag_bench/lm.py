"""The causal LM of every generation: model and tokenizer, save/load, batched generation and scoring.

    from rag_bench.lm import LM
    from rag_bench.models.scratch import train_tokenizer

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
left-padded in batches. The tokenizer and model built from scratch are in rag_bench.models.scratch, the generation
record and span-constrained decoding in rag_bench.models.decoding.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

from rag_bench.config import DecodeConfig, ModelConfig
from rag_bench.models.decode_loop import generate_fast
from rag_bench.models.decoding import Generation, cut_at_stop, has_stop, span_constraint
from rag_bench.models.device import autocast, compute_record, pick_device  # noqa: F401 (rag_bench.lm API)
from rag_bench.models.scratch import build_model
from rag_bench.records import read_json, replace_dir, write_json

log = logging.getLogger(__name__)

MODEL_CONFIG_FILE = "rag_bench_model.json"  # the resolved ModelConfig beside a model built here
# Scoring (held-out perplexity, answer log-probabilities) materialises rows x positions x vocabulary fp32 logits:
# SmolLM2's 8192 positions and 49,152-token vocabulary at batch 32 would need about 50 GB (a 23 GB machine killed
# `rag-bench eval --model smollm2-135m` so). Windows are capped, and rows per forward follow a logits budget.
SCORE_WINDOW = 1024  # positions per scoring window at most (the models trained here have 128-1024)
SCORE_LOGITS = 1 << 27  # padded tokens x vocabulary per scoring forward at most: 512 MB of fp32 logits
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")


class ModelLoadError(ValueError):
    """A path that does not hold a usable causal-LM folder; the message names the path."""


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


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
                          streamer: Any = None, reference: bool = False) -> list[Generation]:
        """Batched ``transformers`` generation with the KV cache, in the order of ``prompts``.

        ``allowed_spans[i]``, when given, is the context of prompt i (e.g. its retrieved passages):
        the answer is then constrained to a token span of one of those texts, chosen by the model's
        own scores (span-constrained grounded decoding). ``streamer`` (a transformers streamer) receives
        the new tokens as they come; it takes one prompt at a time. Decoding runs rag_bench.models.decode_loop
        (the same tokens as transformers' loop, faster); ``reference=True`` runs transformers' own loop instead.
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
                texts, n_new, capped = self._generate_batch([encoded[i][0] for i in idx], decode, spans, streamer,
                                                             reference=reference)
                for i, text, n, cap in zip(idx, texts, n_new, capped, strict=True):
                    ids, dropped = encoded[i]
                    results[i] = Generation(text=text, prompt_tokens=len(ids), truncated_tokens=dropped, new_tokens=n,
                                            hit_cap=cap)
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
                        streamer: Any = None, *, reference: bool = False) -> tuple[list[str], list[int], list[bool]]:
        padded = self.tokenizer.pad({"input_ids": batch}, padding=True, return_tensors="pt").to(self.device)
        prompt_len = padded["input_ids"].shape[1]
        kwargs = {"max_new_tokens": decode.max_new_tokens, "do_sample": decode.do_sample,
                  "num_beams": decode.num_beams, "repetition_penalty": decode.repetition_penalty,
                  "pad_token_id": self.tokenizer.pad_token_id, "eos_token_id": self.tokenizer.eos_token_id}
        if decode.do_sample:
            kwargs.update(temperature=decode.temperature, top_p=decode.top_p, top_k=decode.top_k or None)
        else:  # silence transformers' warnings about sampling settings inherited from a base model's config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if spans is not None:
            kwargs["prefix_allowed_tokens_fn"] = span_constraint(self.tokenizer, spans, prompt_len,
                                                                 self._stop_token_ids(decode.stop))
        # one precision at every batch size, so an answer does not depend on the batch it was asked in, though
        # at batch 1 bf16 runs at 0.65x an fp32 pipeline (bench/generate_bench.py)
        with torch.inference_mode(), autocast(self.device):
            if reference:
                if decode.stop:
                    kwargs.update(stop_strings=list(decode.stop), tokenizer=self.tokenizer)
                out = self.model.generate(**padded, streamer=streamer, **kwargs)
            else:
                out = generate_fast(self.model, **padded, stop_strings=decode.stop, tokenizer=self.tokenizer,
                                    streamer=streamer, **kwargs)
        new = out[:, prompt_len:].tolist()
        texts, counts, capped = [], [], []
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        for row in new:
            ended = any(t in ends for t in row)
            row = [t for t in row if t != self.tokenizer.pad_token_id]
            counts.append(len(row))
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            capped.append(not ended and len(new[0]) >= decode.max_new_tokens and not has_stop(text, decode.stop))
            texts.append(cut_at_stop(text, decode.stop))
        return texts, counts, capped

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
