"""The project's decode loop: transformers' ``generate`` prepares everything, this loop replaces its sampling loop.

    from rag_bench.models.decode_loop import generate_fast
    out = generate_fast(lm.model, input_ids=ids, attention_mask=mask, max_new_tokens=24, do_sample=False,
                        pad_token_id=pad, eos_token_id=eos, stop_strings=("\\n",), tokenizer=tok)

``generate_fast`` calls ``model.generate`` with ``custom_generate=fast_sample``, so the logits processors
(repetition penalty, span constraints, temperature, top-k, top-p, watermark), stopping criteria, position ids and
the cache are transformers' own; ``fast_sample`` then does what ``_sample`` does (same processors, same
``softmax`` + ``multinomial`` or ``argmax``, same pad token after a row stops, same returned ids) with less work:

- **bf16 weight copies.** Under bf16 autocast every ``nn.Linear`` weight is cast again at every forward (a third
  of a SmolLM2 decode step). The loop casts each weight once, keeps the copies while the weights are unchanged, and
  runs the model through ``torch.func.functional_call`` with them: the same bf16 operands autocast would make, so
  the same logits, bit for bit (tests/test_models_decode_loop.py).
- **A preallocated KV cache.** transformers' ``DynamicLayer`` concatenates keys and values at every step (a copy
  of the whole cache per layer per token); ``PreallocatedLayer`` writes into room made once after the prefill.
- **Finished rows leave the batch.** Once a quarter of the rows have stopped (EOS or a stop string), they are
  dropped from the cache and the batch; the output still holds pad tokens after their end, as ``_sample``'s does.
  Greedy tokens are therefore the same; when sampling, rows that outlive a compaction draw from the same
  distributions but from a different stretch of the random stream than ``_sample`` would, unless no row stops
  early (the writer: no stop criteria), where the draws are identical too.

Beam search and anything else the loop does not do (output scores, assisted decoding) goes to ``_sample`` or to
transformers' own mode unchanged.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import torch
from transformers import GenerationConfig, StoppingCriteriaList, StopStringCriteria
from transformers.cache_utils import Cache, DynamicLayer
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    PrefixConstrainedLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    WatermarkLogitsProcessor,
)
from transformers.generation.utils import GenerationMixin

COMPACT_SHARE = 0.25  # drop finished rows once they are this share of the batch (each drop copies the cache)
MODEL_INPUTS = frozenset({"attention_mask", "position_ids", "past_key_values", "logits_to_keep", "use_cache"})
# processors that read only each row's own ids, so dropping rows cannot confuse them
ROW_FREE_PROCESSORS = (MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor, NoRepeatNGramLogitsProcessor,
                       TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, WatermarkLogitsProcessor)
_CASTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (weights' identity, cast copies)


def generate_fast(model: Any, *, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                  stop_strings: Sequence[str] = (), tokenizer: Any = None, streamer: Any = None,
                  **kwargs: Any) -> torch.Tensor:
    """``model.generate(input_ids, attention_mask, **kwargs)`` through this loop where it applies (one beam).

    ``stop_strings`` need ``tokenizer``; ``streamer`` gets the prompt and each new token, as with ``generate``.
    """
    criteria = StoppingCriteriaList(kwargs.pop("stopping_criteria", None) or [])
    if stop_strings:
        criteria.append(StopStringCriteria(tokenizer, list(stop_strings)))
    if kwargs.get("num_beams", 1) != 1:  # beam search: transformers' own
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, stopping_criteria=criteria,
                              streamer=streamer, **kwargs)
    return model.generate(input_ids=input_ids, attention_mask=attention_mask, stopping_criteria=criteria,
                          custom_generate=fast_sample, token_streamer=streamer, **kwargs)


def fast_sample(model: Any, input_ids: torch.Tensor, logits_processor: LogitsProcessorList,
                stopping_criteria: StoppingCriteriaList, generation_config: GenerationConfig,
                token_streamer: Any = None, **model_kwargs: Any) -> torch.Tensor:
    """``GenerationMixin._sample`` for one beam, with cast weights, a preallocated cache and compaction."""
    if token_streamer is not None:
        token_streamer.put(input_ids.cpu())
    unsupported = (set(model_kwargs) - MODEL_INPUTS or generation_config.return_dict_in_generate
                   or not isinstance(model_kwargs.get("past_key_values"), Cache))
    if unsupported:
        return GenerationMixin._sample(model, input_ids, logits_processor=logits_processor,
                                       stopping_criteria=stopping_criteria, generation_config=generation_config,
                                       synced_gpus=False, streamer=token_streamer, **model_kwargs)
    pad = generation_config._pad_token_tensor
    stops_at_eos = any(hasattr(c, "eos_token_id") for c in stopping_criteria)
    batch, prompt_len = input_ids.shape
    total = max(generation_config.max_length, prompt_len + 1)
    seq = input_ids.new_full((batch, total), int(pad) if pad is not None else 0)
    seq[:, :prompt_len] = input_ids
    mask = model_kwargs.pop("attention_mask", None)
    if mask is not None:
        full_mask = mask.new_ones((batch, total))
        full_mask[:, :prompt_len] = mask
    positions = model_kwargs.pop("position_ids", None)
    cache = model_kwargs.pop("past_key_values")
    rows = torch.arange(batch, device=input_ids.device)  # original row of each row still in the batch
    unfinished = torch.ones(batch, dtype=torch.bool, device=input_ids.device)
    weights = cast_weights(model)
    selector = _RowSelector(logits_processor)
    compactable = selector.supported and isinstance(getattr(cache, "layers", None), list)
    step_inputs = {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}
    width = prompt_len
    while True:
        outputs = _forward(model, weights, {**step_inputs, "past_key_values": cache, **model_kwargs})
        if width == prompt_len:
            preallocate(cache, total)
        logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32)
        del outputs
        scores = logits_processor(seq[rows, :width], logits)
        if generation_config.do_sample:
            next_tokens = torch.multinomial(torch.nn.functional.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            next_tokens = torch.argmax(scores, dim=-1)
        if stops_at_eos:
            next_tokens = torch.where(unfinished, next_tokens, pad)
        seq[rows, width] = next_tokens
        width += 1
        if token_streamer is not None:
            token_streamer.put(next_tokens.cpu())
        unfinished &= ~stopping_criteria(seq[rows, :width], None)
        if not bool(unfinished.any()) or width >= total:
            break
        if stops_at_eos and compactable and int((~unfinished).sum()) >= max(1, COMPACT_SHARE * len(rows)):
            keep = unfinished.nonzero().squeeze(1)
            for layer in cache.layers:  # every cache layer kind can reorder its rows (beam search needs it)
                layer.reorder_cache(keep)
            rows, unfinished, next_tokens = rows[keep], unfinished[keep], next_tokens[keep]
            positions = positions[keep] if positions is not None else None
            selector.select(rows)
        step_inputs = {"input_ids": next_tokens[:, None],
                       "attention_mask": full_mask[rows, :width] if mask is not None else None,
                       "position_ids": positions[:, -1:] + 1 if positions is not None else None}
        positions = step_inputs["position_ids"]
    if token_streamer is not None:
        token_streamer.end()
    return seq[:, :width]


def _forward(model: Any, weights: dict[str, torch.Tensor] | None, kwargs: dict[str, Any]) -> Any:
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if weights is None:
        return model(**kwargs)
    return torch.func.functional_call(model, weights, args=(), kwargs=kwargs, tie_weights=False, strict=False)


class _RowSelector:
    """Keeps the per-row state of the logits processors in step with the rows left in the batch."""

    def __init__(self, processors: LogitsProcessorList) -> None:
        self.spans = [(p, p._prefix_allowed_tokens_fn) for p in processors
                      if isinstance(p, PrefixConstrainedLogitsProcessor)]
        self.penalties = [(p, p.prompt_ignore_length) for p in processors
                          if isinstance(p, RepetitionPenaltyLogitsProcessor)
                          and isinstance(p.prompt_ignore_length, torch.Tensor)]
        # any other processor might hold per-row state: then finished rows stay in the batch
        known = (*ROW_FREE_PROCESSORS, PrefixConstrainedLogitsProcessor, RepetitionPenaltyLogitsProcessor)
        self.supported = all(isinstance(p, known) for p in processors)

    def select(self, rows: torch.Tensor) -> None:
        """Row i of the batch is now original row ``rows[i]``."""
        original = rows.tolist()
        for proc, fn in self.spans:
            proc._prefix_allowed_tokens_fn = lambda batch_id, ids, fn=fn: fn(original[batch_id], ids)
        for proc, lengths in self.penalties:
            proc.prompt_ignore_length = lengths.to(rows.device)[rows]


def cast_weights(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The ``nn.Linear`` weights in autocast's dtype when autocast is on (else None), cast once per weight state.

    Only linear weights: embeddings and norms stay as they are, as under autocast (a tied output head gets its own
    copy while the input embedding keeps fp32).
    """
    device_type = next(model.parameters()).device.type
    if not torch.is_autocast_enabled(device_type):
        return None
    dtype = torch.get_autocast_dtype(device_type)
    linears = [(name, module.weight) for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and module.weight.dtype != dtype]
    key = (dtype, tuple((id(w), w._version) for _, w in linears))
    cached = _CASTS.get(model)
    if cached is None or cached[0] != key:
        cached = (key, {f"{name}.weight": w.detach().to(dtype) for name, w in linears})
        _CASTS[model] = cached
    return cached[1] or None


class PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views into buffers sized for the whole generation."""

    def __init__(self, layer: DynamicLayer, capacity: int) -> None:
        super().__init__()
        keys, values = layer.keys, layer.values
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self.length = keys.shape[-2]
        self._keys = keys.new_empty((*keys.shape[:-2], capacity, keys.shape[-1]))
        self._values = values.new_empty((*values.shape[:-2], capacity, values.shape[-1]))
        self._keys[..., :self.length, :] = keys
        self._values[..., :self.length, :] = values
        self._view()

    def _view(self) -> None:
        self.keys = self._keys[..., :self.length, :]
        self.values = self._values[..., :self.length, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + key_states.shape[-2]
        if end > self._keys.shape[-2]:  # more than planned: grow as DynamicLayer would
            self._keys = torch.cat([self._keys[..., :self.length, :], key_states], dim=-2)
            self._values = torch.cat([self._values[..., :self.length, :], value_states], dim=-2)
        else:
            self._keys[..., self.length:end, :] = key_states
            self._values[..., self.length:end, :] = value_states
        self.length = end
        self._view()
        return self.keys, self.values

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        """Keep (and reorder) the rows ``beam_idx``: the loop drops finished rows so."""
        self._keys = self._keys.index_select(0, beam_idx.to(self._keys.device))
        self._values = self._values.index_select(0, beam_idx.to(self._values.device))
        self._view()

    batch_select_indices = reorder_cache


def preallocate(cache: Cache, capacity: int) -> None:
    """Swap each plain ``DynamicLayer`` of ``cache`` for a ``PreallocatedLayer`` of ``capacity`` positions."""
    layers = getattr(cache, "layers", None) or []
    for i, layer in enumerate(layers):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys is not None and layer.keys.numel():
            layers[i] = PreallocatedLayer(layer, capacity)
